"""The clock port: services ask it for the time, so tests can control time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock", "as_utc"]


@runtime_checkable
class Clock(Protocol):
    """Tells the current time as a timezone-aware UTC ``datetime``."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


def as_utc(moment: datetime, what: str) -> datetime:
    """Return ``moment`` in UTC; ``ValueError`` naming ``what`` if it is naive.

    A naive time's instant would be a guess, so every stored or compared
    time goes through here.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {moment.isoformat()})")
    return moment.astimezone(UTC)


class FakeClock:
    """A clock that only moves when told to, for tests.

    ``FakeClock(start)`` stands still at ``start`` (any timezone; it is
    converted to UTC) until :meth:`advance` or :meth:`set` moves it.
    """

    __slots__ = ("_now",)

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (
            as_utc(start, "FakeClock start")
            if start is not None
            else datetime(2026, 1, 1, tzinfo=UTC)
        )

    def now(self) -> datetime:
        """Return the fake current time."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward by ``delta`` and return the new time.

        Moving backwards is refused: real clocks used for expiry and windows
        only go forward, and a test that needs a jump uses :meth:`set`.
        """
        if delta < timedelta(0):
            raise ValueError(f"FakeClock.advance needs a non-negative delta (got {delta})")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (timezone-aware), forwards or backwards."""
        self._now = as_utc(moment, "FakeClock.set moment")

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"
