"""Specification of the Clock port and its two implementations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from timmybot_core import Clock, FakeClock, SystemClock


def test_system_clock_is_aware_utc_and_current() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_both_clocks_satisfy_the_port() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(FakeClock(datetime(2026, 1, 1, tzinfo=UTC)), Clock)


def test_fake_clock_stands_still_until_advanced() -> None:
    clock = FakeClock(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    assert clock.now() == clock.now() == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert clock.advance(timedelta(hours=1, seconds=5)) == datetime(
        2026, 11, 26, 9, 0, 5, tzinfo=UTC
    )
    assert clock.now() == datetime(2026, 11, 26, 9, 0, 5, tzinfo=UTC)


def test_fake_clock_converts_other_timezones_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=paris))
    assert clock.now() == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)


def test_fake_clock_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock().set(datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose


def test_fake_clock_does_not_advance_backwards_but_can_jump() -> None:
    clock = FakeClock(datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="non-negative"):
        clock.advance(timedelta(seconds=-1))
    clock.set(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
