"""The scheduler, driven by a FakeClock: jobs run at their times, once, everywhere."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from timmybot_adapters.memory import MemoryAccessPolicyStore
from timmybot_bot.runtime.scheduler import Job, Outcome, Report, Scheduler
from timmybot_bot.runtime.schedules import CronSchedule
from timmybot_bot.runtime.timers import ClockSleeper, FakeSleeper
from timmybot_core.domain.clock import FakeClock
from timmybot_core.domain.errors import StoreUnavailable

START = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)  # a Thursday
TTL = timedelta(minutes=10)
DAILY_2 = CronSchedule.parse("0 2 * * *")
DAILY_3 = CronSchedule.parse("0 3 * * *")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@attrs.define
class Recorder:
    """A job that records when it ran (by the fake clock) and returns a report."""

    clock: FakeClock
    name: str
    times: list[datetime] = attrs.field(factory=list)

    async def __call__(self) -> Report:
        self.times.append(self.clock.now())
        # Yield like real work would, so other schedulers get to race.
        for _ in range(3):
            await asyncio.sleep(0)
        return {"ran": len(self.times)}


@attrs.define
class World:
    clock: FakeClock
    sleeper: FakeSleeper
    store: MemoryAccessPolicyStore
    schedulers: list[Scheduler] = attrs.field(factory=list)

    def scheduler(self, *jobs: Job, holder: str = "process-a") -> Scheduler:
        scheduler = Scheduler(
            jobs, store=self.store, clock=self.clock, sleeper=self.sleeper, holder=holder,
            lease_ttl=TTL,
        )  # fmt: skip
        self.schedulers.append(scheduler)
        return scheduler

    def settled(self) -> bool:
        return all(scheduler.settled() for scheduler in self.schedulers)

    async def advance_to(self, moment: datetime) -> None:
        await self.sleeper.advance_to(moment, settled=self.settled)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = FakeClock(START)
    world = World(clock=clock, sleeper=FakeSleeper(clock), store=MemoryAccessPolicyStore())
    yield world
    for scheduler in world.schedulers:
        await scheduler.stop()


def job(name: str, schedule: CronSchedule, run: Callable[[], object]) -> Job:
    return Job(name=name, schedule=schedule, run=run)  # type: ignore[arg-type]


async def test_each_job_runs_at_its_time_once_a_day(world: World) -> None:
    rotation, cleanup = Recorder(world.clock, "rotation"), Recorder(world.clock, "cleanup")
    scheduler = world.scheduler(
        job("token_rotation", DAILY_2, rotation), job("data_cleanup", DAILY_3, cleanup)
    )
    await scheduler.start()
    await world.advance_to(at("2026-01-03T12:00"))
    assert rotation.times == [
        at("2026-01-01T02:00"),
        at("2026-01-02T02:00"),
        at("2026-01-03T02:00"),
    ]
    assert cleanup.times == [at("2026-01-01T03:00"), at("2026-01-02T03:00"), at("2026-01-03T03:00")]
    assert [run.outcome for run in scheduler.history] == [Outcome.RAN] * 6


async def test_a_fresh_install_does_not_run_anything_at_start_up(world: World) -> None:
    world.clock.set(at("2026-01-01T12:00"))  # long after today's 02:00
    rotation = Recorder(world.clock, "rotation")
    await world.scheduler(job("token_rotation", DAILY_2, rotation)).start()
    await world.advance_to(at("2026-01-02T01:59"))
    assert rotation.times == []
    await world.advance_to(at("2026-01-02T02:00"))
    assert rotation.times == [at("2026-01-02T02:00")]


async def test_a_second_process_on_the_same_store_does_not_run_the_jobs_again(
    world: World,
) -> None:
    first, second = Recorder(world.clock, "a"), Recorder(world.clock, "b")
    a = world.scheduler(job("token_rotation", DAILY_2, first), holder="process-a")
    b = world.scheduler(job("token_rotation", DAILY_2, second), holder="process-b")
    await a.start()
    await b.start()
    await world.advance_to(at("2026-01-05T00:00"))
    assert sorted(first.times + second.times) == [
        at("2026-01-01T02:00"),
        at("2026-01-02T02:00"),
        at("2026-01-03T02:00"),
        at("2026-01-04T02:00"),
    ]
    # Each firing: one process ran it; the other found the lease taken
    # while the run went on, and the run recorded when it looked again.
    outcomes = [run.outcome for run in [*a.history, *b.history]]
    assert outcomes.count(Outcome.RAN) == 4
    assert Outcome.BUSY in outcomes
    assert set(outcomes) <= {Outcome.RAN, Outcome.DONE_ELSEWHERE, Outcome.BUSY}


async def test_a_missed_run_is_caught_up_once_after_downtime(world: World) -> None:
    rotation = Recorder(world.clock, "rotation")
    before = world.scheduler(job("token_rotation", DAILY_2, rotation))
    await before.start()
    await world.advance_to(at("2026-01-01T12:00"))
    assert rotation.times == [at("2026-01-01T02:00")]
    await before.stop()

    # Down for three days and a half: the 2nd, 3rd and 4th are missed.
    world.clock.set(at("2026-01-04T14:30"))
    after = world.scheduler(job("token_rotation", DAILY_2, rotation), holder="restarted")
    await after.start()
    await world.advance_to(at("2026-01-04T23:00"))
    assert rotation.times == [at("2026-01-01T02:00"), at("2026-01-04T14:30")]
    assert after.history[-1].scheduled_for == at("2026-01-04T02:00")
    await world.advance_to(at("2026-01-05T02:00"))
    assert rotation.times[-1] == at("2026-01-05T02:00")
    assert len(rotation.times) == 3


async def test_a_restart_after_the_run_does_not_run_it_again(world: World) -> None:
    rotation = Recorder(world.clock, "rotation")
    before = world.scheduler(job("token_rotation", DAILY_2, rotation))
    await before.start()
    await world.advance_to(at("2026-01-01T02:30"))
    await before.stop()
    again = world.scheduler(job("token_rotation", DAILY_2, rotation), holder="restarted")
    await again.start()
    await world.advance_to(at("2026-01-01T23:00"))
    assert rotation.times == [at("2026-01-01T02:00")]


async def test_a_job_never_overlaps_itself_and_a_firing_missed_meanwhile_runs_once_after(
    world: World,
) -> None:
    release = asyncio.Event()
    active, most, runs = 0, 0, []

    async def slow() -> Report:
        nonlocal active, most
        active += 1
        most = max(most, active)
        runs.append(world.clock.now())
        try:
            await release.wait()
        finally:
            active -= 1
        return {}

    scheduler = world.scheduler(job("token_rotation", CronSchedule.parse("0 * * * *"), slow))
    await scheduler.start()
    await world.sleeper.settle(world.settled)
    world.clock.set(at("2026-01-01T01:00"))
    world.sleeper.wake_due()
    await world.sleeper.settle(lambda: active == 1)
    # Five hourly firings pass while the first run is still going; the
    # lease is renewed on the way.
    for minute in range(0, 5 * 60, 3):
        world.clock.set(at("2026-01-01T01:00") + timedelta(minutes=minute))
        world.sleeper.wake_due()
        await asyncio.sleep(0)
    assert runs == [at("2026-01-01T01:00")]
    release.set()
    await world.sleeper.settle(world.settled)
    # The owed firings are caught up as one run, for the latest of them.
    assert most == 1
    assert len(runs) == 2
    assert scheduler.history[-1].scheduled_for == at("2026-01-01T05:00")


async def test_a_holder_that_died_holding_the_lease_is_taken_over_after_it_lapses(
    world: World,
) -> None:
    await world.store.acquire_lease(
        "job:token_rotation", "crashed", now=START, ttl=timedelta(hours=3)
    )
    rotation = Recorder(world.clock, "rotation")
    scheduler = world.scheduler(job("token_rotation", DAILY_2, rotation))
    await scheduler.start()
    await world.advance_to(at("2026-01-01T02:05"))
    assert rotation.times == []
    assert scheduler.history[-1].outcome is Outcome.BUSY
    # The crashed holder's lease ends at 03:00; the run happens then.
    await world.advance_to(at("2026-01-01T04:00"))
    assert len(rotation.times) == 1
    assert at("2026-01-01T03:00") <= rotation.times[0] <= at("2026-01-01T03:00") + TTL
    assert scheduler.history[-1].outcome is Outcome.RAN


async def test_a_failing_job_is_logged_without_its_message_and_not_retried_at_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="timmybot.scheduler")
    calls: list[datetime] = []

    async def broken() -> Report:
        calls.append(world.clock.now())
        raise RuntimeError("canary-secret-in-an-exception")

    scheduler = world.scheduler(job("token_rotation", DAILY_2, broken))
    await scheduler.start()
    await world.advance_to(at("2026-01-02T02:00"))
    assert calls == [at("2026-01-01T02:00"), at("2026-01-02T02:00")]
    assert [run.outcome for run in scheduler.history] == [Outcome.FAILED, Outcome.FAILED]
    assert "canary-secret" not in caplog.text
    failed = [json.loads(r.getMessage()) for r in caplog.records if "JOB_FAILED" in r.getMessage()]
    assert failed[0]["error"].startswith("RuntimeError at test_scheduler.py:")
    assert failed[0]["job"] == "token_rotation"


async def test_a_job_that_raises_cancelled_error_itself_fails_and_runs_again_next_time(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # A job awaiting a task someone else cancelled sees CancelledError
    # though nobody cancelled the job: a failure like any other, and the
    # job's loop goes on.
    caplog.set_level(logging.INFO, logger="timmybot.scheduler")
    calls: list[datetime] = []

    async def cancelled_inside() -> Report:
        calls.append(world.clock.now())
        other = asyncio.ensure_future(asyncio.Event().wait())
        other.cancel()
        await other
        return {}

    scheduler = world.scheduler(job("token_rotation", DAILY_2, cancelled_inside))
    await scheduler.start()
    await world.advance_to(at("2026-01-02T02:00"))
    assert calls == [at("2026-01-01T02:00"), at("2026-01-02T02:00")]
    assert [run.outcome for run in scheduler.history] == [Outcome.FAILED, Outcome.FAILED]
    assert await world.store.last_job_run("token_rotation") == at("2026-01-02T02:00")
    assert sum("JOB_FAILED" in r.getMessage() for r in caplog.records) == 2


async def test_every_run_is_logged_as_one_json_line_with_its_report(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="timmybot.scheduler")

    async def rotate() -> Report:
        return {"users": 3, "refreshed": 2, "detail": "x" * 500, "odd": object()}

    await world.scheduler(job("token_rotation", DAILY_2, rotate)).start()
    await world.advance_to(at("2026-01-01T02:01"))
    lines = [r.getMessage() for r in caplog.records if "JOB_FINISHED" in r.getMessage()]
    assert len(lines) == 1
    assert "\n" not in lines[0]
    record = json.loads(lines[0])
    assert record["job"] == "token_rotation"
    assert record["scheduled_for"] == "2026-01-01T02:00:00+00:00"
    assert record["holder"] == "process-a"
    assert record["report"]["users"] == 3
    assert record["report"]["detail"] == "x" * 100
    assert record["report"]["odd"] == "<object>"


class FlakyStore(MemoryAccessPolicyStore):
    """The memory store, with an outage switch for lease renewals and reads."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[str] = set()

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        if "acquire" in self.failing:
            raise StoreUnavailable("access policy store: acquire_lease failed (test outage)")
        return await super().acquire_lease(name, holder, now=now, ttl=ttl)

    async def last_job_run(self, job: str) -> datetime | None:
        if "read" in self.failing:
            raise StoreUnavailable("access policy store: last_job_run failed (test outage)")
        return await super().last_job_run(job)


async def test_a_run_that_cannot_keep_its_lease_is_cancelled_and_run_again(world: World) -> None:
    store = FlakyStore()
    world.store = store
    started, cancelled = [], []

    async def long_job() -> Report:
        started.append(world.clock.now())
        try:
            if len(started) == 1:
                await asyncio.Event().wait()  # runs until cancelled
        except asyncio.CancelledError:
            cancelled.append(world.clock.now())
            raise
        return {}

    scheduler = world.scheduler(job("token_rotation", DAILY_2, long_job))
    await scheduler.start()
    await world.sleeper.settle(world.settled)
    world.clock.set(at("2026-01-01T02:00"))
    world.sleeper.wake_due()
    await world.sleeper.settle(lambda: len(started) == 1)
    store.failing.add("acquire")
    # Renewals fail; once the lease's lifetime is over the run is given up.
    while not cancelled:
        deadline = world.sleeper.next_deadline()
        assert deadline is not None and deadline <= at("2026-01-01T03:00")
        world.clock.set(deadline)
        world.sleeper.wake_due()
        await asyncio.sleep(0.01)
    assert cancelled[0] >= at("2026-01-01T02:00") + TTL
    await world.sleeper.settle(world.settled)
    assert scheduler.history[-1].outcome is Outcome.LEASE_LOST
    assert await store.last_job_run("token_rotation") < at("2026-01-01T02:00")  # type: ignore[operator]
    store.failing.clear()
    await world.advance_to(at("2026-01-01T03:00"))
    assert len(started) == 2
    assert scheduler.history[-1].outcome is Outcome.RAN


class StalledStore(MemoryAccessPolicyStore):
    """The memory store, where one holder's lease requests never get an answer (a partition)."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled: set[str] = set()

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        if holder in self.stalled:
            await asyncio.Event().wait()  # the request hangs; the lease lapses meanwhile
        return await super().acquire_lease(name, holder, now=now, ttl=ttl)


async def test_a_run_whose_renewal_hangs_is_cancelled_when_its_lease_lapses(world: World) -> None:
    store = StalledStore()
    world.store = store
    active, runs, cancelled = 0, [], []

    def long_job(holder: str) -> Callable[[], object]:
        async def run() -> Report:
            nonlocal active
            active += 1
            runs.append(holder)
            try:
                if len(runs) == 1:
                    await asyncio.Event().wait()  # runs until cancelled
            except asyncio.CancelledError:
                cancelled.append(world.clock.now())
                raise
            finally:
                active -= 1
            return {}

        return run

    holders = ["process-a", "process-b"]
    for holder in holders:
        scheduler = world.scheduler(job("token_rotation", DAILY_2, long_job(holder)), holder=holder)
        await scheduler.start()
    await world.sleeper.settle(world.settled)
    world.clock.set(at("2026-01-01T02:00"))
    world.sleeper.wake_due()
    await world.sleeper.settle(lambda: len(runs) == 1)
    store.stalled.add(runs[0])
    # The holder's renewals never come back, and the other process takes
    # the lapsed lease over: the first run must be over by then.
    for _ in range(100):
        deadline = world.sleeper.next_deadline()
        if deadline is None or deadline > at("2026-01-01T02:30") or len(runs) == 2:
            break
        world.clock.set(deadline)
        world.sleeper.wake_due()
        await asyncio.sleep(0.01)
    holders.remove(runs[0])
    assert runs[1:] == holders
    assert cancelled == [at("2026-01-01T02:00") + TTL]
    assert active == 0


async def test_a_store_outage_delays_the_run_until_the_store_is_back(world: World) -> None:
    store = FlakyStore()
    world.store = store
    rotation = Recorder(world.clock, "rotation")
    await world.scheduler(job("token_rotation", DAILY_2, rotation)).start()
    await world.advance_to(at("2026-01-01T01:00"))
    store.failing.add("read")
    await world.advance_to(at("2026-01-01T02:30"))
    assert rotation.times == []
    store.failing.clear()
    await world.advance_to(at("2026-01-01T02:32"))
    assert rotation.times == [at("2026-01-01T02:31")]  # the next retry, a minute later


async def test_run_pending_runs_what_is_owed_without_starting_loops(world: World) -> None:
    rotation = Recorder(world.clock, "rotation")
    scheduler = world.scheduler(job("token_rotation", DAILY_2, rotation))
    assert await scheduler.run_pending() == []  # first sight: nothing owed
    world.clock.set(at("2026-01-03T09:00"))
    runs = await scheduler.run_pending()
    assert [(r.job, r.scheduled_for, r.outcome) for r in runs] == [
        ("token_rotation", at("2026-01-03T02:00"), Outcome.RAN)
    ]
    assert runs[0].report == {"ran": 1}
    assert await scheduler.run_pending() == []


def test_job_names_must_be_distinct() -> None:
    clock = FakeClock(START)
    jobs = [job("a", DAILY_2, Recorder(clock, "a")), job("a", DAILY_3, Recorder(clock, "b"))]
    with pytest.raises(ValueError, match="distinct"):
        Scheduler(jobs, store=MemoryAccessPolicyStore(), clock=clock)


async def test_the_clock_sleeper_wakes_when_the_clock_reaches_the_moment() -> None:
    clock = FakeClock(START)
    sleeper = ClockSleeper(clock, max_slice=0.01)
    task = asyncio.create_task(sleeper.sleep_until(START + timedelta(hours=1)))
    await asyncio.sleep(0.05)
    assert not task.done()
    clock.advance(timedelta(hours=1))
    await asyncio.wait_for(task, timeout=1)


class SlowLeaseStore(MemoryAccessPolicyStore):
    """The memory store, where a lease request is written before its answer comes back.

    Like SQLite's worker thread: a cancelled call's write goes on and commits.
    """

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.written = asyncio.Event()

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        taken = await super().acquire_lease(name, holder, now=now, ttl=ttl)
        self.written.set()
        await self.answer.wait()
        return taken


async def test_stopping_while_the_lease_is_being_taken_releases_it(world: World) -> None:
    store = SlowLeaseStore()
    world.store = store
    rotation = Recorder(world.clock, "rotation")
    scheduler = world.scheduler(job("token_rotation", DAILY_2, rotation))
    await scheduler.start()
    await world.sleeper.settle(world.settled)
    world.clock.set(at("2026-01-01T02:00"))
    world.sleeper.wake_due()
    await asyncio.wait_for(store.written.wait(), timeout=5)
    await scheduler.stop()
    assert rotation.times == []
    # Another process need not wait out the stopped one's lease lifetime.
    assert await MemoryAccessPolicyStore.acquire_lease(
        store, "job:token_rotation", "process-b", now=world.clock.now(), ttl=TTL
    )


class UnrecordedStore(MemoryAccessPolicyStore):
    """The memory store, where recording a run fails while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    async def record_job_run(self, job: str, at: datetime) -> bool:
        if self.failing:
            raise StoreUnavailable("access policy store: record_job_run failed (test outage)")
        return await super().record_job_run(job, at)


async def test_a_run_whose_record_fails_is_recorded_later_not_run_again(world: World) -> None:
    store = UnrecordedStore()
    world.store = store
    runs: list[datetime] = []

    async def rotation() -> Report:
        runs.append(world.clock.now())
        store.failing = True  # the store goes away while the job runs
        return {}

    a = world.scheduler(job("token_rotation", DAILY_2, rotation), holder="process-a")
    b = world.scheduler(job("token_rotation", DAILY_2, rotation), holder="process-b")
    await a.start()
    await world.sleeper.settle(world.settled)
    world.clock.set(at("2026-01-01T02:00"))
    world.sleeper.wake_due()
    await world.sleeper.settle(lambda: len(runs) == 1 and world.settled())
    await b.start()  # another process looks at once: the run must not be owed to it
    await world.advance_to(at("2026-01-01T02:03"))
    assert runs == [at("2026-01-01T02:00")]
    store.failing = False
    await world.advance_to(at("2026-01-01T23:00"))
    assert runs == [at("2026-01-01T02:00")]
    assert await store.last_job_run("token_rotation") == at("2026-01-01T02:00")
    await world.advance_to(at("2026-01-02T02:00"))
    assert runs == [at("2026-01-01T02:00"), at("2026-01-02T02:00")]
