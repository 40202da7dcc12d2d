"""Comparing the audit store's digests with the copies an anchor keeps outside it.

The store's digests are checked against the records by
:mod:`timmybot_core.services.audit_verify`; that proves the records only as
far as the store's digests are the ones that were first written. Someone
who can rewrite the store and holds the signing key can rewrite records
and re-sign digests that agree with them. The anchor's copies
(:class:`~timmybot_core.ports.digest_anchor.DigestAnchor`) were put when
each digest was written, where the store's writer cannot change them, so
every difference is reported, at its digest:

* ``anchor_missing``: a digest of the store has no copy in the anchor (its
  copy failed and was not yet retried, or never will be because the process
  that wrote it ended first, or the store holds a forged digest; nothing
  copies a digest after the fact, see ``docs/audit.md``);
* ``anchor_only``: a copy in the anchor has no digest in the store (the
  digest, or its whole writer, was deleted from the store);
* ``anchor_mismatch``: both exist and differ (the store's was rewritten).
"""

from __future__ import annotations

from datetime import datetime

from timmybot_core.ports.audit import AuditLog, SignedDigest
from timmybot_core.ports.digest_anchor import DigestAnchor
from timmybot_core.services.audit_verify import Problem, ProblemKind

__all__ = ["compare_with_anchor"]


def _differs(ours: SignedDigest, theirs: SignedDigest) -> str:
    if ours.head != theirs.head:
        return (
            f"the store's covers record {ours.head.sequence} with another hash than the "
            f"anchor's copy (record {theirs.head.sequence})"
        )
    return "differs from the anchor's copy"


async def compare_with_anchor(log: AuditLog, anchor: DigestAnchor) -> list[Problem]:
    """Return every difference between the store's and the anchor's digests."""
    problems: list[Problem] = []
    writers = sorted(set(await log.writers()) | set(await anchor.writers()))
    for writer_id in writers:
        ours = {d.digest_sequence: d for d in await log.digests(writer_id)}
        theirs = {d.digest_sequence: d for d in await anchor.digests(writer_id)}
        for sequence in sorted(ours.keys() | theirs.keys()):
            mine, copy = ours.get(sequence), theirs.get(sequence)
            at: datetime
            if mine is not None and copy is None:
                kind, at, detail = (
                    ProblemKind.ANCHOR_MISSING,
                    mine.created_at,
                    f"has no copy in the digest anchor ({anchor.location})",
                )
            elif mine is None and copy is not None:
                kind, at, detail = (
                    ProblemKind.ANCHOR_ONLY,
                    copy.created_at,
                    f"is in the digest anchor but gone from the audit store (covers records "
                    f"{copy.covers_from}-{copy.head.sequence})",
                )
            elif mine is not None and copy is not None and mine != copy:
                kind, at, detail = (
                    ProblemKind.ANCHOR_MISMATCH,
                    copy.created_at,
                    _differs(mine, copy),
                )
            else:
                continue
            problems.append(
                Problem(
                    kind=kind, writer_id=writer_id, digest_sequence=sequence, at=at, detail=detail
                )
            )
    return problems
