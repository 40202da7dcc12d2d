"""Several processes share one SQLite file: each scheduled run happens once.

Every worker is a separate Python process with its own scheduler, its own
``FakeClock`` and a distinct lease holder name. The workers move their
clocks to the same moments in lockstep (file barriers between steps), then
each asks its scheduler to run what is owed, at the same real instant. The
jobs append to one shared file, which must list every scheduled run once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.integration import processes
from timmybot_adapters.sqlite import SqliteAccessPolicyStore, SqliteDatabase
from timmybot_adapters.sqlite.access import MIGRATIONS

WORKER = r"""
import asyncio, json, os, sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from timmybot_adapters.sqlite import SqliteAccessPolicyStore, SqliteDatabase
from timmybot_bot.runtime.schedules import CronSchedule
from timmybot_bot.runtime.scheduler import Job, Scheduler
from timmybot_core.domain.clock import FakeClock

barrier, index, db_path, runs_path, count = sys.argv[1:]
barrier, index, count = Path(barrier), int(index), int(count)
(barrier / f"ready-{index}").touch()
while not (barrier / "go").exists():
    time.sleep(0.005)


def wait_for_all(step):
    (barrier / f"{step}-{index}").touch()
    while len(list(barrier.glob(f"{step}-*"))) < count:
        time.sleep(0.005)


async def main():
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))

    def job(name, schedule):
        async def run():
            line = json.dumps({"job": name, "pid": os.getpid(), "at": clock.now().isoformat()})
            # One short O_APPEND write per run: lines never interleave.
            fd = os.open(runs_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
            await asyncio.sleep(0.3)  # long enough for the others to try meanwhile
            return {"worker": index}
        return Job(name=name, schedule=CronSchedule.parse(schedule), run=run)

    async with SqliteDatabase(Path(db_path)) as db:
        store = await SqliteAccessPolicyStore.open(db)
        scheduler = Scheduler(
            [job("token_rotation", "0 2 * * *"), job("data_cleanup", "0 3 * * *")],
            store=store,
            clock=clock,
            holder=f"worker-{index}",
        )
        steps = {}
        for step, moment in (
            ("start", "2026-01-01T00:00"),
            ("night", "2026-01-01T02:00:30"),
            ("after-downtime", "2026-01-04T12:00"),
            ("later", "2026-01-04T13:00"),
        ):
            wait_for_all(step)
            clock.set(datetime.fromisoformat(moment).replace(tzinfo=UTC))
            steps[step] = [[run.job, run.outcome.value] for run in await scheduler.run_pending()]
    print(json.dumps(steps))


asyncio.run(main())
"""

PROCESSES = 3


def test_each_scheduled_run_happens_once_across_processes(tmp_path: Path) -> None:
    runs_path = tmp_path / "runs.jsonl"
    outputs = processes.run_together(
        WORKER,
        tmp_path / "barrier",
        [str(tmp_path / "var" / "timmybot.db"), str(runs_path), str(PROCESSES)],
        processes=PROCESSES,
    )
    steps = [json.loads(out) for out, _ in outputs]
    runs = [json.loads(line) for line in runs_path.read_text().splitlines()]
    assert sorted((run["job"], run["at"]) for run in runs) == [
        # Nothing at start-up; the 02:00 run once; after three days down,
        # each job caught up once.
        ("data_cleanup", "2026-01-04T12:00:00+00:00"),
        ("token_rotation", "2026-01-01T02:00:30+00:00"),
        ("token_rotation", "2026-01-04T12:00:00+00:00"),
    ]
    assert all(step["start"] == [] and step["later"] == [] for step in steps)
    night = [outcome for step in steps for _, outcome in step["night"]]
    assert night.count("ran") == 1
    # The others tried at the same time and were kept out by the lease (or,
    # if they came after the run, by its record).
    assert set(night) <= {"ran", "busy", "done_elsewhere"}
    assert "busy" in night


async def test_a_database_of_the_previous_release_gains_the_scheduler_tables(
    tmp_path: Path,
) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    path = tmp_path / "var" / "timmybot.db"
    async with SqliteDatabase(path) as db:
        # What the release before the scheduler left behind: version 1 and data.
        assert await db.migrate("access_policy", MIGRATIONS[:1]) == 1
        await SqliteAccessPolicyStore(db).allow_guild(42, at=t0)
    async with SqliteDatabase(path) as db:
        store = await SqliteAccessPolicyStore.open(db)
        assert await db.schema_version("access_policy") == 2
        assert await store.is_guild_allowed(42)
        assert await store.acquire_lease("job:x", "a", now=t0, ttl=timedelta(minutes=1))
        assert await store.record_job_run("x", t0)
        assert await store.last_job_run("x") == t0
