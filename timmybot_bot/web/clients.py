"""Who is asking the web server: the client address, and a rate limit per address.

The callback is public: anyone can send it requests. Each client address
(an IPv6 client by its /64, which one host usually holds whole) gets a token
bucket; past it the callback answers 429 without touching any store.

The address is the TCP peer's. ``X-Forwarded-For`` is believed only when the
peer is one of the configured proxies (``TIMMYBOT_WEB_TRUSTED_PROXIES``), and
then read from the right: the first hop that is not a trusted proxy is the
client. Without that rule anyone could name any address and escape the limit.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import attrs

__all__ = ["ClientRateLimiter", "IPNetwork", "client_address", "parse_networks"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_HOPS = 32


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Parse comma- or space-separated addresses and CIDR networks; raise ``ValueError``."""
    networks: list[IPNetwork] = []
    for part in text.replace(",", " ").split():
        if not part.isascii():
            raise ValueError(f"{part[:40]!r} is not an IP address or network")
        try:
            network = ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ValueError(f"{part[:40]!r} is not an IP address or network") from None
        networks.append(_unmapped(network))
    return tuple(networks)


def _unmapped(network: IPNetwork) -> IPNetwork:
    """Return an IPv4-mapped network (``::ffff:10.0.0.0/104``) as the IPv4 one it names.

    Peers are compared unmapped (see :func:`_address`), so a mapped network
    as configured would never match one.
    """
    mapped = ipaddress.IPv6Network("::ffff:0:0/96")
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(mapped):
        low_32_bits = int(network.network_address) & 0xFFFF_FFFF
        return ipaddress.IPv4Network((low_32_bits, network.prefixlen - 96))
    return network


def _address(text: str | None) -> _Address | None:
    if not text:
        return None
    value = text.strip()
    if value.startswith("[") and "]" in value:  # [2001:db8::1]:443
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # 198.51.100.1:5555, as some proxies write a hop
        host, _, port = value.partition(":")
        if not (port.isascii() and port.isdigit()):
            return None
        value = host
    if not value.isascii():
        return None
    try:
        address = ipaddress.ip_address(value.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]
) -> str:
    """Return the client's address as text (``"unknown"`` when there is none).

    ``forwarded_for`` holds every ``X-Forwarded-For`` header value, in order.
    """
    address = _address(peer)
    if address is None:
        return "unknown"
    if not trusted or not any(address in network for network in trusted):
        return str(address)
    hops = [hop for value in forwarded_for for hop in value.split(",")][-_MAX_HOPS:]
    for hop in reversed(hops):
        parsed = _address(hop)
        if parsed is None:
            break  # a garbled hop: trust nothing further left of it
        address = parsed
        if not any(address in network for network in trusted):
            break
    return str(address)


def _bucket_key(address: str) -> str:
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


@attrs.define
class _Bucket:
    tokens: float
    at: float


class ClientRateLimiter:
    """A token bucket per client address: ``per_minute`` requests, refilled evenly.

    At most ``max_clients`` buckets are kept, so a flood of addresses costs
    bounded memory. Only a bucket that has refilled is dropped (the least
    recently used, once it is full again): it holds nothing a new bucket
    would not. A bucket still short of tokens is never dropped, or a client
    that sent enough requests from other addresses (an IPv6 /48 holds 65,536
    /64s) would push out its own bucket and start again full. While every
    bucket is still refilling, a new address is refused, with the wait until
    the oldest has refilled: the limit fails closed under such a flood
    instead of resetting it. A second, coarser bucket per network would not
    close this: it is itself evicted by enough networks.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or max_clients < 1:
            raise ValueError("a rate limit needs at least one request per minute and one client")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._max = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, address: str) -> float:
        """Take one request from ``address``'s bucket: 0.0 if allowed, else seconds to wait."""
        key = _bucket_key(address)
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            while len(self._buckets) >= self._max:
                # Buckets are kept in order of use, so the first one has
                # refilled for the longest.
                oldest = next(iter(self._buckets.values()))
                refilled = oldest.tokens + (now - oldest.at) * self._rate
                if refilled < self._capacity:
                    return (self._capacity - refilled) / self._rate
                self._buckets.popitem(last=False)
            bucket = _Bucket(tokens=self._capacity, at=now)
        bucket.tokens = min(self._capacity, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        self._buckets[key] = bucket
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate
