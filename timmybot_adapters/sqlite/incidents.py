"""IncidentStore in SQLite.

Open it with ``store = await SqliteIncidentStore.open(db)`` (migrates at
once), or build it with ``SqliteIncidentStore(db)`` and let the first call
migrate.

An incident's ``steps`` and ``snapshot`` are stored as JSON that round-trips
exactly (:mod:`timmybot_core.domain.incident_data`, shared with the DynamoDB store).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from timmybot_adapters.sqlite.database import (
    datetime_to_micros,
    micros_to_datetime,
)
from timmybot_adapters.sqlite.store import SqliteStore
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.domain.incident_data import dumps_incident_data, loads_incident_data
from timmybot_core.ports.alerts import Severity
from timmybot_core.ports.incidents import IncidentRecord, RetentionHold

__all__ = ["SqliteIncidentStore"]

COMPONENT = "incidents"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE incidents (
        incident_id TEXT PRIMARY KEY,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        source TEXT NOT NULL,
        declared_at INTEGER NOT NULL,
        declared_by TEXT,
        steps TEXT NOT NULL,
        snapshot TEXT
    );
    CREATE INDEX incidents_by_declaration ON incidents (declared_at, incident_id);
    CREATE TABLE incident_holds (
        hold_id TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        start_at INTEGER NOT NULL,
        end_at INTEGER,
        placed_at INTEGER NOT NULL
    );
    """,
)

_SELECT_INCIDENTS = (
    "SELECT incident_id, severity, title, description, source, declared_at, declared_by,"
    " steps, snapshot FROM incidents"
)


def _incident(row: tuple[Any, ...]) -> IncidentRecord:
    incident_id, severity, title, description, source, declared_at, declared_by, steps, snapshot = (
        row
    )
    try:
        decoded_steps = loads_incident_data(steps)
        decoded_snapshot = None if snapshot is None else loads_incident_data(snapshot)
        if not isinstance(decoded_steps, list) or not all(
            isinstance(step, dict) for step in decoded_steps
        ):
            raise ValueError("steps are not a list of mappings")
        if decoded_snapshot is not None and not isinstance(decoded_snapshot, dict):
            raise ValueError("snapshot is not a mapping")
        return IncidentRecord(
            incident_id=incident_id,
            severity=Severity(severity),
            title=title,
            description=description,
            source=source,
            declared_at=micros_to_datetime(declared_at),
            declared_by=declared_by,
            steps=tuple(decoded_steps),
            snapshot=decoded_snapshot,
        )
    except (ValueError, KeyError, TypeError) as exc:
        # Never echo the stored text: it may hold whatever the incident captured.
        raise StoreUnavailable(
            f"incident store: a stored incident is unreadable ({type(exc).__name__})"
        ) from exc


def _hold(row: tuple[Any, ...]) -> RetentionHold:
    hold_id, incident_id, start_at, end_at, placed_at = row
    return RetentionHold(
        hold_id=hold_id,
        incident_id=incident_id,
        start=micros_to_datetime(start_at),
        end=None if end_at is None else micros_to_datetime(end_at),
        placed_at=micros_to_datetime(placed_at),
    )


class SqliteIncidentStore(SqliteStore):
    """Incidents and retention holds in a SQLite file shared by the shards.

    Datetimes must be timezone-aware where the port stores them as columns
    (``declared_at``, a hold's bounds); they come back in UTC.
    """

    COMPONENT = COMPONENT
    MIGRATIONS = MIGRATIONS
    LABEL = "incident store"

    async def save(self, record: IncidentRecord) -> None:
        """Insert or replace the record with ``record.incident_id``.

        Raises:
            TypeError: ``steps`` or ``snapshot`` hold a value that the JSON
                encoding cannot give back exactly.

        """
        values = (
            record.incident_id,
            Severity(record.severity).value,
            record.title,
            record.description,
            record.source,
            datetime_to_micros(record.declared_at),
            record.declared_by,
            dumps_incident_data(list(record.steps)),
            None if record.snapshot is None else dumps_incident_data(record.snapshot),
        )

        def upsert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT OR REPLACE INTO incidents (incident_id, severity, title, description,"
                " source, declared_at, declared_by, steps, snapshot)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )

        await self._write("save", upsert)

    async def get(self, incident_id: str) -> IncidentRecord | None:
        """Return the incident, or ``None``."""

        def select(connection: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = connection.execute(
                _SELECT_INCIDENTS + " WHERE incident_id = ?",
                (incident_id,),
            ).fetchone()
            return row

        row = await self._read("get", select)
        return None if row is None else _incident(row)

    async def list_recent(self, *, limit: int = 20) -> list[IncidentRecord]:
        """Return up to ``limit`` incidents, newest first."""
        count = max(limit, 0)

        def select(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = connection.execute(
                _SELECT_INCIDENTS + " ORDER BY declared_at DESC, incident_id DESC LIMIT ?",
                (count,),
            ).fetchall()
            return rows

        return [_incident(row) for row in await self._read("list_recent", select)]

    async def add_hold(self, hold: RetentionHold) -> None:
        """Store a retention hold (replacing one with the same ``hold_id``)."""
        values = (
            hold.hold_id,
            hold.incident_id,
            datetime_to_micros(hold.start),
            None if hold.end is None else datetime_to_micros(hold.end),
            datetime_to_micros(hold.placed_at),
        )

        def upsert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT OR REPLACE INTO incident_holds"
                " (hold_id, incident_id, start_at, end_at, placed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                values,
            )

        await self._write("add_hold", upsert)

    async def list_holds(self) -> list[RetentionHold]:
        """Return every hold not yet released, oldest first."""

        def select(connection: sqlite3.Connection) -> list[RetentionHold]:
            rows = connection.execute(
                "SELECT hold_id, incident_id, start_at, end_at, placed_at FROM incident_holds"
                " ORDER BY placed_at, hold_id"
            ).fetchall()
            return [_hold(row) for row in rows]

        return await self._read("list_holds", select)

    async def release_hold(self, hold_id: str) -> bool:
        """Release a hold; ``True`` if it existed."""

        def delete(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute("DELETE FROM incident_holds WHERE hold_id = ?", (hold_id,))
            return cursor.rowcount > 0

        return await self._write("release_hold", delete)
