"""DigestAnchor in memory (tests, the memory backend)."""

from __future__ import annotations

from timmybot_core.domain.errors import AuditConflict
from timmybot_core.ports.audit import SignedDigest

__all__ = ["MemoryDigestAnchor"]


class MemoryDigestAnchor:
    """Copies of digests in one process: put once, never replaced."""

    def __init__(self) -> None:
        self._copies: dict[str, dict[int, SignedDigest]] = {}

    @property
    def location(self) -> str:
        """Where the copies are."""
        return "memory"

    async def put(self, digest: SignedDigest) -> None:
        """Keep a copy; ``AuditConflict`` if a different one holds its place."""
        mine = self._copies.setdefault(digest.writer_id, {})
        held = mine.get(digest.digest_sequence)
        if held is None:
            mine[digest.digest_sequence] = digest
        elif held != digest:
            raise AuditConflict(
                f"digest anchor: {digest.writer_id}#{digest.digest_sequence} holds another digest"
            )

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        """Return the writer's copies in order."""
        mine = self._copies.get(writer_id, {})
        return [mine[n] for n in sorted(mine)]

    async def writers(self) -> list[str]:
        """Return every writer with a copy."""
        return sorted(self._copies)
