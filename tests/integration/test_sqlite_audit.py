"""The audit trail on SQLite: indexes, several writing processes, key files and rotation."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from timmybot_adapters.sqlite import SqliteAuditLog, SqliteDatabase
from timmybot_bot.runtime.audit_keys import KEYRING_FILE, SIGNING_KEY_FILE, audit_keys
from timmybot_bot.runtime.audit_keys import rotate_audit_signing_key as rotate
from timmybot_bot.runtime.bootstrap import Settings, bootstrap
from timmybot_bot.runtime.settings import ConfigurationError
from timmybot_core import AuditKind, ProblemKind

OWNER = 111_111_111_111_111_111
ROOT = Path(__file__).resolve().parents[2]
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def settings(data_dir: Path) -> Settings:
    return Settings(backend="sqlite", data_dir=data_dir, owner_ids={OWNER})


@pytest.mark.parametrize(
    ("where", "params"),
    [
        ("ts >= ? AND ts < ?", (0, 1)),
        ("actor = ? AND ts >= ? AND ts < ?", ("a", 0, 1)),
        ("action = ? AND ts >= ? AND ts < ?", ("a", 0, 1)),
        ("kind = ? AND ts >= ? AND ts < ?", ("admin", 0, 1)),
        ("subject = ? AND ts >= ? AND ts < ?", ("s", 0, 1)),
    ],
)
async def test_every_query_shape_is_served_by_an_index(
    tmp_path: Path, where: str, params: tuple[object, ...]
) -> None:
    async with SqliteDatabase(tmp_path / "a.db") as db:
        await SqliteAuditLog.open(db)
    connection = sqlite3.connect(tmp_path / "a.db")
    plan = connection.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM audit_records WHERE pruned = 0 AND {where} "  # noqa: S608
        "ORDER BY ts DESC, writer_id DESC, sequence DESC LIMIT 10",
        params,
    ).fetchall()
    connection.close()

    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX" in details or "USING COVERING INDEX" in details, details
    assert "SCAN audit_records" not in details.replace("USING INDEX", ""), details


WRITER = """
import asyncio, sys
from pathlib import Path
from timmybot_bot.runtime.bootstrap import Settings, bootstrap

async def main() -> None:
    services = bootstrap(Settings(backend="sqlite", data_dir=Path(sys.argv[1])))
    for n in range(int(sys.argv[2])):
        await services.audit.record_admin_action(0, f"worker.{n}", "test", source="cli")
    await services.aclose()

asyncio.run(main())
"""


async def test_several_processes_write_their_own_chains_and_all_verify(tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(tmp_path), "40", env=environment
        )
        for _ in range(3)
    ]
    assert [await worker.wait() for worker in workers] == [0, 0, 0]

    services = bootstrap(settings(tmp_path))
    report = await services.audit.verify()
    page = await services.audit.get_audit_history(*EVER, kind=AuditKind.ADMIN, limit=500)
    await services.aclose()

    assert report.ok, [str(p) for p in report.problems]
    assert report.writers == 3
    assert report.records_checked == 120
    assert report.uncovered == 0  # each process signed its head on shutdown
    assert len(page.records) == 120


async def test_a_tampered_row_is_found_by_a_later_process(tmp_path: Path) -> None:
    services = bootstrap(settings(tmp_path))
    for n in range(5):
        await services.audit.record_admin_action(OWNER, f"act.{n}", "x")
    writer = services.audit.writer_id
    await services.aclose()

    connection = sqlite3.connect(tmp_path / "timmybot.db")
    with connection:
        connection.execute(
            "UPDATE audit_records SET action = 'act.forged' WHERE writer_id = ? AND sequence = 3",
            (writer,),
        )
        connection.execute(
            "DELETE FROM audit_records WHERE writer_id = ? AND sequence = 5", (writer,)
        )
    connection.close()

    later = bootstrap(settings(tmp_path))
    report = await later.audit.verify()
    await later.aclose()

    found = {(p.kind, p.sequence) for p in report.problems}
    assert (ProblemKind.MODIFIED, 3) in found
    assert (ProblemKind.TRUNCATED, 5) in found


async def test_the_signing_key_is_private_and_the_ring_public(tmp_path: Path) -> None:
    signer, ring = audit_keys(settings(tmp_path))

    key_file = tmp_path / "keys" / SIGNING_KEY_FILE
    ring_file = tmp_path / "keys" / KEYRING_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert ring.knows(signer.key_id)
    assert signer.seed_hex() not in ring_file.read_text()
    assert signer.seed_hex() not in repr(signer)
    again, _ = audit_keys(settings(tmp_path))
    assert again.key_id == signer.key_id


async def test_rotation_keeps_every_old_digest_verifiable(tmp_path: Path) -> None:
    first = bootstrap(settings(tmp_path))
    await first.audit.record_admin_action(OWNER, "before", "x")
    await first.aclose()

    old_id, new_id = rotate(settings(tmp_path))

    second = bootstrap(settings(tmp_path))
    await second.audit.record_admin_action(OWNER, "after", "x")
    await second.aclose()
    third = bootstrap(settings(tmp_path))
    report = await third.audit.verify()
    await third.aclose()

    assert old_id != new_id
    assert report.ok, [str(p) for p in report.problems]
    assert report.digests_checked == 2
    key_ids = set()
    async with SqliteDatabase(tmp_path / "timmybot.db") as db:
        log = await SqliteAuditLog.open(db)
        for writer in await log.writers():
            key_ids |= {d.key_id for d in await log.digests(writer)}
    assert key_ids == {old_id, new_id}


async def test_a_damaged_key_ring_stops_start_up_with_a_clear_error(tmp_path: Path) -> None:
    audit_keys(settings(tmp_path))
    (tmp_path / "keys" / KEYRING_FILE).write_text("{not json")

    with pytest.raises(ConfigurationError, match=r"audit key ring .* damaged"):
        bootstrap(settings(tmp_path))


async def test_a_ring_entry_that_lies_about_its_key_is_refused(tmp_path: Path) -> None:
    signer, _ = audit_keys(settings(tmp_path))
    ring_file = tmp_path / "keys" / KEYRING_FILE
    text = ring_file.read_text().replace(signer.key_id, "a00000000")
    ring_file.write_text(text)

    with pytest.raises(ConfigurationError, match="damaged"):
        audit_keys(settings(tmp_path))


async def test_retention_in_sqlite_prunes_old_rows_for_real(tmp_path: Path) -> None:
    services = bootstrap(settings(tmp_path))
    record = await services.audit.record_admin_action(OWNER, "old", "guild:1", {"why": "x"})
    await services.audit.record_admin_action(OWNER, "new", "guild:2")
    pruned = await services.audit.prune_expired(
        now=record.timestamp + timedelta(days=366),
        holds=[],
        retention=timedelta(days=365, seconds=-1),
    )
    await services.aclose()

    connection = sqlite3.connect(tmp_path / "timmybot.db")
    rows = connection.execute(
        "SELECT action, actor, resource, details, pruned FROM audit_records ORDER BY sequence"
    ).fetchall()
    connection.close()
    assert pruned == 2  # both are older than the retention
    assert rows[0] == ("", None, "", "{}", 1)
