"""Our own copy of the IANA special-purpose address registries, and the verdict from it.

``ipaddress``'s ``is_private`` / ``is_global`` / ``is_reserved`` flags
changed between Python releases (3.11.x, 3.12.x and 3.13 each fixed some
blocks), so a URL check built on them accepts different addresses on
different interpreters: on some builds ``192.0.0.192`` (Oracle Cloud's
metadata service) or ``3fff::1`` count as global. Here the blocks are
listed once, with their source, and :func:`is_public_address` decides from
this table only; ``ipaddress`` is used for parsing and integer arithmetic,
which do not vary.

Sources (as of 2025):

* IANA IPv4 Special-Purpose Address Registry, plus the IPv4 multicast
  space (224.0.0.0/4);
* IANA IPv6 Special-Purpose Address Registry, plus multicast (ff00::/8),
  the deprecated site-local block (fec0::/10) and everything outside
  global unicast (2000::/3), which IANA has not allocated for use;
* addresses that *embed* an IPv4 address (IPv4-mapped, NAT64's well-known
  prefix, 6to4) are judged by the IPv4 address they reach.

Blocks marked globally reachable by IANA but inside a larger refused block
(``192.0.0.9/32``, ``2001:1::1/128`` and the like: anycast services no
thumbnail lives on) stay refused: this check would rather refuse a rare
real address than accept an internal one.
"""

from __future__ import annotations

import ipaddress
from typing import Final

import attrs

__all__ = [
    "EMBEDDED_IPV4",
    "GLOBAL_UNICAST",
    "IPV4_SPECIAL",
    "IPV6_SPECIAL",
    "SpecialBlock",
    "is_public_address",
    "refusing_block",
]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@attrs.frozen(kw_only=True)
class SpecialBlock:
    """One registry entry: a network that is not public, and why."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    name: str
    source: str


def _blocks(rows: tuple[tuple[str, str, str], ...]) -> tuple[SpecialBlock, ...]:
    return tuple(
        SpecialBlock(network=ipaddress.ip_network(cidr), name=name, source=source)
        for cidr, name, source in rows
    )


IPV4_SPECIAL: Final = _blocks(
    (
        ("0.0.0.0/8", "this network", "RFC 791"),
        ("10.0.0.0/8", "private use", "RFC 1918"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)", "RFC 6598"),
        ("127.0.0.0/8", "loopback", "RFC 1122"),
        ("169.254.0.0/16", "link local (cloud metadata)", "RFC 3927"),
        ("172.16.0.0/12", "private use", "RFC 1918"),
        ("192.0.0.0/24", "IETF protocol assignments (Oracle Cloud metadata)", "RFC 6890"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
        ("192.168.0.0/16", "private use", "RFC 1918"),
        ("198.18.0.0/15", "benchmarking", "RFC 2544"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
        ("224.0.0.0/4", "multicast", "RFC 5771"),
        ("240.0.0.0/4", "reserved", "RFC 1112"),
        ("255.255.255.255/32", "limited broadcast", "RFC 919"),
    )
)

IPV6_SPECIAL: Final = _blocks(
    (
        ("::/128", "unspecified", "RFC 4291"),
        ("::1/128", "loopback", "RFC 4291"),
        ("::/96", "deprecated IPv4-compatible", "RFC 4291"),
        ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215"),
        ("100::/64", "discard only", "RFC 6666"),
        ("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
        ("2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID)", "RFC 2928"),
        ("2001:db8::/32", "documentation", "RFC 3849"),
        ("3fff::/20", "documentation", "RFC 9637"),
        ("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602"),
        ("fc00::/7", "unique local", "RFC 4193"),
        ("fe80::/10", "link local", "RFC 4291"),
        ("fec0::/10", "deprecated site local", "RFC 3879"),
        ("ff00::/8", "multicast", "RFC 4291"),
    )
)

GLOBAL_UNICAST: Final = ipaddress.IPv6Network("2000::/3")
"""Outside this block (and the embedded forms below) no IPv6 address is public."""

# (prefix, the bit offset of the embedded IPv4 address from the right).
EMBEDDED_IPV4: Final = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), 0, "IPv4-mapped, RFC 4291"),
    (ipaddress.IPv6Network("64:ff9b::/96"), 0, "NAT64 well-known prefix, RFC 6052"),
    (ipaddress.IPv6Network("2002::/16"), 80, "6to4, RFC 3056"),
)


def _embedded(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    for network, shift, _ in EMBEDDED_IPV4:
        if address in network:
            return ipaddress.IPv4Address((int(address) >> shift) & 0xFFFFFFFF)
    return None


def refusing_block(address: _IPAddress) -> str | None:
    """Return why ``address`` is not public (a block's name), or ``None`` if it is."""
    if isinstance(address, ipaddress.IPv4Address):
        return next((block.name for block in IPV4_SPECIAL if address in block.network), None)
    inner = _embedded(address)
    if inner is not None:
        # The embedded address is the one reached: judge it instead.
        reason = refusing_block(inner)
        return f"embeds {inner} ({reason})" if reason is not None else None
    name = next((block.name for block in IPV6_SPECIAL if address in block.network), None)
    if name is None and address not in GLOBAL_UNICAST:
        return "not global unicast (outside 2000::/3)"
    return name


def is_public_address(address: _IPAddress) -> bool:
    """Whether ``address`` is outside every special-purpose block of our table."""
    return refusing_block(address) is None
