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
clocks disagree share a key as well as their clocks agree. A hit stamped
later than ``now`` (by a process whose clock is ahead) still counts, so a
refusal's ``retry_after`` can exceed the window by the clocks' difference.
Stores that let their backend expire keys (DynamoDB's TTL) need Unix epoch
seconds.

What every adapter shares lives here, so the adapters agree to the last
bit: the key and moment checks (:func:`check_key`, :func:`check_moment`),
the window step on a key's hit log (:func:`take_hit`, :func:`drop_hit`) and
the log's stored form (:func:`encode_hits`, :func:`decode_hits`).

A key's rate is the caller's to keep: when one key is acquired with another
``limit`` or ``window`` than before, its stored hits are judged by the new
rate from then on (hits already forgotten under a shorter window stay
forgotten).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Sequence
from typing import Final, Protocol, runtime_checkable

import attrs

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_LIMIT",
    "MAX_MOMENT",
    "Hit",
    "RateDecision",
    "RateLimit",
    "RateLimitStore",
    "check_hit_id",
    "check_key",
    "check_moment",
    "decode_hits",
    "drop_hit",
    "encode_hits",
    "expiry_of",
    "take_hit",
]

MAX_KEY_LENGTH: Final = 200
"""The longest key a store accepts, in characters (all visible ASCII)."""

MAX_LIMIT: Final = 1000
"""The most hits one window may allow.

A key stores one entry per counted hit, so the limit bounds each key's size
(a DynamoDB item must stay under 400 KB) and the cost of one acquire.
"""

MAX_MOMENT: Final = 1e11
"""The latest moment accepted (epoch seconds, about the year 5138)."""

_SHORTEST_WAIT: Final = 1e-6

Hit = tuple[float, str]
"""One counted hit: its moment (seconds) and its ID."""


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ValueError(
            f"rate limit: {attribute.name} must be an integer from 1 to {MAX_LIMIT}, not {value!r}"
        )


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise ValueError(f"rate limit: {attribute.name} must be positive seconds, not {value!r}")


@attrs.frozen(kw_only=True)
class RateLimit:
    """At most ``limit`` hits (1 to :data:`MAX_LIMIT`) in any ``window`` seconds."""

    limit: int = attrs.field(validator=_positive_int)
    window: float = attrs.field(validator=_positive_seconds)


@attrs.frozen(kw_only=True)
class RateDecision:
    """The answer of :meth:`RateLimitStore.acquire` for one key.

    Attributes:
        allowed: the hit was counted.
        retry_after: seconds until a hit would be allowed again (0 when
            allowed, at least a microsecond when refused).
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

    Keys are short ASCII strings built by the core: 1 to
    :data:`MAX_KEY_LENGTH` visible ASCII characters (``!`` to ``~``, no
    space). Every adapter checks them with :func:`check_key` and ``now``
    with :func:`check_moment`, raising :class:`ValueError` before any I/O.
    Every method may raise :class:`~timmybot_core.domain.errors.StoreUnavailable`;
    none answers "allowed" in place of an answer it could not get.
    """

    async def acquire(self, key: str, rate: RateLimit, *, now: float) -> RateDecision:
        """Count one hit of ``key`` at ``now`` if fewer than ``rate.limit`` fall in the window."""
        ...

    async def release(self, key: str, hit_id: str) -> bool:
        """Give back a counted hit; ``True`` if it was still counted."""
        ...


def check_key(key: object) -> str:
    """Return ``key`` if a store accepts it; raise ``ValueError`` naming the problem.

    The message never quotes the key (it may hold a user ID), only what is
    wrong with it: its type, its length, or the first character refused and
    its position.
    """
    if not isinstance(key, str):
        raise ValueError(f"rate limit key: must be a string, not {type(key).__name__}")
    if not key:
        raise ValueError("rate limit key: must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"rate limit key: {len(key)} characters, more than the {MAX_KEY_LENGTH} allowed"
        )
    for position, character in enumerate(key):
        if not "!" <= character <= "~":
            raise ValueError(
                f"rate limit key: character U+{ord(character):04X} at position {position} "
                "is not visible ASCII ('!' to '~')"
            )
    return key


def check_moment(now: object) -> float:
    """Return ``now`` as a float if it is seconds from 0 to :data:`MAX_MOMENT`.

    Raises ``ValueError`` otherwise (NaN, infinities, a negative or absurd
    moment would corrupt every later comparison of the key).
    """
    if (
        isinstance(now, bool)
        or not isinstance(now, int | float)
        or not math.isfinite(now)
        or not 0 <= now <= MAX_MOMENT
    ):
        raise ValueError(f"rate limit: now must be seconds from 0 to {MAX_MOMENT:.0e}, not {now!r}")
    return float(now)


def check_hit_id(hit_id: object) -> str:
    """Return ``hit_id`` if it is a string; raise ``ValueError`` otherwise."""
    if not isinstance(hit_id, str):
        raise ValueError(f"rate limit: a hit ID must be a string, not {type(hit_id).__name__}")
    return hit_id


def take_hit(
    hits: Sequence[Hit], rate: RateLimit, *, now: float, hit_id: str
) -> tuple[RateDecision, list[Hit]]:
    """Apply one acquire to a key's hit log; return the decision and the log to store.

    The log comes back sorted by moment, without the hits that left the
    window (moment ``<= now - window``), and with the new hit when allowed.
    Sorting matters: hits from processes whose clocks differ arrive out of
    order, and the refusal's wait is set by the hit that must leave last.
    """
    start = now - rate.window
    counted = sorted(hit for hit in hits if hit[0] > start)
    if len(counted) >= rate.limit:
        # Room for one more once len - limit + 1 hits have left: the last of
        # them, in moment order, is at index len - limit.
        leaves = counted[len(counted) - rate.limit][0]
        # At least a microsecond: float rounding can make the difference 0
        # (or less) for a hit just inside the window, and a refusal that
        # says "retry in 0 s" invites a busy loop.
        wait = max(leaves + rate.window - now, _SHORTEST_WAIT)
        return RateDecision(allowed=False, retry_after=wait), counted
    bisect.insort(counted, (now, hit_id))
    return RateDecision(allowed=True, remaining=rate.limit - len(counted), hit_id=hit_id), counted


def drop_hit(hits: Sequence[Hit], hit_id: str) -> list[Hit] | None:
    """Return the log without the hit ``hit_id``, or ``None`` if it holds no such hit."""
    kept = [hit for hit in hits if hit[1] != hit_id]
    return None if len(kept) == len(hits) else kept


def expiry_of(hits: Sequence[Hit], window: float) -> float:
    """Return the moment after which no hit of the log counts (its last hit + ``window``)."""
    return max((hit[0] for hit in hits), default=-math.inf) + window


def encode_hits(hits: Sequence[Hit]) -> str:
    """Return the stored form of a hit log: compact JSON ``[[moment, id], ...]``.

    JSON writes a float's shortest exact representation, so moments come
    back bit for bit.
    """
    return json.dumps([[moment, hit_id] for moment, hit_id in hits], separators=(",", ":"))


def decode_hits(text: str) -> list[Hit]:
    """Read a log written by :func:`encode_hits`; ``ValueError`` if it is not one.

    The message says what is malformed, never the stored content.
    """
    try:
        raw = json.loads(text)
    except (TypeError, ValueError):
        raise ValueError("rate limit: the stored hit log is not JSON") from None
    if not isinstance(raw, list):
        raise ValueError("rate limit: the stored hit log is not a list")
    hits: list[Hit] = []
    for entry in raw:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or isinstance(entry[0], bool)
            or not isinstance(entry[0], int | float)
            or not math.isfinite(entry[0])
            or not isinstance(entry[1], str)
        ):
            raise ValueError("rate limit: the stored hit log holds an entry that is not a hit")
        hits.append((float(entry[0]), entry[1]))
    return hits
