"""LinkStateStore in SQLite: pending account links shared by every process.

Open it with ``store = await SqliteLinkStateStore.open(db, keys=vault_keys)``,
or build it with ``SqliteLinkStateStore(db, keys=vault_keys)`` without I/O
and let the first call migrate.

Pending states live in ``link_states``, keyed by ``state_hash`` (the state
value itself is never stored). A taken state moves to ``link_states_spent``,
which keeps only the hash and the state's expiry, so a replay reads as
``USED`` until then, and erasing a user (:meth:`SqliteLinkStateStore.delete_user`)
leaves no trace of them in spent markers. ``link_erasures`` keeps each
user's erasure barrier (a hash of the user ID, never the ID; the erasure time;
its end), which an erasure leaves in place and
:meth:`SqliteLinkStateStore.purge_expired` deletes at its end.

The PKCE ``code_verifier`` is short-lived (ten minutes) and useless without
the authorization code, but it is still a secret of the flow. With ``keys``
(normally the vault's :class:`~timmybot_adapters.sqlite.crypto.VaultKeys`)
it is sealed with AES-256-GCM, and the associated data binds it to the whole
row (state hash, user ID, platform, creation and expiry times, key ID): a
row edited to point at another user or to live longer fails its integrity
check instead of completing a link. Without ``keys`` the verifier is stored
as is and rows are not authenticated; use that for tests only.

A row that fails its integrity check, or is under a key ID not configured,
makes :meth:`~SqliteLinkStateStore.take` raise
:class:`~timmybot_core.domain.errors.StoreUnavailable` (the state is not consumed,
and it expires like any other); the message names neither the user nor the
verifier. After a key rotation, keep the old key configured for the ten
minutes a pending state lives, or those links fail and must be started again.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Final

from timmybot_adapters.sqlite.database import (
    datetime_to_micros,
    micros_to_datetime,
)
from timmybot_adapters.sqlite.store import SqliteSealedStore
from timmybot_core.domain.snowflake import check_snowflake
from timmybot_core.ports.link_states import (
    LinkState,
    TakeOutcome,
    TakeResult,
    erasure_barrier_key,
)

__all__ = ["SqliteLinkStateStore"]

COMPONENT: Final = "link_states"
CONTEXT: Final = "timmybot/link-state/v1"
_WHAT: Final = "a pending link state"

# Append only: a released step never changes, a new version is a new step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE link_states (
        state_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        platform TEXT NOT NULL,
        key_id TEXT,
        nonce BLOB,
        code_verifier BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX link_states_by_user ON link_states (user_id);
    CREATE INDEX link_states_by_expiry ON link_states (expires_at);
    CREATE TABLE link_states_spent (
        state_hash TEXT PRIMARY KEY,
        until INTEGER NOT NULL
    );
    CREATE INDEX link_states_spent_by_end ON link_states_spent (until);
    """,
    """
    CREATE TABLE link_erasures (
        user_key TEXT PRIMARY KEY,
        erased_at INTEGER NOT NULL,
        until INTEGER NOT NULL
    );
    CREATE INDEX link_erasures_by_end ON link_erasures (until);
    """,
)


def _user(user_id: int) -> str:
    return str(check_snowflake(user_id, what="a user ID", allow_zero=True))


def _subject(
    state_hash: str, user: str, platform: str, created_at: int, expires_at: int
) -> tuple[str, ...]:
    return (state_hash, user, platform, str(created_at), str(expires_at))


class SqliteLinkStateStore(SqliteSealedStore):
    """Pending link states of every process sharing one SQLite file.

    :meth:`take` runs in one ``BEGIN IMMEDIATE`` transaction: of any number
    of callers, in any number of processes, exactly one gets ``TAKEN``.
    """

    COMPONENT = COMPONENT
    MIGRATIONS = MIGRATIONS
    LABEL = "link state store"
    CONTEXT = CONTEXT
    WHAT = _WHAT

    async def add(self, state: LinkState) -> None:
        """Store a new state (a state with the same hash is replaced)."""
        user = _user(state.user_id)
        created_at = datetime_to_micros(state.created_at)
        expires_at = datetime_to_micros(state.expires_at)
        subject = _subject(state.state_hash, user, state.platform, created_at, expires_at)
        key_id, nonce, verifier = self._seal(subject, state.code_verifier.encode("utf-8"))
        values = (
            state.state_hash,
            user,
            state.platform,
            key_id,
            nonce,
            verifier,
            created_at,
            expires_at,
        )

        def insert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO link_states (state_hash, user_id, platform, key_id, nonce,"
                " code_verifier, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (state_hash) DO UPDATE SET user_id = excluded.user_id,"
                " platform = excluded.platform, key_id = excluded.key_id,"
                " nonce = excluded.nonce, code_verifier = excluded.code_verifier,"
                " created_at = excluded.created_at, expires_at = excluded.expires_at",
                values,
            )

        await self._write("add", insert)

    def _verifier(
        self, subject: tuple[str, ...], key_id: str | None, nonce: bytes | None, stored: bytes
    ) -> str:
        """Return the stored verifier, decrypted and authenticated when keys are configured."""
        plain = self._unseal(subject, key_id, nonce, stored)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(f"{_WHAT} holds a malformed verifier")

    async def take(self, state_hash: str, *, now: datetime) -> TakeResult:
        """Consume a state atomically: exactly one caller ever gets ``TAKEN``.

        ``USED`` while a consumed state would not have expired yet;
        ``EXPIRED`` (and the state is deleted) at or after its expiry;
        ``UNKNOWN`` otherwise.

        Raises:
            StoreUnavailable: the database could not answer, or the row failed
                its integrity check (the state is then left in place).

        """
        current = datetime_to_micros(now)

        def take(connection: sqlite3.Connection) -> TakeResult:
            row = connection.execute(
                "SELECT user_id, platform, key_id, nonce, code_verifier, created_at, expires_at"
                " FROM link_states WHERE state_hash = ?",
                (state_hash,),
            ).fetchone()
            if row is None:
                spent = connection.execute(
                    "SELECT until FROM link_states_spent WHERE state_hash = ?", (state_hash,)
                ).fetchone()
                if spent is not None and current < int(spent[0]):
                    return TakeResult(outcome=TakeOutcome.USED)
                return TakeResult(outcome=TakeOutcome.UNKNOWN)
            user, platform, key_id, nonce, stored, created_at, expires_at = row
            connection.execute("DELETE FROM link_states WHERE state_hash = ?", (state_hash,))
            if current >= int(expires_at):
                return TakeResult(outcome=TakeOutcome.EXPIRED)
            subject = _subject(state_hash, str(user), str(platform), created_at, expires_at)
            verifier = self._verifier(subject, key_id, nonce, stored)
            connection.execute(
                "INSERT INTO link_states_spent (state_hash, until) VALUES (?, ?)"
                " ON CONFLICT (state_hash) DO UPDATE SET until = excluded.until",
                (state_hash, expires_at),
            )
            state = LinkState(
                state_hash=state_hash,
                user_id=int(user),
                platform=str(platform),
                code_verifier=verifier,
                created_at=micros_to_datetime(int(created_at)),
                expires_at=micros_to_datetime(int(expires_at)),
            )
            return TakeResult(outcome=TakeOutcome.TAKEN, state=state)

        return await self._write("take", take)

    async def delete_user(self, user_id: int) -> int:
        """Delete every pending state of ``user_id``; return how many.

        Spent markers hold no user ID, so nothing of the user remains.
        """
        user = _user(user_id)

        def delete(connection: sqlite3.Connection) -> int:
            return connection.execute("DELETE FROM link_states WHERE user_id = ?", (user,)).rowcount

        return await self._write("delete_user", delete)

    async def add_erasure_barrier(
        self, user_id: int, *, erased_at: datetime, until: datetime
    ) -> None:
        """Record the user's erasure; the latest times win."""
        key = erasure_barrier_key(user_id)
        values = (key, datetime_to_micros(erased_at), datetime_to_micros(until))

        def upsert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO link_erasures (user_key, erased_at, until) VALUES (?, ?, ?)"
                " ON CONFLICT (user_key) DO UPDATE SET"
                " erased_at = max(erased_at, excluded.erased_at),"
                " until = max(until, excluded.until)",
                values,
            )

        await self._write("add_erasure_barrier", upsert)

    async def erasure_barrier(self, user_id: int, *, now: datetime) -> datetime | None:
        """Return when the user's data was erased, if the barrier is kept at ``now``."""
        key = erasure_barrier_key(user_id)
        current = datetime_to_micros(now)

        def select(connection: sqlite3.Connection) -> datetime | None:
            row = connection.execute(
                "SELECT erased_at FROM link_erasures WHERE user_key = ? AND until > ?",
                (key, current),
            ).fetchone()
            return None if row is None else micros_to_datetime(int(row[0]))

        return await self._read("erasure_barrier", select)

    async def purge_expired(self, *, now: datetime) -> int:
        """Delete expired states, spent markers and erasure barriers; return how many."""
        current = datetime_to_micros(now)

        def purge(connection: sqlite3.Connection) -> int:
            states = connection.execute(
                "DELETE FROM link_states WHERE expires_at <= ?", (current,)
            ).rowcount
            spent = connection.execute(
                "DELETE FROM link_states_spent WHERE until <= ?", (current,)
            ).rowcount
            barriers = connection.execute(
                "DELETE FROM link_erasures WHERE until <= ?", (current,)
            ).rowcount
            return states + spent + barriers

        return await self._write("purge_expired", purge)
