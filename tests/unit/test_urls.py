"""Specification of URL safety (ResponseSanitizer.validate_url)."""

from __future__ import annotations

import pytest

from timmybot_core import ResponseSanitizer

sanitizer = ResponseSanitizer()


@pytest.mark.parametrize(
    "url",
    [
        "https://i.scdn.co/image/ab67616d0000b273",
        "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC?si=x#frag",
        "https://example.com:8443/path",
        "https://8.8.8.8/a",
        "https://[2606:4700:4700::1111]/",
    ],
)
def test_public_https_urls_pass(url: str) -> None:
    assert sanitizer.validate_url(url) == url


def test_idn_hosts_are_returned_in_ascii_form() -> None:
    assert sanitizer.validate_url("https://bücher.de/x") == "https://xn--bcher-kva.de/x"


def test_scheme_and_host_case_are_canonical() -> None:
    assert sanitizer.validate_url("HTTPS://Example.COM/Path") == "https://example.com/Path"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "javascript:alert(1)",
        "data:text/html,x",
        "ftp://example.com/",
        "//example.com/x",
        "https:///path",
        "https://",
        "",
    ],
)
def test_only_https_with_a_host(url: str) -> None:
    assert sanitizer.validate_url(url) is None


def test_plain_http_only_when_allowed() -> None:
    assert ResponseSanitizer(allow_http=True).validate_url("http://example.com/") == (
        "http://example.com/"
    )


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "api.localhost",
        "printer.local",
        "intranet",
        "ｌｏｃａｌｈｏｓｔ",
        "127.0.0.1",
        "127.1",
        "0x7f.1",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127。0。0。1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.0.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[fd00:ec2::254]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:7f00:1::]",
        "[fec0::1]",
        "999.1.1.1",
        "1.2.3.4.5",
        "example.123",
    ],
)
def test_hosts_that_reach_this_machine_or_a_private_network_are_refused(host: str) -> None:
    assert sanitizer.validate_url(f"https://{host}/x") is None


@pytest.mark.parametrize(
    "url",
    [
        "https://user@example.com/",
        "https://user:pw@example.com/",
        "https://example.com@127.0.0.1/",
        "https://%31%32%37.0.0.1/",
        "https://[fe80::1%25eth0]/",
        "https://exa mple.com/",
        "https://example.com/\tpath",
        "https://example.com\\@evil.com/",
        "https://example.com/\u202e",
        "https://example.com/\ud800",
        "https://example.com:0/",
        "https://example.com:70000/",
        "https://[::1/",
        "https://" + "a" * 2050 + ".com/",
    ],
)
def test_malformed_or_deceptive_urls_are_refused(url: str) -> None:
    assert sanitizer.validate_url(url) is None


@pytest.mark.parametrize("value", [None, 42, b"https://example.com"])
def test_non_text_is_refused(value: object) -> None:
    assert sanitizer.validate_url(value) is None


def test_length_limit_is_2048() -> None:
    base = "https://example.com/"
    assert sanitizer.validate_url(base + "a" * (2048 - len(base))) is not None
    assert sanitizer.validate_url(base + "a" * (2049 - len(base))) is None
