"""Several bot processes share one SQLite store and enforce one limit."""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import timedelta
from pathlib import Path

from tests.integration.access_workers import deny_many
from timmybot_adapters.sqlite import SqliteAccessPolicyStore, SqliteDatabase
from timmybot_core import SystemClock

PROCESSES = 4
ATTEMPTS = 250
GUILD = 555_555_555_555_555_555


def test_four_processes_count_every_attempt_and_ban_once(tmp_path: Path) -> None:
    path = tmp_path / "timmybot.db"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(target=deny_many, args=(str(path), GUILD, ATTEMPTS, barrier, results))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    alerts = sum(report[0] for report in reports)
    bans = sum(report[1] for report in reports)
    assert (alerts, bans) == (1, 1)

    async def final_count() -> int:
        db = SqliteDatabase(path)
        try:
            store = SqliteAccessPolicyStore(db)
            return await store.count_attempts(
                GUILD, now=SystemClock().now(), window=timedelta(hours=1)
            )
        finally:
            await db.close()

    assert asyncio.run(final_count()) == PROCESSES * ATTEMPTS
