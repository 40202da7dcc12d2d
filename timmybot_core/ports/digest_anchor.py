"""The digest anchor: copies of the signed audit digests, kept outside the audit store.

Digests prove the records they cover, but they live in the same store as
the records: whoever can rewrite that store and holds the signing key can
rewrite both. An anchor keeps a second copy of every digest somewhere the
store's writer cannot change after the fact (an S3 bucket with Object Lock
in compliance mode; a directory on another disk or host), and verification
compares the two (:mod:`timmybot_core.services.audit_anchor`).

An anchor only ever adds: a digest is put once and never replaced.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from timmybot_core.ports.audit import SignedDigest

__all__ = ["DigestAnchor"]


@runtime_checkable
class DigestAnchor(Protocol):
    """Stores copies of signed digests. Every method may raise ``StoreUnavailable``."""

    @property
    def location(self) -> str:
        """Where the copies are, for reports (``s3://bucket/prefix``, a directory)."""
        ...

    async def put(self, digest: SignedDigest) -> None:
        """Keep a copy of ``digest``.

        Putting the same digest again does nothing; a different digest at a
        writer's ``digest_sequence`` that already has one raises
        :class:`~timmybot_core.domain.errors.AuditConflict` and leaves the
        first copy as it was.
        """
        ...

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        """Return the writer's copies in ``digest_sequence`` order (the first kept of each)."""
        ...

    async def writers(self) -> list[str]:
        """Return every writer with a copy, sorted."""
        ...
