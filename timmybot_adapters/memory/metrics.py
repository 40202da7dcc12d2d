"""SecurityMetrics in memory: plain counters, for tests and the console."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable

from timmybot_core.ports.metrics import AuthFailureReason, MetricsSnapshot, bounded_platform

__all__ = ["MemorySecurityMetrics"]


class MemorySecurityMetrics:
    """Counts in process memory; the gauge is read from its source on demand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unauthorized = 0
        self._rate_limit_failures = 0
        self._auth_failures: Counter[tuple[str, str]] = Counter()
        self._source: Callable[[], float] | None = None

    def record_unauthorized_access(self) -> None:
        """Add one to the unauthorized-access counter."""
        with self._lock:
            self._unauthorized += 1

    def record_rate_limit_failure(self) -> None:
        """Add one to the rate-limit failure counter."""
        with self._lock:
            self._rate_limit_failures += 1

    def record_auth_failure(self, *, platform: str, reason: AuthFailureReason) -> None:
        """Add one to the auth-failure counter for ``platform`` and ``reason``."""
        key = (bounded_platform(platform), AuthFailureReason(reason).value)
        with self._lock:
            self._auth_failures[key] += 1

    def observe_suspicious_activity(self, source: Callable[[], float]) -> None:
        """Read the gauge from ``source``."""
        self._source = source

    def snapshot(self) -> MetricsSnapshot:
        """Return the totals and the gauge's current value."""
        level = 0.0
        if self._source is not None:
            try:
                level = float(self._source())
            except Exception:  # noqa: BLE001 - a broken gauge must not break a snapshot
                level = 0.0
            # Same contract as the OpenTelemetry adapter: 0 to 100, never NaN.
            level = 0.0 if math.isnan(level) else min(100.0, max(0.0, level))
        with self._lock:
            return MetricsSnapshot(
                unauthorized_access=self._unauthorized,
                auth_failures=dict(self._auth_failures),
                suspicious_activity=level,
                rate_limit_failures=self._rate_limit_failures,
            )
