"""OpenTelemetry adapters: the SecurityMetrics port on the OpenTelemetry SDK.

Wiring, in the composition root::

    handle = build_meter_provider("emf", export_interval=timedelta(seconds=60))
    metrics = OtelSecurityMetrics(handle.meter_provider)
    ...
    handle.shutdown()

Needs the ``otel`` extra (opentelemetry-sdk, the OTLP/HTTP and Prometheus
exporters).
"""

from __future__ import annotations

from timmybot_adapters.otel.emf import DEFAULT_NAMESPACE, EmfMetricExporter
from timmybot_adapters.otel.exporters import (
    EXPORTERS,
    PROMETHEUS_CONTENT_TYPE,
    ExporterName,
    MeterProviderHandle,
    build_meter_provider,
)
from timmybot_adapters.otel.metrics import METER_NAME, OtelSecurityMetrics

__all__ = [
    "DEFAULT_NAMESPACE",
    "EXPORTERS",
    "METER_NAME",
    "PROMETHEUS_CONTENT_TYPE",
    "EmfMetricExporter",
    "ExporterName",
    "MeterProviderHandle",
    "OtelSecurityMetrics",
    "build_meter_provider",
]
