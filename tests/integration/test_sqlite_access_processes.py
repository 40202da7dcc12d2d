"""SQLite specifics: file permissions, WAL, migrations, failures, and several processes.

The port's behaviour is specified by the contract suites; this module covers
what only the SQLite backend promises.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration import processes
from timmybot_adapters.sqlite import (
    SchemaVersionError,
    SqliteAccessPolicyStore,
    SqliteDatabase,
    SqliteIncidentStore,
)
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.ports.access import Ban, Switch, SwitchState
from timmybot_core.ports.alerts import Severity
from timmybot_core.ports.incidents import IncidentRecord, RetentionHold

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
GUILD = 2**64 - 1
# Distinctive values that must never appear in an error message.
SECRET_GUILD = 18_446_744_073_709_551_557
SECRET_REASON = "reason-that-must-not-leak-7f3c"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "timmybot.db"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    # A umask of 0 would give group and others access to anything created
    # with default modes; the database must be private regardless.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


# Files and pragmas


@pytest.mark.usefixtures("permissive_umask")
async def test_the_file_is_0600_and_its_new_directory_0700(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "timmybot.db"
    async with SqliteDatabase(path) as db:
        store = await SqliteAccessPolicyStore.open(db)
        await store.allow_guild(GUILD, at=T0)
        assert mode(path.parent) == 0o700
        assert mode(path) == 0o600
        # sqlite gives its side files the database file's permissions.
        for side in ("-wal", "-shm"):
            side_path = path.with_name(path.name + side)
            assert side_path.exists()
            assert mode(side_path) & 0o077 == 0


async def test_an_existing_directory_keeps_its_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    async with SqliteDatabase(directory / "timmybot.db") as db:
        await SqliteAccessPolicyStore.open(db)
    assert mode(directory) == 0o755
    assert mode(directory / "timmybot.db") == 0o600


async def test_the_database_runs_in_wal_mode_with_its_pragmas(db_path: Path) -> None:
    async with SqliteDatabase(db_path) as db:
        await SqliteAccessPolicyStore.open(db)

        def pragmas(connection: sqlite3.Connection) -> tuple[str, int, int]:
            journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
            foreign_keys = connection.execute("PRAGMA foreign_keys").fetchone()[0]
            synchronous = connection.execute("PRAGMA synchronous").fetchone()[0]
            return journal, foreign_keys, synchronous

        assert await db.read(pragmas) == ("wal", 1, 1)
    # WAL is a property of the file: another connection sees it too.
    with sqlite3.connect(db_path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


async def test_reopening_the_file_keeps_the_data(db_path: Path) -> None:
    switch = SwitchState(
        switch=Switch.KILL_SWITCH, on=True, reason="r", actor="a", changed_at=T0, expires_at=T0
    )
    placed = Ban(guild_id=GUILD, until=T0 + HOUR, reason="flood", placed_at=T0)
    record = IncidentRecord(
        incident_id="INC-1",
        severity=Severity.P0,
        title="t",
        description="d",
        source="s",
        declared_at=T0,
        declared_by=None,
        steps=({"at": T0, "severity": Severity.P2},),
        snapshot={"k": (1, 2)},
    )
    held = RetentionHold(hold_id="H", incident_id="INC-1", start=T0, end=None, placed_at=T0)
    async with SqliteDatabase(db_path) as db:
        access = await SqliteAccessPolicyStore.open(db)
        incidents = await SqliteIncidentStore.open(db)
        await access.allow_guild(GUILD, at=T0)
        await access.record_attempt(GUILD, at=T0, window=HOUR)
        await access.place_ban(placed, now=T0)
        await access.set_switch(switch)
        await incidents.save(record)
        await incidents.add_hold(held)

    async with SqliteDatabase(db_path) as db:
        access = await SqliteAccessPolicyStore.open(db)
        incidents = await SqliteIncidentStore.open(db)
        assert await access.list_allowed_guilds() == [GUILD]
        assert await access.count_attempts(GUILD, now=T0, window=HOUR) == 1
        assert await access.get_ban(GUILD, now=T0) == placed
        assert await access.get_switch(Switch.KILL_SWITCH) == switch
        assert await incidents.get("INC-1") == record
        assert await incidents.list_holds() == [held]


async def test_datetimes_come_back_in_utc(db_path: Path) -> None:
    async with SqliteDatabase(db_path) as db:
        access = await SqliteAccessPolicyStore.open(db)
        await access.place_ban(Ban(guild_id=1, until=T0 + HOUR, reason="r", placed_at=T0), now=T0)
        got = await access.get_ban(1, now=T0)
        assert got is not None
        assert got.until.tzinfo is UTC
        assert got.placed_at.tzinfo is UTC


async def test_naive_datetimes_are_refused(db_path: Path) -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    async with SqliteDatabase(db_path) as db:
        access = await SqliteAccessPolicyStore.open(db)
        with pytest.raises(ValueError, match="timezone-aware"):
            await access.record_attempt(1, at=naive, window=HOUR)
        assert await access.count_attempts(1, now=T0, window=timedelta(days=9999)) == 0


async def test_a_window_beyond_sqlites_integer_range_counts_everything(db_path: Path) -> None:
    async with SqliteDatabase(db_path) as db:
        access = await SqliteAccessPolicyStore.open(db)
        await access.record_attempt(1, at=datetime(1, 1, 1, tzinfo=UTC), window=HOUR)
        await access.record_attempt(1, at=T0, window=HOUR)
        assert await access.count_attempts(1, now=T0, window=timedelta.max) == 2


# Migrations


@pytest.fixture
def empty_file(db_path: Path) -> Path:
    db_path.parent.mkdir()
    db_path.touch(mode=0o600)
    return db_path


@pytest.fixture
def corrupt_file(db_path: Path) -> Path:
    db_path.parent.mkdir()
    db_path.write_bytes(f"garbage {SECRET_REASON} ".encode() * 400)
    return db_path


async def test_migration_from_an_empty_database(empty_file: Path) -> None:
    db_path = empty_file
    async with SqliteDatabase(db_path) as db:
        assert await db.schema_version("access_policy") == 0
        await SqliteAccessPolicyStore.open(db)
        await SqliteIncidentStore.open(db)
        assert await db.schema_version("access_policy") == len(SqliteAccessPolicyStore.MIGRATIONS)
        assert await db.schema_version("incidents") == 1

        def tables(connection: sqlite3.Connection) -> set[str]:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {row[0] for row in rows}

        assert {
            "schema_migrations",
            "access_allowlist",
            "access_attempts",
            "access_bans",
            "access_switches",
            "access_leases",
            "access_job_runs",
            "incidents",
            "incident_holds",
        } <= await db.read(tables)
        # Opening again is a no-op, not a second CREATE TABLE.
        await SqliteAccessPolicyStore.open(db)
        assert await db.schema_version("access_policy") == len(SqliteAccessPolicyStore.MIGRATIONS)


async def test_migrate_applies_only_the_missing_steps(db_path: Path) -> None:
    first = "CREATE TABLE t (a INTEGER); INSERT INTO t (a) VALUES (1)"
    second = "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x;y'; INSERT INTO t (a) VALUES (2);"
    async with SqliteDatabase(db_path) as db:
        assert await db.migrate("test", [first]) == 1
        assert await db.migrate("test", [first, second]) == 2
        assert await db.migrate("test", [first, second]) == 2
        rows = await db.read(lambda c: c.execute("SELECT a, b FROM t ORDER BY a").fetchall())
        assert rows == [(1, "x;y"), (2, "x;y")]


async def test_a_failed_migration_changes_nothing(db_path: Path) -> None:
    async with SqliteDatabase(db_path) as db:
        with pytest.raises(StoreUnavailable, match="migrate test"):
            await db.migrate("test", ["CREATE TABLE t (a INTEGER)", "NOT SQL AT ALL"])
        assert await db.schema_version("test") == 0
        exists = await db.read(
            lambda c: c.execute("SELECT 1 FROM sqlite_master WHERE name = 't'").fetchone()
        )
        assert exists is None


async def test_a_newer_schema_version_is_refused(db_path: Path) -> None:
    async with SqliteDatabase(db_path) as db:
        await SqliteAccessPolicyStore.open(db)
        await db.write(
            lambda c: c.execute(
                "UPDATE schema_migrations SET version = 99 WHERE component = 'access_policy'"
            )
        )
    async with SqliteDatabase(db_path) as db:
        with pytest.raises(SchemaVersionError) as caught:
            await SqliteAccessPolicyStore.open(db)
        assert isinstance(caught.value, StoreUnavailable)
        message = str(caught.value)
        assert "'access_policy'" in message
        assert "version 99" in message
        assert "upgrade" in message
        # Other components are judged on their own versions.
        await SqliteIncidentStore.open(db)


async def test_stores_built_without_open_migrate_on_their_first_call(db_path: Path) -> None:
    db = SqliteDatabase(db_path)
    access = SqliteAccessPolicyStore(db)
    incidents = SqliteIncidentStore(db)
    assert not await asyncio.to_thread(db_path.exists)  # building does no I/O
    try:
        assert await access.allow_guild(GUILD, at=T0) is True
        assert await incidents.list_holds() == []
        assert await db.schema_version("access_policy") == len(SqliteAccessPolicyStore.MIGRATIONS)
        assert await db.schema_version("incidents") == 1
    finally:
        await db.close()


async def test_a_store_built_without_open_refuses_a_newer_schema_on_every_call(
    db_path: Path,
) -> None:
    async with SqliteDatabase(db_path) as db:
        await db.migrate("access_policy", ["SELECT 1"] * 5)
    async with SqliteDatabase(db_path) as db:
        store = SqliteAccessPolicyStore(db)
        for _ in range(2):
            with pytest.raises(SchemaVersionError, match="version 5"):
                await store.is_guild_allowed(GUILD)


# Failures


async def test_a_corrupt_file_raises_store_unavailable_without_its_contents(
    corrupt_file: Path,
) -> None:
    async with SqliteDatabase(corrupt_file) as db:
        with pytest.raises(StoreUnavailable) as caught:
            await SqliteAccessPolicyStore.open(db)
    message = str(caught.value)
    assert "DatabaseError" in message
    assert "SQLITE_NOTADB" in message
    assert SECRET_REASON not in message
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


async def test_a_locked_database_raises_store_unavailable_without_row_data(
    db_path: Path,
) -> None:
    async with SqliteDatabase(db_path, busy_timeout=0.05) as db:
        store = await SqliteAccessPolicyStore.open(db)
        holder = sqlite3.connect(db_path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable) as attempt:
                await store.record_attempt(SECRET_GUILD, at=T0, window=HOUR)
            secret_ban = Ban(guild_id=SECRET_GUILD, until=T0, reason=SECRET_REASON, placed_at=T0)
            with pytest.raises(StoreUnavailable) as placing:
                await store.place_ban(secret_ban, now=T0)
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        for caught, operation in ((attempt, "record_attempt"), (placing, "place_ban")):
            message = str(caught.value)
            assert f"access policy store: {operation}" in message
            assert "OperationalError" in message
            assert "SQLITE_BUSY" in message
            assert str(SECRET_GUILD) not in message
            assert SECRET_REASON not in message
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        # Once the lock is gone the store works again, and nothing was half-written.
        assert await store.record_attempt(SECRET_GUILD, at=T0, window=HOUR) == 1


async def test_waiting_for_a_lock_does_not_block_the_event_loop(db_path: Path) -> None:
    async with SqliteDatabase(db_path, busy_timeout=0.5) as db:
        store = await SqliteAccessPolicyStore.open(db)
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        try:
            with pytest.raises(StoreUnavailable):
                await store.record_attempt(1, at=T0, window=HOUR)
        finally:
            ticker.cancel()
            holder.execute("ROLLBACK")
            holder.close()
        assert ticks >= 10


async def test_a_closed_database_refuses_calls(db_path: Path) -> None:
    db = SqliteDatabase(db_path)
    store = await SqliteAccessPolicyStore.open(db)
    await db.close()
    await db.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.is_guild_allowed(1)


async def test_an_error_inside_a_write_rolls_it_back(db_path: Path) -> None:
    async with SqliteDatabase(db_path) as db:
        await db.migrate("test", ["CREATE TABLE t (a INTEGER)"])

        def insert_then_fail(connection: sqlite3.Connection) -> None:
            connection.execute("INSERT INTO t (a) VALUES (1)")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await db.write(insert_then_fail)
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0


async def test_incident_data_that_would_not_round_trip_is_refused(db_path: Path) -> None:
    async with SqliteDatabase(db_path) as db:
        store = await SqliteIncidentStore.open(db)
        for snapshot in ({"set": {1, 2}}, {"object": object()}, {"nested": {1: "int key"}}):
            record = IncidentRecord(
                incident_id="INC-1",
                severity=Severity.P3,
                title="t",
                description="d",
                source="s",
                declared_at=T0,
                declared_by=None,
                snapshot=snapshot,
            )
            with pytest.raises(TypeError) as caught:
                await store.save(record)
            assert "int key" not in str(caught.value)
        assert await store.get("INC-1") is None


# Several processes

WORKER = """
import asyncio, json, sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from timmybot_adapters.sqlite import SqliteAccessPolicyStore, SqliteDatabase
from timmybot_core.ports.access import Ban

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def main(db_path, barrier, index, action, repeat, guild):
    async with SqliteDatabase(Path(db_path)) as db:
        store = await SqliteAccessPolicyStore.open(db)
        (barrier / f"ready-{index}").touch()
        deadline = time.monotonic() + 30
        while not (barrier / "go").exists():
            if time.monotonic() > deadline:
                raise SystemExit("no start signal")
            time.sleep(0.001)
        results = []
        for attempt in range(repeat):
            if action == "attempts":
                results.append(
                    await store.record_attempt(guild, at=T0, window=timedelta(hours=1))
                )
            else:
                ban = Ban(
                    guild_id=guild,
                    until=T0 + timedelta(hours=1),
                    reason=f"process {index} try {attempt}",
                    placed_at=T0,
                )
                results.append(await store.place_ban(ban, now=T0))
    print(json.dumps(results))


barrier, index, db_path, action, repeat, guild = sys.argv[1:]
asyncio.run(main(db_path, Path(barrier), int(index), action, int(repeat), int(guild)))
"""

PROCESSES = 4


def run_together(db_path: Path, barrier: Path, action: str, repeat: int) -> list[list[Any]]:
    """Start the workers, release them at once, and return each one's results."""
    outputs = processes.run_together(
        WORKER, barrier, [str(db_path), action, str(repeat), str(GUILD)], processes=PROCESSES
    )
    return [json.loads(out) for out, _ in outputs]


async def test_processes_counting_attempts_never_lose_or_share_a_count(
    db_path: Path, tmp_path: Path
) -> None:
    async with SqliteDatabase(db_path) as db:
        store = await SqliteAccessPolicyStore.open(db)
        # The workers block this thread while they run; the event loop has
        # nothing else to do meanwhile.
        results = run_together(db_path, tmp_path / "barrier", "attempts", 250)
        assert [len(counts) for counts in results] == [250] * PROCESSES
        every_count = sorted(count for counts in results for count in counts)
        assert every_count == list(range(1, PROCESSES * 250 + 1))
        for counts in results:
            # Within one process the counts only grow.
            assert counts == sorted(counts)
        # The processes really ran at once: some process saw counts from a
        # span wider than its own 250 attempts. Without that overlap the
        # test would prove nothing about atomicity.
        assert any(max(counts) - min(counts) + 1 > 250 for counts in results)
        assert await store.count_attempts(GUILD, now=T0, window=timedelta(days=365)) == 1000


async def test_processes_racing_to_ban_place_exactly_one(db_path: Path, tmp_path: Path) -> None:
    async with SqliteDatabase(db_path) as db:
        store = await SqliteAccessPolicyStore.open(db)
        results = run_together(db_path, tmp_path / "barrier", "ban", 50)
        flat = [placed for placed_by_one in results for placed in placed_by_one]
        assert len(flat) == PROCESSES * 50
        assert flat.count(True) == 1
        winner = next(i for i, placed_by_one in enumerate(results) if True in placed_by_one)
        ban = await store.get_ban(GUILD, now=T0)
        assert ban is not None
        assert ban.reason == f"process {winner} try {results[winner].index(True)}"
