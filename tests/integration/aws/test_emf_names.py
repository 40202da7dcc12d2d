"""The names CloudWatch sees: what the alarms of the stack must match.

The OpenTelemetry SDK lowercases instrument names, and the EMF exporter
writes the names it is given; so the metric in CloudWatch is the lowercase
name, whatever case the instrument was created with, in the namespace
``TimmyBot/Security``. The stack's alarms use exactly these names.
"""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from pathlib import Path

from timmybot_adapters.otel import OtelSecurityMetrics, build_meter_provider
from timmybot_adapters.otel.emf import DEFAULT_NAMESPACE
from timmybot_core.ports.metrics import AUTH_FAILURES, UNAUTHORIZED_ACCESS, AuthFailureReason

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "timmybot.yaml"
METRICS_DOC = ROOT / "docs" / "metrics.md"


def emf_documents(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def metric_names(documents: list[dict[str, object]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:  # type: ignore[index]
            for metric in directive["Metrics"]:
                names[metric["Name"]] = directive["Namespace"]
    return names


def test_the_sdk_lowercases_instrument_names_and_emf_keeps_them() -> None:
    stream = io.StringIO()
    handle = build_meter_provider("emf", stream=stream, export_interval=timedelta(hours=1))
    try:
        meter = handle.meter_provider.get_meter("case-check")
        meter.create_counter("TimmyBot.Security.Mixed_Case").add(1)
        handle.meter_provider.force_flush()
    finally:
        handle.shutdown()

    names = metric_names(emf_documents(stream))
    assert names == {"timmybot.security.mixed_case": "TimmyBot/Security"}


def test_the_security_metrics_reach_cloudwatch_under_the_names_the_alarms_use() -> None:
    stream = io.StringIO()
    handle = build_meter_provider("emf", stream=stream, export_interval=timedelta(hours=1))
    try:
        metrics = OtelSecurityMetrics(handle.meter_provider)
        metrics.record_unauthorized_access()
        metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)
        handle.meter_provider.force_flush()
    finally:
        handle.shutdown()

    names = metric_names(emf_documents(stream))
    assert names[UNAUTHORIZED_ACCESS] == DEFAULT_NAMESPACE == "TimmyBot/Security"
    assert names[AUTH_FAILURES] == DEFAULT_NAMESPACE
    template = TEMPLATE.read_text(encoding="utf-8")
    assert f"MetricName: {UNAUTHORIZED_ACCESS}" in template
    assert f'SUM("{AUTH_FAILURES}")' in template
    assert f'SCHEMA("{DEFAULT_NAMESPACE}", platform, reason)' in template


def test_the_documented_cloudwatch_names_units_and_dimensions_are_what_an_export_writes() -> None:
    stream = io.StringIO()
    handle = build_meter_provider("emf", stream=stream, export_interval=timedelta(hours=1))
    try:
        metrics = OtelSecurityMetrics(handle.meter_provider)
        metrics.record_unauthorized_access()
        metrics.record_rate_limit_failure()
        metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)
        metrics.observe_suspicious_activity(lambda: 10.0)
        handle.meter_provider.force_flush()
    finally:
        handle.shutdown()
    written: dict[str, tuple[tuple[str, ...], str]] = {}
    for document in emf_documents(stream):
        for directive in document["_aws"]["CloudWatchMetrics"]:  # type: ignore[index]
            [dimensions] = directive["Dimensions"]
            for metric in directive["Metrics"]:
                written[metric["Name"]] = (tuple(dimensions), metric["Unit"])

    text = METRICS_DOC.read_text(encoding="utf-8")
    section = text.split("## CloudWatch Embedded Metric Format", 1)[1].split("\n## ", 1)[0]
    documented = {
        name: (tuple(re.findall(r"`(\w+)`", dimensions)), unit)
        for name, dimensions, unit in re.findall(
            r"^\s*\| `(timmybot\.[a-z_.]+)` \| ([^|]+) \| `(\w+)` \|$", section, re.MULTILINE
        )
    }
    assert documented == written
