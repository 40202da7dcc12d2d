"""Syntactic safety of URLs the bot shows or fetches (thumbnails, track links).

The check is deliberately conservative and purely syntactic: it parses the
host the way browsers do (IDNA mapping, WHATWG IPv4 forms such as
``0x7f.1`` or ``2130706433``) and refuses any host that names this machine or
a private network. It cannot see what a public name resolves to (DNS
rebinding); code that *fetches* a URL must also check the resolved address.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

__all__ = ["MAX_URL_LENGTH", "safe_url"]

MAX_URL_LENGTH = 2048

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# RFC 6761 special-use suffixes that never leave the machine or the LAN.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
_IPV4_PART = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
# Host characters after IDNA mapping: letters, digits, hyphen, underscore, dot.
_ASCII_HOST = re.compile(r"^[a-z0-9_.-]+$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse_ipv4_part(part: str) -> int | None:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if all(c in "01234567" for c in part) else None
    return int(part)


def _whatwg_ipv4(host: str) -> ipaddress.IPv4Address | bool | None:
    """Parse ``host`` as browsers do; ``False`` when it is not an IPv4 form at all.

    Returns the address, ``None`` for a numeric host that is invalid (which
    browsers refuse), or ``False`` for an ordinary name.
    """
    labels = host.split(".")
    if labels and labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    # WHATWG: a host whose last label is numeric is an IPv4 address.
    if not labels or not _IPV4_PART.match(labels[-1]):
        return False
    if len(labels) > 4 or not all(_IPV4_PART.match(label) for label in labels):
        return None
    numbers = [_parse_ipv4_part(label) for label in labels]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        return None
    address = last
    for index, number in enumerate(head):
        address += number * 256 ** (3 - index)
    return ipaddress.IPv4Address(address)


def _is_public(address: _IPAddress) -> bool:
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            return False
        # Addresses that embed an IPv4 address reach that address.
        embedded: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return all(_is_public(inner) for inner in embedded)
    return True


def _ascii_host(hostname: str) -> str | None:
    try:
        # The IDNA codec applies nameprep (NFKC and case folding) and treats
        # ideographic full stops as dots, as browsers do: "ｌｏｃａｌｈｏｓｔ" and
        # "127。0。0。1" are seen for what they are.
        host = hostname.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return None
    return host if _ASCII_HOST.match(host) else None


def _safe_host(split: SplitResult) -> str | None:
    """Return the host in ASCII form if it is acceptable, else ``None``."""
    netloc = split.netloc
    if "@" in netloc or "%" in netloc:
        return None  # user-info, or a percent-encoded host or zone id
    hostname = split.hostname
    if not hostname:
        return None
    if netloc.startswith("["):
        try:
            address: _IPAddress = ipaddress.IPv6Address(hostname)
        except ValueError:
            return None
        return f"[{address.compressed}]" if _is_public(address) else None
    host = _ascii_host(hostname)
    if host is None:
        return None
    ipv4 = _whatwg_ipv4(host)
    if ipv4 is None:
        return None
    if ipv4 is not False:
        assert isinstance(ipv4, ipaddress.IPv4Address)  # noqa: S101 - narrowing
        return str(ipv4) if _is_public(ipv4) else None
    bare = host.rstrip(".")
    if not bare or bare in _LOCAL_NAMES or bare.endswith(_LOCAL_SUFFIXES) or "." not in bare:
        # A dotless name resolves through the local search domain.
        return None
    return host


def safe_url(url: object, *, allow_http: bool = False) -> str | None:
    """Return ``url`` in canonical form if it is safe to show or fetch, else ``None``.

    Safe means: ``https`` (or ``http`` when ``allow_http``), a public host (no
    loopback, private, link-local, multicast, reserved or unspecified address,
    in any spelling), no user-info, no whitespace, controls or backslashes,
    and at most 2048 characters. The returned URL has its scheme and host
    lower-cased and an IDN host in its ASCII form. Never raises.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return None
    # Browsers silently drop tabs and newlines and treat '\' as '/', which
    # turns innocent-looking strings into other URLs; refuse them outright.
    if not url.isprintable() or any(c.isspace() or c == "\\" for c in url):
        return None
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:
        return None
    schemes = ("https", "http") if allow_http else ("https",)
    if split.scheme.lower() not in schemes:
        return None
    if port == 0:
        return None
    host = _safe_host(split)
    if host is None:
        return None
    netloc = host if port is None else f"{host}:{port}"
    result = urlunsplit((split.scheme.lower(), netloc, split.path, split.query, split.fragment))
    return result if len(result) <= MAX_URL_LENGTH else None
