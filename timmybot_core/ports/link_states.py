"""Pending account-link states: bound to a user and platform, single use, expiring."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["LinkState", "LinkStateStore", "TakeOutcome", "TakeResult"]


@attrs.frozen(kw_only=True, repr=False)
class LinkState:
    """A started link: who, which platform, the PKCE verifier, until when.

    Stores keep it under ``state_hash`` (SHA-256 of the state value), never
    under the state itself, so a copy of the store cannot complete a flow.
    """

    state_hash: str
    user_id: int
    platform: str
    code_verifier: str = attrs.field(repr=False)
    created_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        return (
            f"LinkState(user_id={self.user_id}, platform={self.platform!r}, "
            f"expires_at={self.expires_at.isoformat()!r})"
        )


class TakeOutcome(enum.StrEnum):
    """What :meth:`LinkStateStore.take` found."""

    TAKEN = "taken"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


@attrs.frozen(kw_only=True)
class TakeResult:
    """The outcome of a take, and the state when it was ``TAKEN``."""

    outcome: TakeOutcome
    state: LinkState | None = None


@runtime_checkable
class LinkStateStore(Protocol):
    """Keeps pending link states. May raise ``StoreUnavailable``."""

    async def add(self, state: LinkState) -> None:
        """Store a new state."""
        ...

    async def take(self, state_hash: str, *, now: datetime) -> TakeResult:
        """Atomically consume a state: exactly one caller ever gets ``TAKEN``.

        A consumed state is remembered (``USED``) until it would have
        expired, so a replay is told apart from an unknown state.
        """
        ...

    async def delete_user(self, user_id: int) -> int:
        """Delete every state of ``user_id``; return how many."""
        ...

    async def purge_expired(self, *, now: datetime) -> int:
        """Delete expired states and spent markers; return how many."""
        ...
