"""UserDataStore in SQLite: users' preferences in the shared database file.

Open it with ``store = await SqliteUserDataStore.open(db, keys=vault_keys)``
(migrates at once), or build it with ``SqliteUserDataStore(db, keys=...)``
and let the first call migrate.

One row per preference in ``user_preferences``, keyed by the user ID (as
decimal text: snowflakes do not fit SQLite's signed INTEGER) and the
preference name. The value is its canonical JSON
(:func:`~timmybot_core.ports.user_data.encode_preference`).

The seed classifies preferences as sensitive. With ``keys`` (normally the
vault's :class:`~timmybot_adapters.sqlite.crypto.VaultKeys`) each value is
sealed with AES-256-GCM, and the associated data binds it to its row (user
ID, name, time set, key ID): a value copied to another user or name fails
its integrity check instead of being read as theirs. Such a row makes reads
raise :class:`~timmybot_core.domain.errors.StoreUnavailable` (the message names
neither the user nor the value); deleting needs no decryption, so erasure
always works. Without ``keys`` values are stored as plain JSON: for tests.
Keep retired keys configured until every preference written under them has
been set again or deleted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

from timmybot_adapters.sqlite.database import (
    datetime_to_micros,
    micros_to_datetime,
)
from timmybot_adapters.sqlite.store import SqliteSealedStore
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

__all__ = ["SqliteUserDataStore"]

COMPONENT: Final = "user_data"
CONTEXT: Final = "timmybot/preference/v1"
PAGE: Final = 500
_WHAT: Final = "a stored preference"

# Append only: a released step never changes, a new version is a new step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE user_preferences (
        user_id TEXT NOT NULL,
        key TEXT NOT NULL,
        key_id TEXT,
        nonce BLOB,
        value BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, key)
    ) WITHOUT ROWID;
    """,
)


_SELECT: Final = "SELECT user_id, key, key_id, nonce, value, updated_at FROM user_preferences"


def _subject(user: str, key: str, updated_at: int) -> tuple[str, ...]:
    return (user, key, str(updated_at))


class SqliteUserDataStore(SqliteSealedStore):
    """Preferences of every process sharing one SQLite file.

    Setting a preference checks the user's count and writes in one
    ``BEGIN IMMEDIATE`` transaction, so the limit holds across processes.
    """

    COMPONENT = COMPONENT
    MIGRATIONS = MIGRATIONS
    LABEL = "user data store"
    CONTEXT = CONTEXT
    WHAT = _WHAT

    def _open(self, row: tuple[Any, ...]) -> Preference:
        user, key, key_id, nonce, stored, updated_at = row
        plain = self._unseal(_subject(str(user), str(key), int(updated_at)), key_id, nonce, stored)
        try:
            value = decode_preference(plain.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, TypeError):
            self._fail(f"{_WHAT} is malformed")
        return Preference(key=str(key), value=value, updated_at=micros_to_datetime(updated_at))

    async def get_preferences(self, user_id: int) -> list[Preference]:
        """Return every preference of ``user_id``, sorted by name."""
        user = str(check_user_id(user_id))

        def select(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(
                f"{_SELECT} WHERE user_id = ? ORDER BY key", (user,)
            ).fetchall()

        rows = await self._read("get_preferences", select)
        return [self._open(row) for row in rows]

    async def get_preference(self, user_id: int, key: str) -> Preference | None:
        """Return one preference, or ``None``."""
        user = str(check_user_id(user_id))
        check_preference_key(key)

        def select(connection: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = connection.execute(
                f"{_SELECT} WHERE user_id = ? AND key = ?", (user, key)
            ).fetchone()
            return row

        row = await self._read("get_preference", select)
        return None if row is None else self._open(row)

    async def set_preference(
        self, user_id: int, key: str, value: PreferenceValue, *, at: datetime
    ) -> None:
        """Set a preference; the user's count is checked in the same transaction."""
        user = str(check_user_id(user_id))
        text = encode_preference(key, value)
        updated_at = datetime_to_micros(at)
        key_id, nonce, stored = self._seal(_subject(user, key, updated_at), text.encode("utf-8"))

        def upsert(connection: sqlite3.Connection) -> None:
            exists = connection.execute(
                "SELECT 1 FROM user_preferences WHERE user_id = ? AND key = ?", (user, key)
            ).fetchone()
            if exists is None:
                (count,) = connection.execute(
                    "SELECT COUNT(*) FROM user_preferences WHERE user_id = ?", (user,)
                ).fetchone()
                if count >= MAX_PREFERENCES:
                    raise too_many_preferences(key)
            connection.execute(
                "INSERT INTO user_preferences (user_id, key, key_id, nonce, value, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, key) DO UPDATE SET key_id = excluded.key_id,"
                " nonce = excluded.nonce, value = excluded.value,"
                " updated_at = excluded.updated_at",
                (user, key, key_id, nonce, stored, updated_at),
            )

        await self._write("set_preference", upsert)

    async def delete_preference(self, user_id: int, key: str) -> bool:
        """Delete one preference; ``True`` if it existed."""
        user = str(check_user_id(user_id))
        check_preference_key(key)

        def delete(connection: sqlite3.Connection) -> bool:
            return (
                connection.execute(
                    "DELETE FROM user_preferences WHERE user_id = ? AND key = ?", (user, key)
                ).rowcount
                > 0
            )

        return await self._write("delete_preference", delete)

    async def delete_user(self, user_id: int) -> int:
        """Delete every preference of ``user_id``; return how many (no decryption needed)."""
        user = str(check_user_id(user_id))

        def delete(connection: sqlite3.Connection) -> int:
            return connection.execute(
                "DELETE FROM user_preferences WHERE user_id = ?", (user,)
            ).rowcount

        return await self._write("delete_user", delete)

    async def user_ids(self) -> AsyncIterator[int]:
        """Iterate over every user with preferences, :data:`PAGE` IDs per query.

        Each page is its own snapshot: a user added or removed while the
        iteration runs may or may not be seen; every other user is seen once.
        """
        sql = (
            "SELECT DISTINCT user_id FROM user_preferences WHERE user_id > ?"
            " ORDER BY user_id LIMIT ?"
        )
        async for (user,) in self._paged("user_ids", sql, PAGE):
            yield int(user)
