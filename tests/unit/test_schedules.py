"""CronSchedule (croniter underneath): parsing, matching, the next and previous firing times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from timmybot_bot.runtime.schedules import CronError, CronSchedule

MINUTE = timedelta(minutes=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Examples


@pytest.mark.parametrize(
    ("expression", "now", "expected"),
    [
        ("0 2 * * *", "2026-01-01T00:00", "2026-01-01T02:00"),
        ("0 2 * * *", "2026-01-01T02:00", "2026-01-02T02:00"),  # strictly after
        ("0 2 * * *", "2026-01-01T01:59:59.999999", "2026-01-01T02:00"),
        ("0 3 * * *", "2026-12-31T03:00", "2027-01-01T03:00"),
        ("*/15 * * * *", "2026-01-01T10:07", "2026-01-01T10:15"),
        ("*/15 * * * *", "2026-01-01T10:45", "2026-01-01T11:00"),
        ("30 9 * * MON-FRI", "2026-01-02T09:30", "2026-01-05T09:30"),  # Fri -> Mon
        ("0 0 1 * *", "2026-01-15T00:00", "2026-02-01T00:00"),
        ("0 0 31 * *", "2026-01-31T00:00", "2026-03-31T00:00"),  # skips February
        ("0 0 29 2 *", "2026-01-01T00:00", "2028-02-29T00:00"),
        ("0 0 29 FEB *", "2096-03-01T00:00", "2104-02-29T00:00"),  # 2100 is not leap
        ("0 0 * * 7", "2026-01-01T00:00", "2026-01-04T00:00"),  # 7 is Sunday
        ("0 0 * * sun", "2026-01-01T00:00", "2026-01-04T00:00"),
        ("5/20 * * * *", "2026-01-01T00:00", "2026-01-01T00:05"),
        ("5/20 * * * *", "2026-01-01T00:45", "2026-01-01T01:05"),
        ("0 12 * DEC *", "2026-01-01T00:00", "2026-12-01T12:00"),
        ("@hourly", "2026-01-01T00:30", "2026-01-01T01:00"),
        ("@daily", "2026-01-01T00:30", "2026-01-02T00:00"),
        ("@weekly", "2026-01-01T00:00", "2026-01-04T00:00"),
        ("@monthly", "2026-01-01T00:00", "2026-02-01T00:00"),
        ("@yearly", "2026-01-01T00:00", "2027-01-01T00:00"),
    ],
)
def test_next_after(expression: str, now: str, expected: str) -> None:
    assert CronSchedule.parse(expression).next_after(at(now)) == at(expected)


def test_both_day_fields_restricted_means_either_matches() -> None:
    # Vixie cron: the 13th, and every Friday.
    schedule = CronSchedule.parse("0 0 13 * FRI")
    fired = []
    moment = at("2026-02-01T00:00")
    for _ in range(6):
        moment = schedule.next_after(moment)
        fired.append(moment.date().isoformat())
    assert fired == [
        "2026-02-06",
        "2026-02-13",
        "2026-02-20",
        "2026-02-27",
        "2026-03-06",
        "2026-03-13",
    ]


def test_a_starred_day_field_means_both_must_match() -> None:
    # Day-of-week starts with "*", so it narrows the 1st instead of adding
    # days: only a 1st that falls on Sun, Tue, Thu or Sat fires. In 2026,
    # April to July start on Wed, Fri, Mon and Wed; August on a Saturday.
    schedule = CronSchedule.parse("0 0 1 * */2")
    assert schedule.next_after(at("2026-03-01T00:00")) == at("2026-08-01T00:00")


def test_latest_at_or_before_counts_the_moment_itself() -> None:
    schedule = CronSchedule.parse("0 2 * * *")
    assert schedule.latest_at_or_before(at("2026-01-05T02:00:30")) == at("2026-01-05T02:00")
    assert schedule.latest_at_or_before(at("2026-01-05T01:59")) == at("2026-01-04T02:00")
    assert schedule.latest_at_or_before(at("2026-03-01T00:00")) == at("2026-02-28T02:00")


def test_times_in_other_zones_are_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    schedule = CronSchedule.parse("0 2 * * *")
    # 02:30 in Paris is 01:30 UTC: 02:00 UTC is still ahead.
    assert schedule.next_after(datetime(2026, 1, 1, 2, 30, tzinfo=paris)) == at("2026-01-01T02:00")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CronSchedule.parse("* * * * *").next_after(datetime(2026, 1, 1))  # noqa: DTZ001


def test_the_expression_is_normalized_and_shown() -> None:
    schedule = CronSchedule.parse("  0   2 * jan-mar   mon ")
    assert str(schedule) == "0 2 * JAN-MAR MON"
    assert repr(schedule) == "CronSchedule('0 2 * JAN-MAR MON')"
    assert schedule == CronSchedule.parse("0 2 * JAN-MAR MON")
    assert str(CronSchedule.parse("@DAILY")) == "@daily"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty"),
        ("* * * *", "5 fields"),
        ("* * * * * *", "5 fields"),
        (
            "60 * * * *",
            "'60 * * * *' is not a cron expression: [60 * * * *] is not acceptable, out of range",
        ),
        ("* 24 * * *", "out of range"),
        ("* * 0 * *", "out of range"),
        ("* * * 13 *", "out of range"),
        ("* * * * 8", "out of range"),
        ("*/0 * * * *", "step '0' in field 0 is not acceptable"),
        ("*/x * * * *", "'*/x * * * *' is not a cron expression"),
        ("1,,2 * * * *", "'1,,2 * * * *' is not a cron expression"),
        ("MON * * * *", "'MON * * * *' is not a cron expression"),
        ("* * * FOO *", "'* * * FOO *' is not a cron expression"),
        ("-1 * * * *", "negative numbers not allowed"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 APR,JUN,SEP,NOV *", "never fires"),
        ("@reboot", "unknown cron macro"),
    ],
)
def test_malformed_expressions_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=re.escape(message)) as caught:
        CronSchedule.parse(expression)
    assert isinstance(caught.value, ValueError)


def test_a_reversed_range_wraps_around_as_croniter_reads_it() -> None:
    # croniter's reading, kept: 10-5 is 10..59 then 0..5; FRI-MON is Fri to Mon.
    minutes = CronSchedule.parse("10-5 * * * *")
    assert [m for m in range(60) if minutes.matches(at(f"2026-01-01T00:{m:02d}"))] == [
        *range(6),
        *range(10, 60),
    ]
    days = CronSchedule.parse("0 0 * * FRI-MON")
    assert days.next_after(at("2026-06-02T12:00")) == at("2026-06-05T00:00")  # Tue -> Fri


def test_feb_30_with_a_weekday_is_not_refused_because_the_weekday_alone_fires() -> None:
    schedule = CronSchedule.parse("0 0 30 2 MON")
    assert schedule.next_after(at("2026-01-01T00:00")) == at("2026-02-02T00:00")


# Properties


def _field(low: int, high: int, names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    number = st.integers(low, high).map(str)
    if names:
        number = number | st.sampled_from(names)

    @st.composite
    def ranged(draw: st.DrawFn) -> str:
        a, b = sorted((draw(st.integers(low, high)), draw(st.integers(low, high))))
        text = f"{a}-{b}"
        if draw(st.booleans()):
            text += f"/{draw(st.integers(1, high - low + 2))}"
        return text

    step = st.integers(1, high - low + 2).map(lambda s: f"*/{s}")
    start_step = st.tuples(st.integers(low, high), st.integers(1, high - low + 2)).map(
        lambda pair: f"{pair[0]}/{pair[1]}"
    )
    item = number | ranged() | step | start_step
    return st.just("*") | st.lists(item, min_size=1, max_size=4).map(",".join)


MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@st.composite
def schedules(draw: st.DrawFn) -> CronSchedule:
    text = " ".join(
        (
            draw(_field(0, 59)),
            draw(_field(0, 23)),
            draw(_field(1, 31)),
            draw(_field(1, 12, MONTHS)),
            draw(_field(0, 7, DAYS)),
        )
    )
    try:
        return CronSchedule.parse(text)
    except CronError as error:
        # Only impossible dates (such as the 31st of February) may be refused.
        if "never fires" not in str(error):
            raise
        reject()


moments = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis adds the zone
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)

# How far the exhaustive minute-by-minute check looks: far enough to cross
# hour, day and month boundaries, small enough to stay fast.
SCAN = timedelta(days=2)


@settings(deadline=None)
@given(schedules(), moments)
def test_next_after_is_later_matches_and_skips_no_matching_minute(
    schedule: CronSchedule, now: datetime
) -> None:
    fire = schedule.next_after(now)
    assert fire > now
    assert fire.second == fire.microsecond == 0
    assert schedule.matches(fire)
    # The expression as shown parses back to the same schedule.
    assert CronSchedule.parse(str(schedule)).next_after(now) == fire
    # Every whole minute in (now, fire) does not match, up to SCAN.
    minute = now.replace(second=0, microsecond=0) + MINUTE
    end = min(fire, now + SCAN)
    while minute < end:
        assert not schedule.matches(minute), (str(schedule), now, minute, fire)
        minute += MINUTE


@settings(deadline=None)
@given(schedules(), moments)
def test_latest_at_or_before_is_not_later_matches_and_skips_nothing(
    schedule: CronSchedule, now: datetime
) -> None:
    fire = schedule.latest_at_or_before(now)
    assert fire <= now
    assert schedule.matches(fire)
    # The two directions agree: nothing fires between them.
    assert schedule.next_after(fire) > now
    minute = now.replace(second=0, microsecond=0)
    end = max(fire, now - SCAN)
    while minute > end:
        assert not schedule.matches(minute), (str(schedule), now, minute, fire)
        minute -= MINUTE
