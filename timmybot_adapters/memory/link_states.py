"""LinkStateStore in memory."""

from __future__ import annotations

import threading
from datetime import datetime

from timmybot_adapters.memory._dicts import delete_where
from timmybot_core.ports.link_states import (
    LinkState,
    TakeOutcome,
    TakeResult,
    erasure_barrier_key,
)

__all__ = ["MemoryLinkStateStore"]


class MemoryLinkStateStore:
    """Pending link states of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, LinkState] = {}
        self._spent: dict[str, datetime] = {}
        # erasure_barrier_key(user ID) -> (erased at, kept until)
        self._barriers: dict[str, tuple[datetime, datetime]] = {}

    async def add(self, state: LinkState) -> None:
        """Store a new state."""
        with self._lock:
            self._states[state.state_hash] = state

    async def take(self, state_hash: str, *, now: datetime) -> TakeResult:
        """Consume a state atomically."""
        with self._lock:
            state = self._states.pop(state_hash, None)
            if state is None:
                spent = self._spent.get(state_hash)
                if spent is not None and now < spent:
                    return TakeResult(outcome=TakeOutcome.USED)
                return TakeResult(outcome=TakeOutcome.UNKNOWN)
            if now >= state.expires_at:
                return TakeResult(outcome=TakeOutcome.EXPIRED)
            self._spent[state_hash] = state.expires_at
            return TakeResult(outcome=TakeOutcome.TAKEN, state=state)

    async def delete_user(self, user_id: int) -> int:
        """Delete every state of ``user_id``."""
        with self._lock:
            return delete_where(self._states, lambda _, state: state.user_id == user_id)

    async def add_erasure_barrier(
        self, user_id: int, *, erased_at: datetime, until: datetime
    ) -> None:
        """Record the user's erasure; the latest times win."""
        key = erasure_barrier_key(user_id)
        with self._lock:
            old_at, old_until = self._barriers.get(key, (erased_at, until))
            self._barriers[key] = (max(old_at, erased_at), max(old_until, until))

    async def erasure_barrier(self, user_id: int, *, now: datetime) -> datetime | None:
        """Return when the user's data was erased, if the barrier is kept at ``now``."""
        with self._lock:
            barrier = self._barriers.get(erasure_barrier_key(user_id))
        return barrier[0] if barrier is not None and now < barrier[1] else None

    async def purge_expired(self, *, now: datetime) -> int:
        """Delete expired states, spent markers and erasure barriers."""
        with self._lock:
            states = delete_where(self._states, lambda _, state: now >= state.expires_at)
            spent = delete_where(self._spent, lambda _, until: now >= until)
            return states + spent + delete_where(self._barriers, lambda _, kept: now >= kept[1])
