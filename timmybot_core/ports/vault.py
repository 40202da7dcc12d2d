"""The token vault: one record per user, every linked platform inside."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from timmybot_core.domain.tokens import UserTokens

__all__ = ["TokenVault"]


@runtime_checkable
class TokenVault(Protocol):
    """Stores users' OAuth tokens.

    ``None`` from :meth:`get` means "never linked". A vault that cannot
    answer raises :class:`~timmybot_core.domain.errors.VaultUnavailable` (or its
    subclass ``VaultIntegrityError`` for a record that fails its integrity
    check), so an outage is never mistaken for an unlinked user.
    """

    async def get(self, user_id: int) -> UserTokens | None:
        """Return the user's record with its ``version`` set, or ``None``."""
        ...

    async def put(self, user_id: int, record: UserTokens, *, expected_version: str | None) -> str:
        """Store ``record`` if the stored version is ``expected_version``; return the new version.

        ``expected_version=None`` means "only if there is no record yet". A
        mismatch raises :class:`~timmybot_core.domain.errors.VersionConflict` and
        changes nothing.
        """
        ...

    async def delete(self, user_id: int, *, expected_version: str | None = None) -> bool:
        """Delete the user's record; ``True`` if there was one.

        ``expected_version=None`` deletes whatever is stored (erasure).
        Otherwise the record goes only if its stored version is
        ``expected_version``: a mismatch, or no record at all, raises
        :class:`~timmybot_core.domain.errors.VersionConflict` and changes
        nothing, so a link written since the caller's read is never deleted.
        """
        ...

    def user_ids(self) -> AsyncIterator[int]:
        """Iterate over the IDs of every user with a record."""
        ...
