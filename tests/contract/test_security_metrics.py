"""The SecurityMetrics contract: every adapter of the port passes this suite.

Behaviour is checked through ``snapshot()`` only; what an adapter exports is
its own integration test's business.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from timmybot_adapters.memory import MemorySecurityMetrics
from timmybot_adapters.otel import OtelSecurityMetrics
from timmybot_core.ports.metrics import AuthFailureReason, MetricsSnapshot, SecurityMetrics


@pytest.fixture(params=["memory", "otel"])
def metrics(request: pytest.FixtureRequest) -> Iterator[SecurityMetrics]:
    if request.param == "memory":
        yield MemorySecurityMetrics()
        return
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    try:
        yield OtelSecurityMetrics(provider)
    finally:
        provider.shutdown()


def test_implements_the_port(metrics: SecurityMetrics) -> None:
    assert isinstance(metrics, SecurityMetrics)


def test_a_fresh_adapter_has_nothing_recorded(metrics: SecurityMetrics) -> None:
    assert metrics.snapshot() == MetricsSnapshot()


def test_counts_unauthorized_access(metrics: SecurityMetrics) -> None:
    for _ in range(3):
        metrics.record_unauthorized_access()

    snapshot = metrics.snapshot()

    assert snapshot.unauthorized_access == 3
    assert dict(snapshot.auth_failures) == {}


def test_counts_auth_failures_per_platform_and_reason(metrics: SecurityMetrics) -> None:
    metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.INVALID_GRANT)
    metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.INVALID_GRANT)
    metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)
    metrics.record_auth_failure(platform="deezer", reason=AuthFailureReason.INVALID_GRANT)

    assert dict(metrics.snapshot().auth_failures) == {
        ("spotify", "invalid_grant"): 2,
        ("spotify", "timeout"): 1,
        ("deezer", "invalid_grant"): 1,
    }
    assert metrics.snapshot().unauthorized_access == 0


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("Spotify", "spotify"),
        ("youtube_music", "youtube_music"),
        ("evil platform with spaces", "other"),
        ("", "other"),
        ("x" * 25, "other"),
        ("spotify\nreason=forged", "other"),
        # "$" alone would let one trailing newline through: a second series.
        ("spotify\n", "other"),
        ("Spotify\n", "other"),
    ],
)
def test_bounds_the_platform(metrics: SecurityMetrics, platform: str, expected: str) -> None:
    metrics.record_auth_failure(platform=platform, reason=AuthFailureReason.REVOKED)

    assert dict(metrics.snapshot().auth_failures) == {(expected, "revoked"): 1}


def test_a_reason_given_as_its_string_value_counts_as_that_reason(
    metrics: SecurityMetrics,
) -> None:
    metrics.record_auth_failure(platform="spotify", reason="pkce_mismatch")  # type: ignore[arg-type]

    assert dict(metrics.snapshot().auth_failures) == {("spotify", "pkce_mismatch"): 1}


def test_an_unknown_reason_is_rejected_and_not_counted(metrics: SecurityMetrics) -> None:
    # A programming error, not a runtime failure: the port takes AuthFailureReason.
    with pytest.raises(ValueError, match="not_a_reason"):
        metrics.record_auth_failure(platform="spotify", reason="not_a_reason")  # type: ignore[arg-type]

    assert dict(metrics.snapshot().auth_failures) == {}


def test_the_gauge_is_zero_without_a_source(metrics: SecurityMetrics) -> None:
    assert metrics.snapshot().suspicious_activity == 0.0


def test_the_gauge_reads_its_source_at_each_snapshot(metrics: SecurityMetrics) -> None:
    level = [12.5]
    metrics.observe_suspicious_activity(lambda: level[0])

    assert metrics.snapshot().suspicious_activity == 12.5
    level[0] = 80.0
    assert metrics.snapshot().suspicious_activity == 80.0


def test_a_new_source_replaces_the_old_one(metrics: SecurityMetrics) -> None:
    metrics.observe_suspicious_activity(lambda: 10.0)
    metrics.observe_suspicious_activity(lambda: 55.0)

    assert metrics.snapshot().suspicious_activity == 55.0


def test_an_integer_source_is_reported_as_a_float(metrics: SecurityMetrics) -> None:
    metrics.observe_suspicious_activity(lambda: 42)

    level = metrics.snapshot().suspicious_activity
    assert level == 42.0
    assert isinstance(level, float)


def test_a_source_that_raises_gives_zero_and_never_raises(metrics: SecurityMetrics) -> None:
    def broken() -> float:
        raise RuntimeError("store down: token=secret")

    metrics.observe_suspicious_activity(broken)
    metrics.record_unauthorized_access()

    snapshot = metrics.snapshot()

    assert snapshot.suspicious_activity == 0.0
    assert snapshot.unauthorized_access == 1


@pytest.mark.parametrize(
    "record",
    [
        lambda m: m.record_unauthorized_access(),
        lambda m: m.record_auth_failure(platform="spotify", reason=AuthFailureReason.OTHER),
        lambda m: m.record_auth_failure(
            platform="\x00\u202e" * 1000, reason=AuthFailureReason.OTHER
        ),
        lambda m: m.record_auth_failure(platform=None, reason=AuthFailureReason.OTHER),
        lambda m: m.observe_suspicious_activity(lambda: 1 / 0),
        lambda m: m.record_rate_limit_failure(),
    ],
    ids=[
        "unauthorized",
        "rate-limit-failure",
        "auth-failure",
        "hostile-platform",
        "not-a-string-platform",
        "bad-source",
    ],
)
def test_recording_never_raises(
    metrics: SecurityMetrics, record: Callable[[SecurityMetrics], None]
) -> None:
    for _ in range(3):
        record(metrics)

    metrics.snapshot()


def test_counts_are_exact_under_concurrent_recording(metrics: SecurityMetrics) -> None:
    threads_count, per_thread = 8, 250
    start = threading.Barrier(threads_count)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            metrics.record_unauthorized_access()
            metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)
            metrics.record_rate_limit_failure()

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    snapshot = metrics.snapshot()
    assert snapshot.unauthorized_access == threads_count * per_thread
    assert dict(snapshot.auth_failures) == {("spotify", "timeout"): threads_count * per_thread}
    assert snapshot.rate_limit_failures == threads_count * per_thread


def test_a_snapshot_is_a_copy(metrics: SecurityMetrics) -> None:
    metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)
    before = metrics.snapshot()

    metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)
    metrics.record_unauthorized_access()

    assert dict(before.auth_failures) == {("spotify", "timeout"): 1}
    assert before.unauthorized_access == 0


def test_the_snapshot_serializes(metrics: SecurityMetrics) -> None:
    metrics.record_unauthorized_access()
    metrics.record_auth_failure(platform="Spotify", reason=AuthFailureReason.REVOKED)
    metrics.observe_suspicious_activity(lambda: 33.0)

    assert metrics.snapshot().as_dict() == {
        "unauthorized_access": 1,
        "auth_failures": [{"platform": "spotify", "reason": "revoked", "count": 1}],
        "suspicious_activity": 33.0,
        "rate_limit_failures": 0,
    }


def test_counts_rate_limit_failures_apart(metrics: SecurityMetrics) -> None:
    metrics.record_rate_limit_failure()
    metrics.record_rate_limit_failure()

    snapshot = metrics.snapshot()
    assert snapshot.rate_limit_failures == 2
    assert snapshot.unauthorized_access == 0
    assert snapshot.as_dict()["rate_limit_failures"] == 2
