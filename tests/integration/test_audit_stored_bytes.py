"""The audit stores keep the bytes each record was hashed over, and read records from them.

Verification then hashes stored bytes instead of re-encoding (``bench/audit.py``
measures it against SHA-256 itself). What must hold for that to be safe:
what a reader sees is what was hashed, a change to the bytes or to any
indexed column is still reported, and rows written before the bytes were
kept still verify.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import any_char
from timmybot_adapters.memory import MemoryAuditLog
from timmybot_adapters.signing import Ed25519KeyRing, Ed25519Signer
from timmybot_adapters.sqlite import SqliteAuditLog, SqliteDatabase
from timmybot_core import (
    AuditSettings,
    AuditTrailService,
    FakeClock,
    ProblemKind,
    Pseudonymizer,
    ResponseSanitizer,
)
from timmybot_core.domain.audit_chain import (
    canonical_bytes,
    record_bytes,
    record_from_bytes,
    record_hash,
    sealed,
)
from timmybot_core.ports.audit import GENESIS_HASH, AuditKind, AuditLog, AuditRecord

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SIGNER = Ed25519Signer.generate()
RING = Ed25519KeyRing()
RING.add(SIGNER.public_key)


def trail(log: AuditLog, writer: str = "w-bytes") -> AuditTrailService:
    return AuditTrailService(
        log=log,
        pseudonymizer=Pseudonymizer(key=b"stored-bytes-test-pseudonym-key!", key_id="t1"),
        sanitizer=ResponseSanitizer(),
        signer=SIGNER,
        verifier=RING,
        clock=FakeClock(START),
        settings=AuditSettings(digest_interval=timedelta(days=1)),
        writer_id=writer,
    )


text = st.text(any_char, max_size=20)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)


@given(
    action=text,
    actor=st.none() | text,
    details=st.dictionaries(text, json_values, max_size=4),
    micros=st.integers(0, 10**6 - 1),
)
def test_a_record_rebuilt_from_its_bytes_is_the_record_that_was_hashed(
    action: str, actor: str | None, details: dict[str, object], micros: int
) -> None:
    draft = AuditRecord(
        event_id="e-1",
        writer_id="w-1",
        sequence=7,
        timestamp=START + timedelta(microseconds=micros),
        kind=AuditKind.SECURITY,
        action=action,
        actor=actor,
        details=details,
        prev_hash=GENESIS_HASH,
        hash="",
    )
    record = sealed(draft)
    body = record_bytes(record)
    assert record_hash(attrs.evolve(draft)) == record.hash  # re-encoded from scratch
    again = record_from_bytes(body, hash=record.hash)
    assert again == record
    assert record_hash(again) == record.hash
    # A record changed with attrs.evolve never keeps the old bytes.
    changed = attrs.evolve(record, action=action + "x")
    assert record_hash(changed) != record.hash


async def _write(log: AuditLog, count: int = 5) -> str:
    service = trail(log)
    for n in range(count):
        await service.record_admin_action(111, f"act.{n}", "switch", {"n": n, "t": "Ünï 🎵"})
    await service.close()
    return service.writer_id


async def test_the_memory_store_keeps_the_sealed_bytes() -> None:
    log = MemoryAuditLog()
    writer = await _write(log)
    for record in await log.chain(writer):
        assert record._body is not None
        assert record_hash(record) == record.hash
    assert (await trail(log).verify()).ok


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


async def test_sqlite_reads_records_from_their_bytes_and_verifies_clean(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    async with SqliteDatabase(path) as db:
        log = await SqliteAuditLog.open(db)
        writer = await _write(log)
    connection = _connect(path)
    rows = connection.execute(
        "SELECT body, hash, details FROM audit_records ORDER BY sequence"
    ).fetchall()
    connection.close()
    assert all(body is not None for body, _, _ in rows)
    assert all(details.startswith('{"n":') for _, _, details in rows)  # for column readers
    async with SqliteDatabase(path) as db:
        log = await SqliteAuditLog.open(db)
        chain = await log.chain(writer)
        assert [r.details["n"] for r in chain] == [0, 1, 2, 3, 4]
        assert [record_bytes(r) for r in chain] == [bytes(body) for body, _, _ in rows]
        assert (await trail(log).verify()).ok


async def _tampered(tmp_path: Path, statement: str) -> set[tuple[ProblemKind, int | None]]:
    path = tmp_path / "audit.db"
    async with SqliteDatabase(path) as db:
        writer = await _write(await SqliteAuditLog.open(db))
    connection = _connect(path)
    with connection:
        connection.execute(statement, (writer,))
    connection.close()
    async with SqliteDatabase(path) as db:
        report = await trail(await SqliteAuditLog.open(db)).verify()
    return {(p.kind, p.sequence) for p in report.problems}


async def test_a_changed_body_is_reported(tmp_path: Path) -> None:
    # The details live in the body only; a changed indexed field in the body
    # disagrees with its column, which is then read (and still hashes right).
    found = await _tampered(
        tmp_path,
        "UPDATE audit_records SET body = CAST(replace(CAST(body AS TEXT), '\"n\":2', "
        "'\"n\":9') AS BLOB) WHERE writer_id = ? AND sequence = 3",
    )
    assert (ProblemKind.MODIFIED, 3) in found


async def test_a_changed_index_column_under_an_intact_body_is_reported(tmp_path: Path) -> None:
    # The body still hashes right, but a query by action would now miss the record.
    found = await _tampered(
        tmp_path,
        "UPDATE audit_records SET action = 'act.hidden' WHERE writer_id = ? AND sequence = 2",
    )
    assert (ProblemKind.MODIFIED, 2) in found


async def test_a_removed_body_falls_back_to_the_columns_which_still_verify(
    tmp_path: Path,
) -> None:
    # Rows written before the bytes were kept have no body and their details as JSON text.
    path = tmp_path / "audit.db"
    async with SqliteDatabase(path) as db:
        log = await SqliteAuditLog.open(db)
        writer = await _write(log)
        chain = await log.chain(writer)
    connection = _connect(path)
    with connection:
        for record in chain:
            connection.execute(
                "UPDATE audit_records SET body = NULL, details = ? "
                "WHERE writer_id = ? AND sequence = ?",
                (
                    canonical_bytes(dict(record.details)).decode(),
                    writer,
                    record.sequence,
                ),
            )
    connection.close()
    async with SqliteDatabase(path) as db:
        log = await SqliteAuditLog.open(db)
        old = await log.chain(writer)
        assert old == chain
        assert all(r._body is None for r in old)
        assert (await trail(log).verify()).ok
