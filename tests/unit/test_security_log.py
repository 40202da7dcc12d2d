"""Specification of SecurityAuditLogger and the suspicious-activity level."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import any_text
from tests.unit.conftest import START, USER, Wired, wire
from timmybot_core import (
    FakeClock,
    Pseudonymizer,
    SecurityAuditLogger,
    SecurityEventType,
    Signal,
    SignalThreshold,
    SuspicionMeter,
    SuspicionThresholds,
)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def logger_with_lines() -> tuple[SecurityAuditLogger, Lines]:
    handler = Lines()
    logger = logging.getLogger("timmybot.security.test")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    log = SecurityAuditLogger(
        pseudonymizer=Pseudonymizer(key=b"k" * 32, key_id="t1"),
        clock=FakeClock(START),
        logger=logger,
    )
    return log, handler


async def test_events_are_one_json_object_per_line_with_pseudonyms() -> None:
    log, handler = logger_with_lines()
    await log.unauthorized_access(guild_id=42, user_id=USER, command="search", reason="x")
    (line,) = handler.lines
    record = json.loads(line)
    assert record["event"] == "UNAUTHORIZED_ACCESS"
    assert record["at"] == START.isoformat()
    assert record["guild"].startswith("t1:")
    assert record["user"].startswith("t1:")
    assert str(USER) not in line


async def test_ip_addresses_are_pseudonymized() -> None:
    log, handler = logger_with_lines()
    await log.authentication_attempt(
        user_id=USER, platform="spotify", success=True, ip="203.0.113.9"
    )
    assert "203.0.113.9" not in handler.lines[0]
    assert json.loads(handler.lines[0])["ip"].startswith("t1:")


@given(text=any_text)
async def test_user_text_never_breaks_or_forges_a_line(text: str) -> None:
    log, handler = logger_with_lines()
    await log.record(
        SecurityEventType.VALIDATION_REJECTED,
        user_id=USER,
        details={"problem": text, "field": text[:10]},
    )
    (line,) = handler.lines
    assert "\n" not in line and "\r" not in line
    assert all(ch.isprintable() for ch in line)
    record = json.loads(line)
    assert record["event"] == "VALIDATION_REJECTED"
    assert len(record["problem"]) <= 200


async def test_details_never_overwrite_the_event_fields() -> None:
    log, handler = logger_with_lines()
    await log.record(
        SecurityEventType.LOCKDOWN,
        user_id=USER,
        details={"event": "FORGED", "user": "raw-id", "at": "then"},
    )
    record = json.loads(handler.lines[0])
    assert record["event"] == "LOCKDOWN"
    assert record["user"].startswith("t1:")
    assert record["detail_event"] == "FORGED"


async def test_details_are_bounded_in_number() -> None:
    log, handler = logger_with_lines()
    await log.record(SecurityEventType.LOCKDOWN, details={f"k{i}": i for i in range(100)})
    assert len(json.loads(handler.lines[0])) <= 2 + 16


async def test_a_failing_listener_does_not_break_recording(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log, handler = logger_with_lines()

    async def broken(event: object) -> None:
        raise RuntimeError("listener bug")

    log.subscribe(broken)
    await log.record(SecurityEventType.LOCKDOWN)
    assert len(handler.lines) == 1
    assert "listener failed" in caplog.text


async def test_recent_is_newest_first_and_bounded() -> None:
    log, _ = logger_with_lines()
    for index in range(600):
        await log.record(SecurityEventType.LOCKDOWN, details={"i": index})
    recent = log.recent(1000)
    assert len(recent) == 500
    assert recent[0].details["i"] == 599


class TestSuspicionLevel:
    async def test_starts_at_zero_and_reaches_100_at_any_threshold(self, w: Wired) -> None:
        assert w.suspicion.level() == 0
        for offset in range(10):
            await w.access.check(900_000_000_000_000_000 + offset, USER, "search")
        assert w.suspicion.level() == 100

    def test_signals_add_up_in_proportion_to_their_thresholds(self) -> None:
        clock = FakeClock(START)
        meter = SuspicionMeter(clock)
        for _ in range(5):
            meter.record(Signal.UNAUTHORIZED_ACCESS)  # 5/10
        for _ in range(5):
            meter.record(Signal.AUTH_FAILURE)  # 5/20
        assert meter.level() == 75.0

    def test_old_signals_age_out_of_their_window(self) -> None:
        clock = FakeClock(START)
        meter = SuspicionMeter(clock)
        meter.record(Signal.UNAUTHORIZED_ACCESS)
        clock.advance(timedelta(minutes=5))
        assert meter.level() == 0

    def test_signals_counted_before_a_backward_clock_jump_stop_counting(self) -> None:
        # The window is (now - W, now]: an event stamped after now was counted
        # before the clock was set back, and its real age cannot be told.
        clock = FakeClock(START)
        meter = SuspicionMeter(clock)
        for _ in range(10):
            meter.record(Signal.UNAUTHORIZED_ACCESS)
        assert meter.level() == 100
        clock.set(START - timedelta(hours=1))
        assert meter.level() == 0
        meter.record(Signal.UNAUTHORIZED_ACCESS)
        assert meter.counts()[Signal.UNAUTHORIZED_ACCESS] == 1
        # Ones recorded after the jump still age out on time.
        clock.advance(timedelta(minutes=5))
        assert meter.level() == 0

    def test_memory_is_bounded_by_the_thresholds(self) -> None:
        clock = FakeClock(START)
        meter = SuspicionMeter(
            clock,
            SuspicionThresholds(
                by_signal={Signal.BAN: SignalThreshold(count=2, window=timedelta(hours=1))}
            ),
        )
        for _ in range(10_000):
            meter.record(Signal.BAN)
        assert meter.counts() == {Signal.BAN: 2}
        assert meter.level() == 100

    async def test_the_gauge_reads_the_level(self) -> None:
        w = wire()
        await w.security_log.validation_rejected(
            guild_id=1, user_id=USER, field="search", problem="x"
        )
        assert w.metrics.snapshot().suspicious_activity == pytest.approx(100 / 30, abs=0.1)

    @given(st.lists(st.sampled_from(list(Signal)), max_size=200))
    def test_level_is_always_between_0_and_100(self, signals: list[Signal]) -> None:
        meter = SuspicionMeter(FakeClock(START))
        for signal in signals:
            meter.record(signal)
        assert 0 <= meter.level() <= 100
