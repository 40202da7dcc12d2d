"""Writers killed during appends are sealed by the next start: real processes, real SIGKILL.

A worker appends audit records as fast as it can; it is killed with
SIGKILL mid-stream, so its tail has no digest. ``audit verify`` reports
that tail as a problem once it is older than a live writer would leave it
(the digest interval plus a margin). A bot start then seals the dead
writer (a record saying so, covered by a digest signed with the current
key), and verify is clean again, telling the sealed writer apart. Deleting
the sealed tail is then detected.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.processes import offline_env

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 2  # seconds: TIMMYBOT_AUDIT_DIGEST_INTERVAL
GRACE = 2 * INTERVAL
RUN_LIMIT = 60

APPENDER = r"""
import asyncio, sys
from timmybot_bot.runtime.bootstrap import bootstrap
from timmybot_bot.runtime.settings import Settings


async def main():
    services = bootstrap(Settings.from_env())
    await services.open()
    n = 0
    while True:
        n += 1
        await services.audit.record_admin_action(1, "test.append", f"thing:{n}", source="test")
        if n == 200:
            print("appending", flush=True)


asyncio.run(main())
"""


def environment(data_dir: Path) -> dict[str, str]:
    env = offline_env()
    env.update(
        TIMMYBOT_DATA_DIR=str(data_dir),
        TIMMYBOT_WEB_PORT="0",
        TIMMYBOT_PUBLIC_URL="http://127.0.0.1:1",
        TIMMYBOT_AUDIT_DIGEST_INTERVAL=str(INTERVAL),
        TIMMYBOT_METRICS_EXPORTER="none",
    )
    return env


def verify(data_dir: Path) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "timmybot_bot.cli.main", "audit", "verify", "--json"],
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
        env=environment(data_dir),
        cwd=ROOT,
        check=False,
    )
    assert "Traceback" not in done.stderr
    return done.returncode, json.loads(done.stdout)


def start_bot(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "timmybot_bot"],
        input="",
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
        env=environment(data_dir),
        cwd=ROOT,
        check=False,
    )


def kill_while_appending(data_dir: Path) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", APPENDER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(data_dir),
        cwd=ROOT,
    )
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline()  # blocks until 200 records are in
        assert line.strip() == "appending", worker.stderr.read() if worker.stderr else ""
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=RUN_LIMIT)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == -signal.SIGKILL


def sql(db: Path, statement: str, *params: object) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute(statement, params).fetchall()
        connection.commit()
        return rows
    finally:
        connection.close()


def dead_writer(db: Path) -> str:
    (writer,) = sql(db, "SELECT DISTINCT writer_id FROM audit_records WHERE action = 'test.append'")
    return str(writer[0])


def kinds(report: dict[str, object]) -> list[str]:
    return [str(p["kind"]) for p in report["problems"]]  # type: ignore[attr-defined,index]


def test_a_writer_killed_during_appends_is_sealed_by_the_next_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    db = data_dir / "timmybot.db"
    kill_while_appending(data_dir)
    writer = dead_writer(db)
    unsigned = sql(
        db,
        "SELECT count(*) FROM audit_records WHERE writer_id = ? AND sequence > coalesce("
        "(SELECT max(head_sequence) FROM audit_digests WHERE writer_id = ?), 0)",
        writer,
        writer,
    )[0][0]
    assert int(str(unsigned)) >= 1

    # Once a live writer would have signed it, the unsigned tail is a problem.
    time.sleep(GRACE + 1)
    status, report = verify(data_dir)
    assert status == 1
    assert "uncovered" in kinds(report)

    started = start_bot(data_dir)
    assert started.returncode == 0, started.stderr

    status, report = verify(data_dir)
    assert status == 0, report
    assert report["sealed_writers"] == 1
    (seal,) = sql(
        db,
        "SELECT details FROM audit_records WHERE action = 'audit.writer_sealed' AND writer_id = ?",
        writer,
    )
    assert json.loads(str(seal[0]))["reason"].startswith("abandoned writer")

    # Sealed, the tail is covered: removing its last records is detected.
    sql(
        db,
        "DELETE FROM audit_records WHERE writer_id = ? AND sequence > "
        "(SELECT max(sequence) - 5 FROM audit_records WHERE writer_id = ?)",
        writer,
        writer,
    )
    status, report = verify(data_dir)
    assert status == 1
    assert "truncated" in kinds(report)


def test_deleting_every_digest_and_the_last_records_is_reported(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    db = data_dir / "timmybot.db"
    kill_while_appending(data_dir)
    assert start_bot(data_dir).returncode == 0
    writer = dead_writer(db)
    sql(db, "DELETE FROM audit_digests")
    sql(
        db,
        "DELETE FROM audit_records WHERE writer_id = ? AND sequence > "
        "(SELECT max(sequence) - 10 FROM audit_records WHERE writer_id = ?)",
        writer,
        writer,
    )
    time.sleep(GRACE + 1)
    status, report = verify(data_dir)
    assert status == 1
    assert "uncovered" in kinds(report)
