"""Build an OpenTelemetry ``MeterProvider`` wired to one exporter.

The composition root calls :func:`build_meter_provider` once, hands
``handle.meter_provider`` to :class:`~timmybot_adapters.otel.OtelSecurityMetrics`,
and calls ``handle.shutdown()`` when the bot stops. The provider is not
installed as the global OpenTelemetry provider: several providers can live in
one process (tests do that).

Exporters:

``none``
    No reader: instruments work, nothing leaves the process.
``console``
    ``ConsoleMetricExporter`` on a ``PeriodicExportingMetricReader``, JSON to
    ``stream`` (stdout by default). For debugging.
``otlp``
    OTLP/HTTP (protobuf) on a ``PeriodicExportingMetricReader``. The endpoint
    is ``otlp_endpoint`` used as-is (a full URL such as
    ``http://collector:4318/v1/metrics``), or else the exporter's environment
    variables (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` as-is,
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` plus ``/v1/metrics``, default
    ``http://localhost:4318/v1/metrics``).
``prometheus``
    A pull reader; :meth:`MeterProviderHandle.prometheus_text` renders the
    exposition text for the bot's web server. The reader registers with a
    private ``prometheus_client.CollectorRegistry`` of this handle, so several
    providers in one process do not clash and the text holds only this
    provider's metrics. (An exporter release older than the ``registry``
    keyword, added by open-telemetry/opentelemetry-python#5055, can only use
    the global ``REGISTRY``; then the text is the whole global registry,
    including prometheus_client's process collectors.)
``emf``
    CloudWatch Embedded Metric Format lines to ``stream`` (stdout by default)
    on a ``PeriodicExportingMetricReader``; see :mod:`timmybot_adapters.otel.emf`.

Prometheus names of the security metrics (dots become underscores, counters
get ``_total``; the annotation units ``{attempt}``/``{failure}`` and the unit
``1`` add no suffix): ``timmybot_security_unauthorized_access_total``,
``timmybot_security_auth_failures_total`` (labels ``platform``, ``reason``)
and ``timmybot_security_suspicious_activity``, each with the ``otel_scope_*``
labels, plus ``target_info`` carrying the resource (``service_name``...).
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from datetime import timedelta
from typing import Final, Literal, TextIO, TypeAlias, get_args

import attrs
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import generate_latest

from timmybot_adapters.otel.emf import DEFAULT_NAMESPACE, EmfMetricExporter

__all__ = [
    "EXPORTERS",
    "PROMETHEUS_CONTENT_TYPE",
    "ExporterName",
    "MeterProviderHandle",
    "build_meter_provider",
]

ExporterName: TypeAlias = Literal["none", "console", "otlp", "prometheus", "emf"]
EXPORTERS: Final[tuple[ExporterName, ...]] = get_args(ExporterName)

PROMETHEUS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of :meth:`MeterProviderHandle.prometheus_text` (text format 0.0.4)."""

_DEFAULT_INTERVAL: Final = timedelta(seconds=60)
_DEFAULT_SHUTDOWN_TIMEOUT: Final = timedelta(seconds=30)

_logger = logging.getLogger(__name__)


@attrs.define(kw_only=True, eq=False)
class MeterProviderHandle:
    """A built ``MeterProvider`` and what the bot needs to run and stop it.

    Attributes:
        meter_provider: The SDK provider; give it to ``OtelSecurityMetrics``.
        exporter: Which exporter it was built with.

    """

    meter_provider: MeterProvider
    exporter: ExporterName
    _prometheus_registry: CollectorRegistry | None = attrs.field(
        default=None, alias="prometheus_registry", repr=False
    )
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _closed: bool = attrs.field(default=False, init=False)

    @property
    def serves_prometheus(self) -> bool:
        """Tell whether :meth:`prometheus_text` is available."""
        return self._prometheus_registry is not None

    def prometheus_text(self) -> bytes:
        """Collect now and return the Prometheus text exposition format (0.0.4).

        Serve it with ``Content-Type:`` :data:`PROMETHEUS_CONTENT_TYPE`.

        Raises:
            RuntimeError: The provider was not built with the ``prometheus``
                exporter.

        """
        if self._prometheus_registry is None:
            raise RuntimeError(f"the {self.exporter!r} meter provider has no Prometheus reader")
        return generate_latest(self._prometheus_registry)

    def shutdown(self, timeout: timedelta = _DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        """Export what is pending, then stop the readers and their threads.

        The SDK's shutdown makes each periodic reader run one last collection
        and export before its thread ends (a separate ``force_flush`` first
        would export the gauge twice). Idempotent, and never raises: a failing
        exporter is logged.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.meter_provider.shutdown(timeout_millis=timeout.total_seconds() * 1000)
        except Exception:  # noqa: BLE001 - shutting down must go on
            _logger.warning("shutting the %s metrics exporter down failed", self.exporter)


def build_meter_provider(
    exporter: ExporterName,
    *,
    export_interval: timedelta = _DEFAULT_INTERVAL,
    otlp_endpoint: str | None = None,
    emf_namespace: str = DEFAULT_NAMESPACE,
    stream: TextIO | None = None,
    service_name: str = "timmybot",
) -> MeterProviderHandle:
    """Build a ``MeterProvider`` exporting through ``exporter``.

    Args:
        exporter: ``none``, ``console``, ``otlp``, ``prometheus`` or ``emf``.
        export_interval: Period of the push exporters (console, otlp, emf).
        otlp_endpoint: Full OTLP/HTTP metrics URL; ``None`` reads the
            ``OTEL_EXPORTER_OTLP_*`` environment variables.
        emf_namespace: CloudWatch namespace of the EMF lines.
        stream: Where console and emf write; stdout if ``None``.
        service_name: The resource's ``service.name``.

    Raises:
        ValueError: Unknown exporter, or a non-positive ``export_interval``.

    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown metrics exporter {exporter!r}; expected one of {EXPORTERS}")
    interval_ms = export_interval.total_seconds() * 1000
    if interval_ms <= 0:
        raise ValueError("export_interval must be positive")

    readers: list[MetricReader] = []
    registry: CollectorRegistry | None = None
    if exporter == "console":
        out = stream if stream is not None else sys.stdout
        readers.append(_periodic(ConsoleMetricExporter(out=out), interval_ms))
    elif exporter == "otlp":
        readers.append(_periodic(OTLPMetricExporter(endpoint=otlp_endpoint), interval_ms))
    elif exporter == "emf":
        emf = EmfMetricExporter(namespace=emf_namespace, stream=stream)
        readers.append(_periodic(emf, interval_ms))
    elif exporter == "prometheus":
        reader, registry = _prometheus_reader()
        readers.append(reader)

    provider = MeterProvider(
        metric_readers=readers,
        resource=Resource.create({SERVICE_NAME: service_name}),
    )
    return MeterProviderHandle(
        meter_provider=provider, exporter=exporter, prometheus_registry=registry
    )


def _periodic(exporter: MetricExporter, interval_ms: float) -> PeriodicExportingMetricReader:
    return PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms)


def _reader_accepts_registry() -> bool:
    return "registry" in inspect.signature(PrometheusMetricReader.__init__).parameters


def _prometheus_reader() -> tuple[PrometheusMetricReader, CollectorRegistry]:
    if _reader_accepts_registry():
        registry = CollectorRegistry()
        return PrometheusMetricReader(registry=registry), registry
    # An older exporter registers with the global REGISTRY only. That is safe:
    # its collector has no describe(), so a second provider registers without a
    # "duplicated timeseries" error, and reader.shutdown() unregisters it.
    _logger.debug("this Prometheus exporter has no registry keyword; using the global REGISTRY")
    return PrometheusMetricReader(), REGISTRY
