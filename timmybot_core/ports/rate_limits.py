"""The rate-limit store: sliding-window counters shared by every process.

A key (``user:7:cmd:search``, ``guild:42``, ...) holds the moments of the
hits that counted in the last ``window`` seconds, at most ``limit`` of them.
:meth:`RateLimitStore.acquire` is one atomic step: forget the hits older than
the window, then either add this hit (there was room) or refuse and say when
the oldest counted hit leaves the window. So in any span of ``window``
seconds, across every process that shares the store, at most ``limit`` hits
of one key are allowed; nothing a key holds outlives its last hit by more
than one window, so the store does not grow without bound.

A request checked against several keys (per command, per user, per guild)
takes a hit on each in turn and, when a later key refuses, gives the earlier
hits back with :meth:`RateLimitStore.release`. A crash between the two leaves
a hit counted that was never used: the limit errs on the strict side.

The moment of a hit is the caller's wall clock (seconds); processes whose
clocks disagree share a key as well as their clocks agree.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

__all__ = ["RateDecision", "RateLimit", "RateLimitStore"]


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"rate limit: {attribute.name} must be a positive integer, not {value!r}")


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise ValueError(f"rate limit: {attribute.name} must be positive seconds, not {value!r}")


@attrs.frozen(kw_only=True)
class RateLimit:
    """At most ``limit`` hits in any ``window`` seconds."""

    limit: int = attrs.field(validator=_positive_int)
    window: float = attrs.field(validator=_positive_seconds)


@attrs.frozen(kw_only=True)
class RateDecision:
    """The answer of :meth:`RateLimitStore.acquire` for one key.

    Attributes:
        allowed: the hit was counted.
        retry_after: seconds until a hit would be allowed again (0 when allowed).
        remaining: hits still allowed in the window after this one.
        hit_id: names the counted hit for :meth:`RateLimitStore.release`
            (``None`` when refused).
    """

    allowed: bool
    retry_after: float = 0.0
    remaining: int = 0
    hit_id: str | None = None


@runtime_checkable
class RateLimitStore(Protocol):
    """Sliding-window hit counters, atomic per key, shared across processes.

    Keys are short ASCII strings built by the core (at most 200 characters).
    Every method may raise :class:`~timmybot_core.domain.errors.StoreUnavailable`;
    none answers "allowed" in place of an answer it could not get.
    """

    async def acquire(self, key: str, rate: RateLimit, *, now: float) -> RateDecision:
        """Count one hit of ``key`` at ``now`` if fewer than ``rate.limit`` fall in the window."""
        ...

    async def release(self, key: str, hit_id: str) -> bool:
        """Give back a counted hit; ``True`` if it was still counted."""
        ...
