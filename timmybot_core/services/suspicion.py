"""The suspicious-activity level: one number, 0 to 100, cheap to read.

Formula: for each signal *i* with threshold *Tᵢ* events per window *Wᵢ*,
with *nᵢ* the events seen in the last *Wᵢ*::

    level = min(100, 100 × Σᵢ min(nᵢ, Tᵢ) / Tᵢ)

So any one signal at its threshold alone reads 100, and smaller amounts of
several signals add up. Each signal keeps only its last *Tᵢ* timestamps
(counts beyond the threshold cannot raise the level), so memory and reading
cost are bounded by the thresholds, not by traffic.
"""

from __future__ import annotations

import enum
from collections import deque
from datetime import datetime, timedelta

import attrs

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.events import SecurityEvent, SecurityEventType

__all__ = ["Signal", "SignalThreshold", "SuspicionMeter", "SuspicionThresholds", "is_auth_failure"]


class Signal(enum.StrEnum):
    """What the meter counts."""

    UNAUTHORIZED_ACCESS = "unauthorized_access"
    AUTH_FAILURE = "auth_failure"
    VALIDATION_REJECTED = "validation_rejected"
    BAN = "ban"
    RATE_LIMIT_ABUSE = "rate_limit_abuse"


@attrs.frozen(kw_only=True)
class SignalThreshold:
    """``count`` events within ``window`` make a signal read as fully suspicious."""

    count: int
    window: timedelta

    def __attrs_post_init__(self) -> None:
        if self.count < 1 or self.window <= timedelta(0):
            raise ValueError("a signal threshold needs a count >= 1 and a positive window")


def _default_thresholds() -> dict[Signal, SignalThreshold]:
    return {
        # The seed's alarms: 10 unauthorized attempts in 5 minutes, 20 auth
        # failures in 15 minutes.
        Signal.UNAUTHORIZED_ACCESS: SignalThreshold(count=10, window=timedelta(minutes=5)),
        Signal.AUTH_FAILURE: SignalThreshold(count=20, window=timedelta(minutes=15)),
        Signal.VALIDATION_REJECTED: SignalThreshold(count=30, window=timedelta(minutes=5)),
        Signal.BAN: SignalThreshold(count=3, window=timedelta(hours=1)),
        # A member refused again and again for a whole refusal window (see
        # services/rate_limits.py); one such member reads 20.
        Signal.RATE_LIMIT_ABUSE: SignalThreshold(count=5, window=timedelta(minutes=15)),
    }


@attrs.frozen(kw_only=True)
class SuspicionThresholds:
    """The threshold of every signal."""

    by_signal: dict[Signal, SignalThreshold] = attrs.field(factory=_default_thresholds)


def is_auth_failure(event: SecurityEvent) -> bool:
    """Whether ``event`` is a failed authentication (the meter's and the alarm rule's signal)."""
    return (
        event.type is SecurityEventType.AUTHENTICATION_ATTEMPT
        and event.details.get("success") is False
    )


_EVENT_SIGNALS = {
    SecurityEventType.UNAUTHORIZED_ACCESS: Signal.UNAUTHORIZED_ACCESS,
    SecurityEventType.VALIDATION_REJECTED: Signal.VALIDATION_REJECTED,
    SecurityEventType.BAN_PLACED: Signal.BAN,
    SecurityEventType.RATE_LIMIT_ABUSE: Signal.RATE_LIMIT_ABUSE,
}


class SuspicionMeter:
    """Counts recent security signals and turns them into a level."""

    def __init__(self, clock: Clock, thresholds: SuspicionThresholds | None = None) -> None:
        self._clock = clock
        self._thresholds = (thresholds or SuspicionThresholds()).by_signal
        self._seen: dict[Signal, deque[datetime]] = {
            signal: deque(maxlen=threshold.count) for signal, threshold in self._thresholds.items()
        }

    def record(self, signal: Signal) -> None:
        """Count one occurrence of ``signal`` now."""
        seen = self._seen.get(signal)
        if seen is not None:
            seen.append(self._clock.now())

    async def on_event(self, event: SecurityEvent) -> None:
        """Count the signal ``event`` carries (a SecurityAuditLogger listener)."""
        signal = Signal.AUTH_FAILURE if is_auth_failure(event) else _EVENT_SIGNALS.get(event.type)
        if signal is not None:
            self.record(signal)

    def counts(self) -> dict[Signal, int]:
        """Return each signal's count within its window (capped at its threshold)."""
        now = self._clock.now()
        result: dict[Signal, int] = {}
        for signal, seen in self._seen.items():
            horizon = now - self._thresholds[signal].window
            # The window is (now - W, now]. An event stamped after now was
            # counted before the clock was set back: its real age cannot be
            # told, so it stops counting (as in the alarm rules), and the
            # events queued behind it can still age out.
            kept = [at for at in seen if horizon < at <= now]
            if len(kept) != len(seen):
                seen.clear()
                seen.extend(kept)
            result[signal] = len(kept)
        return result

    def level(self) -> float:
        """Return the current level, 0 to 100."""
        total = sum(
            count / self._thresholds[signal].count for signal, count in self.counts().items()
        )
        return round(min(100.0, 100.0 * total), 1)
