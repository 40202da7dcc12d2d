"""RateLimitStore in memory: the counters of one process."""

from __future__ import annotations

import secrets
import threading

from timmybot_core.ports.rate_limits import RateDecision, RateLimit

__all__ = ["MemoryRateLimitStore"]

# Every so many hits, keys whose last hit left its window are dropped.
_SWEEP_EVERY = 1024


class MemoryRateLimitStore:
    """Hits per key in a dictionary (nothing survives the process)."""

    def __init__(self) -> None:
        """Start with no key."""
        # key -> (window of its last hit, [(moment, hit id), ...] oldest first)
        self._keys: dict[str, tuple[float, list[tuple[float, str]]]] = {}
        self._lock = threading.Lock()
        self._calls = 0

    async def acquire(self, key: str, rate: RateLimit, *, now: float) -> RateDecision:
        """Count one hit of ``key`` at ``now`` if the window has room."""
        with self._lock:
            self._calls += 1
            if self._calls % _SWEEP_EVERY == 0:
                self._sweep(now)
            _, hits = self._keys.get(key, (rate.window, []))
            hits = [hit for hit in hits if hit[0] > now - rate.window]
            if len(hits) >= rate.limit:
                self._keys[key] = (rate.window, hits)
                oldest = hits[-rate.limit][0]
                return RateDecision(
                    allowed=False, retry_after=max(float(oldest + rate.window - now), 0.0)
                )
            hit_id = secrets.token_hex(8)
            hits.append((now, hit_id))
            self._keys[key] = (rate.window, hits)
            return RateDecision(allowed=True, remaining=rate.limit - len(hits), hit_id=hit_id)

    async def release(self, key: str, hit_id: str) -> bool:
        """Give back a counted hit; ``True`` if it was still counted."""
        with self._lock:
            window, hits = self._keys.get(key, (0.0, []))
            kept = [hit for hit in hits if hit[1] != hit_id]
            if len(kept) == len(hits):
                return False
            self._keys[key] = (window, kept)
            return True

    def __len__(self) -> int:
        """How many keys are held (for tests of the store's bound)."""
        with self._lock:
            return len(self._keys)

    def _sweep(self, now: float) -> None:
        self._keys = {
            key: (window, hits)
            for key, (window, hits) in self._keys.items()
            if hits and hits[-1][0] > now - window
        }
