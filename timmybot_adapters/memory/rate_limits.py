"""RateLimitStore in memory: the counters of one process.

Each key maps to its window and its hit log, in a dictionary ordered by
when the key was last written. Every acquire looks at a few keys at the
front (the least recently written): an expired one is dropped, a live one
moves to the back (the key being acquired is left to its own call). So the
sweep costs a bounded amount per call and every key is looked at again
after at most ``len / _SWEEP_PER_CALL`` calls: keys whose last hit left its
window do not pile up.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

from timmybot_core.ports.rate_limits import (
    Hit,
    RateDecision,
    RateLimit,
    check_hit_id,
    check_key,
    check_moment,
    drop_hit,
    expiry_of,
    take_hit,
)

__all__ = ["MemoryRateLimitStore"]

# Keys looked at by the sweep of one acquire.
_SWEEP_PER_CALL = 8


class MemoryRateLimitStore:
    """Hits per key in a dictionary (nothing survives the process)."""

    def __init__(self) -> None:
        """Start with no key."""
        # key -> (window of its last write, [(moment, hit id), ...] by moment)
        self._keys: OrderedDict[str, tuple[float, list[Hit]]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryRateLimitStore()"

    async def acquire(self, key: str, rate: RateLimit, *, now: float) -> RateDecision:
        """Count one hit of ``key`` at ``now`` if the window has room."""
        check_key(key)
        moment = check_moment(now)
        hit_id = secrets.token_hex(8)
        with self._lock:
            self._sweep(moment, keep=key)
            _, hits = self._keys.get(key, (rate.window, []))
            decision, kept = take_hit(hits, rate, now=moment, hit_id=hit_id)
            if kept:
                self._keys[key] = (rate.window, kept)
                self._keys.move_to_end(key)
            else:
                self._keys.pop(key, None)
            return decision

    async def release(self, key: str, hit_id: str) -> bool:
        """Give back a counted hit; ``True`` if it was still counted."""
        check_key(key)
        check_hit_id(hit_id)
        with self._lock:
            window, hits = self._keys.get(key, (0.0, []))
            kept = drop_hit(hits, hit_id)
            if kept is None:
                return False
            if kept:
                self._keys[key] = (window, kept)
            else:
                del self._keys[key]
            return True

    def __len__(self) -> int:
        """How many keys are held (for tests of the store's bound)."""
        with self._lock:
            return len(self._keys)

    def _sweep(self, now: float, *, keep: str) -> None:
        # The key being acquired is judged by its own call's rate, not swept.
        for _ in range(min(_SWEEP_PER_CALL, len(self._keys))):
            key, (window, hits) = next(iter(self._keys.items()))
            if key != keep and expiry_of(hits, window) <= now:
                del self._keys[key]
            else:
                self._keys.move_to_end(key)
