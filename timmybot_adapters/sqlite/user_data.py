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

import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final, Self

from timmybot_adapters.sqlite.crypto import AeadCipher, IntegrityFailure, Sealed, VaultKeys
from timmybot_adapters.sqlite.database import (
    SqliteDatabase,
    datetime_to_micros,
    micros_to_datetime,
)
from timmybot_adapters.sqlite.store import SqliteStore
from timmybot_core.domain.errors import StoreUnavailable
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

_log = logging.getLogger("timmybot.user_data")


def _subject(user: str, key: str, updated_at: int) -> tuple[str, ...]:
    return (user, key, str(updated_at))


class SqliteUserDataStore(SqliteStore):
    """Preferences of every process sharing one SQLite file.

    Setting a preference checks the user's count and writes in one
    ``BEGIN IMMEDIATE`` transaction, so the limit holds across processes.
    """

    COMPONENT = COMPONENT
    MIGRATIONS = MIGRATIONS
    LABEL = "user data store"

    def __init__(self, db: SqliteDatabase, *, keys: VaultKeys | None = None) -> None:
        """Use ``db``; encrypt values with ``keys`` if given. No I/O happens here."""
        super().__init__(db)
        self._cipher = AeadCipher(keys, context=CONTEXT) if keys is not None else None

    def __repr__(self) -> str:
        keys = self._cipher.keys if self._cipher is not None else None
        return f"SqliteUserDataStore(db={self._db!r}, keys={keys!r})"

    @classmethod
    async def open(cls, db: SqliteDatabase, *, keys: VaultKeys | None = None) -> Self:
        """Create or upgrade the store's tables in ``db`` and return the store.

        Raises:
            SchemaVersionError: ``db`` was written by a newer release.
            StoreUnavailable: the database could not be opened or migrated.

        """
        await db.migrate(COMPONENT, MIGRATIONS)
        return cls(db, keys=keys)

    def _seal(self, user: str, key: str, updated_at: int, text: str) -> tuple[Any, ...]:
        plain = text.encode("utf-8")
        if self._cipher is None:
            return (None, None, plain)
        sealed = self._cipher.seal(_subject(user, key, updated_at), plain)
        return (sealed.key_id, sealed.nonce, sealed.ciphertext)

    def _open(self, row: tuple[Any, ...]) -> Preference:
        user, key, key_id, nonce, stored, updated_at = row
        try:
            if self._cipher is None:
                if key_id is not None:
                    raise IntegrityFailure(
                        f"{_WHAT} is encrypted, but this store has no keys", unknown_key=True
                    )
                plain = bytes(stored)
            else:
                if key_id is None or nonce is None:
                    raise IntegrityFailure(
                        f"{_WHAT} is stored unencrypted, but this store encrypts",
                        unknown_key=False,
                    )
                sealed = Sealed(key_id=key_id, nonce=nonce, ciphertext=stored)
                plain = self._cipher.open(
                    _subject(str(user), str(key), int(updated_at)), sealed, what=_WHAT
                )
            value = decode_preference(plain.decode("utf-8"))
        except IntegrityFailure as failure:
            _log.error("user data store: %s", failure)
            raise StoreUnavailable(f"user data store: {failure}") from None
        except (UnicodeDecodeError, ValueError, TypeError):
            message = f"{_WHAT} is malformed"
            _log.error("user data store: %s", message)
            raise StoreUnavailable(f"user data store: {message}") from None
        return Preference(key=str(key), value=value, updated_at=micros_to_datetime(updated_at))

    async def get_preferences(self, user_id: int) -> list[Preference]:
        """Return every preference of ``user_id``, sorted by name."""
        user = str(check_user_id(user_id))

        def select(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(
                "SELECT user_id, key, key_id, nonce, value, updated_at FROM user_preferences"
                " WHERE user_id = ? ORDER BY key",
                (user,),
            ).fetchall()

        rows = await self._read("get_preferences", select)
        return [self._open(row) for row in rows]

    async def get_preference(self, user_id: int, key: str) -> Preference | None:
        """Return one preference, or ``None``."""
        user = str(check_user_id(user_id))
        check_preference_key(key)

        def select(connection: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = connection.execute(
                "SELECT user_id, key, key_id, nonce, value, updated_at FROM user_preferences"
                " WHERE user_id = ? AND key = ?",
                (user, key),
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
        key_id, nonce, stored = self._seal(user, key, updated_at, text)

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
        after = ""
        while True:

            def page(connection: sqlite3.Connection, after: str = after) -> list[str]:
                return [
                    str(row[0])
                    for row in connection.execute(
                        "SELECT DISTINCT user_id FROM user_preferences WHERE user_id > ?"
                        " ORDER BY user_id LIMIT ?",
                        (after, PAGE),
                    )
                ]

            ids = await self._read("user_ids", page)
            for user in ids:
                yield int(user)
            if len(ids) < PAGE:
                return
            after = ids[-1]
