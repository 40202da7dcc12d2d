"""The scheduler: runs the bot's daily jobs on their cron schedules.

Each :class:`Job` has its own loop, so a long token rotation never delays
the clean-up, and a job never overlaps itself. Several bot processes
(shards) may run a scheduler against one store; the store's leases make
sure only one of them runs a given job at a time, and the store's record of
how far each job's schedule is satisfied makes sure a scheduled run happens
once, not once per process:

1. At each firing time, a scheduler compares the latest firing time that
   has passed with :meth:`~timmybot_core.ports.access.AccessPolicyStore.last_job_run`.
   If it is later, a run is owed.
2. It takes the job's lease (``job:<name>``). A scheduler that cannot
   (another process holds it) looks again when that lease would have
   expired, in case its holder died.
3. Holding the lease, it reads the record again (another process may just
   have finished the run) and, if the run is still owed, runs the job,
   renewing the lease every third of its lifetime. It then records the
   firing time as satisfied and releases the lease.

After downtime, the runs missed meanwhile are owed as one: the job runs
once, for the latest missed firing time. A job seen for the first time
starts owing from that moment, so a fresh install does not run every job at
start-up. A job that raises is logged and counts as run (it is not retried
in a loop); the next firing time runs it again. If a run loses its lease
(the store was unreachable for a whole lease lifetime), it is cancelled and
not recorded, so the next holder runs it. A run that cannot be recorded
(the store failed once the job was done) keeps its lease while only the
record is retried; if that takes a whole lease lifetime, the next holder
runs it again.

Every run is logged on ``timmybot.scheduler`` as one JSON line with its
report (counts only; never a token, a raw ID or a traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

import attrs

from timmybot_bot.app.failures import describe
from timmybot_bot.runtime.schedules import CronSchedule
from timmybot_bot.runtime.timers import ClockSleeper, Sleeper
from timmybot_core.domain.clock import Clock
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.ports.access import AccessPolicyStore

if TYPE_CHECKING:
    from timmybot_bot.runtime.bootstrap import Services

__all__ = [
    "JOB_CLEANUP",
    "JOB_ROTATION",
    "Job",
    "JobRun",
    "Outcome",
    "Scheduler",
    "build_jobs",
    "default_holder",
]

_log = logging.getLogger("timmybot.scheduler")

JOB_ROTATION: Final = "token_rotation"
JOB_CLEANUP: Final = "data_cleanup"

Report = Mapping[str, object]
JobFunction = Callable[[], Awaitable[Report]]

_MAX_TEXT: Final = 100
_HISTORY: Final = 100


@attrs.frozen(kw_only=True)
class Job:
    """A named piece of work and when it runs.

    ``run`` returns the run's report: a mapping of counts and flags that is
    logged as JSON (text values are cut to 100 characters, anything that is
    not a number, flag, text or mapping of those is shown as its type).
    """

    name: str = attrs.field(validator=attrs.validators.min_len(1))
    schedule: CronSchedule
    run: JobFunction = attrs.field(repr=False)


class Outcome(enum.StrEnum):
    """What one attempt at a job did."""

    RAN = "ran"
    """The job ran and returned a report."""
    FAILED = "failed"
    """The job ran and raised; logged, and counted as run."""
    BUSY = "busy"
    """Another process holds the job's lease."""
    DONE_ELSEWHERE = "done_elsewhere"
    """Another process ran it first."""
    LEASE_LOST = "lease_lost"
    """The lease could not be kept; the run was cancelled and not recorded."""


@attrs.frozen(kw_only=True)
class JobRun:
    """One attempt at a job, as this scheduler saw it."""

    job: str
    scheduled_for: datetime
    outcome: Outcome
    report: Report | None = None


def default_holder() -> str:
    """Name this process for leases: host, process ID and a random tag."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


def _loggable(value: object, depth: int = 0) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, Mapping) and depth < 3:
        return {str(key)[:_MAX_TEXT]: _loggable(item, depth + 1) for key, item in value.items()}
    return f"<{type(value).__name__}>"


class Scheduler:
    """Runs :class:`Job` objects on their schedules, once across every process.

    Args:
        jobs: The jobs; names must be distinct.
        store: The shared store of leases and job records.
        clock: The clock the schedules are read against (UTC).
        sleeper: Waits for moments of ``clock``; by default a
            :class:`~timmybot_bot.runtime.timers.ClockSleeper` on ``clock``.
        holder: This process's name in leases (default:
            :func:`default_holder`). Distinct processes need distinct names.
        lease_ttl: How long a lease lasts without renewal; a run renews
            it every third of that. Also how long a process waits before
            looking again at a job whose lease another process holds.
        error_backoff: How long to wait after the store failed.
    """

    def __init__(
        self,
        jobs: Iterable[Job],
        *,
        store: AccessPolicyStore,
        clock: Clock,
        sleeper: Sleeper | None = None,
        holder: str | None = None,
        lease_ttl: timedelta = timedelta(minutes=10),
        error_backoff: timedelta = timedelta(minutes=1),
    ) -> None:
        self._jobs = tuple(jobs)
        names = [job.name for job in self._jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be distinct (got {names})")
        if lease_ttl <= timedelta(0) or error_backoff <= timedelta(0):
            raise ValueError("lease_ttl and error_backoff must be positive")
        self._store = store
        self._clock = clock
        self._sleeper = sleeper if sleeper is not None else ClockSleeper(clock)
        self._holder = holder if holder is not None else default_holder()
        self._ttl = lease_ttl
        self._backoff = error_backoff
        self._tasks: list[asyncio.Task[None]] = []
        self._sleeping: dict[str, datetime | None] = dict.fromkeys(names)
        # Runs that finished but could not be recorded (the store failed),
        # by job: the firing time whose record is owed, and whose lease is kept.
        self._unrecorded: dict[str, datetime] = {}
        self.history: deque[JobRun] = deque(maxlen=_HISTORY)

    def __repr__(self) -> str:
        jobs = ", ".join(f"{job.name}={job.schedule}" for job in self._jobs)
        return f"Scheduler(holder={self._holder!r}, jobs=[{jobs}])"

    @property
    def jobs(self) -> Sequence[Job]:
        """The scheduled jobs."""
        return self._jobs

    @property
    def running(self) -> bool:
        """Whether :meth:`start` was called and :meth:`stop` not yet."""
        return bool(self._tasks)

    def settled(self) -> bool:
        """Tell whether every job's loop is asleep until a moment still ahead.

        For tests driving a fake clock: once settled, nothing happens until
        the clock moves.
        """
        if not self._tasks:
            return True
        now = self._clock.now()
        return all(wake is not None and wake > now for wake in self._sleeping.values())

    async def start(self) -> None:
        """Start one loop per job; returns at once."""
        if self._tasks:
            raise RuntimeError("the scheduler is already running")
        for job in self._jobs:
            _log.info(
                "scheduled %s at %s (UTC); next run %s",
                job.name,
                job.schedule,
                job.schedule.next_after(self._clock.now()).isoformat(),
            )
        self._tasks = [
            asyncio.create_task(self._loop(job), name=f"timmybot-job-{job.name}")
            for job in self._jobs
        ]

    async def stop(self) -> None:
        """Stop every loop; a run in progress is cancelled and its lease released."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run_pending(self) -> list[JobRun]:
        """Run every job that is owed a run now, one after the other; return the attempts."""
        runs: list[JobRun] = []
        for job in self._jobs:
            run, _ = await self._step(job)
            if run is not None:
                runs.append(run)
        return runs

    async def _loop(self, job: Job) -> None:
        while True:
            try:
                _, wake = await self._step(job)
            except Exception as error:  # noqa: BLE001 - a bug in one step must not end the loop
                _log.error("scheduler step for %s failed: %s", job.name, describe(error))
                wake = self._clock.now() + self._backoff
            self._sleeping[job.name] = wake
            try:
                await self._sleeper.sleep_until(wake)
            finally:
                self._sleeping[job.name] = None

    async def _step(self, job: Job) -> tuple[JobRun | None, datetime]:
        """Run ``job`` if a run is owed; return the attempt and when to look again."""
        now = self._clock.now()
        try:
            if (ran := self._unrecorded.get(job.name)) is not None:
                # The job ran already: retry only its record, then free the lease.
                await self._store.record_job_run(job.name, ran)
                del self._unrecorded[job.name]
                await self._release(f"job:{job.name}")
            last = await self._store.last_job_run(job.name)
            if last is None:
                # First sight of the job: its schedule starts now.
                await self._store.record_job_run(job.name, now)
                last = now
            due = job.schedule.latest_at_or_before(now)
            if due <= last:
                return None, job.schedule.next_after(self._clock.now())
            run = await self._attempt(job, due)
        except StoreUnavailable as error:
            _log.error("scheduler: %s skipped, store unavailable: %s", job.name, error)
            return None, self._clock.now() + self._backoff
        self.history.append(run)
        after = self._clock.now()
        wake = job.schedule.next_after(after)
        if run.outcome in (Outcome.BUSY, Outcome.LEASE_LOST):
            # Look again once the other holder's lease would have lapsed.
            wake = min(wake, after + self._ttl)
        elif job.schedule.latest_at_or_before(after) > due:
            wake = after  # a firing passed while the job ran: owed at once
        if job.name in self._unrecorded:
            wake = min(wake, after + self._backoff)  # retry the record, not the run
        return run, wake

    async def _attempt(self, job: Job, due: datetime) -> JobRun:
        lease = f"job:{job.name}"
        now = self._clock.now()
        try:
            acquired = await self._store.acquire_lease(lease, self._holder, now=now, ttl=self._ttl)
        except asyncio.CancelledError:
            # stop() landed while the store was taking the lease: the request
            # may still take it (SQLite's thread finishes a cancelled call), and
            # other processes would wait a whole lease lifetime. Give it back;
            # the release is queued behind the request, and is a no-op if the
            # lease is another holder's.
            with contextlib.suppress(StoreUnavailable):
                await self._store.release_lease(lease, self._holder)
            raise
        if not acquired:
            _log.info("scheduler: %s is being run by another process", job.name)
            return JobRun(job=job.name, scheduled_for=due, outcome=Outcome.BUSY)
        try:
            last = await self._store.last_job_run(job.name)
            if last is not None and last >= due:
                return JobRun(job=job.name, scheduled_for=due, outcome=Outcome.DONE_ELSEWHERE)
            run = await self._run(job, due, lease, now + self._ttl)
            if run.outcome is not Outcome.LEASE_LOST:
                try:
                    await self._store.record_job_run(job.name, due)
                except StoreUnavailable as error:
                    # The job ran: running it again would refresh every token
                    # twice. Only the record is retried (by _step, after the
                    # back-off), and the lease is kept until then so that no
                    # other process runs it either; it lapses after lease_ttl.
                    _log.error("scheduler: %s ran but was not recorded: %s", job.name, error)
                    self._unrecorded[job.name] = due
            return run
        finally:
            if job.name not in self._unrecorded:
                await self._release(lease)

    async def _release(self, lease: str) -> None:
        try:
            await self._store.release_lease(lease, self._holder)
        except StoreUnavailable as error:
            # It lapses on its own after lease_ttl.
            _log.warning("scheduler: could not release %s: %s", lease, error)

    async def _run(self, job: Job, due: datetime, lease: str, valid_until: datetime) -> JobRun:
        started = time.monotonic()
        work: asyncio.Future[Report] = asyncio.ensure_future(job.run())
        keeper = asyncio.create_task(self._keep(lease, work, valid_until))
        entry: dict[str, object] = {
            "job": job.name,
            "scheduled_for": due.isoformat(),
            "holder": self._holder,
        }
        try:
            report = await work
        except asyncio.CancelledError as error:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the scheduler is stopping
            # The keeper returns (it is done by now) only when it lost the lease.
            if keeper.done() and not keeper.cancelled() and keeper.exception() is None:
                _log.error("%s", _line("JOB_LEASE_LOST", entry, started))
                return JobRun(job=job.name, scheduled_for=due, outcome=Outcome.LEASE_LOST)
            # Nobody cancelled the run: the job awaited something that was
            # cancelled. A failure like any other; raising would end its loop.
            _log.error(
                "%s", _line("JOB_FAILED", {**entry, "error": describe(error)[:300]}, started)
            )
            return JobRun(job=job.name, scheduled_for=due, outcome=Outcome.FAILED)
        except Exception as error:  # noqa: BLE001 - a failing job is logged, never fatal
            _log.error(
                "%s", _line("JOB_FAILED", {**entry, "error": describe(error)[:300]}, started)
            )
            return JobRun(job=job.name, scheduled_for=due, outcome=Outcome.FAILED)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        _log.info("%s", _line("JOB_FINISHED", {**entry, "report": _loggable(report)}, started))
        return JobRun(
            job=job.name, scheduled_for=due, outcome=Outcome.RAN, report=dict(report.items())
        )

    async def _keep(self, lease: str, work: asyncio.Future[Report], valid_until: datetime) -> None:
        """Renew the lease every third of its lifetime; cancel ``work`` and return if it is lost.

        ``valid_until`` is when the lease taken for the run ends. A renewal
        that gets no answer before the lease ends counts as lost: another
        process may take the lease from then on, so the run must not go on.
        """
        while True:
            # Never sleep past the lease's end: a slow failed renewal must
            # not push the next look beyond it.
            await self._sleeper.sleep_until(min(self._clock.now() + self._ttl / 3, valid_until))
            now = self._clock.now()
            renewal = asyncio.ensure_future(
                self._store.acquire_lease(lease, self._holder, now=now, ttl=self._ttl)
            )
            lapse = asyncio.ensure_future(self._sleeper.sleep_until(valid_until))
            try:
                await asyncio.wait((renewal, lapse), return_when=asyncio.FIRST_COMPLETED)
            finally:
                answered = renewal.done()
                lapse.cancel()
                renewal.cancel()  # a renewal still waiting for the store is given up
            if not answered:
                _log.warning("scheduler: could not renew %s: no answer before it lapsed", lease)
                work.cancel()
                return
            kept: bool | None
            if isinstance(error := renewal.exception(), StoreUnavailable):
                _log.warning("scheduler: could not renew %s: %s", lease, error)
                kept = None
            else:
                kept = renewal.result()  # any other error ends the keeper, as before
            if kept:
                valid_until = now + self._ttl
            elif kept is False or now >= valid_until:
                work.cancel()
                return


def _line(event: str, fields: Mapping[str, object], started: float) -> str:
    record = {"event": event, **fields, "duration_s": round(time.monotonic() - started, 3)}
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True, default=str)


def build_jobs(services: Services) -> list[Job]:
    """Return the bot's jobs, on the schedules of ``services.settings``.

    * ``token_rotation``: :meth:`TokenRotationService.rotate_expiring`, which
      refreshes every token expiring within a day.
    * ``data_cleanup``: :meth:`DataRetentionService.cleanup_expired_data`,
      which removes expired attempts, bans, switches, link states, orphaned
      vault records and audit records past their retention.
    """
    settings = services.settings

    async def rotate() -> Report:
        return (await services.rotation.rotate_expiring()).as_dict()

    async def cleanup() -> Report:
        return (await services.retention.cleanup_expired_data()).as_dict()

    return [
        Job(name=JOB_ROTATION, schedule=settings.rotation_schedule, run=rotate),
        Job(name=JOB_CLEANUP, schedule=settings.cleanup_schedule, run=cleanup),
    ]
