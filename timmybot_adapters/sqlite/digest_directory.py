"""DigestAnchor in a directory: the embedded default's copy of the audit digests.

Point ``TIMMYBOT_AUDIT_DIGEST_DIR`` at another disk, a mounted share of
another host, or a directory an off-site backup copies away: whoever
rewrites the SQLite database then still has to reach this directory to hide
it. Layout::

    <dir>/<writer ID as hex>/<digest sequence, 20 digits>.json

Each file is :func:`~timmybot_core.domain.audit_chain.digest_bytes` (the
digest, its hash and signature as canonical JSON). A file is created once:
written to a temporary name, flushed to disk, then hard-linked to its
final name, which fails if that name exists, so two writers never both
win and a crash leaves no half file under a final name. Files are made
read-only (0444). This is not Object Lock: the directory's owner can still
delete files; keep it where the bot's own account cannot (another host's
share, append-only storage) for the guarantee to hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from timmybot_core.domain.audit_chain import digest_bytes, digest_from_bytes
from timmybot_core.domain.errors import AuditConflict, StoreUnavailable
from timmybot_core.ports.audit import SignedDigest

__all__ = ["DirectoryDigestAnchor"]

P = ParamSpec("P")
T = TypeVar("T")


class DirectoryDigestAnchor:
    """Copies of the audit digests as files in ``directory`` (created if absent)."""

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)

    def __repr__(self) -> str:
        return f"DirectoryDigestAnchor({str(self._directory)!r})"

    @property
    def location(self) -> str:
        """The directory."""
        return str(self._directory)

    def _path(self, writer_id: str, digest_sequence: int) -> Path:
        return self._directory / writer_id.encode("utf-8").hex() / f"{digest_sequence:020d}.json"

    async def put(self, digest: SignedDigest) -> None:
        """Keep a copy; ``AuditConflict`` if a different one holds its place."""
        await self._blocking("put", self._put, digest)

    def _put(self, digest: SignedDigest) -> None:
        data = digest_bytes(digest)
        final = self._path(digest.writer_id, digest.digest_sequence)
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        temporary = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, final)
            except FileExistsError:
                if final.read_bytes() != data:
                    raise AuditConflict(
                        f"digest anchor: {digest.writer_id}#{digest.digest_sequence} "
                        "holds another digest"
                    ) from None
                return
            directory = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        """Return the writer's copies in order (``StoreUnavailable`` for an unreadable file)."""
        return await self._blocking("read", self._digests, writer_id)

    def _digests(self, writer_id: str) -> list[SignedDigest]:
        folder = self._directory / writer_id.encode("utf-8").hex()
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.json")):
            try:
                found.append(digest_from_bytes(path.read_bytes()))
            except ValueError as error:
                raise StoreUnavailable(
                    f"digest anchor: {path.name} of writer {writer_id} is unreadable ({error})"
                ) from None
        return found

    async def writers(self) -> list[str]:
        """Return every writer with a copy."""
        return await self._blocking("list", self._writers)

    def _writers(self) -> list[str]:
        if not self._directory.is_dir():
            return []
        names = []
        for entry in self._directory.iterdir():
            try:
                names.append(bytes.fromhex(entry.name).decode("utf-8"))
            except (ValueError, UnicodeError):
                continue  # not ours
        return sorted(names)

    async def _blocking(
        self, operation: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except OSError as error:
            raise StoreUnavailable(
                f"digest anchor: {operation} in {self._directory} failed ({error.strerror})"
            ) from None
