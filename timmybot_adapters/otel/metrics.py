"""SecurityMetrics on the OpenTelemetry SDK.

Four instruments, named by the port's constants:

========================================  ===============  ==================  ==========
instrument                                kind             attributes          unit
========================================  ===============  ==================  ==========
``timmybot.security.unauthorized_access``  Counter          none                ``{attempt}``
``timmybot.security.auth_failures``        Counter          platform, reason    ``{failure}``
``timmybot.security.rate_limit_failures``  Counter          none                ``{failure}``
``timmybot.security.suspicious_activity``  ObservableGauge  none                ``1``
========================================  ===============  ==================  ==========

No instrument carries a guild or user attribute (see the port's docstring).
Which backend the numbers reach (OTLP, Prometheus, CloudWatch EMF) is decided
by the ``MeterProvider`` the composition root builds, see
:func:`timmybot_adapters.otel.exporters.build_meter_provider`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from opentelemetry.metrics import CallbackOptions, Counter, MeterProvider, Observation

from timmybot_core.ports.metrics import (
    AUTH_FAILURES,
    RATE_LIMIT_FAILURES,
    SUSPICIOUS_ACTIVITY,
    UNAUTHORIZED_ACCESS,
    AuthFailureReason,
    MetricsSnapshot,
    bounded_platform,
)

__all__ = ["METER_NAME", "OtelSecurityMetrics"]

METER_NAME: Final = "timmybot.security"
"""The instrumentation scope of the instruments (``otel_scope_name`` in Prometheus)."""

_LOW: Final = 0.0
_HIGH: Final = 100.0

_logger = logging.getLogger(__name__)


class OtelSecurityMetrics:
    """The security counters and gauge as OpenTelemetry instruments.

    Besides feeding the SDK, the counters are kept in process memory so that
    :meth:`snapshot` can answer without a collection (the SDK does not expose
    its running totals cheaply). Recording never raises and never blocks on
    I/O: export happens in the provider's readers.

    Args:
        meter_provider: The provider to create the instruments on; usually
            ``build_meter_provider(...).meter_provider``.

    """

    def __init__(self, meter_provider: MeterProvider) -> None:
        self._lock = threading.Lock()
        self._unauthorized = 0
        self._rate_limit_failures = 0
        self._auth_failures: Tally[tuple[str, str]] = Tally()
        self._source: Callable[[], float] | None = None

        meter = meter_provider.get_meter(METER_NAME)
        self._unauthorized_counter = meter.create_counter(
            UNAUTHORIZED_ACCESS,
            unit="{attempt}",
            description="Unauthorized access attempts refused by access control.",
        )
        self._auth_failure_counter = meter.create_counter(
            AUTH_FAILURES,
            unit="{failure}",
            description="Failed music-platform authentications, by platform and reason.",
        )
        self._rate_limit_counter = meter.create_counter(
            RATE_LIMIT_FAILURES,
            unit="{failure}",
            description="Failures of the rate-limit store (the seed's P2 rate limiting failure).",
        )
        # Kept so the callback stays registered as long as this object lives.
        self._suspicious_gauge = meter.create_observable_gauge(
            SUSPICIOUS_ACTIVITY,
            callbacks=[self._observe],
            unit="1",
            description="Suspicious-activity level from 0 (calm) to 100 (under attack).",
        )

    def record_unauthorized_access(self) -> None:
        """Add one to ``timmybot.security.unauthorized_access``."""
        with self._lock:
            self._unauthorized += 1
        _add(self._unauthorized_counter, UNAUTHORIZED_ACCESS)

    def record_rate_limit_failure(self) -> None:
        """Add one to ``timmybot.security.rate_limit_failures``."""
        with self._lock:
            self._rate_limit_failures += 1
        _add(self._rate_limit_counter, RATE_LIMIT_FAILURES)

    def record_auth_failure(self, *, platform: str, reason: AuthFailureReason) -> None:
        """Add one to ``timmybot.security.auth_failures`` with ``platform`` and ``reason``.

        ``platform`` goes through :func:`bounded_platform`. A ``reason`` that
        is not an :class:`AuthFailureReason` value raises ``ValueError``, as in
        the memory adapter: it is a programming error, not a runtime failure.
        """
        attributes = {
            "platform": bounded_platform(platform),
            "reason": AuthFailureReason(reason).value,
        }
        with self._lock:
            self._auth_failures[(attributes["platform"], attributes["reason"])] += 1
        _add(self._auth_failure_counter, AUTH_FAILURES, attributes)

    def observe_suspicious_activity(self, source: Callable[[], float]) -> None:
        """Report ``source()``, clamped to 0..100, as ``timmybot.security.suspicious_activity``.

        The source is read at each collection (and by :meth:`snapshot`). A
        source that raises or returns NaN yields no observation; it never
        breaks the collection of the other instruments.
        """
        self._source = source

    def snapshot(self) -> MetricsSnapshot:
        """Return the totals this process recorded and the gauge's current value."""
        level = self._read_level()
        with self._lock:
            return MetricsSnapshot(
                unauthorized_access=self._unauthorized,
                auth_failures=dict(self._auth_failures),
                suspicious_activity=_LOW if level is None else level,
                rate_limit_failures=self._rate_limit_failures,
            )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        level = self._read_level()
        return [] if level is None else [Observation(level)]

    def _read_level(self) -> float | None:
        source = self._source
        if source is None:
            return None
        try:
            level = float(source())
        except Exception:  # noqa: BLE001 - a broken source must not break collection
            # No details: the exception text could carry whatever the source touched.
            _logger.debug("the %s source failed; no observation", SUSPICIOUS_ACTIVITY)
            return None
        if math.isnan(level):
            _logger.debug("the %s source returned NaN; no observation", SUSPICIOUS_ACTIVITY)
            return None
        return min(max(level, _LOW), _HIGH)


def _add(counter: Counter, name: str, attributes: Mapping[str, str] | None = None) -> None:
    try:
        counter.add(1, attributes)
    except Exception:  # noqa: BLE001 - recording never raises
        _logger.debug("could not record %s", name)
