"""TokenVault in memory."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

from timmybot_core.domain.errors import VersionConflict
from timmybot_core.domain.tokens import UserTokens

__all__ = ["MemoryTokenVault"]


class MemoryTokenVault:
    """Token records of one process, kept in their storage form (JSON)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[int, tuple[int, str]] = {}
        # One counter for the whole vault: a version is never reused, even
        # after a delete, so a writer holding a version from before the
        # delete cannot overwrite the new record.
        self._counter = 0

    async def get(self, user_id: int) -> UserTokens | None:
        """Return the user's record, or ``None``."""
        with self._lock:
            stored = self._records.get(user_id)
        if stored is None:
            return None
        version, text = stored
        return UserTokens.from_json(text, version=str(version))

    async def put(self, user_id: int, record: UserTokens, *, expected_version: str | None) -> str:
        """Compare-and-set the user's record; return the new version."""
        if record.user_id != user_id:
            raise ValueError("the record belongs to another user")
        text = record.to_json()
        with self._lock:
            self._check_version(user_id, expected_version)
            self._counter += 1
            self._records[user_id] = (self._counter, text)
            return str(self._counter)

    async def delete(self, user_id: int, *, expected_version: str | None = None) -> bool:
        """Delete the user's record (only at ``expected_version`` if given); ``True`` if one was."""
        with self._lock:
            if expected_version is not None:
                self._check_version(user_id, expected_version)
            return self._records.pop(user_id, None) is not None

    def _check_version(self, user_id: int, expected: str | None) -> None:
        # Under the lock: raise unless the stored version is ``expected`` (None: no record).
        stored = self._records.get(user_id)
        if (str(stored[0]) if stored is not None else None) != expected:
            raise VersionConflict("the token record changed since it was read")

    async def user_ids(self) -> AsyncIterator[int]:
        """Iterate over the users with a record (a snapshot taken at the start)."""
        with self._lock:
            ids = sorted(self._records)
        for user_id in ids:
            yield user_id
