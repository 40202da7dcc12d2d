"""Cron expressions for the scheduler's jobs, evaluated in UTC by croniter.

Five fields (croniter would also take seconds and years) or a macro
(``@hourly``, ``@daily``, ``@midnight``, ``@weekly``, ``@monthly``,
``@yearly``, ``@annually``). An expression that never fires (``0 0 31 FEB
*``) is refused; errors name the expression. What croniter does not offer,
a missed job run once across processes after a restart, is the scheduler's
lease-based catch-up (:mod:`timmybot_bot.runtime.scheduler`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from croniter import CroniterBadDateError, CroniterError, croniter

__all__ = ["CronError", "CronSchedule"]

_MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# A feasible schedule fires at least once in any 28 years (Feb 29 on a
# given weekday is the rarest case); beyond that croniter gives up.
_HORIZON_YEARS: Final = 40


class CronError(ValueError):
    """A cron expression is malformed or can never fire; the message says why."""


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"cron times must be timezone-aware (got naive {moment.isoformat()})")
    return moment.astimezone(UTC)


class CronSchedule:
    """A parsed cron expression; equal when the normalized expressions are."""

    __slots__ = ("_day_or", "_fields", "_sets", "expression")

    def __init__(self, expression: str, fields: str) -> None:
        self.expression = expression
        self._fields = fields
        # croniter's own reading of the fields, as sets ("*": any value).
        self._sets: list[list[int | str]] = [list(values) for values in croniter.expand(fields)[0]]
        # Vixie cron: a day field starting with "*" (even "*/2") narrows the
        # other; only two restricted day fields add up. croniter looks for
        # "*" alone (after reading "0,*/1" as "*"), so it is told which applies.
        day, _, weekday = fields.split(" ")[2:5]
        self._day_or = not (
            day.startswith("*") or weekday.startswith("*") or ["*"] in self._sets[2::2]
        )

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """Parse ``text``; raise :class:`CronError` if it is malformed or never fires."""
        if not isinstance(text, str):
            raise CronError(f"a cron expression must be text (got {type(text).__name__})")
        parts = text.split()
        if not parts:
            raise CronError("the cron expression is empty")
        shown = " ".join(parts)[:60]
        if parts[0].startswith("@"):
            fields = _MACROS.get(parts[0].lower())
            if fields is None or len(parts) > 1:
                raise CronError(
                    f"unknown cron macro {shown!r}; known: {', '.join(sorted(_MACROS))}"
                )
            return cls(parts[0].lower(), fields)
        if not all(part.isascii() for part in parts):
            # croniter's \d would read other scripts' digits as numbers.
            raise CronError(f"{shown!r} is not a cron expression: ASCII characters only")
        if len(parts) != 5:
            raise CronError(
                "a cron expression has 5 fields (minute hour day-of-month month "
                f"day-of-week); got {len(parts)} in {shown!r}"
            )
        expression = " ".join(p.upper() if any(c.isalpha() for c in p) else p for p in parts)
        try:
            schedule = cls(expression, expression)
            schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))
        except CroniterBadDateError:
            raise CronError(f"{shown!r} never fires: no chosen month has the chosen days") from None
        except (CroniterError, ValueError) as error:
            raise CronError(f"{shown!r} is not a cron expression: {error}") from None
        return schedule

    def __str__(self) -> str:
        return self.expression

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronSchedule):
            return NotImplemented
        return self.expression == other.expression

    def __hash__(self) -> int:
        return hash(self.expression)

    def _iterator(self, start: datetime) -> croniter:
        return croniter(
            self._fields, start, day_or=self._day_or, max_years_between_matches=_HORIZON_YEARS
        )

    def matches(self, moment: datetime) -> bool:
        """Tell whether the minute of ``moment`` (timezone-aware) is a firing time."""
        utc = _as_utc(moment)
        minutes, hours, days, months, weekdays = self._sets

        def within(values: list[int | str], value: int) -> bool:
            return values == ["*"] or value in values

        if not (
            within(minutes, utc.minute) and within(hours, utc.hour) and within(months, utc.month)
        ):
            return False
        # datetime counts weekdays from Monday = 0, cron from Sunday = 0.
        in_month, in_week = within(days, utc.day), within(weekdays, (utc.weekday() + 1) % 7)
        return (in_month or in_week) if self._day_or else (in_month and in_week)

    def next_after(self, moment: datetime) -> datetime:
        """Return the first firing time strictly after ``moment``, in UTC (whole minutes)."""
        found: datetime = self._iterator(_as_utc(moment)).get_next(datetime)
        return found.astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """Return the last firing time at or before ``moment``, in UTC (its minute counts)."""
        # croniter's previous firing is strictly before its start: the next minute.
        minute = _as_utc(moment).replace(second=0, microsecond=0)
        found: datetime = self._iterator(minute + timedelta(minutes=1)).get_prev(datetime)
        return found.astimezone(UTC)
