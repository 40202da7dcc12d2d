"""The AuditLog contract: every adapter of the port passes this suite.

A new adapter joins by adding one entry to ``ADAPTERS``: an async context
manager that yields a fresh, empty log.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from timmybot_adapters.memory import MemoryAuditLog
from timmybot_adapters.sqlite import SqliteAuditLog, SqliteDatabase
from timmybot_core.domain.audit_chain import record_hash
from timmybot_core.domain.errors import AuditConflict
from timmybot_core.ports.audit import (
    GENESIS_HASH,
    AuditKind,
    AuditLog,
    AuditRecord,
    ChainHead,
    SignedDigest,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[AuditLog]:
    yield MemoryAuditLog()


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[AuditLog]:
    async with SqliteDatabase(tmp_path / "var" / "timmybot.db") as db:
        yield await SqliteAuditLog.open(db)


@asynccontextmanager
async def _aws(tmp_path: Path) -> AsyncIterator[AuditLog]:
    from tests import aws_servers
    from timmybot_adapters.aws import DynamoAuditLog

    async with aws_servers.fresh_tables(roles=["audit"]) as tables:
        yield DynamoAuditLog(aws_servers.shared_clients(), tables.audit)


ADAPTERS: dict[str, Callable[[Path], AbstractAsyncContextManager[AuditLog]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "aws": _aws,
}


@pytest.fixture(params=list(ADAPTERS))
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditLog]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


def make(
    sequence: int,
    *,
    writer: str = "w-1",
    at: datetime | None = None,
    kind: AuditKind = AuditKind.ADMIN,
    action: str = "guild.allow",
    actor: str | None = "p1:admin",
    subject: str | None = None,
    details: dict[str, Any] | None = None,
    prev_hash: str = GENESIS_HASH,
) -> AuditRecord:
    draft = AuditRecord(
        event_id=f"{writer}-{sequence}-event",
        writer_id=writer,
        sequence=sequence,
        timestamp=at if at is not None else T0 + sequence * SECOND,
        kind=kind,
        action=action,
        actor=actor,
        subject=subject,
        resource="guild:p1:g",
        details=details or {"n": sequence},
        source="test",
        prev_hash=prev_hash,
        hash="",
    )
    return attrs.evolve(draft, hash=record_hash(draft))


def digest(sequence: int, *, writer: str = "w-1", head: int = 1) -> SignedDigest:
    return SignedDigest(
        writer_id=writer,
        digest_sequence=sequence,
        created_at=T0 + sequence * SECOND,
        head=ChainHead(writer_id=writer, sequence=head, hash="ab" * 32),
        covers_from=1,
        prev_digest_hash=GENESIS_HASH,
        key_id="a1234abcd",
        hash="cd" * 32,
        signature=bytes(range(64)),
    )


async def query_all(log: AuditLog, **filters: Any) -> list[AuditRecord]:
    page = await log.query(start=EVER[0], end=EVER[1], limit=500, **filters)
    return list(page.records)


def test_the_log_implements_the_port(log: AuditLog) -> None:
    assert isinstance(log, AuditLog)


async def test_a_record_reads_back_exactly_and_still_hashes_the_same(log: AuditLog) -> None:
    details = {
        "text": "Ünïcödé 🎵 \u202e and \\ quotes \"'",
        "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
        "float": 0.1,
        "big": 2**62,
    }
    record = make(1, details=details, at=T0 + timedelta(microseconds=123457))
    await log.append(record)

    [stored] = await log.chain("w-1")

    assert stored == record
    assert record_hash(stored) == record.hash
    assert stored.timestamp == T0 + timedelta(microseconds=123457)
    assert stored.timestamp.tzinfo is not None


async def test_a_position_is_never_written_twice(log: AuditLog) -> None:
    await log.append(make(1))

    with pytest.raises(AuditConflict):
        await log.append(attrs.evolve(make(1), event_id="another-event"))
    with pytest.raises(AuditConflict):
        await log.append(attrs.evolve(make(2), event_id=make(1).event_id))
    assert [r.sequence for r in await log.chain("w-1")] == [1]


async def test_a_chain_reads_in_sequence_order_from_any_point(log: AuditLog) -> None:
    for sequence in (3, 1, 2, 5, 4):
        await log.append(make(sequence))
    await log.append(make(1, writer="w-2"))

    assert [r.sequence for r in await log.chain("w-1")] == [1, 2, 3, 4, 5]
    assert [r.sequence for r in await log.chain("w-1", after=2)] == [3, 4, 5]
    assert [r.sequence for r in await log.chain("w-1", after=1, limit=2)] == [2, 3]
    assert await log.chain("nobody") == []


async def test_writers_are_those_with_records_or_digests(log: AuditLog) -> None:
    await log.append(make(1, writer="w-b"))
    await log.put_digest(digest(1, writer="w-a"))

    assert await log.writers() == ["w-a", "w-b"]


async def test_a_query_returns_the_half_open_range_newest_first(log: AuditLog) -> None:
    for sequence in range(1, 6):
        await log.append(make(sequence))

    page = await log.query(start=T0 + 2 * SECOND, end=T0 + 4 * SECOND)

    assert [r.sequence for r in page.records] == [3, 2]
    assert page.next_cursor is None


async def test_records_at_the_same_instant_order_by_writer_then_sequence(log: AuditLog) -> None:
    await log.append(make(1, writer="w-a", at=T0))
    await log.append(make(2, writer="w-a", at=T0))
    await log.append(make(1, writer="w-b", at=T0))

    found = await query_all(log)

    assert [(r.writer_id, r.sequence) for r in found] == [("w-b", 1), ("w-a", 2), ("w-a", 1)]


async def test_each_filter_narrows_the_query(log: AuditLog) -> None:
    await log.append(make(1, actor="p1:alice", action="guild.allow"))
    await log.append(make(2, actor="p1:bob", action="guild.allow"))
    await log.append(make(3, actor="p1:alice", action="killswitch.on"))
    await log.append(
        make(4, kind=AuditKind.SECURITY, actor=None, action="BAN_PLACED", subject="p1:u")
    )

    assert [r.sequence for r in await query_all(log, actor="p1:alice")] == [3, 1]
    assert [r.sequence for r in await query_all(log, action="guild.allow")] == [2, 1]
    assert [r.sequence for r in await query_all(log, kind=AuditKind.SECURITY)] == [4]
    assert [r.sequence for r in await query_all(log, subject="p1:u")] == [4]
    both = await query_all(log, actor="p1:alice", action="guild.allow")
    assert [r.sequence for r in both] == [1]
    assert await query_all(log, actor="p1:nobody") == []


async def test_pages_cover_every_record_once(log: AuditLog) -> None:
    for sequence in range(1, 24):
        # Pairs share an instant, so the cursor must break ties.
        await log.append(make(sequence, at=T0 + (sequence // 2) * SECOND))
    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = await log.query(start=EVER[0], end=EVER[1], limit=5, cursor=cursor)
        assert len(page.records) <= 5
        seen += [r.sequence for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert sorted(seen) == list(range(1, 24))
    assert len(seen) == len(set(seen))


async def test_a_filtered_query_pages_too(log: AuditLog) -> None:
    for sequence in range(1, 12):
        await log.append(make(sequence, actor="p1:a" if sequence % 2 else "p1:b"))
    first = await log.query(start=EVER[0], end=EVER[1], actor="p1:a", limit=4)
    assert first.next_cursor is not None
    second = await log.query(
        start=EVER[0], end=EVER[1], actor="p1:a", limit=4, cursor=first.next_cursor
    )

    assert [r.sequence for r in first.records + second.records] == [11, 9, 7, 5, 3, 1]
    assert second.next_cursor is None


@pytest.mark.parametrize("cursor", ["", "not-a-cursor", "W10", "eyJ4IjogMX0", "%%%"])
async def test_a_malformed_cursor_is_a_clear_error(log: AuditLog, cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await log.query(start=EVER[0], end=EVER[1], cursor=cursor)


def _forged(micros: int, writer_id: str, sequence: int) -> str:
    raw = json.dumps([micros, writer_id, sequence]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _forged(0, "w-1", 2**70),  # past SQLite's 64-bit integers
        _forged(0, "w-1", 0),  # no record has position 0
        _forged(0, "\ud800", 1),  # a lone surrogate no store can encode
    ],
)
async def test_a_forged_cursor_is_a_clear_error_too(log: AuditLog, cursor: str) -> None:
    # Well-formed JSON with values no page ever ends at: still "malformed",
    # never an OverflowError or an encoder's message from deep in a store.
    with pytest.raises(ValueError, match="malformed audit page cursor"):
        await log.query(start=EVER[0], end=EVER[1], cursor=cursor)


async def test_digests_read_back_in_order_and_never_twice(log: AuditLog) -> None:
    await log.put_digest(digest(2, head=9))
    await log.put_digest(digest(1, head=4))
    await log.put_digest(digest(1, writer="w-2"))

    assert await log.digests("w-1") == [digest(1, head=4), digest(2, head=9)]
    with pytest.raises(AuditConflict):
        await log.put_digest(digest(2, head=12))
    assert await log.digests("nobody") == []


async def test_pruning_keeps_the_chain_and_drops_what_was_said(log: AuditLog) -> None:
    records = [make(n, subject="p1:user", details={"secretless": "text"}) for n in (1, 2, 3)]
    for record in records:
        await log.append(record)

    assert await log.prune(records[:2]) == 2
    assert await log.prune(records[:2]) == 0  # idempotent

    first, second, third = await log.chain("w-1")
    for pruned, original in ((first, records[0]), (second, records[1])):
        assert pruned.pruned
        keep = ("event_id", "writer_id", "sequence", "timestamp", "kind", "prev_hash", "hash")
        assert {f: getattr(pruned, f) for f in keep} == {f: getattr(original, f) for f in keep}
        assert (pruned.actor, pruned.subject, pruned.resource, pruned.source) == (
            None,
            None,
            "",
            "",
        )
        assert dict(pruned.details) == {}
        assert pruned.action == ""
    assert third == records[2]
    assert [r.sequence for r in await query_all(log)] == [3]
    assert [r.sequence for r in await query_all(log, subject="p1:user")] == [3]


async def test_old_records_are_walked_in_bounded_batches(log: AuditLog) -> None:
    for sequence in range(1, 8):
        await log.append(make(sequence, at=T0 + (sequence // 2) * SECOND))
    await log.prune([make(1, at=T0)])
    cutoff = T0 + 3 * SECOND  # records 2..5 are older (1 is pruned)

    first = await log.older_than(cutoff, limit=2)
    last = first[-1]
    rest = await log.older_than(cutoff, limit=10, after=(last.timestamp, last.writer_id, 3))

    assert [r.sequence for r in first] == [2, 3]
    assert [r.sequence for r in rest] == [4, 5]
