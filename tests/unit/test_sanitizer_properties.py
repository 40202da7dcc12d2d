"""Properties of ResponseSanitizer over arbitrary Unicode."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import any_char, any_text
from timmybot_core import ResponseSanitizer
from timmybot_core.safety.text import is_invisible

sanitizer = ResponseSanitizer()
LIVE_MENTION = re.compile(r"@(everyone|here)|<@[!&]?\d+>|<#\d+>|</[^>]+:\d+>", re.IGNORECASE)


@given(text=any_text)
def test_sanitize_string_is_total_clean_bounded_and_idempotent(text: str) -> None:
    out = sanitizer.sanitize_string(text)
    out.encode("utf-8")
    assert len(out) <= 200
    assert "<" not in out and ">" not in out
    assert not any(is_invisible(c) for c in out)
    assert sanitizer.sanitize_string(out) == out


@given(text=any_text, limit=st.integers(min_value=1, max_value=2500))
def test_for_discord_is_total_bounded_idempotent_and_mention_free(text: str, limit: int) -> None:
    out = sanitizer.for_discord(text, limit=limit)
    out.encode("utf-8")
    assert len(out) <= limit
    assert not LIVE_MENTION.search(out)
    assert not any(is_invisible(c) and c != "\n" for c in out)
    assert sanitizer.for_discord(out, limit=limit) == out


@given(text=st.text(any_char, min_size=2100, max_size=2600))
def test_for_discord_default_limit_is_discords_message_limit(text: str) -> None:
    assert len(sanitizer.for_discord(text)) <= 2000


def _host_is_public(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host not in {"localhost", ""}
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


url_parts = st.sampled_from(
    ["https://", "http://", "HTTPS://", "javascript:", "//", "ftp://", "https:", ""]
)
hosts = st.sampled_from(
    [
        "example.com",
        "i.scdn.co",
        "127.0.0.1",
        "0x7f.1",
        "2130706433",
        "0177.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "10.0.0.1",
        "192.168.1.1",
        "[fe80::1]",
        "localhost",
        "ｌｏｃａｌｈｏｓｔ",
        "127。0。0。1",
        "user:pw@example.com",
        "224.0.0.1",
        "0.0.0.0",
        "[::]",
        "8.8.8.8",
        "[2606:4700::1111]",
        "bücher.de",
        "a.localhost",
        "x",
    ]
)


@given(url=st.one_of(any_text, st.tuples(url_parts, hosts, any_text).map("".join)))
def test_validate_url_returns_none_or_a_public_https_url(url: str) -> None:
    out = sanitizer.validate_url(url)
    if out is None:
        return
    out.encode("utf-8")
    assert out.startswith("https://")
    assert len(out) <= 2048
    assert _host_is_public(out)
    assert sanitizer.validate_url(out) == out
