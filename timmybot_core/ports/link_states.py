"""Pending account-link states: bound to a user and platform, single use, expiring.

The store also keeps *erasure barriers*: the time a user's data was last
erased, so that a link started before the erasure cannot complete after it
(the erasure writes the barrier before it touches any store; a completing
link stores its tokens, then reads the barrier, and withdraws them if the
barrier is not older than the link). A barrier holds a hash of the user's
ID (:func:`erasure_barrier_key`, so the erased ID itself is in no store) and
two times only, and is purged with expired states.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime, timedelta
from typing import Final, Protocol, runtime_checkable

import attrs

from timmybot_core.domain.snowflake import check_snowflake

__all__ = [
    "ERASURE_BARRIER_TTL",
    "LinkState",
    "LinkStateStore",
    "TakeOutcome",
    "TakeResult",
    "erasure_barrier_key",
]

#: How long an erasure barrier is kept. A link started before the erasure
#: checks the barrier at the latest when its state expires (10 minutes) plus
#: the code exchange (seconds): kept well beyond that, it is always found.
ERASURE_BARRIER_TTL: Final = timedelta(hours=1)


def erasure_barrier_key(user_id: int) -> str:
    """Return the key a store keeps ``user_id``'s erasure barrier under: a SHA-256 hash.

    Every adapter uses this, so the user's ID is never stored after their erasure.
    """
    user = check_snowflake(user_id, what="a user ID", allow_zero=True)
    return hashlib.sha256(b"timmybot/erasure-barrier/v1\x00" + str(user).encode()).hexdigest()


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
        """Delete every state of ``user_id``; return how many (erasure barriers stay)."""
        ...

    async def add_erasure_barrier(
        self, user_id: int, *, erased_at: datetime, until: datetime
    ) -> None:
        """Record that ``user_id``'s data is erased at ``erased_at``, kept until ``until``.

        Only the latest barrier of a user is kept: an earlier ``erased_at``
        (or ``until``) never replaces a later one.
        """
        ...

    async def erasure_barrier(self, user_id: int, *, now: datetime) -> datetime | None:
        """Return the ``erased_at`` of ``user_id``'s barrier; ``None`` if none is kept at ``now``.

        A strongly consistent read: a barrier written before the call began is seen.
        """
        ...

    async def purge_expired(self, *, now: datetime) -> int:
        """Delete expired states, spent markers and erasure barriers; return how many."""
        ...
