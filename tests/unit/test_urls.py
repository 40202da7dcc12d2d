"""Specification of URL safety (ResponseSanitizer.validate_url)."""

from __future__ import annotations

import ipaddress
import unicodedata
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timmybot_core import ResponseSanitizer
from timmybot_core.safety.special_addresses import IPV4_SPECIAL, IPV6_SPECIAL, SpecialBlock

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


@pytest.mark.parametrize(
    "url",
    [
        "https://[2606:4700::1]evil.com/",
        "https://[2606:4700::1].evil.com/",
        "https://[2606:4700::1]evil.com:8443/x",
        "https://[2606:4700::1]]/",
    ],
)
def test_text_after_a_bracketed_address_is_refused_never_dropped(url: str) -> None:
    # urlsplit's hostname is only what is inside the brackets: returning it
    # would turn a URL that browsers refuse into one naming another host.
    assert sanitizer.validate_url(url) is None


def test_a_bracketed_address_keeps_its_port() -> None:
    assert sanitizer.validate_url("https://[2606:4700::1]:8443/x") == (
        "https://[2606:4700::1]:8443/x"
    )
    assert sanitizer.validate_url("https://[2606:4700::1]:/") == "https://[2606:4700::1]/"


@pytest.mark.parametrize("value", [None, 42, b"https://example.com"])
def test_non_text_is_refused(value: object) -> None:
    assert sanitizer.validate_url(value) is None


def test_length_limit_is_2048() -> None:
    base = "https://example.com/"
    assert sanitizer.validate_url(base + "a" * (2048 - len(base))) is not None
    assert sanitizer.validate_url(base + "a" * (2049 - len(base))) is None


# -- the special-purpose table, not the interpreter's flags -------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://192.0.0.192/latest/meta-data/",  # Oracle Cloud metadata
        "https://[3fff::1]/",  # documentation, RFC 9637
        "https://100.64.0.1/",  # carrier-grade NAT
        "https://198.18.0.1/",  # benchmarking
    ],
)
def test_the_special_purpose_urls_of_the_review_are_refused(url: str) -> None:
    assert sanitizer.validate_url(url) is None


def _edges(block: SpecialBlock) -> list[str]:
    network = block.network
    first, last = network.network_address, network.broadcast_address
    inside = [first, last, first + (network.num_addresses // 2)]
    return [f"[{a}]" if a.version == 6 else str(a) for a in inside]


@pytest.mark.parametrize("block", [*IPV4_SPECIAL, *IPV6_SPECIAL], ids=lambda b: str(b.network))
def test_every_address_of_every_table_block_is_refused(block: SpecialBlock) -> None:
    for host in _edges(block):
        assert sanitizer.validate_url(f"https://{host}/x") is None, host


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:192.0.0.192]",  # IPv4-mapped
        "[::ffff:100.64.0.1]",
        "[64:ff9b::c000:c0]",  # NAT64 well-known prefix, 192.0.0.192
        "[64:ff9b::6440:1]",  # NAT64, 100.64.0.1
        "[64:ff9b:1::808:808]",  # local-use NAT64: refused whatever it embeds
        "[2002:c000:c0::1]",  # 6to4 of 192.0.0.192
        "[2002:c612:1::1]",  # 6to4 of 198.18.0.1
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
        "[::c000:c0]",  # IPv4-compatible
        "[::ffff:0:808:808]",  # SIIT, outside global unicast
        "[4000::1]",  # unallocated
    ],
)
def test_embedded_and_unallocated_ipv6_forms_are_refused(host: str) -> None:
    assert sanitizer.validate_url(f"https://{host}/x") is None


@pytest.mark.parametrize(
    "host",
    ["8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]", "[2002:808:808::1]"],
)
def test_public_addresses_pass_in_every_form(host: str) -> None:
    assert sanitizer.validate_url(f"https://{host}/x") is not None


def test_the_verdict_does_not_depend_on_the_interpreters_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An interpreter whose ipaddress calls everything global and nothing
    # private (flags have changed between releases) gives the same verdicts.
    for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        for flag in (
            "is_private",
            "is_reserved",
            "is_loopback",
            "is_link_local",
            "is_multicast",
            "is_unspecified",
            "is_site_local",
        ):
            if hasattr(cls, flag):
                monkeypatch.setattr(cls, flag, property(lambda self: False))
        monkeypatch.setattr(cls, "is_global", property(lambda self: True))
    for url in (
        "https://192.0.0.192/",
        "https://[3fff::1]/",
        "https://10.0.0.1/",
        "https://[::1]/",
        "https://169.254.169.254/",
    ):
        assert sanitizer.validate_url(url) is None, url
    assert sanitizer.validate_url("https://8.8.8.8/") == "https://8.8.8.8/"


# -- hosts as browsers read them ----------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "faß.de",  # IDNA 2003: fass.de; IDNA 2008: xn--fa-hia.de
        "FASS.DE\u00df",
        "ς.gr",  # final sigma
        "a\u200db.com",  # zero-width joiner
        "a\u200cb.com",  # zero-width non-joiner
        "☃.net",  # a symbol: IDNA 2003 only
        "ｅｘａｍｐｌｅ.com",  # compatibility forms folded by IDNA 2003
        "ℌ.com",
    ],
)
def test_hosts_on_which_idna_2003_and_2008_disagree_are_refused(host: str) -> None:
    assert sanitizer.validate_url(f"https://{host}/") is None


def test_fass_is_never_returned_for_fass_with_sharp_s() -> None:
    result = sanitizer.validate_url("https://faß.de/")
    assert result is None or "fass.de" not in result


@given(st.text(min_size=1, max_size=20))
def test_the_returned_host_is_always_the_host_given(label: str) -> None:
    result = sanitizer.validate_url(f"https://{label}.example.com/")
    if result is None:
        return
    host = urlsplit(result).hostname or ""
    given_host = unicodedata.normalize("NFC", f"{label}.example.com".lower())
    assert host.encode("ascii").decode("idna") == given_host


@pytest.mark.parametrize(
    ("host", "browser_host"),
    [
        ("\u1d2cpple.com", "apple.com"),  # MODIFIER LETTER CAPITAL A (Unicode 4.0)
        ("\u2c7cava.com", "java.com"),  # LATIN SUBSCRIPT SMALL LETTER J (Unicode 5.1)
        ("\u13a0bc.com", "xn--bc-x8l.com"),  # CHEROKEE LETTER A: lower() gives U+AB70
        ("a\u115fb.com", "ab.com"),  # HANGUL CHOSEONG FILLER, a default ignorable
        ("a\u17b4b.com", "ab.com"),  # KHMER VOWEL INHERENT AQ, a default ignorable
    ],
)
def test_hosts_a_browser_maps_to_another_name_are_refused(host: str, browser_host: str) -> None:
    # IDNA 2003 knows only Unicode 3.2 and passes these through unchanged, so
    # its round trip cannot tell; UTS 46 (what a browser runs) maps them to
    # ``browser_host``, and the punycode we returned would name another host.
    result = sanitizer.validate_url(f"https://{host}/")
    assert result is None, f"{result} is not {browser_host}, which a browser opens"


@given(st.text(min_size=1, max_size=8))
def test_an_accepted_international_host_is_the_host_a_browser_opens(label: str) -> None:
    idna = pytest.importorskip("idna")  # UTS 46, as browsers map hosts
    result = sanitizer.validate_url(f"https://{label}.example.com/")
    if result is None or label.isascii():
        return
    try:
        browser = idna.encode(f"{label}.example.com", uts46=True, transitional=False)
    except idna.IDNAError:
        return  # a browser refuses the host: it opens nothing, not another host
    assert browser.decode("ascii") == urlsplit(result).hostname


def test_international_names_both_standards_agree_on_pass() -> None:
    assert sanitizer.validate_url("https://bücher.de/") == "https://xn--bcher-kva.de/"
    assert sanitizer.validate_url("https://BÜCHER.de/") == "https://xn--bcher-kva.de/"
    assert sanitizer.validate_url("https://пример.рф/") == "https://xn--e1afmkfd.xn--p1ai/"
