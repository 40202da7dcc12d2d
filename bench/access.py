"""Cost of the access guard: ``await ServerAccessControl.check(guild, user, "search")``.

Run ``.venv/bin/python bench/access.py`` (``--quick`` for a smoke run,
``--json`` for the figures as one JSON object instead of the tables);
``make bench`` runs it after the validator tables of ``bench/run.py``. The
tables go to stdout; there is no pass/fail, the exit status is always 0.

How it measures
    The same scheme as ``bench/run.py``: the number of calls per repeat is
    chosen so that one repeat takes about 20 ms, the garbage collector is
    off while a repeat runs, five repeats are made, interleaved over every
    case of a table, and the *minimum* is kept. Everything runs in one
    asyncio event loop (one ``asyncio.run``): each repeat times a loop of
    ``await access.check(guild, user, "search")`` inside a coroutine with
    ``time.perf_counter_ns``, so the cost of the awaits is in the numbers,
    as it is in the bot. Times are per call, in microseconds ("us").
    Absolute numbers depend on the machine; compare the ratios, which are
    computed within one run.

What is wired
    Like ``tests/unit/conftest.py``: a ``SecurityAuditLogger`` (real
    pseudonymizer), ``MemorySecurityMetrics``, ``MemoryAlerter`` and a
    ``FakeClock``, but no suspicion meter or alarm rules are subscribed (a
    burst of denied attempts would otherwise open an incident and turn the
    lockdown on, which changes the path being measured). The user is not an
    owner. Two stores: ``MemoryAccessPolicyStore``, and
    ``SqliteAccessPolicyStore`` on ``SqliteDatabase(path)`` for a file in a
    fresh temporary directory (``TMPDIR`` chooses the disk; the file system
    is printed), closed at the end.

    Allowed path: the guild is on the *store's* allowlist (a guild allowed
    by configuration would pass before any store read). Denied path: a guild
    that is not allowlisted, with ``attempt_limit=10**9`` so that no ban
    ever interferes; every denied check records an attempt in the store and
    logs an ``UNAUTHORIZED_ACCESS`` event. Before every repeat the store's
    attempts are purged (outside the timing), so each repeat starts from an
    empty attempt history.

    The ``timmybot.security`` logger gets a ``logging.NullHandler`` and
    ``propagate = False`` for the duration of the run: the guard's work is
    measured (pseudonymizing the IDs, serializing the event to JSON,
    building the ``LogRecord``), not the formatting and writing of lines to
    a terminal or a file. The previous handlers are restored afterwards.

Why a FakeClock, and what "cache_ttl" means here
    Each store is measured with the default ``cache_ttl`` (5 s) and with
    ``cache_ttl=0``. The clock stands still, so with 5 s the cached switch
    and allowlist answers never expire: after the first call every check is
    a cache hit, which is what the guard costs between two refreshes. (With
    the real clock the cache is reloaded once per 5 s, one store round trip
    spread over every check of those 5 s.) With ``cache_ttl=0`` every check
    reads the switches and the allowlist from the store. A fixed clock also
    keeps every attempt inside the counting window. The real clock is
    measured as a reference row (``SystemClock().now()``), and the note
    under the table says how many clock reads a check makes, so the
    difference can be added back.

How to read table 1
    "x dict.get" divides by the first baseline, one ``d.get(key)`` on a dict
    of 1,000 int keys, timed in the same loop shape. The second baseline,
    awaiting a coroutine that returns at once, is the floor for anything
    that is ``async``. "store calls" lists the store methods one check
    called (counted on a separate, untimed probe; the order is listed under
    the table) and "decision" is the probe's answer.

    The reference rows take the SQLite rows apart: a no-op
    ``loop.run_in_executor`` on a one-thread pool (the hand-off every
    ``SqliteDatabase`` call makes), an empty read and an empty write
    transaction of ``SqliteDatabase``, and the two store calls of the
    cached denied path, ``get_ban`` and ``record_attempt``, alone.

    The denied path on SQLite writes one row per attempt: ``record_attempt``
    is a ``BEGIN IMMEDIATE`` transaction (INSERT, then COUNT of the window)
    in WAL mode with ``synchronous=NORMAL``, where a commit appends to the
    WAL without an fsync and the WAL is synced at checkpoints (about every
    1,000 pages). The note under the table compares, from the numbers of
    the run, the fixed cost of a store call (an empty transaction) with the
    work of that write; on the machine this was written on, the fixed cost
    of the two calls was the larger part, not the write.

Table 2: a banned guild that keeps flooding
    SQLite counts index entries one by one, so an uncapped count would grow
    with a flood. Table 2 times the checks of a banned guild (the real
    default limit, default ``cache_ttl``) when it already has 0, 1,000,
    10,000 and 100,000 attempts in the window, refilled before every repeat
    (through the store's API for memory, with one ``executemany`` into the
    store's table for SQLite, since 100,000 ``record_attempt`` calls would
    take many seconds). Ratios are to the row with no prior attempts.

Table 3: the rate limiter's cost on top of the guard
    What the bus does for a member's command: the guard (allowed, cached),
    then ``RateLimiter.check`` (three windows: the command, the member, the
    guild), on ``MemoryRateLimitStore`` and on ``SqliteRateLimitStore`` (its
    own file). Ratios are to the guard alone on the same store's row, in the
    same run. *Allowed*: the limiter's clock steps 1 ms per read and the
    windows are 0.5 ms, so each key holds one hit at most: every check is an
    allowed acquire of each key (three writes on SQLite). *Limited*: a frozen
    clock, the command's window full (1 per minute) and room in the member's
    and the guild's: the command's key refuses, the other two hits are taken
    and given back (three acquires and two releases), and the refusal is
    counted in the refusal ledger, as when a member hammers one command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import logging
import math
import platform
import sqlite3
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from run import FULL, QUICK, Settings, fmt_us, print_table
from timmybot_adapters.memory import (
    MemoryAccessPolicyStore,
    MemoryAlerter,
    MemoryRateLimitStore,
    MemorySecurityMetrics,
)
from timmybot_adapters.sqlite import (
    SqliteAccessPolicyStore,
    SqliteDatabase,
    SqliteRateLimitStore,
)
from timmybot_adapters.sqlite.database import datetime_to_micros
from timmybot_core import (
    AccessPolicyStore,
    AccessSettings,
    Ban,
    Clock,
    FakeClock,
    Pseudonymizer,
    RateLimit,
    RateLimiter,
    RateLimitSettings,
    RateLimitStore,
    SecurityAuditLogger,
    ServerAccessControl,
    SystemClock,
)
from timmybot_core.services.refusals import RefusalLedger

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ALLOWED_GUILD = 222_222_222_222_222_222
STRANGER_GUILD = 333_333_333_333_333_333
USER = 444_444_444_444_444_444
KEY = b"bench-pseudonym-key-of-32-bytes!"
NO_BAN_LIMIT = 10**9
CACHED = AccessSettings().cache_ttl
UNCACHED = timedelta(0)
TTLS: tuple[timedelta, ...] = (CACHED, UNCACHED)
PRIOR_ATTEMPTS: tuple[int, ...] = (0, 1_000, 10_000, 100_000)
WRITES = frozenset(
    {
        "allow_guild",
        "remove_guild",
        "record_attempt",
        "place_ban",
        "lift_ban",
        "set_switch",
        "purge_expired",
    }
)

HAND_OFF = "reference: loop.run_in_executor(no-op)"
READ_NOOP = "reference: SqliteDatabase.read(no-op)"
WRITE_NOOP = "reference: SqliteDatabase.write(no-op)"
GET_BAN = "reference: sqlite store get_ban"
RECORD_ATTEMPT = "reference: sqlite store record_attempt"

AsyncBody = Callable[[int], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]
Figures = dict[str, Any]

#: Table 3's windows: allowed (a stepping clock leaves every window empty) and limited.
ALLOWED_RATES = RateLimitSettings(
    command=RateLimit(limit=5, window=5e-4),
    user=RateLimit(limit=20, window=5e-4),
    guild=RateLimit(limit=120, window=5e-4),
)
LIMITED_RATES = RateLimitSettings(
    command=RateLimit(limit=1, window=60),
    user=RateLimit(limit=1000, window=60),
    guild=RateLimit(limit=1000, window=60),
)


# -- timing ---------------------------------------------------------------


async def _timed(body: AsyncBody, number: int) -> int:
    """Await ``body(number)`` with the garbage collector off; return elapsed nanoseconds."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        await body(number)
        return time.perf_counter_ns() - start
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class AsyncCase:
    """One timed case: ``body(n)`` awaits n calls; ``setup`` runs, untimed, before each repeat."""

    body: AsyncBody
    setup: Hook | None = None
    number: int = 0
    best_ns: float = math.inf
    samples: int = field(default=0)

    @property
    def per_call_us(self) -> float:
        """The best time of one call, in microseconds."""
        return self.best_ns / self.number / 1000

    async def prepare(self) -> None:
        """Run the setup hook, if any."""
        if self.setup is not None:
            await self.setup()


async def _calibrate(case: AsyncCase, target_ns: int) -> int:
    """Choose how many calls make one repeat last about ``target_ns``."""
    await case.prepare()
    number = 1
    while True:
        elapsed = await _timed(case.body, number)
        if elapsed >= target_ns // 10:
            break
        number *= 10
    return max(1, round(number * target_ns / max(elapsed, 1)))


async def measure_all(cases: Sequence[AsyncCase], settings: Settings) -> None:
    """Calibrate every case, then run ``settings.repeats`` interleaved rounds over them."""
    for case in cases:
        if not case.number:
            case.number = await _calibrate(case, settings.target_ns)
    for _ in range(settings.repeats):
        for case in cases:
            await case.prepare()
            case.best_ns = min(case.best_ns, await _timed(case.body, case.number))
            case.samples += 1


# -- loop bodies ----------------------------------------------------------


def dict_lookups() -> AsyncBody:
    """The baseline: one ``d.get(key)`` on a dict of 1,000 int keys per call."""
    d = {key: key for key in range(1_000)}
    key = 500

    async def body(number: int) -> None:
        for _ in itertools.repeat(None, number):
            d.get(key)

    return body


async def _nothing() -> None:
    return


def trivial_awaits() -> AsyncBody:
    """The cost of async itself: awaiting a coroutine that returns at once."""

    async def body(number: int) -> None:
        for _ in itertools.repeat(None, number):
            await _nothing()

    return body


def clock_reads() -> AsyncBody:
    """The real clock, for comparison with the FakeClock the guard is given."""
    clock = SystemClock()

    async def body(number: int) -> None:
        for _ in itertools.repeat(None, number):
            clock.now()

    return body


def checks(access: ServerAccessControl, guild: int) -> AsyncBody:
    """The measured call: ``await access.check(guild, USER, "search")``."""

    async def body(number: int) -> None:
        for _ in itertools.repeat(None, number):
            await access.check(guild, USER, "search")

    return body


class _SteppingClock:
    """A clock that moves 1 ms forward at every read (table 3's allowed path)."""

    def __init__(self) -> None:
        self._now = START

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now


def limiter(store: RateLimitStore, clock: Clock, rates: RateLimitSettings) -> RateLimiter:
    """A RateLimiter wired like the bot's (security log and refusal ledger on ``clock``)."""
    security_log = SecurityAuditLogger(
        pseudonymizer=Pseudonymizer(key=KEY, key_id="bench"), clock=clock
    )
    return RateLimiter(
        store=store,
        clock=clock,
        security_log=security_log,
        metrics=MemorySecurityMetrics(),
        refusals=RefusalLedger(security_log=security_log, clock=clock),
        settings=rates,
    )


def limited_checks(access: ServerAccessControl, limits: RateLimiter) -> AsyncBody:
    """What the bus does: the guard, then the rate limit, for one member's command."""

    async def body(number: int) -> None:
        for _ in itertools.repeat(None, number):
            await access.check(ALLOWED_GUILD, USER, "search")
            await limits.check(user_id=USER, guild_id=ALLOWED_GUILD, command="search")

    return body


def awaits(call: Callable[[], Awaitable[object]]) -> AsyncBody:
    """One ``await call()`` per call (a store method, for the reference rows)."""

    async def body(number: int) -> None:
        for _ in itertools.repeat(None, number):
            await call()

    return body


def _noop() -> None:
    return


def hand_offs(executor: ThreadPoolExecutor) -> AsyncBody:
    """One round trip to a one-thread executor, as SqliteDatabase makes for every call."""

    async def body(number: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in itertools.repeat(None, number):
            await loop.run_in_executor(executor, _noop)

    return body


def empty_transactions(db: SqliteDatabase, *, write: bool) -> AsyncBody:
    """One empty read or write transaction of ``db`` per call."""

    def nothing(connection: sqlite3.Connection) -> None:
        return

    run = db.write if write else db.read

    async def body(number: int) -> None:
        for _ in itertools.repeat(None, number):
            await run(nothing)

    return body


# -- wiring ---------------------------------------------------------------


class _CountingStore:
    """Forwards to a store and records the name of every method called."""

    def __init__(self, inner: AccessPolicyStore) -> None:
        self._inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return counted


class _CountingClock:
    """A FakeClock that counts how often it is read."""

    def __init__(self, start: datetime) -> None:
        self._inner = FakeClock(start)
        self.reads = 0

    def now(self) -> datetime:
        self.reads += 1
        return self._inner.now()


def guard(
    store: AccessPolicyStore, clock: Clock, cache_ttl: timedelta, limit: int = NO_BAN_LIMIT
) -> ServerAccessControl:
    """A ServerAccessControl wired like the unit tests' (no listeners); no bans by default."""
    pseudonymizer = Pseudonymizer(key=KEY, key_id="bench")
    return ServerAccessControl(
        store=store,
        security_log=SecurityAuditLogger(pseudonymizer=pseudonymizer, clock=clock),
        metrics=MemorySecurityMetrics(),
        alerter=MemoryAlerter(),
        clock=clock,
        settings=AccessSettings(attempt_limit=limit, cache_ttl=cache_ttl),
    )


@dataclass(frozen=True)
class Probe:
    """What one warm check did: its decision, the store calls, the clock reads."""

    decision: str
    calls: tuple[str, ...]
    clock_reads: int

    @property
    def summary(self) -> str:
        """The store calls as "none", "3 reads", "1 read + 1 write", ..."""
        writes = sum(call in WRITES for call in self.calls)
        reads = len(self.calls) - writes
        parts = [
            f"{n} {word}{'s' if n != 1 else ''}"
            for n, word in ((reads, "read"), (writes, "write"))
            if n
        ]
        return " + ".join(parts) or "none"

    @property
    def sequence(self) -> str:
        """The store calls in order, writes marked "(w)"."""
        return ", ".join(call + (" (w)" if call in WRITES else "") for call in self.calls)


async def probe(store: AccessPolicyStore, cache_ttl: timedelta, guild: int) -> Probe:
    """Check twice on a fresh guard (the first call warms the cache); report the second."""
    counting = _CountingStore(store)
    clock = _CountingClock(START)
    access = guard(cast(AccessPolicyStore, counting), clock, cache_ttl)
    await access.check(guild, USER, "search")
    counting.calls.clear()
    clock.reads = 0
    decision = await access.check(guild, USER, "search")
    return Probe(decision.reason.value, tuple(counting.calls), clock.reads)


def purger(store: AccessPolicyStore) -> Hook:
    """A hook deleting every recorded attempt (nothing else is expired at START)."""
    window = AccessSettings().attempt_window

    async def purge() -> None:
        await store.purge_expired(now=START + 2 * window, window=window)

    return purge


def memory_refill(store: MemoryAccessPolicyStore, guild: int, count: int) -> Hook:
    """A hook leaving exactly ``count`` attempts of ``guild`` at START in the memory store."""
    purge = purger(store)
    window = AccessSettings().attempt_window

    async def refill() -> None:
        await purge()
        for _ in itertools.repeat(None, count):
            await store.record_attempt(guild, at=START, window=window)

    return refill


def sqlite_refill(
    db: SqliteDatabase, store: SqliteAccessPolicyStore, guild: int, count: int
) -> Hook:
    """A hook leaving exactly ``count`` attempts of ``guild`` at START in the SQLite store.

    Rows go straight into the store's table in one transaction (the layout of
    ``timmybot_adapters/sqlite/access.py``: guild ID as decimal text, time in
    epoch microseconds); ``record_attempt`` one by one would take seconds.
    """
    purge = purger(store)
    rows = [(str(guild), datetime_to_micros(START))] * count

    def insert(connection: sqlite3.Connection) -> None:
        connection.executemany("INSERT INTO access_attempts (guild_id, at) VALUES (?, ?)", rows)

    async def refill() -> None:
        await purge()
        if rows:
            await db.write(insert, operation="bench refill")

    return refill


def _filesystem(path: Path) -> str:
    """The type of the file system holding ``path`` (Linux), else "unknown"."""
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    target = str(path.resolve())
    best, kind = "", "unknown"
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind


@contextlib.contextmanager
def security_log_discarded() -> Iterator[None]:
    """Send ``timmybot.security`` to a NullHandler, not propagated; restore afterwards."""
    logger = logging.getLogger("timmybot.security")
    handlers, propagate = list(logger.handlers), logger.propagate
    logger.handlers = [logging.NullHandler()]
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers = handlers
        logger.propagate = propagate


# -- the tables -------------------------------------------------------------


def say(text: str) -> None:
    """Print a note wrapped to the width of the code (100 columns)."""
    print(textwrap.fill(text, width=100))


def ttl_label(ttl: timedelta) -> str:
    """``5s``, ``0`` ..."""
    seconds = ttl.total_seconds()
    return f"{seconds:g}s" if seconds else "0"


@dataclass
class Row:
    """One line of table 1."""

    label: str
    case: AsyncCase
    ttl: str = ""
    probe: Probe | None = None


async def run_tables(settings: Settings, directory: Path, *, as_json: bool) -> Figures:
    """Build the stores, measure, print the tables (or only return their figures)."""
    memory = MemoryAccessPolicyStore()
    db = SqliteDatabase(directory / "access-bench.db")
    rate_db = SqliteDatabase(directory / "rate-limits-bench.db")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-hand-off")
    try:
        sqlite = SqliteAccessPolicyStore(db)
        stores: tuple[tuple[str, AccessPolicyStore], ...] = (("memory", memory), ("sqlite", sqlite))
        for _, store in stores:
            await store.allow_guild(ALLOWED_GUILD, at=START)

        rows = [
            Row("baseline: d.get(key), 1,000 int keys", AsyncCase(dict_lookups())),
            Row("baseline: await a trivial coroutine", AsyncCase(trivial_awaits())),
            Row("reference: SystemClock().now()", AsyncCase(clock_reads())),
        ]
        denied_cached: dict[str, ServerAccessControl] = {}
        for name, store in stores:
            for path, guild in (("allowed", ALLOWED_GUILD), ("denied", STRANGER_GUILD)):
                for ttl in TTLS:
                    access = guard(store, FakeClock(START), ttl)
                    if path == "denied" and ttl == CACHED:
                        denied_cached[name] = access
                    setup = purger(store) if path == "denied" else None
                    rows.append(
                        Row(
                            f"{name}, {path}",
                            AsyncCase(checks(access, guild), setup),
                            ttl_label(ttl),
                            await probe(store, ttl, guild),
                        )
                    )
        window = AccessSettings().attempt_window
        rows += [
            Row(HAND_OFF, AsyncCase(hand_offs(executor))),
            Row(READ_NOOP, AsyncCase(empty_transactions(db, write=False))),
            Row(WRITE_NOOP, AsyncCase(empty_transactions(db, write=True))),
            Row(
                GET_BAN,
                AsyncCase(awaits(lambda: sqlite.get_ban(STRANGER_GUILD, now=START))),
            ),
            Row(
                RECORD_ATTEMPT,
                AsyncCase(
                    awaits(lambda: sqlite.record_attempt(STRANGER_GUILD, at=START, window=window)),
                    purger(sqlite),
                ),
            ),
        ]
        for row in rows:
            if row.probe is not None:
                expected = "allowed" if "allowed" in row.label else "not_allowlisted"
                if row.probe.decision != expected:
                    raise RuntimeError(f"{row.label}: the guard answered {row.probe.decision}")

        await measure_all([row.case for row in rows], settings)
        figures: Figures = {
            "guard": {f"{row.label} [{row.ttl}]": row.case.per_call_us for row in rows}
        }
        if not as_json:
            print_table_1(rows, _filesystem(directory))

        # Table 2: a banned guild that keeps flooding, with the real default
        # limit. The guard records each attempt without counting it.
        ban = Ban(
            guild_id=STRANGER_GUILD,
            until=START + timedelta(days=1),
            reason="bench",
            placed_at=START,
        )
        flooded = {}
        for name, store in (("memory", memory), ("sqlite", sqlite)):
            await store.place_ban(ban, now=START)
            flooded[name] = guard(store, FakeClock(START), CACHED, AccessSettings().attempt_limit)
        table_2 = [
            (
                count,
                AsyncCase(
                    checks(flooded["memory"], STRANGER_GUILD),
                    memory_refill(memory, STRANGER_GUILD, count),
                ),
                AsyncCase(
                    checks(flooded["sqlite"], STRANGER_GUILD),
                    sqlite_refill(db, sqlite, STRANGER_GUILD, count),
                ),
            )
            for count in PRIOR_ATTEMPTS
        ]
        await measure_all([case for _, *cases in table_2 for case in cases], settings)
        figures["flood"] = {
            f"{count}": {"memory": memory_case.per_call_us, "sqlite": sqlite_case.per_call_us}
            for count, memory_case, sqlite_case in table_2
        }
        if not as_json:
            print_table_2(table_2)

        figures["limiter"] = await run_table_3(settings, memory, sqlite, rate_db)
        if not as_json:
            print_table_3(figures["limiter"])
        return figures
    finally:
        executor.shutdown(wait=True)
        await db.close()
        await rate_db.close()


async def run_table_3(
    settings: Settings,
    memory: MemoryAccessPolicyStore,
    sqlite: SqliteAccessPolicyStore,
    rate_db: SqliteDatabase,
) -> dict[str, dict[str, float]]:
    """Table 3: the guard alone, and the guard then the limiter (allowed, limited)."""
    rate_stores: dict[str, Callable[[], RateLimitStore]] = {
        "memory": MemoryRateLimitStore,
        "sqlite": lambda: SqliteRateLimitStore(rate_db),
    }
    await SqliteRateLimitStore.open(rate_db)
    cases: dict[str, dict[str, AsyncCase]] = {}
    for name, store in (("memory", memory), ("sqlite", sqlite)):
        access = guard(store, FakeClock(START), CACHED)
        allowed = limiter(rate_stores[name](), _SteppingClock(), ALLOWED_RATES)
        limited = limiter(rate_stores[name](), FakeClock(START), LIMITED_RATES)
        await limited.check(user_id=USER, guild_id=ALLOWED_GUILD, command="search")
        cases[name] = {
            "guard alone": AsyncCase(checks(access, ALLOWED_GUILD)),
            "guard + limiter, allowed": AsyncCase(limited_checks(access, allowed)),
            "guard + limiter, limited": AsyncCase(limited_checks(access, limited)),
        }
        verdicts = [
            await allowed.check(user_id=USER, guild_id=ALLOWED_GUILD, command="search"),
            await limited.check(user_id=USER, guild_id=ALLOWED_GUILD, command="search"),
        ]
        if [verdict.allowed for verdict in verdicts] != [True, False]:
            raise RuntimeError(f"table 3 on {name}: the limiter answered {verdicts}")
    await measure_all([case for row in cases.values() for case in row.values()], settings)
    return {
        name: {label: case.per_call_us for label, case in row.items()}
        for name, row in cases.items()
    }


def print_table_3(figures: dict[str, dict[str, float]]) -> None:
    """Table 3: the limiter's cost, as a ratio to the guard alone on the same store."""
    print_table(
        "Table 3: the guard, then RateLimiter.check (three windows), microseconds per call",
        ["store", "case", "us per call", "x guard alone"],
        [
            [name, label, fmt_us(us), f"{us / row['guard alone']:.2f}"]
            for name, row in figures.items()
            for label, us in row.items()
        ],
    )
    say(
        "Allowed: three acquires, each a write on SQLite (one transaction per key). Limited: "
        "three acquires and two releases (the member's and the guild's hits given back), and "
        "the refusal counted in the ledger (its security line is written once per window)."
    )
    print()


def print_table_1(rows: Sequence[Row], filesystem: str) -> None:
    """Table 1 and the notes under it."""
    unit = rows[0].case.per_call_us
    print_table(
        'Table 1: await ServerAccessControl.check(guild, user, "search"), microseconds per call',
        ["case", "cache_ttl", "decision", "store calls", "us per call", "x dict.get"],
        [
            [
                row.label,
                row.ttl,
                row.probe.decision if row.probe else "",
                row.probe.summary if row.probe else "",
                fmt_us(row.case.per_call_us),
                f"{row.case.per_call_us / unit:,.0f}" if row.case is not rows[0].case else "1",
            ]
            for row in rows
        ],
    )
    print("Store calls of one check, in order ((w) = write transaction):")
    for row in rows:
        if row.probe is not None and row.probe.calls:
            print(f"  {row.label}, cache_ttl {row.ttl}: {row.probe.sequence}")
    us = {(row.label, row.ttl): row.case.per_call_us for row in rows}
    hop, read, write = us[HAND_OFF, ""], us[READ_NOOP, ""], us[WRITE_NOOP, ""]
    record, get_ban = us[RECORD_ATTEMPT, ""], us[GET_BAN, ""]
    denied = us["sqlite, denied", ttl_label(CACHED)]
    event = us["memory, denied", ttl_label(CACHED)]
    fixed = 2 * read  # get_ban and record_attempt, each at least an empty transaction
    writing = max(record - read, 0.0)
    larger = "the fixed cost of the two calls" if fixed > writing else "the write"
    say(
        "Every SQLite store call is a round trip from the event loop to the database's "
        f"worker thread (a no-op run_in_executor: {fmt_us(hop)} us here) around one "
        f"transaction; an empty read transaction costs {fmt_us(read)} us, an empty write "
        f"transaction {fmt_us(write)} us. The denied path on SQLite writes one row per "
        "attempt: record_attempt is a BEGIN IMMEDIATE transaction (INSERT, then COUNT over "
        "the window) in WAL mode with synchronous=NORMAL, where a commit is not fsynced (the "
        "WAL is synced at checkpoints, about every 1,000 pages). It costs "
        f"{fmt_us(record)} us, {fmt_us(writing)} us more than an empty read. The denied "
        f"check (cache_ttl {ttl_label(CACHED)}, {fmt_us(denied)} us) makes two store calls: "
        f"about {fmt_us(fixed)} us of it is their fixed cost and {fmt_us(writing)} us the "
        f"work of the write, so in this run the larger part is {larger}. Timed alone in loops "
        "of one kind, the pieces (record_attempt + get_ban + the memory, denied row) add up "
        f"to {fmt_us(record + get_ban + event)} us, less than the check. The database file "
        f"is on a file system of type {filesystem}."
    )
    clock_row = next(row for row in rows if "SystemClock" in row.label)
    cached = next(
        row for row in rows if row.label == "memory, allowed" and row.ttl == ttl_label(CACHED)
    )
    if cached.probe is not None:
        reads = cached.probe.clock_reads
        say(
            f"The clock is a FakeClock (fixed time: cached answers never expire). A cached "
            f"allowed check read it {reads} times; SystemClock would add about "
            f"{fmt_us(reads * clock_row.case.per_call_us)} us to it."
        )
    print()


def print_table_2(rows: Sequence[tuple[int, AsyncCase, AsyncCase]]) -> None:
    """Table 2: a banned guild's checks against the attempts already in the window."""
    memory_0, sqlite_0 = rows[0][1].per_call_us, rows[0][2].per_call_us
    print_table(
        f"Table 2: a banned guild flooding (default limit, cache_ttl {ttl_label(CACHED)}), "
        "by attempts already in the window, microseconds per call",
        ["attempts in window", "memory", "x (0)", "sqlite", "x (0)"],
        [
            [
                f"{count:,}",
                fmt_us(memory.per_call_us),
                f"{memory.per_call_us / memory_0:.2f}",
                fmt_us(sqlite.per_call_us),
                f"{sqlite.per_call_us / sqlite_0:.2f}",
            ]
            for count, memory, sqlite in rows
        ],
    )
    say(
        "A banned guild's attempts are recorded (so a persistent guild is banned again when "
        "its ban ends) but not counted, and an unbanned guild's are counted only up to the "
        "limit + 1 (record_attempt's cap): a flood must not make each check slower. Flat "
        "ratios are the expected result."
    )
    print()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the access benchmark and print its tables (or JSON); always 0 (no verdict)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: ~2 ms per repeat and 2 repeats (numbers are noisy)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    options = parser.parse_args(argv)
    quick = bool(options.quick)
    settings = QUICK if quick else FULL
    started = time.perf_counter()
    if options.json:
        with (
            security_log_discarded(),
            tempfile.TemporaryDirectory(prefix="timmybot-bench-") as directory,
        ):
            figures = asyncio.run(run_tables(settings, Path(directory), as_json=True))
        print(json.dumps({"quick": quick, "us_per_call": figures}, sort_keys=True))
        return 0
    print(
        f"timmybot access bench: Python {platform.python_version()} "
        f"({platform.python_implementation()}) on {platform.machine()}, SQLite "
        f"{sqlite3.sqlite_version}, asyncio default loop, {settings.repeats} interleaved "
        f"repeats of ~{settings.target_ns / 1e6:g} ms, best kept"
        f"{' [--quick]' if quick else ''}"
    )
    print()
    with (
        security_log_discarded(),
        tempfile.TemporaryDirectory(prefix="timmybot-bench-") as directory,
    ):
        asyncio.run(run_tables(settings, Path(directory), as_json=False))
    print(f"Access bench time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
