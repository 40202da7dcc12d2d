"""Refresh leases: the cross-process claim on one link's refresh, kept beside the vault.

A vault whose every write costs (a Secrets Manager version, a fee, a quota)
keeps the claim out of the record: the token service takes a lease here,
presents the refresh token, writes the one new record, and releases the
lease. Vaults with cheap local writes (memory, SQLite) keep the claim in
the record instead and need no lease (see :mod:`timmybot_core.services.tokens`).

Expiry is never judged by the store: a lease has no deadline that a store
compares with its clock. A waiting process watches :meth:`RefreshLeases.holder`
on its own monotonic clock and, once the same holder was seen unchanged
for the claim timeout, takes the lease over with ``replaces=<that holder>``.

The *fence* is a digest of the refresh token the holder presents. A lease
released with ``spent=True`` keeps it: the token was presented and rotated
away, so a process whose (stale) read of the vault still shows that token
is refused, and never presents it a second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = ["RefreshLeases", "check_claim"]


def check_claim(claim_id: str, fence: str) -> None:
    """Refuse an acquire without a claim ID or a fence (every store's first check)."""
    if not claim_id or not fence:
        raise ValueError("a refresh lease needs a claim ID and a fence")


@runtime_checkable
class RefreshLeases(Protocol):
    """One lease per (user, platform): who is refreshing that link now.

    Stores raise :class:`~timmybot_core.domain.errors.StoreUnavailable` when
    they cannot answer; a refused acquire or release is ``False``, never an
    error.
    """

    async def holder(self, user_id: int, platform: str) -> str | None:
        """Return the claim ID holding the lease now, or ``None`` if it is free."""
        ...

    async def acquire(
        self,
        user_id: int,
        platform: str,
        *,
        claim_id: str,
        fence: str,
        until: datetime,
        replaces: str | None = None,
    ) -> bool:
        """Take the lease for ``claim_id``; ``True`` if taken.

        With ``replaces=None``: only if no one holds it and ``fence`` is not
        the fence a spent release kept. With ``replaces=X``: only if ``X``
        still holds it with the same ``fence`` (a takeover of a holder
        watched for the whole claim timeout). ``until`` is the holder's own
        deadline, kept for operators only: no store compares it with a clock.
        """
        ...

    async def release(self, user_id: int, platform: str, *, claim_id: str, spent: bool) -> bool:
        """Free the lease if ``claim_id`` holds it; ``True`` if it did.

        ``spent=True`` keeps the fence (the refresh token was presented and
        replaced); ``spent=False`` drops it (the token is still good).
        """
        ...

    async def forget(self, user_id: int) -> None:
        """Delete every lease of ``user_id`` (erasure)."""
        ...
