"""The audit log: append-only, hash-chained records and their signed digests.

Every writer (a bot process, or a shard) keeps its own hash chain: records
numbered ``1, 2, 3, ...`` where each names the hash of the one before. A
store therefore never has to order concurrent writers, and a key of
``(writer_id, sequence)`` is unique. Chaining, signing and verifying are the
service's job (:mod:`timmybot_core.services.audit`); a store only keeps
what it is given, answers queries, and never rewrites a record except to
prune it (see :meth:`AuditLog.prune`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from timmybot_core.domain.audit_records import (
    GENESIS_HASH,
    AuditCursor,
    AuditKind,
    AuditPage,
    AuditRecord,
    ChainHead,
    SignedDigest,
    pruned_form,
    record_sort_key,
)

__all__ = [
    "GENESIS_HASH",
    "AuditCursor",
    "AuditKind",
    "AuditLog",
    "AuditPage",
    "AuditRecord",
    "ChainHead",
    "SignedDigest",
    "pruned_form",
    "record_sort_key",
]


@runtime_checkable
class AuditLog(Protocol):
    """Stores audit records and digests. Every method may raise ``StoreUnavailable``."""

    async def append(self, record: AuditRecord) -> None:
        """Store ``record``.

        Raises :class:`~timmybot_core.domain.errors.AuditConflict` if a record with
        the same ``(writer_id, sequence)`` or ``event_id`` exists: a log is
        append-only and a writer never reuses a position.
        """
        ...

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
        """Return records with ``start <= timestamp < end`` matching every filter given.

        Newest first (ties broken by writer and sequence, descending), at
        most ``limit`` per page; pruned records never match. A malformed
        ``cursor`` raises ``ValueError``.
        """
        ...

    async def chain(
        self, writer_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """Return the writer's records with ``sequence > after``, in sequence order."""
        ...

    async def writers(self) -> list[str]:
        """Return every writer that has a record or a digest, sorted."""
        ...

    async def put_digest(self, digest: SignedDigest) -> None:
        """Store a digest; ``AuditConflict`` if the writer's ``digest_sequence`` exists."""
        ...

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        """Return the writer's digests in ``digest_sequence`` order."""
        ...

    async def prune(self, records: list[AuditRecord]) -> int:
        """Replace each stored record by its pruned form; return how many changed.

        The pruned form keeps ``event_id``, ``writer_id``, ``sequence``,
        ``timestamp``, ``kind``, ``prev_hash`` and ``hash``, and empties the
        rest. Pruning a pruned or absent record changes nothing.
        """
        ...

    async def older_than(
        self, cutoff: datetime, *, limit: int = 500, after: tuple[datetime, str, int] | None = None
    ) -> list[AuditRecord]:
        """Return unpruned records with ``timestamp < cutoff``, oldest first.

        ``after`` is the ``(timestamp, writer_id, sequence)`` of the last
        record of the previous batch: retention walks the old records in
        bounded batches without loading the whole log.
        """
        ...
