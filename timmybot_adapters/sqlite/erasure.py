"""ErasureJournal in the shared SQLite database.

Table ``erasure_journal``: one row per pending request (its ID, the user's
ID, who asked, when, and each store's outcome as JSON). A finished request's
row is deleted, the user's ID with it. Each call is one transaction, so an
outcome recorded before a crash is there after it.
"""

from __future__ import annotations

import sqlite3

from timmybot_adapters.sqlite.database import datetime_to_micros, micros_to_datetime
from timmybot_adapters.sqlite.store import SqliteStore
from timmybot_core.ports.erasure import ErasureEntry, ErasureStep, decode_steps, encode_steps

__all__ = ["SqliteErasureJournal"]


class SqliteErasureJournal(SqliteStore):
    """Pending erasure requests, in the database every process shares."""

    COMPONENT = "erasure_journal"
    LABEL = "erasure journal"
    # An erasure the user was told of must not come back after a power cut:
    # a durable journal write also makes the deletions committed before it
    # durable (they are earlier in the same write-ahead log).
    DURABLE = True
    MIGRATIONS = (
        """
        CREATE TABLE erasure_journal (
            request_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            requester TEXT NOT NULL,
            requested_at INTEGER NOT NULL,
            steps TEXT NOT NULL
        );
        CREATE INDEX erasure_journal_by_time ON erasure_journal (requested_at, request_id);
        """,
    )

    async def begin(self, entry: ErasureEntry) -> None:
        """Record a new request; a known ``request_id`` is kept as is."""
        row = (
            entry.request_id,
            str(entry.user_id),
            entry.requester,
            datetime_to_micros(entry.requested_at),
            encode_steps(entry.steps),
        )

        def insert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO erasure_journal VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (request_id) DO NOTHING",
                row,
            )

        await self._write("begin", insert)

    async def record_step(self, request_id: str, store: str, step: ErasureStep) -> bool:
        """Record one store's outcome; ``False`` if the request is not pending."""

        def update(connection: sqlite3.Connection) -> bool:
            found = connection.execute(
                "SELECT steps FROM erasure_journal WHERE request_id = ?", (request_id,)
            ).fetchone()
            if found is None:
                return False
            steps = {**decode_steps(str(found[0])), store: step}
            connection.execute(
                "UPDATE erasure_journal SET steps = ? WHERE request_id = ?",
                (encode_steps(steps), request_id),
            )
            return True

        return await self._write("record step", update)

    async def finish(self, request_id: str) -> bool:
        """Remove the request; ``True`` if it was pending."""

        def delete(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "DELETE FROM erasure_journal WHERE request_id = ?", (request_id,)
            )
            return cursor.rowcount > 0

        return await self._write("finish", delete)

    async def pending(self, *, limit: int = 100) -> list[ErasureEntry]:
        """Return up to ``limit`` pending requests, oldest first."""

        def select(connection: sqlite3.Connection) -> list[ErasureEntry]:
            rows = connection.execute(
                "SELECT request_id, user_id, requester, requested_at, steps FROM erasure_journal"
                " ORDER BY requested_at, request_id LIMIT ?",
                (max(limit, 0),),
            ).fetchall()
            return [
                ErasureEntry(
                    request_id=str(row[0]),
                    user_id=int(row[1]),
                    requester=str(row[2]),
                    requested_at=micros_to_datetime(int(row[3])),
                    steps=decode_steps(str(row[4])),
                )
                for row in rows
            ]

        return await self._read("pending", select)
