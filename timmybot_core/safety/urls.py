"""Syntactic safety of URLs the bot shows or fetches (thumbnails, track links).

The check is deliberately conservative and purely syntactic: it parses the
host the way browsers do (WHATWG IPv4 forms such as ``0x7f.1`` or
``2130706433``) and refuses any host that names this machine or a private
network. Addresses are judged by our own table of the IANA special-purpose
registries (:mod:`timmybot_core.safety.special_addresses`), never by the
interpreter's ``ipaddress`` flags, so every Python build gives the same
verdict. It cannot see what a public name resolves to (DNS rebinding); code
that *fetches* a URL must also check the resolved address.

Internationalized names: browsers map hosts with UTS 46 / IDNA 2008, the
standard library only knows IDNA 2003, and the two disagree on some names
(``faß.de`` is ``xn--fa-hia.de`` to a browser, ``fass.de`` to IDNA 2003:
another domain). The core has no IDNA 2008 library, so a non-ASCII host is
accepted only when IDNA 2003 gives it back unchanged (its Unicode form
round-trips to what was given, lower-cased and NFC) and every character is
a letter, mark or digit (IDNA 2008 refuses symbols that 2003 allowed): on
those hosts both standards agree. The URL returned never names another host
than the one given.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import SplitResult, urlsplit, urlunsplit

from timmybot_core.safety.special_addresses import is_public_address
from timmybot_core.safety.text import is_invisible

__all__ = ["MAX_URL_LENGTH", "safe_url"]

MAX_URL_LENGTH = 2048

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# RFC 6761 special-use suffixes that never leave the machine or the LAN.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
_IPV4_PART = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
# Host characters after IDNA mapping: letters, digits, hyphen, underscore, dot.
_ASCII_HOST = re.compile(r"^[a-z0-9_.-]+$")
# Dots UTS 46 maps to "." (ideographic, fullwidth and halfwidth full stops).
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
# What IDNA 2008 can hold (PVALID is a subset of these): letters, marks, digits.
_IDNA_CATEGORIES = frozenset({"Ll", "Lo", "Lm", "Mn", "Mc", "Nd"})
# IDNA 2003 is defined on Unicode 3.2: the codec passes later characters
# through unmapped, while UTS 46 maps them (U+1D2C MODIFIER LETTER CAPITAL A
# to "a", so "\u1d2cpple.com" is apple.com to a browser). The same holds
# for the Cherokee small letters that str.lower() produces since Unicode 8.
_UNICODE_3_2 = unicodedata.ucd_3_2_0

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
    values = [n for n in map(_parse_ipv4_part, labels) if n is not None]
    if len(values) < len(labels):
        return None
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        return None
    return ipaddress.IPv4Address(last + sum(n * 256 ** (3 - i) for i, n in enumerate(head)))


def _both_standards_keep(char: str) -> bool:
    """Whether IDNA 2003 and UTS 46 both keep ``char`` as it is (non-ASCII ``char``)."""
    return (
        unicodedata.category(char) in _IDNA_CATEGORIES
        # Unassigned in Unicode 3.2: IDNA 2003 cannot have mapped it.
        and _UNICODE_3_2.category(char) != "Cn"
        # Default ignorables that are letters or marks (Hangul fillers, Khmer
        # inherent vowels, Mongolian selectors): UTS 46 deletes them.
        and not is_invisible(char)
    )


def _ascii_host(hostname: str) -> str | None:
    if hostname.isascii():
        try:
            # ASCII passes through unchanged; the codec checks label lengths.
            host = hostname.encode("idna").decode("ascii").lower()
        except (UnicodeError, ValueError):
            return None
        return host if _ASCII_HOST.match(host) else None
    wanted = unicodedata.normalize("NFC", hostname.lower()).translate(_DOTS)
    try:
        host = wanted.encode("idna").decode("ascii").lower()
        back = host.encode("ascii").decode("idna")
    except (UnicodeError, ValueError):
        return None
    if back != wanted:
        # IDNA 2003 mapped the name to another one (ß to ss, final sigma,
        # joiners dropped, compatibility forms folded): a browser, with
        # IDNA 2008, would open a different host. Refused, never rewritten.
        return None
    labels_ok = all(char.isascii() or _both_standards_keep(char) for char in back)
    return host if labels_ok and _ASCII_HOST.match(host) else None


def _safe_host(split: SplitResult) -> str | None:
    """Return the host in ASCII form if it is acceptable, else ``None``."""
    netloc = split.netloc
    if "@" in netloc or "%" in netloc:
        return None  # user-info, or a percent-encoded host or zone id
    hostname = split.hostname
    if not hostname:
        return None
    if netloc.startswith("["):
        after = netloc[netloc.find("]") + 1 :]
        if after and not after.startswith(":"):
            # "[2606:4700::1]evil.com": urlsplit's hostname is only the
            # bracketed part, browsers refuse the whole; never drop the rest.
            return None
        try:
            address: _IPAddress = ipaddress.IPv6Address(hostname)
        except ValueError:
            return None
        return f"[{address.compressed}]" if is_public_address(address) else None
    host = _ascii_host(hostname)
    if host is None:
        return None
    ipv4 = _whatwg_ipv4(host)
    if ipv4 is None:
        return None
    if isinstance(ipv4, ipaddress.IPv4Address):
        return str(ipv4) if is_public_address(ipv4) else None
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
    if split.scheme.lower() not in schemes or port == 0:
        return None
    host = _safe_host(split)
    if host is None:
        return None
    netloc = host if port is None else f"{host}:{port}"
    result = urlunsplit((split.scheme.lower(), netloc, split.path, split.query, split.fragment))
    return result if len(result) <= MAX_URL_LENGTH else None
