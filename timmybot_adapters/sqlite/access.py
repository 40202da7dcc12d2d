"""AccessPolicyStore in SQLite: one limit for every process on one machine.

Open it with ``store = await SqliteAccessPolicyStore.open(db)``, which
creates or upgrades its tables at once (a too-new or damaged file fails at
start-up), or build it with ``SqliteAccessPolicyStore(db)`` without I/O and
let the first call migrate.

Guild IDs are Discord snowflakes, up to ``2**64 - 1``, which does not fit
SQLite's signed 64-bit INTEGER; they are stored as their decimal text, and
sorted as integers in Python where order matters. Timestamps are integer
microseconds since the Unix epoch, so SQL comparisons are exact.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from timmybot_adapters.sqlite.database import (
    clamp_int64,
    datetime_to_micros,
    micros_to_datetime,
)
from timmybot_adapters.sqlite.store import SqliteStore
from timmybot_core.domain.snowflake import check_snowflake
from timmybot_core.ports.access import Ban, PurgeCounts, Switch, SwitchState, check_lease

__all__ = ["SqliteAccessPolicyStore"]

COMPONENT = "access_policy"

# Append only: a released step never changes, a new version is a new step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE access_allowlist (
        guild_id TEXT PRIMARY KEY,
        added_at INTEGER NOT NULL
    );
    CREATE TABLE access_attempts (
        guild_id TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX access_attempts_by_guild ON access_attempts (guild_id, at);
    CREATE INDEX access_attempts_by_time ON access_attempts (at);
    CREATE TABLE access_bans (
        guild_id TEXT PRIMARY KEY,
        until INTEGER NOT NULL,
        reason TEXT NOT NULL,
        placed_at INTEGER NOT NULL
    );
    CREATE INDEX access_bans_by_end ON access_bans (until);
    CREATE TABLE access_switches (
        switch TEXT PRIMARY KEY,
        is_on INTEGER NOT NULL CHECK (is_on IN (0, 1)),
        reason TEXT,
        actor TEXT,
        changed_at INTEGER,
        expires_at INTEGER
    );
    """,
    # 2: the scheduler's leases and how far each job's schedule is satisfied.
    """
    CREATE TABLE access_leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE access_job_runs (
        job TEXT PRIMARY KEY,
        last_run INTEGER NOT NULL
    );
    """,
)


def _key(guild_id: int) -> str:
    # A str, float or bool is refused: it would otherwise be stored under a
    # key no int lookup ever matches.
    return str(check_snowflake(guild_id, what="a guild ID", allow_zero=True))


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else datetime_to_micros(moment)


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else micros_to_datetime(micros)


def _window_start(at: datetime, window: timedelta) -> int:
    return clamp_int64(datetime_to_micros(at) - window // timedelta(microseconds=1))


def _count(
    connection: sqlite3.Connection, guild: str, start: int, end: int, cap: int | None = None
) -> int:
    # Counting stops at the cap: a flood from one guild costs O(cap), not
    # O(attempts in the window), on the single database thread. No cap is
    # LIMIT -1, which SQLite reads as no limit.
    row = connection.execute(
        "SELECT count(*) FROM (SELECT 1 FROM access_attempts"
        " WHERE guild_id = ? AND at > ? AND at <= ? LIMIT ?)",
        (guild, start, end, -1 if cap is None else max(cap, 0)),
    ).fetchone()
    return int(row[0])


def _ban(row: tuple[str, int, str, int]) -> Ban:
    guild_id, until, reason, placed_at = row
    return Ban(
        guild_id=int(guild_id),
        until=micros_to_datetime(until),
        reason=reason,
        placed_at=micros_to_datetime(placed_at),
    )


class SqliteAccessPolicyStore(SqliteStore):
    """The access-policy store of every process sharing one SQLite file.

    Counting and ban placement run in ``BEGIN IMMEDIATE`` transactions, so
    shards on one machine enforce one limit and exactly one of them places
    a ban. Timestamps must be timezone-aware; they come back in UTC.
    """

    COMPONENT = COMPONENT
    MIGRATIONS = MIGRATIONS
    LABEL = "access policy store"

    async def allow_guild(self, guild_id: int, *, at: datetime) -> bool:
        """Add ``guild_id`` to the allowlist; ``True`` if it was not there."""
        guild, added = _key(guild_id), datetime_to_micros(at)

        def insert(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "INSERT INTO access_allowlist (guild_id, added_at) VALUES (?, ?)"
                " ON CONFLICT (guild_id) DO NOTHING",
                (guild, added),
            )
            return cursor.rowcount == 1

        return await self._write("allow_guild", insert)

    async def remove_guild(self, guild_id: int) -> bool:
        """Remove ``guild_id`` from the allowlist; ``True`` if it was there."""
        guild = _key(guild_id)

        def delete(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute("DELETE FROM access_allowlist WHERE guild_id = ?", (guild,))
            return cursor.rowcount > 0

        return await self._write("remove_guild", delete)

    async def is_guild_allowed(self, guild_id: int) -> bool:
        """Tell whether ``guild_id`` is on the allowlist."""
        guild = _key(guild_id)

        def lookup(connection: sqlite3.Connection) -> bool:
            row = connection.execute(
                "SELECT 1 FROM access_allowlist WHERE guild_id = ?", (guild,)
            ).fetchone()
            return row is not None

        return await self._read("is_guild_allowed", lookup)

    async def list_allowed_guilds(self) -> list[int]:
        """Return the allowlist, sorted."""

        def select(connection: sqlite3.Connection) -> list[int]:
            rows = connection.execute("SELECT guild_id FROM access_allowlist").fetchall()
            return sorted(int(row[0]) for row in rows)

        return await self._read("list_allowed_guilds", select)

    async def record_attempt(
        self, guild_id: int, *, at: datetime, window: timedelta, cap: int | None = None
    ) -> int:
        """Record one attempt and return the count after ``at - window`` (at most ``cap``).

        Insert and count share one ``BEGIN IMMEDIATE`` transaction: no other
        writer can slip in between, so concurrent callers get distinct counts.
        Attempts stamped later than ``at`` but recorded first count too: a
        caller stamps its time before it gets here, so across processes the
        order of the stamps is not the order of the records.
        """
        guild, end, start = _key(guild_id), datetime_to_micros(at), _window_start(at, window)

        def insert_and_count(connection: sqlite3.Connection) -> int:
            connection.execute(
                "INSERT INTO access_attempts (guild_id, at) VALUES (?, ?)", (guild, end)
            )
            if window <= timedelta(0):
                return 0
            return _count(connection, guild, start, clamp_int64(2**63), cap)

        return await self._write("record_attempt", insert_and_count)

    async def clear_attempts(self, guild_id: int) -> int:
        """Forget every recorded attempt of ``guild_id``."""
        guild = _key(guild_id)

        def clear(connection: sqlite3.Connection) -> int:
            cursor = connection.execute("DELETE FROM access_attempts WHERE guild_id = ?", (guild,))
            return int(cursor.rowcount)

        return await self._write("clear_attempts", clear)

    async def count_attempts(self, guild_id: int, *, now: datetime, window: timedelta) -> int:
        """Return the number of attempts in ``(now - window, now]``."""
        guild, end, start = _key(guild_id), datetime_to_micros(now), _window_start(now, window)
        return await self._read(
            "count_attempts", lambda connection: _count(connection, guild, start, end)
        )

    async def place_ban(self, ban: Ban, *, now: datetime) -> bool:
        """Place ``ban`` unless an active ban of that guild exists.

        The check and the write share one ``BEGIN IMMEDIATE`` transaction, so
        exactly one of several racing processes gets ``True``.
        """
        guild, current = _key(ban.guild_id), datetime_to_micros(now)
        values = (
            guild,
            datetime_to_micros(ban.until),
            ban.reason,
            datetime_to_micros(ban.placed_at),
        )

        def place(connection: sqlite3.Connection) -> bool:
            active = connection.execute(
                "SELECT 1 FROM access_bans WHERE guild_id = ? AND until > ?", (guild, current)
            ).fetchone()
            if active is not None:
                return False
            connection.execute(
                "INSERT INTO access_bans (guild_id, until, reason, placed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (guild_id) DO UPDATE SET until = excluded.until,"
                " reason = excluded.reason, placed_at = excluded.placed_at",
                values,
            )
            return True

        return await self._write("place_ban", place)

    async def lift_ban(self, guild_id: int, *, now: datetime) -> bool:
        """Remove the guild's ban; ``True`` if an active ban was lifted."""
        guild, current = _key(guild_id), datetime_to_micros(now)

        def lift(connection: sqlite3.Connection) -> bool:
            row = connection.execute(
                "SELECT until FROM access_bans WHERE guild_id = ?", (guild,)
            ).fetchone()
            if row is None:
                return False
            connection.execute("DELETE FROM access_bans WHERE guild_id = ?", (guild,))
            return current < int(row[0])

        return await self._write("lift_ban", lift)

    async def get_ban(self, guild_id: int, *, now: datetime) -> Ban | None:
        """Return the guild's active ban, or ``None``."""
        guild, current = _key(guild_id), datetime_to_micros(now)

        def select(connection: sqlite3.Connection) -> Ban | None:
            row = connection.execute(
                "SELECT guild_id, until, reason, placed_at FROM access_bans"
                " WHERE guild_id = ? AND until > ?",
                (guild, current),
            ).fetchone()
            return None if row is None else _ban(row)

        return await self._read("get_ban", select)

    async def list_bans(self, *, now: datetime) -> list[Ban]:
        """Return every active ban, by guild ID."""
        current = datetime_to_micros(now)

        def select(connection: sqlite3.Connection) -> list[Ban]:
            rows = connection.execute(
                "SELECT guild_id, until, reason, placed_at FROM access_bans WHERE until > ?",
                (current,),
            ).fetchall()
            return sorted((_ban(row) for row in rows), key=lambda ban: ban.guild_id)

        return await self._read("list_bans", select)

    async def set_switch(self, state: SwitchState) -> None:
        """Store a switch's state (last write wins)."""
        values = (
            state.switch.value,
            int(state.on),
            state.reason,
            state.actor,
            _micros(state.changed_at),
            _micros(state.expires_at),
        )

        def upsert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO access_switches"
                " (switch, is_on, reason, actor, changed_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (switch) DO UPDATE SET is_on = excluded.is_on,"
                " reason = excluded.reason, actor = excluded.actor,"
                " changed_at = excluded.changed_at, expires_at = excluded.expires_at",
                values,
            )

        await self._write("set_switch", upsert)

    async def get_switch(self, switch: Switch) -> SwitchState:
        """Return a switch's state; a never-set switch is off."""

        def select(connection: sqlite3.Connection) -> SwitchState:
            row = connection.execute(
                "SELECT is_on, reason, actor, changed_at, expires_at FROM access_switches"
                " WHERE switch = ?",
                (switch.value,),
            ).fetchone()
            if row is None:
                return SwitchState(switch=switch)
            is_on, reason, actor, changed_at, expires_at = row
            return SwitchState(
                switch=switch,
                on=bool(is_on),
                reason=reason,
                actor=actor,
                changed_at=_moment(changed_at),
                expires_at=_moment(expires_at),
            )

        return await self._read("get_switch", select)

    async def purge_expired(self, *, now: datetime, window: timedelta) -> PurgeCounts:
        """Delete attempts older than ``window``, ended bans and expired switches.

        An expired switch is deleted, which reads back as the default
        (off) state, as if it had been reset.
        """
        current, start = datetime_to_micros(now), _window_start(now, window)

        def purge(connection: sqlite3.Connection) -> PurgeCounts:
            attempts = connection.execute("DELETE FROM access_attempts WHERE at <= ?", (start,))
            bans = connection.execute("DELETE FROM access_bans WHERE until <= ?", (current,))
            switches = connection.execute(
                "DELETE FROM access_switches"
                " WHERE is_on = 1 AND expires_at IS NOT NULL AND expires_at <= ?",
                (current,),
            )
            return PurgeCounts(
                attempts=attempts.rowcount, bans=bans.rowcount, switches=switches.rowcount
            )

        return await self._write("purge_expired", purge)

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``.

        One conditional upsert: the row is written when absent, expired or
        ``holder``'s own, and left alone otherwise.
        """
        check_lease(name, holder, ttl)
        current, expires = datetime_to_micros(now), datetime_to_micros(now + ttl)

        def upsert(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "INSERT INTO access_leases (name, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at"
                " WHERE access_leases.expires_at <= ? OR access_leases.holder = excluded.holder",
                (name, holder, expires, current),
            )
            return cursor.rowcount == 1

        return await self._write("acquire_lease", upsert)

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give up the lease ``name`` if ``holder`` holds it."""

        def delete(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "DELETE FROM access_leases WHERE name = ? AND holder = ?", (name, holder)
            )
            return cursor.rowcount > 0

        return await self._write("release_lease", delete)

    async def last_job_run(self, job: str) -> datetime | None:
        """Return how far ``job``'s schedule is satisfied, or ``None``."""

        def select(connection: sqlite3.Connection) -> datetime | None:
            row = connection.execute(
                "SELECT last_run FROM access_job_runs WHERE job = ?", (job,)
            ).fetchone()
            return None if row is None else micros_to_datetime(int(row[0]))

        return await self._read("last_job_run", select)

    async def record_job_run(self, job: str, at: datetime) -> bool:
        """Record that ``job``'s schedule is satisfied up to ``at`` (only forward)."""
        if not job:
            raise ValueError("a job needs a name")
        moment = datetime_to_micros(at)

        def upsert(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "INSERT INTO access_job_runs (job, last_run) VALUES (?, ?)"
                " ON CONFLICT (job) DO UPDATE SET last_run = excluded.last_run"
                " WHERE access_job_runs.last_run < excluded.last_run",
                (job, moment),
            )
            return cursor.rowcount == 1

        return await self._write("record_job_run", upsert)
