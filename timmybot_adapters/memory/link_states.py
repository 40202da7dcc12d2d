"""LinkStateStore in memory."""

from __future__ import annotations

import threading
from datetime import datetime

from timmybot_adapters.memory._dicts import delete_where
from timmybot_core.ports.link_states import LinkState, TakeOutcome, TakeResult

__all__ = ["MemoryLinkStateStore"]


class MemoryLinkStateStore:
    """Pending link states of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, LinkState] = {}
        self._spent: dict[str, datetime] = {}

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

    async def purge_expired(self, *, now: datetime) -> int:
        """Delete expired states and spent markers."""
        with self._lock:
            states = delete_where(self._states, lambda _, state: now >= state.expires_at)
            return states + delete_where(self._spent, lambda _, until: now >= until)
