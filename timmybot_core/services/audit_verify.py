"""Verifying the audit log: every chain, every digest, every problem with its place.

Each writer's records are checked in sequence order: each record's hash
against its content, each ``prev_hash`` against the record before, and
the sequence for gaps. Then its digests: their own hash, their link to the
previous digest, the signature (by a known key), and that the record at
each digest's head still has the hash the digest signed. A problem is not
reported twice: a reordered pair is one problem, not two modified records
and a broken link; an inserted record is one problem, not a shifted tail.

What verification cannot see: records appended after a writer's last
digest can be removed or forged unnoticed (the report counts them as
*uncovered*), and a whole writer whose records and digests were all
deleted leaves nothing to check. Digests written often, and on shutdown,
keep that window small.

Coverage: a live writer signs its tail within ``digest_interval`` (a timer
on the monotonic clock), and a writer whose process is gone is *sealed*
by another one (a final record that says so, covered by a digest signed
with the current key; see :meth:`AuditTrailService.seal_abandoned`). So,
given ``digest_interval``, a record left uncovered longer than the
interval plus a margin (the interval again) is a problem: a writer that
died and was never sealed, or digests that were deleted. A record after
a seal is a problem too: nothing writes to a sealed chain.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs

from timmybot_core.domain.audit_chain import digest_hash, digest_message, record_hash
from timmybot_core.ports.audit import GENESIS_HASH, AuditKind, AuditLog, AuditRecord, SignedDigest
from timmybot_core.ports.signing import SignatureVerifier

__all__ = [
    "SEAL_ACTION",
    "SEAL_SOURCE",
    "TAMPERING",
    "Problem",
    "ProblemKind",
    "VerificationReport",
    "coverage_grace",
    "is_seal",
    "reported",
    "verify_chain",
    "verify_log",
]

_PAGE = 1000
#: The action of the record that seals an abandoned writer's chain.
SEAL_ACTION = "audit.writer_sealed"
#: The source of that record: no recording method a host bot calls writes it.
SEAL_SOURCE = "audit"


def is_seal(record: AuditRecord) -> bool:
    """Whether ``record`` is the seal of an abandoned writer's chain.

    The action alone does not tell: a host bot may record an admin action
    or a privacy request under any name, ``audit.writer_sealed`` too (even
    one that only cleans to it). Only :meth:`AuditTrailService.seal_abandoned`
    writes a ``security`` record from the source ``audit`` (security events
    are ``security-log``), so the three together do.
    """
    return (
        record.action == SEAL_ACTION
        and record.kind is AuditKind.SECURITY
        and record.source == SEAL_SOURCE
    )


def coverage_grace(digest_interval: timedelta) -> timedelta:
    """How long a record may stay uncovered: the digest interval plus a margin of as much."""
    return 2 * digest_interval


class ProblemKind(enum.StrEnum):
    """What is wrong at a place in the log."""

    MODIFIED = "modified"
    """A record's content no longer matches its hash."""
    MISSING = "missing"
    """Records are absent from the middle of a chain."""
    INSERTED = "inserted"
    """A record was put between two records that were linked to each other."""
    REORDERED = "reordered"
    """Two adjacent records exchanged their positions."""
    LINK_BROKEN = "link_broken"
    """A record does not name its predecessor's hash."""
    TRUNCATED = "truncated"
    """Records a signed digest covers are gone from the end of a chain."""
    HEAD_MISMATCH = "head_mismatch"
    """The record at a digest's head differs from the one the digest signed."""
    DIGEST_MODIFIED = "digest_modified"
    """A digest's content no longer matches its hash."""
    DIGEST_MISSING = "digest_missing"
    """Digests are absent from a writer's digest chain."""
    DIGEST_LINK_BROKEN = "digest_link_broken"
    """A digest does not name its predecessor, or covers the wrong records."""
    BAD_SIGNATURE = "bad_signature"
    """A digest's signature is not valid for its key."""
    UNKNOWN_KEY = "unknown_key"
    """A digest names a key the verifier does not know."""
    PRUNED_EARLY = "pruned_early"
    """A record was emptied before its retention period ended."""
    ANCHOR_MISSING = "anchor_missing"
    """A digest of the store has no copy in the digest anchor."""
    ANCHOR_ONLY = "anchor_only"
    """The digest anchor holds a digest the store no longer has."""
    ANCHOR_MISMATCH = "anchor_mismatch"
    """A digest of the store differs from the digest anchor's copy."""
    UNCOVERED = "uncovered"
    """Records stayed without a digest longer than the digest interval plus a margin."""
    AFTER_SEAL = "after_seal"
    """Records follow the record that sealed the writer's chain."""


@attrs.frozen(kw_only=True)
class Problem:
    """One problem: its kind, where it is, and what was expected."""

    kind: ProblemKind
    writer_id: str
    sequence: int | None = None
    """The record's chain position, for record problems."""
    digest_sequence: int | None = None
    """The digest's position, for digest problems."""
    at: datetime | None = None
    """The time of the place (a record's or digest's), for range filtering."""
    detail: str = ""

    @property
    def location(self) -> str:
        """Where, as text: ``writer w-1 record 7`` or ``writer w-1 digest 2``."""
        if self.digest_sequence is not None:
            return f"writer {self.writer_id} digest {self.digest_sequence}"
        return f"writer {self.writer_id} record {self.sequence}"

    def __str__(self) -> str:
        return f"{self.kind.value} at {self.location}: {self.detail}"


@attrs.frozen(kw_only=True)
class VerificationReport:
    """What :func:`verify_log` checked and found."""

    writers: int
    records_checked: int
    digests_checked: int
    problems: tuple[Problem, ...]
    uncovered: int = 0
    """Records after their writer's last digest: present, but not yet signed for."""
    anchor: str | None = None
    """Where the digests were compared with their copies (``None``: no anchor)."""
    sealed_writers: int = 0
    """Writers whose process was gone, sealed by another writer."""
    open_writers: int = 0
    """Writers with records not yet covered, within the time a live writer has."""

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def summary(self) -> str:
        """One line: counts and the verdict."""
        verdict = "clean" if self.ok else f"{len(self.problems)} problem(s)"
        anchored = f", digests compared with {self.anchor}" if self.anchor else ""
        return (
            f"audit log {verdict}: {self.records_checked} records and {self.digests_checked} "
            f"digests of {self.writers} writer(s) checked, {self.uncovered} not yet covered by a "
            f"digest; {self.open_writers} live writer(s) with records to sign, "
            f"{self.sealed_writers} abandoned writer(s) sealed{anchored}"
        )


def _record_problem(
    writer_id: str, kind: ProblemKind, record: AuditRecord, detail: str, sequence: int | None = None
) -> Problem:
    """Return a problem at ``record`` of ``writer_id``'s chain (or at ``sequence``, next to it)."""
    return Problem(
        kind=kind,
        writer_id=writer_id,
        sequence=record.sequence if sequence is None else sequence,
        at=record.timestamp,
        detail=detail,
    )


def _hash_ok(record: AuditRecord, sequence: int | None = None) -> bool:
    # A pruned record's content is gone: its stored hash is taken as given
    # and checked only through the links around it.
    return record.pruned or record_hash(record, sequence=sequence) == record.hash


def verify_chain(
    writer_id: str,
    records: Sequence[AuditRecord],
    digests: Sequence[SignedDigest],
    verifier: SignatureVerifier,
    *,
    pruned_before: datetime | None = None,
) -> tuple[list[Problem], int]:
    """Check one writer's records (in sequence order) and digests.

    Returns the problems and the number of records after the last valid
    digest. ``pruned_before``: a pruned record newer than this is reported
    as :attr:`ProblemKind.PRUNED_EARLY`.
    """
    problems = _check_records(writer_id, records, pruned_before)
    digest_problems, covered = _check_digests(writer_id, records, digests, verifier)
    problems += digest_problems
    uncovered = sum(1 for record in records if record.sequence > covered)
    return problems, uncovered


def _check_records(
    writer_id: str, records: Sequence[AuditRecord], pruned_before: datetime | None
) -> list[Problem]:
    problems: list[Problem] = []

    def report(
        kind: ProblemKind, record: AuditRecord, detail: str, sequence: int | None = None
    ) -> None:
        problems.append(_record_problem(writer_id, kind, record, detail, sequence))

    # First the content of each record on its own, so that the walk below
    # knows which oddities one tampering explains.
    intact = [_hash_ok(record) for record in records]
    swapped: set[int] = set()  # first index of each pair that exchanged places
    for index in range(len(records) - 1):
        here, there = records[index], records[index + 1]
        if (
            not intact[index]
            and not intact[index + 1]
            and there.sequence == here.sequence + 1
            and index - 1 not in swapped
            and _hash_ok(here, there.sequence)
            and _hash_ok(there, here.sequence)
        ):
            swapped.add(index)
    quiet_links = {i + offset for i in swapped for offset in (0, 1, 2)}
    inserted = False
    for index, record in enumerate(records):
        previous = records[index - 1] if index > 0 else None
        if record.pruned and pruned_before is not None and record.timestamp >= pruned_before:
            report(ProblemKind.PRUNED_EARLY, record, "emptied before its retention period ended")
        expected = 1 if previous is None else previous.sequence + 1
        if record.sequence > expected:
            last = record.sequence - 1
            span = f"record {expected}" if last == expected else f"records {expected}-{last}"
            report(ProblemKind.MISSING, record, f"{span} missing", sequence=expected)
        elif index not in quiet_links:
            inserted = _check_link(records, index, report) or inserted
        if index in swapped:
            following = records[index + 1]
            report(
                ProblemKind.REORDERED,
                record,
                f"records {record.sequence} and {following.sequence} exchanged places",
            )
        elif intact[index] or index - 1 in swapped:
            continue
        elif inserted and _hash_ok(record, record.sequence - 1):
            continue  # shifted by the insertion reported before
        else:
            report(ProblemKind.MODIFIED, record, "content does not match its hash")
    return problems


def _check_link(
    records: Sequence[AuditRecord],
    index: int,
    report: Callable[[ProblemKind, AuditRecord, str], None],
) -> bool:
    """Check ``records[index]``'s link to its predecessor; ``True`` if that one was inserted."""
    record = records[index]
    if index == 0:
        if record.sequence == 1 and record.prev_hash != GENESIS_HASH:
            report(ProblemKind.LINK_BROKEN, record, "first record does not start the chain")
        return False
    previous = records[index - 1]
    if record.prev_hash == previous.hash:
        return False
    # The hash this record would name if its predecessor had been put in.
    if index >= 2 and records[index - 2].sequence == previous.sequence - 1:
        skipped: str | None = records[index - 2].hash
    elif previous.sequence == 1:
        skipped = GENESIS_HASH
    else:
        skipped = None
    if skipped is not None and record.prev_hash == skipped:
        report(
            ProblemKind.INSERTED,
            previous,
            f"record {previous.sequence} is not in the original chain",
        )
        return True
    report(ProblemKind.LINK_BROKEN, record, f"does not link to record {previous.sequence}")
    return False


def _check_digests(
    writer_id: str,
    records: Sequence[AuditRecord],
    digests: Sequence[SignedDigest],
    verifier: SignatureVerifier,
) -> tuple[list[Problem], int]:
    problems: list[Problem] = []
    by_sequence = {record.sequence: record for record in records}
    last_present = records[-1].sequence if records else 0
    covered = 0
    previous: SignedDigest | None = None

    def report(kind: ProblemKind, digest: SignedDigest, detail: str) -> None:
        problems.append(
            Problem(
                kind=kind,
                writer_id=writer_id,
                digest_sequence=digest.digest_sequence,
                at=digest.created_at,
                detail=detail,
            )
        )

    for digest in digests:
        expected = 1 if previous is None else previous.digest_sequence + 1
        if digest.digest_sequence > expected:
            report(
                ProblemKind.DIGEST_MISSING,
                digest,
                f"digest(s) {expected}-{digest.digest_sequence - 1} missing before it",
            )
        intact = digest_hash(digest) == digest.hash
        if not intact:
            report(ProblemKind.DIGEST_MODIFIED, digest, "content does not match its hash")
        signed = False
        if not verifier.knows(digest.key_id):
            report(ProblemKind.UNKNOWN_KEY, digest, f"signed by unknown key {digest.key_id!r}")
        elif not verifier.verify(digest.key_id, digest_message(digest), digest.signature):
            report(ProblemKind.BAD_SIGNATURE, digest, f"signature invalid for key {digest.key_id}")
        else:
            signed = True
        if digest.digest_sequence == expected:
            want_prev = GENESIS_HASH if previous is None else previous.hash
            want_from = 1 if previous is None else previous.head.sequence + 1
            if digest.prev_digest_hash != want_prev:
                report(ProblemKind.DIGEST_LINK_BROKEN, digest, "does not link to the digest before")
            elif digest.covers_from != want_from or digest.head.sequence < want_from - 1:
                report(
                    ProblemKind.DIGEST_LINK_BROKEN,
                    digest,
                    f"covers from record {digest.covers_from}, expected {want_from}",
                )
        if digest.head.writer_id != writer_id:
            report(ProblemKind.DIGEST_MODIFIED, digest, "names another writer's chain")
        head = by_sequence.get(digest.head.sequence)
        if head is not None and head.hash != digest.head.hash:
            detail = f"differs from the record digest {digest.digest_sequence} signed"
            problems.append(_record_problem(writer_id, ProblemKind.HEAD_MISMATCH, head, detail))
        if signed and intact:
            covered = max(covered, digest.head.sequence)
        previous = digest
    if covered > last_present:
        first = last_present + 1
        span = f"record {first}" if first == covered else f"records {first}-{covered}"
        problems.append(
            Problem(
                kind=ProblemKind.TRUNCATED,
                writer_id=writer_id,
                sequence=first,
                at=records[-1].timestamp if records else None,
                detail=f"{span}, covered by a signed digest, are gone from the end of the chain",
            )
        )
    return problems, covered


async def _all_records(log: AuditLog, writer_id: str) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    after = 0
    while True:
        page = await log.chain(writer_id, after=after, limit=_PAGE)
        records.extend(page)
        if len(page) < _PAGE:
            return records
        after = page[-1].sequence


def _in_range(moment: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    """Whether ``moment`` lies in ``[start, end)`` (an open bound, or no moment, always does)."""
    if moment is None:
        return True
    return (start is None or moment >= start) and (end is None or moment < end)


#: Problems that show the store was rewritten. Their time is the one the
#: store holds (a record's ``timestamp``, a digest's ``created_at``), which
#: whoever rewrote it sets too: a forged record dated a year back must not
#: drop out of ``since:7d``. Chains are always walked whole, so a ranged
#: verify reports these wherever they are; the range narrows only the
#: problems about time that have causes an operator accounts for (a dead
#: writer not sealed yet, a retention made longer, a digest copy that failed).
TAMPERING: frozenset[ProblemKind] = frozenset(ProblemKind) - {
    ProblemKind.UNCOVERED,
    ProblemKind.PRUNED_EARLY,
    ProblemKind.ANCHOR_MISSING,
}


def reported(problem: Problem, start: datetime | None, end: datetime | None) -> bool:
    """Whether a verify of ``[start, end)`` reports ``problem``: tampering always is."""
    return problem.kind in TAMPERING or _in_range(problem.at, start, end)


async def verify_log(
    log: AuditLog,
    verifier: SignatureVerifier,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    retention: timedelta | None = None,
    digest_interval: timedelta | None = None,
    live: Sequence[str] = (),
) -> VerificationReport:
    """Verify every writer's chain and digests; report what lies in ``[start, end)``.

    Chains are always checked whole (a link into the range needs the record
    before it); ``start`` and ``end`` select which records are counted and
    which problems are reported, except tampering (:data:`TAMPERING`),
    reported wherever it is. With ``now`` and ``retention``, a record emptied before its
    retention ended is a problem. With ``now`` and ``digest_interval``, a
    record uncovered for longer than :func:`coverage_grace` is a problem,
    except in the writers named in ``live`` (the caller's own, which it
    knows to be running).
    """
    pruned_before = now - retention if now is not None and retention is not None else None
    uncovered_before = (
        now - coverage_grace(digest_interval)
        if now is not None and digest_interval is not None
        else None
    )
    problems: list[Problem] = []
    records_checked = digests_checked = uncovered = sealed = open_writers = 0
    writers = await log.writers()
    for writer_id in writers:
        records = await _all_records(log, writer_id)
        digests = await log.digests(writer_id)
        found, open_tail = verify_chain(
            writer_id, records, digests, verifier, pruned_before=pruned_before
        )
        found += _coverage(
            writer_id,
            records,
            open_tail,
            None if writer_id in live else uncovered_before,
        )
        if _sealed(records, open_tail):
            sealed += 1
        elif open_tail:
            open_writers += 1
        problems += [problem for problem in found if reported(problem, start, end)]
        records_checked += sum(1 for r in records if _in_range(r.timestamp, start, end))
        digests_checked += sum(1 for d in digests if _in_range(d.created_at, start, end))
        uncovered += open_tail
    return VerificationReport(
        writers=len(writers),
        records_checked=records_checked,
        digests_checked=digests_checked,
        problems=tuple(problems),
        uncovered=uncovered,
        sealed_writers=sealed,
        open_writers=open_writers,
    )


def _sealed(records: Sequence[AuditRecord], open_tail: int) -> bool:
    """Whether the chain ends with a seal record that a valid digest covers."""
    return bool(records) and open_tail == 0 and is_seal(records[-1])


def _coverage(
    writer_id: str,
    records: Sequence[AuditRecord],
    open_tail: int,
    uncovered_before: datetime | None,
) -> list[Problem]:
    """Return records after a seal, and an uncovered tail older than the grace, as problems."""
    problems: list[Problem] = []
    seals = [index for index, r in enumerate(records) if is_seal(r) and not r.pruned]
    if seals and seals[0] < len(records) - 1:
        detail = (
            f"{len(records) - seals[0] - 1} record(s) after the seal of record "
            f"{records[seals[0]].sequence}: nothing writes to a sealed chain"
        )
        after = records[seals[0] + 1]
        problems.append(_record_problem(writer_id, ProblemKind.AFTER_SEAL, after, detail))
    if open_tail and uncovered_before is not None:
        tail = records[len(records) - open_tail :]
        if tail[0].timestamp < uncovered_before:
            first, last = tail[0].sequence, tail[-1].sequence
            span = f"record {first}" if open_tail == 1 else f"records {first}-{last}"
            detail = (
                f"{span} have no digest, longer than a live writer takes: the writer died "
                "unsealed, or digests were deleted (a start or the daily clean-up seals a dead "
                "writer)"
            )
            problems.append(_record_problem(writer_id, ProblemKind.UNCOVERED, tail[0], detail))
    return problems
