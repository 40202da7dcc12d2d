"""AuditLog in memory."""

from __future__ import annotations

import bisect
from datetime import datetime

from timmybot_core.domain.audit_chain import record_bytes
from timmybot_core.domain.errors import AuditConflict
from timmybot_core.ports.audit import (
    AuditCursor,
    AuditKind,
    AuditPage,
    AuditRecord,
    SignedDigest,
    pruned_form,
    record_sort_key,
)

__all__ = ["MemoryAuditLog"]


class MemoryAuditLog:
    """The audit records and digests of one process.

    Like the other stores, it keeps each record's hashed bytes (encoded at
    append if the record came without them), so verifying costs hashing.
    """

    def __init__(self) -> None:
        self._records: dict[tuple[str, int], AuditRecord] = {}
        self._sequences: dict[str, list[int]] = {}  # each writer's, sorted
        self._event_ids: set[str] = set()
        self._digests: dict[str, dict[int, SignedDigest]] = {}

    async def append(self, record: AuditRecord, *, wait: bool = True) -> None:
        """Store ``record``; ``AuditConflict`` if its position or event ID is taken.

        Written at once, whatever ``wait`` says.
        """
        position = (record.writer_id, record.sequence)
        if position in self._records or record.event_id in self._event_ids:
            raise AuditConflict(
                f"audit record {record.writer_id}#{record.sequence} or its event ID already exists"
            )
        if not record.pruned:
            record_bytes(record)
        self._records[position] = record
        self._event_ids.add(record.event_id)
        bisect.insort(self._sequences.setdefault(record.writer_id, []), record.sequence)

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
        after = AuditCursor.decode(cursor).sort_key() if cursor is not None else None
        matching = sorted(
            (
                record
                for record in self._records.values()
                if not record.pruned
                and start <= record.timestamp < end
                and record.matches(actor=actor, action=action, kind=kind, subject=subject)
                and (after is None or record_sort_key(record) < after)
            ),
            key=record_sort_key,
            reverse=True,
        )
        return AuditPage.first(matching, limit)

    async def chain(
        self, writer_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """Return the writer's records after ``after``, in sequence order."""
        sequences = self._sequences.get(writer_id, [])
        found: list[AuditRecord] = []
        for n in sequences[bisect.bisect_right(sequences, after) :]:
            if limit is not None and len(found) >= limit:
                break
            record = self._records.get((writer_id, n))
            if record is not None:  # tests remove records behind the index, as an attacker
                found.append(record)
        return found

    async def writers(self) -> list[str]:
        """Return every writer with a record or digest."""
        return sorted({w for w, _ in self._records} | set(self._digests))

    async def put_digest(self, digest: SignedDigest) -> None:
        """Store a digest; ``AuditConflict`` if its position is taken."""
        mine = self._digests.setdefault(digest.writer_id, {})
        if digest.digest_sequence in mine:
            raise AuditConflict(
                f"audit digest {digest.writer_id}#{digest.digest_sequence} already exists"
            )
        mine[digest.digest_sequence] = digest

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        """Return the writer's digests in order."""
        mine = self._digests.get(writer_id, {})
        return [mine[n] for n in sorted(mine)]

    async def prune(self, records: list[AuditRecord]) -> int:
        """Replace records by their pruned form; return how many changed."""
        changed = 0
        for record in records:
            position = (record.writer_id, record.sequence)
            stored = self._records.get(position)
            if stored is not None and not stored.pruned:
                self._records[position] = pruned_form(stored)
                changed += 1
        return changed

    async def older_than(
        self, cutoff: datetime, *, limit: int = 500, after: tuple[datetime, str, int] | None = None
    ) -> list[AuditRecord]:
        """Return unpruned records older than ``cutoff``, oldest first, after ``after``."""
        found = sorted(
            (
                r
                for r in self._records.values()
                if not r.pruned
                and r.timestamp < cutoff
                and (after is None or record_sort_key(r) > after)
            ),
            key=record_sort_key,
        )
        return found[:limit]
