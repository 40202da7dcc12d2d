"""A metric exporter that writes CloudWatch Embedded Metric Format (EMF) lines.

Each export writes one JSON object per line to a text stream (stdout by
default). On Lambda, ECS with the ``awslogs`` driver, or EC2 with the
CloudWatch agent, the log pipeline ships those lines to CloudWatch Logs, which
extracts the metrics. No AWS SDK call is made here.

Line shape (see the AWS "Specification: Embedded metric format")::

    {"_aws": {"Timestamp": 1700000000000,
              "CloudWatchMetrics": [{"Namespace": "TimmyBot/Security",
                                     "Dimensions": [["platform", "reason"]],
                                     "Metrics": [{"Name": "timmybot.security.auth_failures",
                                                  "Unit": "Count"}]}]},
     "platform": "spotify", "reason": "timeout",
     "timmybot.security.auth_failures": 3}

Data points that share an attribute set in one export go on one line; the
attribute names form that line's single dimension set (empty for the
attribute-less instruments).

**Metric names in CloudWatch.** The OpenTelemetry SDK lowercases instrument
names, and this exporter uses them unchanged, so the CloudWatch metric names
are the lowercase dotted names. The security alarms must use exactly:

* ``timmybot.security.unauthorized_access``: no dimensions, unit ``Count``;
* ``timmybot.security.auth_failures``: dimensions ``platform`` and ``reason``,
  unit ``Count``;
* ``timmybot.security.suspicious_activity``: no dimensions, unit ``None``;
* ``timmybot.security.rate_limit_failures``: no dimensions, unit ``Count``;

all in the namespace given to the exporter (``TimmyBot/Security`` by default).

**Temporality.** The exporter asks the SDK for DELTA temporality on counters
and histograms, so each line carries what happened since the previous export
and CloudWatch's ``Sum`` statistic is right. Gauges carry their last value.
A counter that did not move since the last export writes nothing, so an alarm
on it should treat missing data as ``notBreaching``.

**Memory.** The exporter keeps no state between exports; each export holds
only the lines it writes. The SDK's per-instrument cardinality limit bounds
the number of data points (and so of lines) per export.

Values that are not finite numbers (NaN, infinities) are dropped, as
CloudWatch rejects them. Histograms are not exported (the security metrics
have none).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final, TextIO

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)

__all__ = ["DEFAULT_NAMESPACE", "EmfMetricExporter", "cloudwatch_unit"]

DEFAULT_NAMESPACE: Final = "TimmyBot/Security"

# Limits from the EMF specification.
_MAX_METRICS_PER_DIRECTIVE: Final = 100
_MAX_DIMENSIONS: Final = 30
_MAX_DIMENSION_NAME: Final = 250
_MAX_DIMENSION_VALUE: Final = 1024
_MAX_VALUES_PER_METRIC: Final = 100

_DELTA_PREFERENCE: Final[dict[type, AggregationTemporality]] = {
    Counter: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    # Up-down counters are levels, not increments: cumulative, as in the
    # OpenTelemetry "delta" temporality preference.
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}

# OpenTelemetry (UCUM) units -> CloudWatch StandardUnit.
_UNITS: Final[Mapping[str, str]] = {
    "s": "Seconds",
    "ms": "Milliseconds",
    "us": "Microseconds",
    "By": "Bytes",
    "kBy": "Kilobytes",
    "KBy": "Kilobytes",
    "MBy": "Megabytes",
    "GBy": "Gigabytes",
    "TBy": "Terabytes",
    "bit": "Bits",
    "kbit": "Kilobits",
    "Mbit": "Megabits",
    "Gbit": "Gigabits",
    "Tbit": "Terabits",
    "%": "Percent",
    "1": "None",
    "By/s": "Bytes/Second",
    "kBy/s": "Kilobytes/Second",
    "MBy/s": "Megabytes/Second",
    "GBy/s": "Gigabytes/Second",
    "TBy/s": "Terabytes/Second",
    "bit/s": "Bits/Second",
    "kbit/s": "Kilobits/Second",
    "Mbit/s": "Megabits/Second",
    "Gbit/s": "Gigabits/Second",
    "Tbit/s": "Terabits/Second",
}

_logger = logging.getLogger(__name__)

# (dimension name, dimension value) pairs, sorted: one line per distinct set.
_GroupKey = tuple[tuple[str, str], ...]


def cloudwatch_unit(unit: str, *, is_sum: bool) -> str:
    """Map an OpenTelemetry unit to a CloudWatch unit.

    A unit that is only a UCUM annotation (``{failure}``) or empty counts
    things: ``Count`` for sums, ``None`` for gauges; ``{x}/s`` is
    ``Count/Second``. Anything unknown is ``None``.
    """
    if unit in _UNITS:
        return _UNITS[unit]
    if unit == "" or (unit.startswith("{") and unit.endswith("}") and "}" not in unit[:-1]):
        return "Count" if is_sum else "None"
    if unit.endswith("/s") and unit.startswith("{"):
        return "Count/Second"
    return "None"


class EmfMetricExporter(MetricExporter):
    """Writes each export as CloudWatch EMF JSON lines to ``stream``.

    Use it with a ``PeriodicExportingMetricReader``; it asks for DELTA
    temporality on counters, so each line's counter values are the increments
    since the previous export.

    Args:
        namespace: The CloudWatch namespace of every metric.
        stream: Where to write; ``sys.stdout`` (looked up at each export) if
            ``None``.

    """

    def __init__(self, *, namespace: str = DEFAULT_NAMESPACE, stream: TextIO | None = None) -> None:
        if not namespace or len(namespace) > 255:
            raise ValueError("the CloudWatch namespace must be 1 to 255 characters")
        super().__init__(preferred_temporality=dict(_DELTA_PREFERENCE))
        self._namespace = namespace
        self._stream = stream
        self._lock = threading.Lock()
        self._shutdown = False

    @property
    def namespace(self) -> str:
        """The CloudWatch namespace the lines declare."""
        return self._namespace

    def export(
        self,
        metrics_data: MetricsData,
        timeout_millis: float = 10_000,
        **kwargs: Any,
    ) -> MetricExportResult:
        """Write ``metrics_data`` as EMF lines; one line per attribute set."""
        if self._shutdown:
            return MetricExportResult.FAILURE
        try:
            lines = self.render(metrics_data)
        except Exception:  # noqa: BLE001 - never let a bad point kill the reader thread
            _logger.debug("could not render metrics as EMF")
            return MetricExportResult.FAILURE
        if not lines:
            return MetricExportResult.SUCCESS
        if not self._write("".join(line + "\n" for line in lines)):
            _logger.debug("could not write EMF lines")
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def render(self, metrics_data: MetricsData) -> list[str]:
        """Return the EMF lines for ``metrics_data`` without writing them."""
        lines: list[str] = []
        for resource_metrics in metrics_data.resource_metrics:
            groups: dict[_GroupKey, _Group] = {}
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    data = metric.data
                    if not isinstance(data, Sum | Gauge):
                        _logger.debug("EMF skips %s: unsupported data type", metric.name)
                        continue
                    unit = cloudwatch_unit(metric.unit or "", is_sum=isinstance(data, Sum))
                    for point in data.data_points:
                        value = point.value
                        if not math.isfinite(value):
                            continue
                        key = _group_key(point.attributes)
                        if key is None:
                            _logger.debug("EMF skips a %s point: unusable attributes", metric.name)
                            continue
                        group = groups.get(key)
                        if group is None:
                            group = groups[key] = _Group(key)
                        group.add(metric.name, unit, value, point.time_unix_nano)
            for group in groups.values():
                lines.extend(group.lines(self._namespace))
        return lines

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Flush the stream; nothing is buffered here."""
        return self._write("")

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Refuse further exports; the stream is the caller's and stays open."""
        self._shutdown = True

    def _write(self, payload: str) -> bool:
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            with self._lock:
                if payload:
                    stream.write(payload)
                stream.flush()
        except (OSError, ValueError):  # closed or broken stream
            return False
        return True


class _Group:
    """The metrics of one attribute set in one export."""

    __slots__ = ("_key", "_timestamp_ns", "_units", "_values")

    def __init__(self, key: _GroupKey) -> None:
        self._key = key
        self._units: dict[str, str] = {}
        self._values: dict[str, list[float]] = {}
        self._timestamp_ns = 0

    def add(self, name: str, unit: str, value: float, timestamp_ns: int) -> None:
        if any(name == dimension for dimension, _ in self._key):
            _logger.debug("EMF skips %s: an attribute has the same name", name)
            return
        values = self._values.setdefault(name, [])
        if len(values) >= _MAX_VALUES_PER_METRIC:
            _logger.debug("EMF skips a %s point: too many values on one line", name)
            return
        # The same name twice (two scopes): an EMF value array, which
        # CloudWatch aggregates (Sum adds them).
        values.append(value)
        self._units.setdefault(name, unit)
        self._timestamp_ns = max(self._timestamp_ns, timestamp_ns)

    def lines(self, namespace: str) -> list[str]:
        names = list(self._values)
        out: list[str] = []
        for start in range(0, len(names), _MAX_METRICS_PER_DIRECTIVE):
            chunk = names[start : start + _MAX_METRICS_PER_DIRECTIVE]
            document: dict[str, object] = {
                "_aws": {
                    "Timestamp": self._timestamp_ns // 1_000_000,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": namespace,
                            "Dimensions": [[dimension for dimension, _ in self._key]],
                            "Metrics": [{"Name": n, "Unit": self._units[n]} for n in chunk],
                        }
                    ],
                }
            }
            document.update(self._key)
            for name in chunk:
                values = self._values[name]
                document[name] = values[0] if len(values) == 1 else values
            out.append(
                json.dumps(document, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
            )
        return out


def _group_key(attributes: Mapping[str, object] | None) -> _GroupKey | None:
    if not attributes:
        return ()
    if len(attributes) > _MAX_DIMENSIONS:
        return None
    pairs: list[tuple[str, str]] = []
    for name, value in attributes.items():
        if not name or len(name) > _MAX_DIMENSION_NAME or name == "_aws":
            return None
        pairs.append((name, _dimension_value(value)[:_MAX_DIMENSION_VALUE]))
    return tuple(sorted(pairs))


def _dimension_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Sequence):
        return json.dumps(list(value), ensure_ascii=True, default=str)
    return str(value)
