"""AuditLog in SQLite.

Records are keyed by ``(writer_id, sequence)``; indexes on the timestamp,
and on each filter column followed by the timestamp, serve every
``query`` without a table scan (``EXPLAIN QUERY PLAN`` is checked in the
tests). Each record's hashed bytes are stored whole in ``body`` (the
second migration), and a record is read back from them, so its fields are
exactly what was hashed and verification hashes ``body`` without
re-encoding; the other columns serve the indexes and filters. Rows written
before ``body`` existed (or pruned ones) are read from their columns, with
details as JSON text, which gives the same canonical encoding again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from timmybot_adapters.sqlite.database import datetime_to_micros, micros_to_datetime
from timmybot_adapters.sqlite.store import SqliteStore
from timmybot_core.domain.audit_chain import json_value, record_bytes, record_from_bytes
from timmybot_core.domain.errors import AuditConflict
from timmybot_core.ports.audit import (
    AuditCursor,
    AuditKind,
    AuditPage,
    AuditRecord,
    ChainHead,
    SignedDigest,
)

__all__ = ["SqliteAuditLog"]

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE audit_records (
        writer_id TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        event_id TEXT NOT NULL UNIQUE,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL,
        action TEXT NOT NULL,
        actor TEXT,
        subject TEXT,
        resource TEXT NOT NULL,
        details TEXT NOT NULL,
        source TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        pruned INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (writer_id, sequence)
    ) WITHOUT ROWID;
    CREATE INDEX audit_by_time ON audit_records (ts, writer_id, sequence);
    CREATE INDEX audit_by_actor ON audit_records (actor, ts, writer_id, sequence);
    CREATE INDEX audit_by_action ON audit_records (action, ts, writer_id, sequence);
    CREATE INDEX audit_by_kind ON audit_records (kind, ts, writer_id, sequence);
    CREATE INDEX audit_by_subject ON audit_records (subject, ts, writer_id, sequence);
    CREATE TABLE audit_digests (
        writer_id TEXT NOT NULL,
        digest_sequence INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        head_sequence INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        covers_from INTEGER NOT NULL,
        prev_digest_hash TEXT NOT NULL,
        key_id TEXT NOT NULL,
        hash TEXT NOT NULL,
        signature BLOB NOT NULL,
        PRIMARY KEY (writer_id, digest_sequence)
    ) WITHOUT ROWID;
    """,
    # The exact bytes each record's hash covers (NULL for older and pruned rows).
    "ALTER TABLE audit_records ADD COLUMN body BLOB;",
)

_COLUMNS = (
    "writer_id, sequence, event_id, ts, kind, action, actor, subject, resource, details, "
    "source, prev_hash, hash, pruned, body"
)
# Filters in the order their indexes are preferred (most selective first).
_FILTERS = ("subject", "actor", "action", "kind")


def _row(record: AuditRecord) -> tuple[Any, ...]:
    columns = _columns_of(record)
    # Kept beside the body for tools that read the columns (reads use the body).
    details = json.dumps(json_value(record.details), ensure_ascii=True, separators=(",", ":"))
    body = None if record.pruned else record_bytes(record)
    return (*columns[:9], details, *columns[9:], record.hash, int(record.pruned), body)


def _record(row: sqlite3.Row | tuple[Any, ...]) -> AuditRecord:
    body = row[14]
    details: Mapping[str, Any] | None = None
    if body is not None and not row[13]:
        try:
            record = record_from_bytes(bytes(body), hash=row[12])
        except ValueError:
            pass  # damaged bytes: the columns are read, and verify reports the damage
        else:
            if _columns_of(record) == tuple(row[:9]) + tuple(row[10:12]):
                return record
            # A column changed under its body: read the columns, which no
            # longer hash to the record's hash, so verify reports the change.
            details = record.details
    if details is None:
        details = json.loads(row[9])
    return AuditRecord(
        writer_id=row[0],
        sequence=row[1],
        event_id=row[2],
        timestamp=micros_to_datetime(row[3]),
        kind=AuditKind(row[4]),
        action=row[5],
        actor=row[6],
        subject=row[7],
        resource=row[8],
        details=details,
        source=row[10],
        prev_hash=row[11],
        hash=row[12],
        pruned=bool(row[13]),
    )


def _columns_of(record: AuditRecord) -> tuple[Any, ...]:
    """Return the indexed columns a record's body implies (every one but details)."""
    return (
        record.writer_id,
        record.sequence,
        record.event_id,
        datetime_to_micros(record.timestamp),
        record.kind.value,
        record.action,
        record.actor,
        record.subject,
        record.resource,
        record.source,
        record.prev_hash,
    )


def _digest(row: tuple[Any, ...]) -> SignedDigest:
    return SignedDigest(
        writer_id=row[0],
        digest_sequence=row[1],
        created_at=micros_to_datetime(row[2]),
        head=ChainHead(writer_id=row[0], sequence=row[3], hash=row[4]),
        covers_from=row[5],
        prev_digest_hash=row[6],
        key_id=row[7],
        hash=row[8],
        signature=bytes(row[9]),
    )


class SqliteAuditLog(SqliteStore):
    """Audit records and digests in the shared SQLite database."""

    COMPONENT = "audit"
    MIGRATIONS = MIGRATIONS
    LABEL = "audit log"

    async def append(self, record: AuditRecord, *, wait: bool = True) -> None:
        """Store ``record``; ``AuditConflict`` if its position or event ID is taken.

        Written at once, whatever ``wait`` says.
        """
        row = _row(record)

        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(
                    f"INSERT INTO audit_records ({_COLUMNS}) VALUES "  # noqa: S608 - constant
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            except sqlite3.IntegrityError as error:
                raise AuditConflict(
                    f"audit record {record.writer_id}#{record.sequence} "
                    "or its event ID already exists"
                ) from error

        await self._write("append", insert)

    async def flush(self) -> None:
        """Nothing to do: records are written at once."""

    async def query(
        self,
        *,
        start: datetime,
        end: datetime,
        actor: str | None = None,
        action: str | None = None,
        kind: AuditKind | None = None,
        subject: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """Return matching records in ``[start, end)``, newest first."""
        after = AuditCursor.decode(cursor) if cursor is not None else None
        values = {"subject": subject, "actor": actor, "action": action, "kind": kind}
        clauses = ["pruned = 0", "ts >= ?", "ts < ?"]
        params: list[Any] = [datetime_to_micros(start), datetime_to_micros(end)]
        for column in _FILTERS:
            value = values[column]
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value.value if isinstance(value, AuditKind) else value)
        if after is not None:
            clauses.append("(ts, writer_id, sequence) < (?, ?, ?)")
            params += [datetime_to_micros(after.timestamp), after.writer_id, after.sequence]
        size = max(limit, 0)
        params.append(size + 1)
        where = " AND ".join(clauses) + " ORDER BY ts DESC, writer_id DESC, sequence DESC LIMIT ?"
        return AuditPage.first(await self._records("query", where, params), size)

    async def chain(
        self, writer_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """Return the writer's records after ``after``, in sequence order."""
        return await self._records(
            "chain",
            "writer_id = ? AND sequence > ? ORDER BY sequence LIMIT ?",
            (writer_id, after, -1 if limit is None else limit),
        )

    async def writers(self) -> list[str]:
        """Return every writer with a record or digest."""

        def select(connection: sqlite3.Connection) -> list[str]:
            rows = connection.execute(
                "SELECT DISTINCT writer_id FROM audit_records "
                "UNION SELECT DISTINCT writer_id FROM audit_digests ORDER BY 1"
            ).fetchall()
            return [row[0] for row in rows]

        return await self._read("writers", select)

    async def put_digest(self, digest: SignedDigest) -> None:
        """Store a digest; ``AuditConflict`` if its position is taken."""
        row = (
            digest.writer_id,
            digest.digest_sequence,
            datetime_to_micros(digest.created_at),
            digest.head.sequence,
            digest.head.hash,
            digest.covers_from,
            digest.prev_digest_hash,
            digest.key_id,
            digest.hash,
            digest.signature,
        )

        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(
                    "INSERT INTO audit_digests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row
                )
            except sqlite3.IntegrityError as error:
                raise AuditConflict(
                    f"audit digest {digest.writer_id}#{digest.digest_sequence} already exists"
                ) from error

        await self._write("put digest", insert)

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        """Return the writer's digests in order."""

        def select(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(
                "SELECT writer_id, digest_sequence, created_at, head_sequence, head_hash, "
                "covers_from, prev_digest_hash, key_id, hash, signature FROM audit_digests "
                "WHERE writer_id = ? ORDER BY digest_sequence",
                (writer_id,),
            ).fetchall()

        return [_digest(row) for row in await self._read("digests", select)]

    async def prune(self, records: list[AuditRecord]) -> int:
        """Replace records by their pruned form; return how many changed."""
        keys = [(record.writer_id, record.sequence) for record in records]

        def update(connection: sqlite3.Connection) -> int:
            changed = 0
            for writer_id, sequence in keys:
                cursor = connection.execute(
                    "UPDATE audit_records SET action = '', actor = NULL, subject = NULL, "
                    "resource = '', details = '{}', source = '', pruned = 1, body = NULL "
                    "WHERE writer_id = ? AND sequence = ? AND pruned = 0",
                    (writer_id, sequence),
                )
                changed += cursor.rowcount
            return changed

        return await self._write("prune", update)

    async def older_than(
        self, cutoff: datetime, *, limit: int = 500, after: tuple[datetime, str, int] | None = None
    ) -> list[AuditRecord]:
        """Return unpruned records older than ``cutoff``, oldest first, after ``after``."""
        clauses = ["pruned = 0", "ts < ?"]
        params: list[Any] = [datetime_to_micros(cutoff)]
        if after is not None:
            clauses.append("(ts, writer_id, sequence) > (?, ?, ?)")
            params += [datetime_to_micros(after[0]), after[1], after[2]]
        params.append(limit)
        where = " AND ".join(clauses) + " ORDER BY ts, writer_id, sequence LIMIT ?"
        return await self._records("older than", where, params)

    async def _records(self, name: str, where: str, params: Sequence[Any]) -> list[AuditRecord]:
        sql = f"SELECT {_COLUMNS} FROM audit_records WHERE {where}"  # noqa: S608 - constant parts

        def select(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(sql, params).fetchall()

        return [_record(row) for row in await self._read(name, select)]
