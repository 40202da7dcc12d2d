"""UserDataStore in memory."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from datetime import datetime

from timmybot_core.domain.clock import as_utc
from timmybot_core.ports.user_data import (
    MAX_PREFERENCES,
    Preference,
    PreferenceValue,
    check_preference_key,
    check_user_id,
    decode_preference,
    encode_preference,
    too_many_preferences,
)

__all__ = ["MemoryUserDataStore"]


class MemoryUserDataStore:
    """Preferences of one process.

    Values are kept in their canonical JSON form, as the SQLite store keeps
    them, so both give back equal, fresh values and refuse the same input.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[int, dict[str, tuple[str, datetime]]] = {}

    def __repr__(self) -> str:
        return f"MemoryUserDataStore(users={len(self._users)})"

    async def get_preferences(self, user_id: int) -> list[Preference]:
        """Return every preference of ``user_id``, sorted by name."""
        user = check_user_id(user_id)
        with self._lock:
            stored = sorted(self._users.get(user, {}).items())
        return [
            Preference(key=key, value=decode_preference(text), updated_at=at)
            for key, (text, at) in stored
        ]

    async def get_preference(self, user_id: int, key: str) -> Preference | None:
        """Return one preference, or ``None``."""
        user = check_user_id(user_id)
        check_preference_key(key)
        with self._lock:
            stored = self._users.get(user, {}).get(key)
        if stored is None:
            return None
        text, at = stored
        return Preference(key=key, value=decode_preference(text), updated_at=at)

    async def set_preference(
        self, user_id: int, key: str, value: PreferenceValue, *, at: datetime
    ) -> None:
        """Set a preference (the limit check and the write hold one lock)."""
        user = check_user_id(user_id)
        text = encode_preference(key, value)
        moment = as_utc(at, "preference times")
        with self._lock:
            preferences = self._users.setdefault(user, {})
            if key not in preferences and len(preferences) >= MAX_PREFERENCES:
                raise too_many_preferences(key)
            preferences[key] = (text, moment)

    async def delete_preference(self, user_id: int, key: str) -> bool:
        """Delete one preference; ``True`` if it existed."""
        user = check_user_id(user_id)
        check_preference_key(key)
        with self._lock:
            preferences = self._users.get(user)
            if preferences is None or key not in preferences:
                return False
            del preferences[key]
            if not preferences:
                del self._users[user]
            return True

    async def delete_user(self, user_id: int) -> int:
        """Delete every preference of ``user_id``; return how many."""
        user = check_user_id(user_id)
        with self._lock:
            return len(self._users.pop(user, {}))

    async def user_ids(self) -> AsyncIterator[int]:
        """Iterate over the users with preferences (a snapshot taken at the start)."""
        with self._lock:
            ids = list(self._users)
        for user_id in ids:
            yield user_id
