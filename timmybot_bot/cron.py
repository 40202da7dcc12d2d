"""Cron expressions: the classic five fields, evaluated in UTC.

``minute hour day-of-month month day-of-week``, as in crontab(5):

* ``*`` (every value), a number, a range ``1-5``, a list ``1,15,30`` and
  steps ``*/15``, ``0-30/10`` or ``5/20`` (from 5 to the field's end);
* month names ``JAN``..``DEC`` and weekday names ``SUN``..``SAT``, in any
  case; weekday ``0`` and ``7`` are both Sunday;
* the macros ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``,
  ``@monthly`` and ``@yearly`` (``@annually``).

Day-of-month and day-of-week combine as in Vixie cron: when both fields are
restricted (neither starts with ``*``) a day matches if *either* matches
(``0 0 1 * MON`` fires on the 1st and on every Monday); otherwise a day
must match both.

Times are UTC, so there are no daylight-saving gaps or repeats. Every
malformed expression, and one that can never fire (``0 0 31 FEB *``), raises
:class:`CronError` naming the field and the problem.
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, timedelta
from typing import Final

import attrs

from timmybot_core.domain.snowflake import SnowflakeError, parse_whole_number

__all__ = ["CronError", "CronSchedule"]

_MINUTE: Final = timedelta(minutes=1)
# A schedule that passes the feasibility check fires at least once in any
# 28-year stretch of a century (Feb 29 on a given weekday is the rarest
# case, 40 years across a skipped leap year); the bound only stops a bug
# from looping forever.
_SEARCH_YEARS: Final = 400

_MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES: Final = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
_WEEKDAY_NAMES: Final = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
# Longest length of each month in any year (February: leap years).
_LONGEST_MONTH: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class CronError(ValueError):
    """A cron expression is malformed or can never fire; the message says why."""


@attrs.frozen
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] = attrs.field(factory=dict)


_FIELDS: Final = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTH_NAMES),
    # 7 is accepted as Sunday and folded onto 0 after parsing.
    _Field("day-of-week", 0, 7, _WEEKDAY_NAMES),
)


def _number(field: _Field, text: str) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names[upper]
    try:
        value = parse_whole_number(text)
    except SnowflakeError:
        hint = " or a name" if field.names else ""
        raise CronError(f"{field.name} field: {text[:30]!r} is not a number{hint}") from None
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name} field: {value} is out of range ({field.low}-{field.high})")
    return value


def _parse_field(field: _Field, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.name} field: empty list item in {text!r}")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            try:
                step = parse_whole_number(step_text, minimum=1)
            except SnowflakeError:
                raise CronError(
                    f"{field.name} field: the step in {item[:30]!r} must be a whole number "
                    "of at least 1"
                ) from None
        if base == "*":
            start, end = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(field, first), _number(field, last)
            if start > end:
                raise CronError(f"{field.name} field: the range {base!r} goes backwards")
        else:
            start = _number(field, base)
            # "5/20" means from 5 to the end of the field, every 20.
            end = field.high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"cron times must be timezone-aware (got naive {moment.isoformat()})")
    return moment.astimezone(UTC)


def _first_of_next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return datetime(moment.year + 1, 1, 1, tzinfo=UTC)
    return datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)


def _start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@attrs.frozen(kw_only=True, eq=False)
class CronSchedule:
    """A parsed five-field cron expression; build it with :meth:`parse`.

    Two schedules are equal when their expressions are equal as written
    (after whitespace and case are normalized).
    """

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """Parse ``text``; raise :class:`CronError` if it is malformed or never fires."""
        if not isinstance(text, str):
            raise CronError(f"a cron expression must be text (got {type(text).__name__})")
        stripped = " ".join(text.split())
        if not stripped:
            raise CronError("the cron expression is empty")
        source = stripped
        if stripped.startswith("@"):
            macro = _MACROS.get(stripped.lower())
            if macro is None:
                raise CronError(
                    f"unknown cron macro {stripped[:20]!r}; known: {', '.join(sorted(_MACROS))}"
                )
            stripped, source = macro, stripped.lower()
        parts = stripped.split(" ")
        if len(parts) != len(_FIELDS):
            raise CronError(
                "a cron expression has 5 fields (minute hour day-of-month month "
                f"day-of-week); got {len(parts)} in {stripped[:60]!r}"
            )
        minutes, hours, days, months, weekdays = (
            _parse_field(field, part) for field, part in zip(_FIELDS, parts, strict=True)
        )
        weekdays = frozenset(day % 7 for day in weekdays)
        schedule = cls(
            expression=source if source.startswith("@") else _normalized(parts),
            minutes=tuple(sorted(minutes)),
            hours=tuple(sorted(hours)),
            days=days,
            months=months,
            weekdays=weekdays,
            day_restricted=not parts[2].startswith("*"),
            weekday_restricted=not parts[4].startswith("*"),
        )
        schedule._check_feasible()
        return schedule

    def _check_feasible(self) -> None:
        if self.day_restricted and self.weekday_restricted:
            return  # either field may match, and every weekday occurs every month
        if any(day <= _LONGEST_MONTH[month - 1] for month in self.months for day in self.days):
            return
        raise CronError(
            f"{self.expression!r} never fires: no chosen month has any of the chosen days"
        )

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

    def _day_matches(self, day: date) -> bool:
        # datetime.weekday() counts from Monday = 0; cron from Sunday = 0.
        in_month = day.day in self.days
        in_week = (day.weekday() + 1) % 7 in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return in_month or in_week
        return in_month and in_week

    def matches(self, moment: datetime) -> bool:
        """Tell whether the minute of ``moment`` (timezone-aware) is a firing time."""
        utc = _as_utc(moment)
        return (
            utc.month in self.months
            and self._day_matches(utc.date())
            and utc.hour in self.hours
            and utc.minute in self.minutes
        )

    def next_after(self, moment: datetime) -> datetime:
        """Return the first firing time strictly after ``moment``, in UTC.

        Firing times are whole minutes. ``moment`` must be timezone-aware.
        """
        start = _as_utc(moment)
        t = start.replace(second=0, microsecond=0) + _MINUTE
        limit = start.year + _SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = _first_of_next_month(t)
                continue
            if not self._day_matches(t.date()):
                t = _start_of_day(t) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                index = bisect.bisect_right(self.hours, t.hour)
                if index == len(self.hours):
                    t = _start_of_day(t) + timedelta(days=1)
                else:
                    t = t.replace(hour=self.hours[index], minute=0)
                continue
            if t.minute not in self.minutes:
                index = bisect.bisect_right(self.minutes, t.minute)
                if index == len(self.minutes):
                    t = t.replace(minute=0) + timedelta(hours=1)
                else:
                    t = t.replace(minute=self.minutes[index])
                continue
            return t
        raise CronError(f"{self.expression!r} does not fire within {_SEARCH_YEARS} years")

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """Return the last firing time at or before ``moment``, in UTC.

        The minute of ``moment`` itself counts. ``moment`` must be
        timezone-aware.
        """
        start = _as_utc(moment)
        t = start.replace(second=0, microsecond=0)
        limit = start.year - _SEARCH_YEARS
        try:
            while t.year >= limit:
                if t.month not in self.months:
                    t = t.replace(day=1, hour=0, minute=0) - _MINUTE
                    continue
                if not self._day_matches(t.date()):
                    t = _start_of_day(t) - _MINUTE
                    continue
                if t.hour not in self.hours:
                    index = bisect.bisect_left(self.hours, t.hour)
                    if index == 0:
                        t = _start_of_day(t) - _MINUTE
                    else:
                        t = t.replace(hour=self.hours[index - 1], minute=59)
                    continue
                if t.minute not in self.minutes:
                    index = bisect.bisect_left(self.minutes, t.minute)
                    if index == 0:
                        t = t.replace(minute=0) - _MINUTE
                    else:
                        t = t.replace(minute=self.minutes[index - 1])
                    continue
                return t
        except OverflowError:
            pass  # ran past datetime.min: nothing earlier can fire
        raise CronError(f"{self.expression!r} did not fire within {_SEARCH_YEARS} years before")


def _normalized(parts: list[str]) -> str:
    return " ".join(part.upper() if any(c.isalpha() for c in part) else part for part in parts)
