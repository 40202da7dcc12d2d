"""The audit trail's records, pages, chain heads and signed digests (domain types).

The audit log port (:mod:`timmybot_core.ports.audit`) stores them; the
audit service chains, signs and verifies them.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import attrs

from timmybot_core.domain.errors import DomainValueError

__all__ = [
    "GENESIS_HASH",
    "AuditCursor",
    "AuditKind",
    "AuditPage",
    "AuditRecord",
    "ChainHead",
    "SignedDigest",
    "pruned_form",
    "record_sort_key",
]

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of a chain's first record."""


class AuditKind(enum.StrEnum):
    """What an audit record is about."""

    ADMIN = "admin"
    """An administrator's action (``record_admin_action``)."""
    SECURITY = "security"
    """A security event of the access guard, tokens or validation."""
    PRIVACY = "privacy"
    """A data-protection request: export or erasure."""


def _freeze(details: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(details))


@attrs.frozen(kw_only=True)
class AuditRecord:
    """One audit event with its place in its writer's hash chain.

    Identity fields (``actor``, ``subject``) hold pseudonyms, never raw
    Discord IDs. ``details`` holds JSON values only (str, int, finite float,
    bool, None, lists and str-keyed mappings).

    A *pruned* record (``pruned=True``) is what retention leaves of an old
    event: its chain position, time and hashes, with every field that says
    who did what emptied. It keeps the chain verifiable after clean-up.
    """

    event_id: str
    writer_id: str
    sequence: int
    timestamp: datetime
    kind: AuditKind
    action: str
    actor: str | None = None
    subject: str | None = None
    resource: str = ""
    details: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze)
    source: str = ""
    prev_hash: str
    hash: str
    pruned: bool = False
    # The exact bytes ``hash`` was computed over, when known: set when a
    # record is sealed or read back from its stored bytes, so verification
    # hashes them instead of re-encoding the record. Not an ``__init__``
    # argument, so ``attrs.evolve`` (a changed record) never carries stale
    # bytes along. See :func:`timmybot_core.domain.audit_chain.record_bytes`.
    _body: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def matches(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        kind: AuditKind | None = None,
        subject: str | None = None,
    ) -> bool:
        """Tell whether the record has every field given (``None``: any value)."""
        return (
            (actor is None or self.actor == actor)
            and (action is None or self.action == action)
            and (kind is None or self.kind == kind)
            and (subject is None or self.subject == subject)
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@attrs.frozen(kw_only=True)
class AuditCursor:
    """Where a newest-first page ended: the last record's sort key.

    Adapters may use it for their opaque cursors (``encode``/``decode``);
    the next page holds the records that sort strictly after it.
    """

    timestamp: datetime
    writer_id: str
    sequence: int

    @classmethod
    def of(cls, record: AuditRecord) -> AuditCursor:
        """Return the cursor just past ``record``."""
        return cls(timestamp=record.timestamp, writer_id=record.writer_id, sequence=record.sequence)

    def sort_key(self) -> tuple[datetime, str, int]:
        """Return ``(timestamp, writer_id, sequence)``, the order pages follow (descending)."""
        return (self.timestamp, self.writer_id, self.sequence)

    def encode(self) -> str:
        """Return the cursor as URL-safe text."""
        micros = (self.timestamp - _EPOCH) // timedelta(microseconds=1)
        raw = json.dumps([micros, self.writer_id, self.sequence], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> AuditCursor:
        """Parse :meth:`encode`'s output; ``DomainValueError`` for anything else."""
        try:
            padded = text + "=" * (-len(text) % 4)
            micros, writer_id, sequence = json.loads(base64.urlsafe_b64decode(padded.encode()))
            # Exact types: JSON's true and false would pass as ints.
            if (type(micros), type(writer_id), type(sequence)) != (int, str, int):
                raise TypeError
            # A page ends at a stored record: a position from 1 within a
            # store's 64-bit integers, and a writer ID that encodes as UTF-8.
            # Anything else is forged; a store must not meet it.
            if not 1 <= sequence < 2**63:
                raise ValueError
            writer_id.encode("utf-8")
            moment = _EPOCH + timedelta(microseconds=micros)
        except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeError) as error:
            raise DomainValueError("malformed audit page cursor") from error
        return cls(timestamp=moment, writer_id=writer_id, sequence=sequence)


def record_sort_key(record: AuditRecord) -> tuple[datetime, str, int]:
    """Return the key query pages are sorted by (descending)."""
    return (record.timestamp, record.writer_id, record.sequence)


def pruned_form(record: AuditRecord) -> AuditRecord:
    """Return what retention keeps of ``record`` (see :meth:`AuditLog.prune`)."""
    return AuditRecord(
        event_id=record.event_id,
        writer_id=record.writer_id,
        sequence=record.sequence,
        timestamp=record.timestamp,
        kind=record.kind,
        action="",
        prev_hash=record.prev_hash,
        hash=record.hash,
        pruned=True,
    )


@attrs.frozen(kw_only=True)
class AuditPage:
    """A page of query results, newest first, and where the next page starts."""

    records: tuple[AuditRecord, ...]
    next_cursor: str | None = None
    """Opaque; pass it back to get the next page. ``None``: no more."""

    @classmethod
    def first(cls, found: Sequence[AuditRecord], limit: int) -> AuditPage:
        """Return the first ``limit`` of ``found`` (sorted newest first) as a page.

        A store fetches one record past ``limit``: if ``found`` holds more,
        the page carries the cursor to the next one.
        """
        page = tuple(found[: max(limit, 0)])
        more = bool(page) and len(found) > len(page)
        return cls(records=page, next_cursor=AuditCursor.of(page[-1]).encode() if more else None)


@attrs.frozen(kw_only=True)
class ChainHead:
    """A writer's chain up to ``sequence``, whose record hashes to ``hash``."""

    writer_id: str
    sequence: int
    hash: str


@attrs.frozen(kw_only=True)
class SignedDigest:
    """A signed statement of a writer's chain head.

    Digests form a chain of their own per writer: ``digest_sequence`` counts
    ``1, 2, ...`` and ``prev_digest_hash`` names the previous digest's
    ``hash``. ``covers_from`` is the first record sequence this digest adds
    to what the previous one covered. ``signature`` is over the canonical
    encoding of every other field, by the key named ``key_id``.
    """

    writer_id: str
    digest_sequence: int
    created_at: datetime
    head: ChainHead
    covers_from: int
    prev_digest_hash: str
    key_id: str
    hash: str
    signature: bytes = attrs.field(repr=False)
