"""Eight processes open one fresh SQLite file at the same instant: all of them succeed.

Switching a new file to WAL takes it exclusively for a moment, and SQLite's
busy handler does not wait for that; ``SqliteDatabase`` retries the switch
within its busy timeout. Without the data directory's init lock in between,
so the race is the database's alone. Repeated a bounded number of times.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration import processes

PROCESSES = 8
ROUNDS = 3

WORKER = r"""
import asyncio, json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from timmybot_adapters.sqlite import SqliteAccessPolicyStore, SqliteDatabase

barrier, index, path = sys.argv[1:]


async def main():
    (Path(barrier) / f"ready-{index}").touch()
    deadline = time.monotonic() + 30
    while not (Path(barrier) / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("no start signal")
        time.sleep(0.001)
    async with SqliteDatabase(Path(path)) as db:
        store = await SqliteAccessPolicyStore.open(db)
        added = await store.allow_guild(1000 + int(index), at=datetime.now(UTC))
        mode = await db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    print(json.dumps({"added": added, "mode": mode}))


asyncio.run(main())
"""


def test_eight_processes_opening_a_fresh_file_all_succeed(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        path = tmp_path / f"round-{round_}" / "timmybot.db"
        outputs = processes.run_together(
            WORKER, tmp_path / f"barrier-{round_}", [str(path)], processes=PROCESSES
        )
        reports = [json.loads(out) for out, _ in outputs]
        assert all(report["added"] for report in reports)
        assert {report["mode"] for report in reports} == {"wal"}
