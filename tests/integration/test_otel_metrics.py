"""The OpenTelemetry adapter against the real SDK and its exporters.

Every provider built here is shut down by a fixture, so no periodic-export
thread outlives its test.
"""

from __future__ import annotations

import io
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.metrics import NoOpCounter, NoOpMeter, NoOpMeterProvider
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from timmybot_adapters.otel import (
    DEFAULT_NAMESPACE,
    METER_NAME,
    PROMETHEUS_CONTENT_TYPE,
    EmfMetricExporter,
    ExporterName,
    MeterProviderHandle,
    OtelSecurityMetrics,
    build_meter_provider,
)
from timmybot_adapters.otel import exporters as exporters_module
from timmybot_adapters.otel.emf import cloudwatch_unit
from timmybot_core.ports.metrics import (
    AUTH_FAILURES,
    RATE_LIMIT_FAILURES,
    SUSPICIOUS_ACTIVITY,
    UNAUTHORIZED_ACCESS,
    AuthFailureReason,
)

SEED_NAMES = {UNAUTHORIZED_ACCESS, AUTH_FAILURES, SUSPICIOUS_ACTIVITY}
LONG = timedelta(hours=1)  # periodic readers never tick on their own in a test
# The Unit values the EMF specification's JSON schema allows.
_RATES = ["Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits", "Kilobits"]
_RATES += ["Megabits", "Gigabits", "Terabits", "Count"]
CLOUDWATCH_UNITS = {
    *["Seconds", "Microseconds", "Milliseconds", "Percent", "Count", "None"],
    *["Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes"],
    *["Bits", "Kilobits", "Megabits", "Gigabits", "Terabits"],
    *(f"{unit}/Second" for unit in _RATES),
}
EXPORT_THREAD = "OtelPeriodicExportingMetricReader"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def metrics(reader: InMemoryMetricReader) -> Iterator[OtelSecurityMetrics]:
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        yield OtelSecurityMetrics(provider)
    finally:
        provider.shutdown()


@pytest.fixture
def build() -> Iterator[Callable[..., MeterProviderHandle]]:
    handles: list[MeterProviderHandle] = []

    def factory(exporter: ExporterName, **kwargs: Any) -> MeterProviderHandle:
        kwargs.setdefault("export_interval", LONG)
        handle = build_meter_provider(exporter, **kwargs)
        handles.append(handle)
        return handle

    try:
        yield factory
    finally:
        for handle in handles:
            handle.shutdown()


def collect(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, Metric] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == METER_NAME
            for metric in scope_metrics.metrics:
                assert metric.name not in found
                found[metric.name] = metric
    return found


def points(metric: Metric) -> dict[tuple[tuple[str, Any], ...], float]:
    out: dict[tuple[tuple[str, Any], ...], float] = {}
    for point in metric.data.data_points:
        assert isinstance(point, NumberDataPoint)
        out[tuple(sorted((point.attributes or {}).items()))] = point.value
    return out


def record_sample(metrics: OtelSecurityMetrics) -> None:
    metrics.record_unauthorized_access()
    metrics.record_unauthorized_access()
    for _ in range(3):
        metrics.record_auth_failure(platform="Spotify", reason=AuthFailureReason.TIMEOUT)
    metrics.record_auth_failure(
        platform="evil platform with spaces", reason=AuthFailureReason.OTHER
    )
    metrics.observe_suspicious_activity(lambda: 42.0)


def our_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == EXPORT_THREAD and t.is_alive()}


# ------------------------------------------------------------------ the instruments


def test_counters_and_gauge_read_through_the_sdk(
    metrics: OtelSecurityMetrics, reader: InMemoryMetricReader
) -> None:
    record_sample(metrics)

    found = collect(reader)

    assert set(found) == SEED_NAMES
    assert points(found[UNAUTHORIZED_ACCESS]) == {(): 2}
    assert points(found[AUTH_FAILURES]) == {
        (("platform", "spotify"), ("reason", "timeout")): 3,
        (("platform", "other"), ("reason", "other")): 1,
    }
    assert points(found[SUSPICIOUS_ACTIVITY]) == {(): 42.0}


def test_no_guild_or_user_attribute_anywhere(
    metrics: OtelSecurityMetrics, reader: InMemoryMetricReader
) -> None:
    record_sample(metrics)
    for reason in AuthFailureReason:
        metrics.record_auth_failure(platform="deezer", reason=reason)

    keys = {
        key
        for metric in collect(reader).values()
        for point in metric.data.data_points
        for key in (point.attributes or {})
    }

    assert keys == {"platform", "reason"}
    assert not [key for key in keys if "guild" in key or "user" in key]


def test_instruments_have_kinds_units_and_descriptions(
    metrics: OtelSecurityMetrics, reader: InMemoryMetricReader
) -> None:
    record_sample(metrics)

    found = collect(reader)

    assert {name: metric.unit for name, metric in found.items()} == {
        UNAUTHORIZED_ACCESS: "{attempt}",
        AUTH_FAILURES: "{failure}",
        SUSPICIOUS_ACTIVITY: "1",
    }
    assert all(metric.description for metric in found.values())
    assert type(found[UNAUTHORIZED_ACCESS].data).__name__ == "Sum"
    assert found[AUTH_FAILURES].data.is_monotonic  # type: ignore[union-attr]
    assert type(found[SUSPICIOUS_ACTIVITY].data).__name__ == "Gauge"


def test_rate_limit_failures_are_a_plain_counter(
    metrics: OtelSecurityMetrics, reader: InMemoryMetricReader
) -> None:
    metrics.record_rate_limit_failure()
    metrics.record_rate_limit_failure()

    found = collect(reader)[RATE_LIMIT_FAILURES]

    assert points(found) == {(): 2}
    assert found.unit == "{failure}"
    assert found.data.is_monotonic  # type: ignore[union-attr]


@pytest.mark.parametrize(("raw", "reported"), [(150.0, 100.0), (-3, 0.0), (99.5, 99.5)])
def test_the_gauge_is_clamped_to_0_100(
    metrics: OtelSecurityMetrics, reader: InMemoryMetricReader, raw: float, reported: float
) -> None:
    metrics.observe_suspicious_activity(lambda: raw)

    assert points(collect(reader)[SUSPICIOUS_ACTIVITY]) == {(): reported}
    assert metrics.snapshot().suspicious_activity == reported


def test_a_nan_gauge_gives_no_observation(
    metrics: OtelSecurityMetrics, reader: InMemoryMetricReader
) -> None:
    metrics.record_unauthorized_access()
    metrics.observe_suspicious_activity(lambda: math.nan)

    found = collect(reader)

    assert SUSPICIOUS_ACTIVITY not in found or points(found[SUSPICIOUS_ACTIVITY]) == {}
    assert metrics.snapshot().suspicious_activity == 0.0


def test_a_raising_source_never_breaks_collection_and_logs_no_details(
    metrics: OtelSecurityMetrics,
    reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> float:
        raise RuntimeError("token=hunter2")

    caplog.set_level(logging.DEBUG, logger="timmybot_adapters.otel")
    metrics.record_unauthorized_access()
    metrics.observe_suspicious_activity(broken)

    found = collect(reader)

    assert points(found[UNAUTHORIZED_ACCESS]) == {(): 1}
    assert SUSPICIOUS_ACTIVITY not in found or points(found[SUSPICIOUS_ACTIVITY]) == {}
    ours = [r for r in caplog.records if r.name.startswith("timmybot_adapters.otel")]
    assert ours
    assert all(r.levelno == logging.DEBUG and r.exc_info is None for r in ours)
    assert "hunter2" not in caplog.text


class _ExplodingCounter(NoOpCounter):
    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        raise RuntimeError("exporter pipeline on fire")


class _ExplodingMeter(NoOpMeter):
    def create_counter(self, name: str, unit: str = "", description: str = "") -> NoOpCounter:
        return _ExplodingCounter(name)


class _ExplodingProvider(NoOpMeterProvider):
    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> NoOpMeter:
        return _ExplodingMeter(name)


def test_recording_never_raises_even_if_the_instruments_do() -> None:
    metrics = OtelSecurityMetrics(_ExplodingProvider())

    metrics.record_unauthorized_access()
    metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.REVOKED)

    snapshot = metrics.snapshot()
    assert snapshot.unauthorized_access == 1
    assert dict(snapshot.auth_failures) == {("spotify", "revoked"): 1}


def test_recording_after_the_provider_shut_down_never_raises(
    build: Callable[..., MeterProviderHandle],
) -> None:
    handle = build("emf", stream=io.StringIO())
    metrics = OtelSecurityMetrics(handle.meter_provider)
    handle.shutdown()

    metrics.record_unauthorized_access()
    metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)

    assert metrics.snapshot().unauthorized_access == 1


def test_an_api_no_op_provider_works() -> None:
    metrics = OtelSecurityMetrics(NoOpMeterProvider())
    metrics.record_unauthorized_access()
    assert metrics.snapshot().unauthorized_access == 1


# ----------------------------------------------------------------------------- EMF


def export(handle: MeterProviderHandle, stream: io.StringIO) -> list[dict[str, Any]]:
    """Force one export and return the EMF documents it wrote."""
    start = len(stream.getvalue())
    handle.meter_provider.force_flush()
    text = stream.getvalue()[start:]
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def assert_valid_emf(document: Mapping[str, Any], namespace: str = DEFAULT_NAMESPACE) -> None:
    """Check one document against the EMF specification's rules."""
    aws = document["_aws"]
    assert set(aws) == {"Timestamp", "CloudWatchMetrics"}
    assert isinstance(aws["Timestamp"], int)
    assert abs(aws["Timestamp"] - time.time() * 1000) < 60_000
    assert len(aws["CloudWatchMetrics"]) >= 1
    for directive in aws["CloudWatchMetrics"]:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert directive["Namespace"] == namespace
        assert len(directive["Dimensions"]) >= 1
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30
            for dimension in dimension_set:
                assert isinstance(document[dimension], str)
                assert len(document[dimension]) <= 1024
        assert 1 <= len(directive["Metrics"]) <= 100
        for definition in directive["Metrics"]:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            assert definition["Unit"] in CLOUDWATCH_UNITS
            value = document[definition["Name"]]
            values = value if isinstance(value, list) else [value]
            assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def by_dimensions(
    documents: list[dict[str, Any]],
) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    """Key each document by its dimension values; one document per key."""
    out: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        [dimension_set] = directive["Dimensions"]
        key = tuple((name, document[name]) for name in dimension_set)
        assert key not in out, "one line per attribute set"
        metrics = {d["Name"]: (d["Unit"], document[d["Name"]]) for d in directive["Metrics"]}
        out[key] = metrics
    return out


def test_emf_lines_follow_the_specification(build: Callable[..., MeterProviderHandle]) -> None:
    stream = io.StringIO()
    handle = build("emf", stream=stream)
    metrics = OtelSecurityMetrics(handle.meter_provider)
    record_sample(metrics)

    documents = export(handle, stream)

    assert len(documents) == 3  # () ; spotify/timeout ; other/other
    for document in documents:
        assert_valid_emf(document)
    assert by_dimensions(documents) == {
        (): {
            UNAUTHORIZED_ACCESS: ("Count", 2),
            SUSPICIOUS_ACTIVITY: ("None", 42.0),
        },
        (("platform", "spotify"), ("reason", "timeout")): {AUTH_FAILURES: ("Count", 3)},
        (("platform", "other"), ("reason", "other")): {AUTH_FAILURES: ("Count", 1)},
    }


def test_emf_dimension_sets_name_the_attributes(build: Callable[..., MeterProviderHandle]) -> None:
    stream = io.StringIO()
    handle = build("emf", stream=stream)
    metrics = OtelSecurityMetrics(handle.meter_provider)
    record_sample(metrics)

    dimension_sets = sorted(
        json.dumps(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"]) for d in export(handle, stream)
    )

    assert dimension_sets == ['[["platform", "reason"]]', '[["platform", "reason"]]', "[[]]"]


def test_emf_counters_are_deltas_between_exports_and_the_gauge_is_the_last_value(
    build: Callable[..., MeterProviderHandle],
) -> None:
    stream = io.StringIO()
    handle = build("emf", stream=stream)
    metrics = OtelSecurityMetrics(handle.meter_provider)
    level = [42.0]
    metrics.observe_suspicious_activity(lambda: level[0])
    metrics.record_unauthorized_access()
    metrics.record_unauthorized_access()
    metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)
    metrics.record_auth_failure(platform="deezer", reason=AuthFailureReason.REVOKED)
    first = by_dimensions(export(handle, stream))

    metrics.record_unauthorized_access()
    for _ in range(4):
        metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)
    level[0] = 7.0
    second = by_dimensions(export(handle, stream))

    assert first[()] == {UNAUTHORIZED_ACCESS: ("Count", 2), SUSPICIOUS_ACTIVITY: ("None", 42.0)}
    assert second == {
        (): {UNAUTHORIZED_ACCESS: ("Count", 1), SUSPICIOUS_ACTIVITY: ("None", 7.0)},
        (("platform", "spotify"), ("reason", "timeout")): {AUTH_FAILURES: ("Count", 4)},
        # deezer/revoked did not move: no line, not a zero.
    }
    # The local totals stay cumulative.
    assert metrics.snapshot().unauthorized_access == 3


def test_emf_writes_nothing_when_nothing_happened(
    build: Callable[..., MeterProviderHandle],
) -> None:
    stream = io.StringIO()
    handle = build("emf", stream=stream)
    OtelSecurityMetrics(handle.meter_provider)

    assert export(handle, stream) == []


def test_emf_namespace_is_configurable(build: Callable[..., MeterProviderHandle]) -> None:
    stream = io.StringIO()
    handle = build("emf", stream=stream, emf_namespace="Staging/TimmyBot")
    OtelSecurityMetrics(handle.meter_provider).record_unauthorized_access()

    [document] = export(handle, stream)

    assert_valid_emf(document, namespace="Staging/TimmyBot")


def test_emf_shutdown_exports_what_is_pending(build: Callable[..., MeterProviderHandle]) -> None:
    stream = io.StringIO()
    handle = build("emf", stream=stream)
    OtelSecurityMetrics(handle.meter_provider).record_unauthorized_access()

    handle.shutdown()

    [document] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert document[UNAUTHORIZED_ACCESS] == 1


def test_emf_splits_more_than_100_metrics_and_drops_non_finite_values() -> None:
    stream = io.StringIO()
    exporter = EmfMetricExporter(stream=stream)
    provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3.6e6)],
        shutdown_on_exit=False,
    )
    try:
        meter = provider.get_meter("test")
        for i in range(150):
            meter.create_counter(f"c{i:03}").add(i + 1, {"k": "v"})
        meter.create_up_down_counter("bad").add(math.inf, {"k": "v"})
        provider.force_flush()
    finally:
        provider.shutdown()

    documents = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in documents] == [100, 50]
    merged: dict[str, Any] = {}
    for document in documents:
        assert_valid_emf(document)
        merged.update(document)
    assert "bad" not in merged
    assert merged["c149"] == 150


def test_emf_stringifies_attribute_values_and_skips_unusable_sets() -> None:
    stream = io.StringIO()
    exporter = EmfMetricExporter(stream=stream)
    provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3.6e6)],
        shutdown_on_exit=False,
    )
    try:
        counter = provider.get_meter("test").create_counter("requests")
        counter.add(1, {"ok": True, "code": 200, "tags": ["a", "b"]})
        counter.add(1, {f"k{i}": "v" for i in range(31)})  # more than 30 dimensions
        counter.add(1, {"requests": "x"})  # an attribute named like the metric
        provider.force_flush()
    finally:
        provider.shutdown()

    [document] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert_valid_emf(document)
    assert (document["ok"], document["code"], document["tags"]) == ("true", "200", '["a", "b"]')
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["code", "ok", "tags"]]


@pytest.mark.parametrize(
    ("unit", "is_sum", "expected"),
    [
        ("{failure}", True, "Count"),
        ("", True, "Count"),
        ("1", False, "None"),
        ("{score}", False, "None"),
        ("ms", False, "Milliseconds"),
        ("By", True, "Bytes"),
        ("%", False, "Percent"),
        ("{request}/s", False, "Count/Second"),
        ("furlong", False, "None"),
    ],
)
def test_cloudwatch_units(unit: str, is_sum: bool, expected: str) -> None:
    assert cloudwatch_unit(unit, is_sum=is_sum) == expected
    assert expected in CLOUDWATCH_UNITS


def test_emf_rejects_an_empty_namespace() -> None:
    with pytest.raises(ValueError, match="namespace"):
        EmfMetricExporter(namespace="")


# ---------------------------------------------------------------------- Prometheus

PROMETHEUS_FAMILIES = {
    "target_info": "gauge",
    "timmybot_security_unauthorized_access_total": "counter",
    "timmybot_security_auth_failures_total": "counter",
    "timmybot_security_suspicious_activity": "gauge",
}


def type_lines(text: str) -> dict[str, str]:
    return {
        line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")
    }


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(
                sorted((k, v) for k, v in sample.labels.items() if not k.startswith("otel_scope"))
            )
            out[(sample.name, labels)] = sample.value
    return out


def test_prometheus_text_has_the_metric_families(build: Callable[..., MeterProviderHandle]) -> None:
    handle = build("prometheus", service_name="timmybot-test")
    metrics = OtelSecurityMetrics(handle.meter_provider)
    record_sample(metrics)

    text = handle.prometheus_text().decode()

    assert type_lines(text) == PROMETHEUS_FAMILIES
    values = samples(text)
    assert values[("timmybot_security_unauthorized_access_total", ())] == 2.0
    assert (
        values[
            (
                "timmybot_security_auth_failures_total",
                (("platform", "spotify"), ("reason", "timeout")),
            )
        ]
        == 3.0
    )
    assert values[("timmybot_security_suspicious_activity", ())] == 42.0
    assert 'service_name="timmybot-test"' in text
    assert 'otel_scope_name="timmybot.security"' in text
    assert "guild" not in text and "user" not in text
    assert handle.serves_prometheus
    assert PROMETHEUS_CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_prometheus_counters_are_cumulative(build: Callable[..., MeterProviderHandle]) -> None:
    handle = build("prometheus")
    metrics = OtelSecurityMetrics(handle.meter_provider)
    metrics.record_unauthorized_access()
    handle.prometheus_text()
    metrics.record_unauthorized_access()

    values = samples(handle.prometheus_text().decode())

    assert values[("timmybot_security_unauthorized_access_total", ())] == 2.0


def test_two_prometheus_providers_in_one_process_do_not_clash(
    build: Callable[..., MeterProviderHandle],
) -> None:
    first, second = build("prometheus"), build("prometheus")
    OtelSecurityMetrics(first.meter_provider).record_unauthorized_access()
    other = OtelSecurityMetrics(second.meter_provider)
    for _ in range(5):
        other.record_unauthorized_access()

    first_values = samples(first.prometheus_text().decode())
    second_values = samples(second.prometheus_text().decode())

    assert first_values[("timmybot_security_unauthorized_access_total", ())] == 1.0
    assert second_values[("timmybot_security_unauthorized_access_total", ())] == 5.0
    assert b"timmybot_security" not in generate_latest(REGISTRY)  # the global stays clean


def test_prometheus_falls_back_to_the_global_registry_on_old_exporters(
    build: Callable[..., MeterProviderHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporters_module, "_reader_accepts_registry", lambda: False)
    handle = build("prometheus")
    OtelSecurityMetrics(handle.meter_provider).record_unauthorized_access()

    text = handle.prometheus_text().decode()
    handle.shutdown()

    assert samples(text)[("timmybot_security_unauthorized_access_total", ())] == 1.0
    assert b"timmybot_security" not in generate_latest(REGISTRY)  # unregistered on shutdown


def test_prometheus_text_needs_the_prometheus_exporter(
    build: Callable[..., MeterProviderHandle],
) -> None:
    handle = build("none")

    assert not handle.serves_prometheus
    with pytest.raises(RuntimeError, match="Prometheus"):
        handle.prometheus_text()


# ------------------------------------------------------------ console, OTLP, none


def test_console_writes_json_to_the_given_stream(build: Callable[..., MeterProviderHandle]) -> None:
    stream = io.StringIO()
    handle = build("console", stream=stream, service_name="timmybot-test")
    record_sample(OtelSecurityMetrics(handle.meter_provider))

    handle.meter_provider.force_flush()

    decoder, text, documents = json.JSONDecoder(), stream.getvalue().strip(), []
    while text:
        document, end = decoder.raw_decode(text)
        documents.append(document)
        text = text[end:].strip()
    [document] = documents
    [resource_metrics] = document["resource_metrics"]
    assert resource_metrics["resource"]["attributes"]["service.name"] == "timmybot-test"
    names = {m["name"] for s in resource_metrics["scope_metrics"] for m in s["metrics"]}
    assert names == SEED_NAMES


class _Collector(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """A fake OTLP/HTTP collector on 127.0.0.1: (base URL, received requests)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    received: list[tuple[str, str, bytes]] = []
    handler = type("Handler", (_Collector,), {"requests": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def exported_names(body: bytes) -> tuple[str, set[str]]:
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    [resource_metrics] = request.resource_metrics
    service = next(
        a.value.string_value
        for a in resource_metrics.resource.attributes
        if a.key == "service.name"
    )
    names = {m.name for s in resource_metrics.scope_metrics for m in s.metrics}
    return service, names


def test_otlp_posts_protobuf_to_the_given_endpoint(
    # collector first: it must outlive the handle, whose shutdown exports once more.
    collector: tuple[str, list[tuple[str, str, bytes]]],
    build: Callable[..., MeterProviderHandle],
) -> None:
    base, received = collector
    handle = build("otlp", otlp_endpoint=f"{base}/custom/metrics", service_name="timmybot-test")
    record_sample(OtelSecurityMetrics(handle.meter_provider))

    handle.meter_provider.force_flush()

    path, content_type, body = received[0]
    assert path == "/custom/metrics"
    assert content_type == "application/x-protobuf"
    assert exported_names(body) == ("timmybot-test", SEED_NAMES)


def test_otlp_endpoint_defaults_to_the_environment(
    collector: tuple[str, list[tuple[str, str, bytes]]],
    build: Callable[..., MeterProviderHandle],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, received = collector
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    handle = build("otlp")
    OtelSecurityMetrics(handle.meter_provider).record_unauthorized_access()

    handle.shutdown()

    assert [path for path, _, _ in received] == ["/v1/metrics"]
    assert exported_names(received[0][2]) == ("timmybot", {UNAUTHORIZED_ACCESS})


def test_none_records_locally_exports_nothing_and_shuts_down_cleanly(
    build: Callable[..., MeterProviderHandle],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = our_threads()
    handle = build("none")
    metrics = OtelSecurityMetrics(handle.meter_provider)
    record_sample(metrics)

    assert our_threads() == before  # no exporter thread at all
    handle.shutdown()

    assert metrics.snapshot().unauthorized_access == 2
    assert capsys.readouterr() == ("", "")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("exporter", ["console", "emf", "otlp", "prometheus"])
def test_shutdown_stops_the_export_thread_and_is_idempotent(
    exporter: ExporterName,
    caplog: pytest.LogCaptureFixture,
    collector: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    before = our_threads()
    handle = build_meter_provider(
        exporter,
        export_interval=LONG,
        stream=io.StringIO(),
        otlp_endpoint=f"{collector[0]}/v1/metrics",
    )
    OtelSecurityMetrics(handle.meter_provider).record_unauthorized_access()

    handle.shutdown()
    handle.shutdown()

    assert our_threads() == before
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_unknown_exporter_and_bad_interval_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown metrics exporter"):
        build_meter_provider("statsd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="export_interval"):
        build_meter_provider("console", export_interval=timedelta(0))
