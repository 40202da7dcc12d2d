"""RateLimitStore in SQLite: one limit per key for every process on one machine.

Open it with ``store = await SqliteRateLimitStore.open(db)`` (migrates at
once) or build it with ``SqliteRateLimitStore(db)`` and let the first call
migrate.

Layout: one row per key in ``rate_limit_keys``::

    key      TEXT PRIMARY KEY  the key (visible ASCII, checked by the port)
    hits     TEXT              the hit log, JSON [[moment, hit id], ...] by moment
    expires  REAL              last hit + window: after it, no hit of the row counts

Why one row holding a JSON log rather than a row per hit: an acquire is
then one primary-key lookup and at most one row write, whatever the limit;
the log is at most :data:`~timmybot_core.ports.rate_limits.MAX_LIMIT` hits,
so reading and rewriting it is bounded; and it is the layout of the
DynamoDB adapter (one item per key, which a single conditional write
needs there), so both stores run the port's one window step
(:func:`~timmybot_core.ports.rate_limits.take_hit`) on the same data.

Atomicity: the prune, the read and the write of an acquire share one
``BEGIN IMMEDIATE`` transaction, which holds the file's write lock from its
first statement: across every process on the file, the acquires of a key
are serialized, so exactly ``limit`` hits are allowed in a window.

Bounded growth: every acquire first deletes up to ``_PRUNE_PER_CALL`` other
rows whose ``expires`` has passed (through the index on ``expires``), so
the table holds about the keys hit within their window, whatever number
of keys came and went. A release that empties a log deletes its row.

A row whose log cannot be read (a damaged file) makes acquire and release
of that key raise ``StoreUnavailable``, never allow; it is pruned like any
other once its ``expires`` has passed.
"""

from __future__ import annotations

import secrets
import sqlite3
from typing import Final

from timmybot_adapters.sqlite.store import SqliteStore
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.ports.rate_limits import (
    Hit,
    RateDecision,
    RateLimit,
    check_hit_id,
    check_key,
    check_moment,
    decode_hits,
    drop_hit,
    encode_hits,
    expiry_of,
    take_hit,
)

__all__ = ["SqliteRateLimitStore"]

COMPONENT = "rate_limits"

# Append only: a released step never changes, a new version is a new step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE rate_limit_keys (
        key TEXT PRIMARY KEY,
        hits TEXT NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX rate_limit_keys_by_expiry ON rate_limit_keys (expires);
    """,
)

# Expired rows deleted by one acquire: more than the one row an acquire can
# add, so the expired rows shrink while keys keep coming, and few enough
# that one call never stalls the file's single writer.
_PRUNE_PER_CALL: Final = 8


def _hits(connection: sqlite3.Connection, key: str) -> list[Hit]:
    row = connection.execute("SELECT hits FROM rate_limit_keys WHERE key = ?", (key,)).fetchone()
    if row is None:
        return []
    try:
        return decode_hits(row[0])
    except ValueError as error:
        raise StoreUnavailable(f"rate limit store: a key's row is damaged ({error})") from None


class SqliteRateLimitStore(SqliteStore):
    """The rate-limit store of every process sharing one SQLite file (see the module)."""

    COMPONENT = COMPONENT
    MIGRATIONS = MIGRATIONS
    LABEL = "rate limit store"

    async def acquire(self, key: str, rate: RateLimit, *, now: float) -> RateDecision:
        """Count one hit of ``key`` at ``now`` if the window has room (one transaction)."""
        check_key(key)
        moment = check_moment(now)
        hit_id = secrets.token_hex(8)

        def step(connection: sqlite3.Connection) -> RateDecision:
            connection.execute(
                "DELETE FROM rate_limit_keys WHERE rowid IN (SELECT rowid FROM rate_limit_keys"
                " WHERE expires <= ? AND key <> ? LIMIT ?)",
                (moment, key, _PRUNE_PER_CALL),
            )
            decision, kept = take_hit(_hits(connection, key), rate, now=moment, hit_id=hit_id)
            if decision.allowed:
                connection.execute(
                    "INSERT INTO rate_limit_keys (key, hits, expires) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET hits = excluded.hits,"
                    " expires = excluded.expires",
                    (key, encode_hits(kept), expiry_of(kept, rate.window)),
                )
            # A refusal writes nothing: the hits it forgot are forgotten by
            # the next allowed hit, or the whole row by the prune.
            return decision

        return await self._write("acquire", step)

    async def release(self, key: str, hit_id: str) -> bool:
        """Give back a counted hit; ``True`` if it was still counted."""
        check_key(key)
        check_hit_id(hit_id)

        def step(connection: sqlite3.Connection) -> bool:
            kept = drop_hit(_hits(connection, key), hit_id)
            if kept is None:
                return False
            if kept:
                # ``expires`` stays: still the last moment any kept hit counts.
                connection.execute(
                    "UPDATE rate_limit_keys SET hits = ? WHERE key = ?", (encode_hits(kept), key)
                )
            else:
                connection.execute("DELETE FROM rate_limit_keys WHERE key = ?", (key,))
            return True

        return await self._write("release", step)

    async def count_keys(self) -> int:
        """Return how many keys have a row (for operators and the store's bound)."""

        def count(connection: sqlite3.Connection) -> int:
            return int(connection.execute("SELECT count(*) FROM rate_limit_keys").fetchone()[0])

        return await self._read("count_keys", count)
