"""The audit trail: administrators' actions and security events, hash-chained and signed.

This process is one *writer*: it numbers its records ``1, 2, ...`` and
links each to the previous one's hash. Within ``digest_interval`` of a
record (a timer on the event loop's monotonic clock, so a wall-clock jump
neither delays nor hurries it), every ``digest_every`` records, and on
:meth:`close`, it writes a digest of its chain head, linked to its previous
digest and signed with the current key. :meth:`verify` re-checks all of it
and names every problem with its place (see
:mod:`timmybot_core.services.audit_verify`).

A writer killed before its digest leaves an unsigned tail.
:meth:`seal_abandoned` (at start-up and in the daily clean-up) closes the
tail of every writer that has left records unsigned longer than a live
writer would (the digest interval plus a margin): it appends a record that
says the writer is sealed as abandoned, and a digest covering it, signed
with the current key. Nothing writes to a sealed chain again; a writer that
finds its chain sealed under it (it was only stalled) continues under a new
writer ID.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from timmybot_core.domain.audit_chain import digest_hash, digest_message, sealed
from timmybot_core.domain.clock import Clock
from timmybot_core.domain.errors import AuditConflict, StoreUnavailable
from timmybot_core.domain.events import SecurityEvent
from timmybot_core.ports.audit import (
    GENESIS_HASH,
    AuditKind,
    AuditLog,
    AuditPage,
    AuditRecord,
    ChainHead,
    SignedDigest,
)
from timmybot_core.ports.digest_anchor import DigestAnchor
from timmybot_core.ports.incidents import RetentionHold
from timmybot_core.ports.signing import DigestSigner, SignatureVerifier
from timmybot_core.safety.pseudonymizer import Pseudonymizer, PseudonymKind
from timmybot_core.safety.redaction import redact_details
from timmybot_core.safety.sanitizer import ResponseSanitizer
from timmybot_core.services.audit_anchor import compare_with_anchor
from timmybot_core.services.audit_verify import (
    SEAL_ACTION,
    SEAL_SOURCE,
    VerificationReport,
    coverage_grace,
    is_seal,
    reported,
    verify_log,
)

__all__ = ["AuditSettings", "AuditTrailService", "new_writer_id", "record_as_json"]

_log = logging.getLogger("timmybot.audit")
#: The security record that starts a new chain when another process, without
#: sealing the old one, wrote the digest this writer was about to write.
DIGEST_TAKEN_ACTION = "audit.digest_taken"
_MAX_PAGE = 500
_PRUNE_BATCH = 500


@attrs.frozen(kw_only=True)
class AuditSettings:
    """How often digests are written, and how long records are kept.

    Attributes:
        digest_interval: the longest time an appended record waits for a digest
            (checked at each append; :meth:`AuditTrailService.close` writes the last).
        digest_every: write a digest after this many records at the latest.
        retention: records older than this are pruned by clean-up, unless an
            incident's retention hold covers them.
    """

    digest_interval: timedelta = timedelta(minutes=5)
    digest_every: int = 1000
    retention: timedelta = timedelta(days=365)

    def __attrs_post_init__(self) -> None:
        if self.digest_interval <= timedelta(0):
            raise ValueError("digest_interval must be positive")
        if self.digest_every < 1:
            raise ValueError("digest_every must be at least 1")
        if self.retention <= timedelta(0):
            raise ValueError("retention must be positive")


def new_writer_id() -> str:
    """Return a writer ID unique to this process start: ``w-{pid}-{random}``."""
    return f"w-{os.getpid()}-{secrets.token_hex(6)}"


class AuditTrailService:
    """Records, queries, digests and verifies the audit trail.

    Args:
        log: where records and digests are stored.
        pseudonymizer: turns admin and user IDs into the pseudonyms records hold.
        sanitizer: cleans detail texts (one line, no control characters).
        signer: signs digests with the current key.
        verifier: checks digests against every known key (rotation keeps old ones).
        clock: timestamps records.
        writer_id: this writer's chain; unique per process start by default.
        anchor: where a copy of each digest is also put, outside the store
            (S3 with Object Lock, a directory); :meth:`verify` compares them.
    """

    def __init__(
        self,
        *,
        log: AuditLog,
        pseudonymizer: Pseudonymizer,
        sanitizer: ResponseSanitizer,
        signer: DigestSigner,
        verifier: SignatureVerifier,
        clock: Clock,
        settings: AuditSettings | None = None,
        writer_id: str | None = None,
        anchor: DigestAnchor | None = None,
    ) -> None:
        self._log = log
        self._anchor = anchor
        self._unanchored: list[SignedDigest] = []
        self._unanchored_named = 0  # how many of them the log has named already
        self._pseudonymizer = pseudonymizer
        self._sanitizer = sanitizer
        self._signer = signer
        self._verifier = verifier
        self._clock = clock
        self._settings = settings if settings is not None else AuditSettings()
        self._writer_id = writer_id if writer_id is not None else new_writer_id()
        self._lock = asyncio.Lock()
        self._head: ChainHead | None = None
        self._digest: SignedDigest | None = None
        self._digest_at: datetime | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timed: set[asyncio.Task[None]] = set()

    @property
    def writer_id(self) -> str:
        """The ID of the chain this service writes."""
        return self._writer_id

    @property
    def settings(self) -> AuditSettings:
        """Digest cadence and retention."""
        return self._settings

    @property
    def log(self) -> AuditLog:
        """The store (for clean-up and operators' tools)."""
        return self._log

    # -- recording -------------------------------------------------------------------

    async def record_admin_action(
        self,
        admin_id: int,
        action: str,
        resource: str,
        details: Mapping[str, object] | None = None,
        source: str = "admin-panel",
    ) -> AuditRecord:
        """Append an administrator's action; return the stored record.

        ``admin_id`` is stored as its admin pseudonym; ``details`` are
        cleaned and every secret-looking key or value is redacted.
        """
        return await self._append(
            kind=AuditKind.ADMIN,
            action=action,
            actor=self._pseudonymizer.pseudonymize(PseudonymKind.ADMIN, admin_id),
            subject=None,
            resource=resource,
            details=details,
            source=source,
        )

    async def record_privacy_request(
        self,
        *,
        user_id: int,
        action: str,
        requester: str,
        details: Mapping[str, object] | None = None,
    ) -> AuditRecord:
        """Append a data-protection request (export, erasure) about ``user_id``."""
        subject = self._pseudonymizer.pseudonymize(PseudonymKind.USER, user_id)
        return await self._append(
            kind=AuditKind.PRIVACY,
            action=action,
            actor=None,
            subject=subject,
            resource=f"user:{subject}",
            details={"requester": requester, **dict(details or {})},
            source="privacy",
        )

    async def on_security_event(self, event: SecurityEvent) -> None:
        """Append a security event (subscribe this to the ``SecurityAuditLogger``).

        The event's identities are already pseudonyms.
        """
        await self._append(
            kind=AuditKind.SECURITY,
            action=event.type.value,
            actor=None,
            subject=event.user,
            resource=f"guild:{event.guild}" if event.guild else "",
            details={**dict(event.details), **({"ip": event.ip} if event.ip else {})},
            source="security-log",
            at=event.at,
            # A flood of denials must not cost a write each: the store may
            # batch these (admin and privacy records are stored before their reply).
            wait=False,
        )

    async def _append(
        self,
        *,
        kind: AuditKind,
        action: str,
        actor: str | None,
        subject: str | None,
        resource: str,
        details: Mapping[str, object] | None,
        source: str,
        at: datetime | None = None,
        wait: bool = True,
    ) -> AuditRecord:
        clean = self._sanitizer.sanitize_string
        async with self._lock:
            head = self._head
            draft = AuditRecord(
                event_id=str(uuid.uuid4()),
                writer_id=self._writer_id,
                sequence=1 if head is None else head.sequence + 1,
                timestamp=at if at is not None else self._clock.now(),
                kind=kind,
                action=clean(action)[:100],
                actor=actor,
                subject=subject,
                resource=clean(resource)[:200],
                details=redact_details(details, clean=clean),
                source=clean(source)[:50],
                prev_hash=GENESIS_HASH if head is None else head.hash,
                hash="",
            )
            record = sealed(draft)  # keeps the hashed bytes for the store
            # The head moves only once the store has the record: a failed
            # append is retried at the same position, leaving no gap.
            try:
                await self._log.append(record, wait=wait)
            except AuditConflict:
                if head is None or not await self._sealed_under_us(head.sequence + 1):
                    raise
                record = await self._restart_chain(draft)
            self._head = ChainHead(
                writer_id=self._writer_id, sequence=record.sequence, hash=record.hash
            )
            if self._digest_due(record):
                try:
                    await self._write_digest()
                except StoreUnavailable:
                    # The record is stored: the caller must not hear otherwise
                    # (an admin told "not recorded" when it was). The digest
                    # is tried again by the timer and by the next record.
                    _log.warning(
                        "audit digest of writer %s not written yet; retried", self._writer_id
                    )
                    self._arm_timer()
            else:
                self._arm_timer()
            return record

    async def _sealed_under_us(self, sequence: int) -> bool:
        taken = await self._log.chain(self._writer_id, after=sequence - 1, limit=1)
        return bool(taken) and is_seal(taken[0])

    def _new_writer(self) -> str:
        """Start a new chain under a new writer ID; return the old ID."""
        old = self._writer_id
        self._writer_id = new_writer_id()
        self._head = None
        self._digest = None
        self._digest_at = None
        return old

    def _sealed_away(self) -> None:
        """Start a new chain: another process sealed this one as abandoned."""
        old = self._new_writer()
        _log.warning(
            "audit writer %s was sealed as abandoned; continuing as %s", old, self._writer_id
        )

    async def _restart_chain(self, draft: AuditRecord) -> AuditRecord:
        """Continue under a new writer ID: another process sealed this chain as abandoned."""
        self._sealed_away()
        fresh = attrs.evolve(
            draft, writer_id=self._writer_id, sequence=1, prev_hash=GENESIS_HASH, hash=""
        )
        record = sealed(fresh)
        await self._log.append(record)
        return record

    def _arm_timer(self) -> None:
        """Write a digest within ``digest_interval`` of now, even if nothing else is appended."""
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(
            self._settings.digest_interval.total_seconds(), self._on_timer
        )

    def _on_timer(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._timed_digest())
        self._timed.add(task)
        task.add_done_callback(self._timed.discard)

    async def _timed_digest(self) -> None:
        try:
            await self.write_digest()
        except Exception:  # noqa: BLE001 - the next append or the close tries again
            _log.exception("could not write the timed audit digest of writer %s", self._writer_id)

    def _digest_due(self, record: AuditRecord) -> bool:
        covered = self._digest.head.sequence if self._digest is not None else 0
        if record.sequence - covered >= self._settings.digest_every:
            return True
        if self._digest_at is None:
            # The first record starts the interval.
            self._digest_at = self._clock.now()
            return False
        return self._clock.now() - self._digest_at >= self._settings.digest_interval

    # -- digests ---------------------------------------------------------------------

    async def write_digest(self) -> SignedDigest | None:
        """Sign and store a digest of this writer's head, if anything is new since the last."""
        async with self._lock:
            return await self._write_digest()

    async def _write_digest(self) -> SignedDigest | None:
        head = self._head
        previous = self._digest
        if head is None or (previous is not None and previous.head.sequence == head.sequence):
            return None
        digest = self._sign(self._writer_id, head, previous)
        try:
            await self._log.put_digest(digest)
        except AuditConflict:
            # Another process wrote this digest position: signing it again
            # would fail at every later digest, so this chain ends here.
            await self._digest_taken(head, digest)
            return None
        self._digest = digest
        self._digest_at = digest.created_at
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._anchor_digests(digest)
        _log.info(
            "audit digest %d of writer %s covers records %d-%d (key %s)",
            digest.digest_sequence,
            digest.writer_id,
            digest.covers_from,
            head.sequence,
            digest.key_id,
        )
        return digest

    async def _digest_taken(self, head: ChainHead, digest: SignedDigest) -> None:
        """Continue under a new writer ID: another process holds ``digest``'s position.

        Either it sealed this chain as abandoned (this process stalled for
        longer than the margin after storing its last record, and the seal's
        digest covers that record), or the digest is none of ours: forged in
        the store, or written by a second process with this writer ID. The
        second is said once, loudly, and recorded as a security event at the
        head of the new chain.
        """
        if await self._sealed_under_us(head.sequence + 1):
            self._sealed_away()
            return
        covered = self._digest.head.sequence if self._digest is not None else 0
        draft = AuditRecord(
            event_id=str(uuid.uuid4()),
            writer_id=self._writer_id,
            sequence=1,
            timestamp=self._clock.now(),
            kind=AuditKind.SECURITY,
            action=DIGEST_TAKEN_ACTION,
            resource=f"audit-writer:{self._writer_id}",
            details={
                "reason": "another process wrote this writer's digest, and did not seal it",
                "digest_sequence": digest.digest_sequence,
                "unsigned_from": covered + 1,
                "unsigned_to": head.sequence,
            },
            source=SEAL_SOURCE,
            prev_hash=GENESIS_HASH,
            hash="",
        )
        old = self._new_writer()
        _log.error(
            "audit digest %d of writer %s was already written by another process and the "
            "chain is not sealed: a forged digest, or a second process with this writer ID; "
            "records %d-%d stay unsigned by this process, which continues as %s",
            digest.digest_sequence,
            old,
            covered + 1,
            head.sequence,
            self._writer_id,
        )
        record = sealed(attrs.evolve(draft, writer_id=self._writer_id))
        await self._log.append(record)
        self._head = ChainHead(
            writer_id=self._writer_id, sequence=record.sequence, hash=record.hash
        )
        self._arm_timer()

    async def _anchor_digests(self, digest: SignedDigest | None = None) -> None:
        """Copy digests to the anchor; one that fails is retried with the next digest."""
        if self._anchor is None:
            return
        if digest is not None:
            self._unanchored.append(digest)
        while self._unanchored:
            try:
                await self._anchor.put(self._unanchored[0])
            except Exception as error:  # noqa: BLE001 - the digest is stored; verify shows the gap
                # Every digest waiting is named once, with its writer (a seal's
                # digest is another writer's), sequence and hash (not secret),
                # and the first again at each failed retry: the log kept off
                # the host then witnesses each digest this process wrote, which
                # tells a copy that never went through from a digest forged in
                # the store (docs/audit.md). Once each, so an anchor down for
                # long does not log the whole queue at every digest.
                for index, queued in enumerate(self._unanchored):
                    if index == 0 or index >= self._unanchored_named:
                        _log.warning(
                            "audit digest %d of writer %s (hash %s) not copied to the digest "
                            "anchor yet: %s",
                            queued.digest_sequence,
                            self._sanitizer.sanitize_string(queued.writer_id)[:200],
                            queued.hash,
                            error,  # our stores' errors name the operation, never content
                        )
                self._unanchored_named = len(self._unanchored)
                return
            self._unanchored.pop(0)
            self._unanchored_named = max(0, self._unanchored_named - 1)

    async def close(self) -> None:
        """Write buffered records and the final digest (call on shutdown); failures are logged."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._timed):
            task.cancel()
        try:
            await self._log.flush()
            await self.write_digest()
            async with self._lock:
                await self._anchor_digests()
        except Exception:  # noqa: BLE001 - shutdown goes on; verify will show the uncovered tail
            _log.exception("could not write the final audit digest of writer %s", self._writer_id)

    # -- abandoned writers -------------------------------------------------------------

    async def seal_abandoned(self) -> int:
        """Seal every writer that left records unsigned longer than a live one would.

        A live writer signs within ``digest_interval`` (its timer); one
        whose newest record is older than that plus a margin is gone. Its
        tail is closed by a record saying it is sealed as abandoned and a
        digest covering it, signed with this writer's (the current) key.
        Returns how many writers were sealed.
        """
        cutoff = self._clock.now() - coverage_grace(self._settings.digest_interval)
        sealed = 0
        for writer_id in await self._log.writers():
            if writer_id != self._writer_id and await self._seal_if_abandoned(writer_id, cutoff):
                sealed += 1
        return sealed

    async def _seal_if_abandoned(self, writer_id: str, cutoff: datetime) -> bool:
        digests = await self._log.digests(writer_id)
        last_digest = digests[-1] if digests else None
        covered = last_digest.head.sequence if last_digest is not None else 0
        tail = await self._log.chain(writer_id, after=covered)
        if not tail or tail[-1].timestamp >= cutoff:
            return False  # nothing to seal, or it may still be running
        last = tail[-1]
        seal = last
        if not is_seal(last):
            draft = AuditRecord(
                event_id=str(uuid.uuid4()),
                writer_id=writer_id,
                sequence=last.sequence + 1,
                timestamp=self._clock.now(),
                kind=AuditKind.SECURITY,
                action=SEAL_ACTION,
                # Cleaned like every record's text: the ID is whatever the store holds.
                resource=self._sanitizer.sanitize_string(f"audit-writer:{writer_id}")[:200],
                details={
                    "reason": "abandoned writer: its process is gone",
                    "sealed_by": self._writer_id,
                    "unsigned_from": covered + 1,
                    "unsigned_to": last.sequence,
                },
                source=SEAL_SOURCE,
                prev_hash=last.hash,
                hash="",
            )
            seal = sealed(draft)
            try:
                await self._log.append(seal)
            except AuditConflict:
                return False  # it wrote again: alive after all
        head = ChainHead(writer_id=writer_id, sequence=seal.sequence, hash=seal.hash)
        digest = self._sign(writer_id, head, last_digest)
        try:
            await self._log.put_digest(digest)
        except AuditConflict:
            return False
        await self._anchor_digests(digest)  # a seal's digest is anchored like any other
        _log.warning(
            "audit writer %s sealed as abandoned: records %d-%d were unsigned (digest %d, key %s)",
            self._sanitizer.sanitize_string(writer_id)[:200],
            covered + 1,
            last.sequence,
            digest.digest_sequence,
            digest.key_id,
        )
        return True

    def _sign(self, writer_id: str, head: ChainHead, previous: SignedDigest | None) -> SignedDigest:
        draft = SignedDigest(
            writer_id=writer_id,
            digest_sequence=1 if previous is None else previous.digest_sequence + 1,
            created_at=self._clock.now(),
            head=head,
            covers_from=1 if previous is None else previous.head.sequence + 1,
            prev_digest_hash=GENESIS_HASH if previous is None else previous.hash,
            key_id=self._signer.key_id,
            hash="",
            signature=b"",
        )
        return attrs.evolve(
            draft, hash=digest_hash(draft), signature=self._signer.sign(digest_message(draft))
        )

    # -- reading ---------------------------------------------------------------------

    async def get_audit_history(
        self,
        start: datetime,
        end: datetime,
        admin_id: int | None = None,
        action: str | None = None,
        *,
        kind: AuditKind | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """Return a page of records in ``[start, end)``, newest first.

        ``admin_id`` filters on the admin's pseudonym; pass the page's
        ``next_cursor`` back as ``cursor`` for the next page.
        """
        if end <= start:
            raise ValueError("the end of the audit range must be after its start")
        if not 1 <= limit <= _MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {_MAX_PAGE}")
        actor = (
            self._pseudonymizer.pseudonymize(PseudonymKind.ADMIN, admin_id)
            if admin_id is not None
            else None
        )
        return await self._log.query(
            start=start, end=end, actor=actor, action=action, kind=kind, limit=limit, cursor=cursor
        )

    async def events_about(self, user_id: int, *, limit: int | None = 1000) -> list[AuditRecord]:
        """Return the security and privacy records about ``user_id``, newest first.

        At most ``limit`` of them; every one with ``limit=None`` (a user's
        export: the audit retention bounds them), read page by page.
        """
        subject = self._pseudonymizer.pseudonymize(PseudonymKind.USER, user_id)
        found: list[AuditRecord] = []
        cursor: str | None = None
        start = datetime.min.replace(tzinfo=self._clock.now().tzinfo)
        end = self._clock.now() + timedelta(days=1)
        while limit is None or len(found) < limit:
            page = await self._log.query(
                start=start,
                end=end,
                subject=subject,
                limit=_MAX_PAGE if limit is None else min(_MAX_PAGE, limit - len(found)),
                cursor=cursor,
            )
            found.extend(page.records)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return found

    async def verify(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        observe: Callable[[AuditLog], AuditLog] | None = None,
    ) -> VerificationReport:
        """Check every writer's chain and digests; report problems located in ``[start, end)``.

        Tampering is reported wherever it is: its time is one the store holds
        (:data:`~timmybot_core.services.audit_verify.TAMPERING`).

        With a digest anchor, the store's digests are also compared with the
        anchor's copies (:mod:`timmybot_core.services.audit_anchor`), whoever
        asks. ``observe`` wraps the log that the chain check reads (a
        front-end's progress bar); it changes nothing of what is checked.
        """
        report = await verify_log(
            self._log if observe is None else observe(self._log),
            self._verifier,
            start=start,
            end=end,
            now=self._clock.now(),
            retention=self._settings.retention,
            digest_interval=self._settings.digest_interval,
            live=(self._writer_id,),
        )
        if self._anchor is None:
            return report
        differences = await compare_with_anchor(self._log, self._anchor)
        located = [problem for problem in differences if reported(problem, start, end)]
        return attrs.evolve(
            report, problems=report.problems + tuple(located), anchor=self._anchor.location
        )

    # -- retention -------------------------------------------------------------------

    async def prune_expired(
        self, *, now: datetime, retention: timedelta | None = None, holds: Sequence[RetentionHold]
    ) -> int:
        """Prune records older than ``now - retention`` that no hold covers; return how many.

        Pruning keeps a record's chain position and hashes and drops what it
        said (see :meth:`AuditLog.prune`), so the chain still verifies.
        """
        cutoff = now - (retention if retention is not None else self._settings.retention)
        pruned = 0
        after: tuple[datetime, str, int] | None = None
        while True:
            batch = await self._log.older_than(cutoff, limit=_PRUNE_BATCH, after=after)
            if not batch:
                return pruned
            doomed = [
                record
                for record in batch
                if not any(hold.covers(record.timestamp) for hold in holds)
            ]
            if doomed:
                pruned += await self._log.prune(doomed)
            last = batch[-1]
            after = (last.timestamp, last.writer_id, last.sequence)


def record_as_json(record: AuditRecord) -> dict[str, Any]:
    """Return a record as JSON data (exports, the CLI, the console)."""
    return {
        "event_id": record.event_id,
        "writer_id": record.writer_id,
        "sequence": record.sequence,
        "timestamp": record.timestamp.isoformat(),
        "kind": record.kind.value,
        "action": record.action,
        "actor": record.actor,
        "subject": record.subject,
        "resource": record.resource,
        "details": dict(record.details),
        "source": record.source,
        "hash": record.hash,
    }
