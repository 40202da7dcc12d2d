"""The RateLimitStore contract: every adapter of the port passes this suite.

Adapters: memory, SQLite, and DynamoDB twice, on dynalite and on moto's
server. Each entry of ``ADAPTERS`` yields a fresh, empty store and the
store's size as it can be observed from outside (memory: ``len``; SQLite:
its rows; DynamoDB: the items whose ``ttl`` has not passed, which is what
DynamoDB keeps, so an item without ``ttl`` or with a wrong one is counted).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timmybot_adapters.memory import MemoryRateLimitStore
from timmybot_adapters.sqlite import SqliteDatabase, SqliteRateLimitStore
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.ports.rate_limits import (
    MAX_KEY_LENGTH,
    MAX_LIMIT,
    RateDecision,
    RateLimit,
    RateLimitStore,
)

# Epoch seconds (2026-01-01): DynamoDB's ttl is epoch-based.
T0 = 1_767_225_600.0
KEY = "user:7:cmd:search"
OTHER = "guild:42"
TEN = RateLimit(limit=3, window=10.0)


@attrs.frozen(kw_only=True)
class Subject:
    """A store under test and how to observe its size at a moment."""

    store: RateLimitStore
    size: Callable[[float], Awaitable[int]]


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[Subject]:
    store = MemoryRateLimitStore()

    async def size(now: float) -> int:
        return len(store)

    yield Subject(store=store, size=size)


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[Subject]:
    async with SqliteDatabase(tmp_path / "var" / "timmybot.db") as db:
        store = await SqliteRateLimitStore.open(db)

        async def size(now: float) -> int:
            return await store.count_keys()

        yield Subject(store=store, size=size)


def _dynamo(where: str) -> Callable[[Path], AbstractAsyncContextManager[Subject]]:
    @asynccontextmanager
    async def opened(tmp_path: Path) -> AsyncIterator[Subject]:
        from tests import aws_servers
        from timmybot_adapters.aws import (
            AwsClients,
            DynamoRateLimitStore,
            TableNames,
            create_tables,
            delete_tables,
        )

        if where == "dynalite":
            clients = aws_servers.shared_clients()
            async with aws_servers.fresh_tables(roles=["access"]) as tables:
                store = DynamoRateLimitStore(clients, tables.access)
                yield Subject(store=store, size=_living_items(clients, tables.access))
            return
        clients = AwsClients(
            aws_servers.config(dynamodb_endpoint_url=aws_servers.moto_endpoint()),
            session=aws_servers.session(),
        )
        names = TableNames.with_prefix(aws_servers.unique("tb") + "-")
        try:
            await asyncio.to_thread(
                create_tables, clients.dynamodb, names, enable_ttl=True, only=[names.access]
            )
            try:
                store = DynamoRateLimitStore(clients, names.access)
                yield Subject(store=store, size=_living_items(clients, names.access))
            finally:
                await asyncio.to_thread(delete_tables, clients.dynamodb, [names.access])
        finally:
            await clients.aclose()

    return opened


def _living_items(clients: Any, table: str) -> Callable[[float], Awaitable[int]]:
    async def size(now: float) -> int:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
            if start:
                request["ExclusiveStartKey"] = start
            page = await asyncio.to_thread(clients.dynamodb.scan, **request)
            items.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        # What DynamoDB's TTL keeps: an item without ttl is never collected.
        return sum(1 for item in items if "ttl" not in item or int(item["ttl"]["N"]) >= now)

    return size


ADAPTERS: dict[str, Callable[[Path], AbstractAsyncContextManager[Subject]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "dynalite": _dynamo("dynalite"),
    "moto": _dynamo("moto"),
}


@pytest.fixture(params=list(ADAPTERS))
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


@pytest.fixture
def store(subject: Subject) -> RateLimitStore:
    return subject.store


async def hits(
    store: RateLimitStore, key: str, rate: RateLimit, moments: list[float]
) -> list[RateDecision]:
    return [await store.acquire(key, rate, now=moment) for moment in moments]


def test_the_store_implements_the_port(store: RateLimitStore) -> None:
    assert isinstance(store, RateLimitStore)


# Counting


async def test_exactly_limit_hits_are_allowed_then_refused_with_the_wait(
    store: RateLimitStore,
) -> None:
    allowed = await hits(store, KEY, TEN, [T0, T0 + 1, T0 + 2])
    assert [d.allowed for d in allowed] == [True, True, True]
    assert [d.remaining for d in allowed] == [2, 1, 0]
    assert all(d.retry_after == 0 for d in allowed)
    ids = [d.hit_id for d in allowed]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == 3

    refused = await store.acquire(KEY, TEN, now=T0 + 3)
    assert refused.allowed is False
    assert refused.hit_id is None
    assert refused.remaining == 0
    # The hit at T0 leaves the window at T0 + 10.
    assert refused.retry_after == pytest.approx(7.0)
    again = await store.acquire(KEY, TEN, now=T0 + 9.5)
    assert not again.allowed
    assert again.retry_after == pytest.approx(0.5)


async def test_the_window_slides_hits_leave_one_by_one(store: RateLimitStore) -> None:
    await hits(store, KEY, TEN, [T0, T0 + 1, T0 + 2])
    # At T0 + 10 only the first hit has left: one slot, not three.
    late = await store.acquire(KEY, TEN, now=T0 + 10)
    assert late.allowed and late.remaining == 0
    after = await store.acquire(KEY, TEN, now=T0 + 10)
    assert not after.allowed
    assert after.retry_after == pytest.approx(1.0)
    assert (await store.acquire(KEY, TEN, now=T0 + 11)).allowed
    assert not (await store.acquire(KEY, TEN, now=T0 + 11.5)).allowed
    assert (await store.acquire(KEY, TEN, now=T0 + 12)).allowed
    assert not (await store.acquire(KEY, TEN, now=T0 + 12)).allowed


async def test_a_hit_exactly_one_window_old_no_longer_counts(store: RateLimitStore) -> None:
    one = RateLimit(limit=1, window=10.0)
    assert (await store.acquire(KEY, one, now=T0)).allowed
    just_before = await store.acquire(KEY, one, now=T0 + 9.999)
    assert not just_before.allowed
    assert just_before.retry_after == pytest.approx(0.001, abs=1e-6)
    assert (await store.acquire(KEY, one, now=T0 + 10)).allowed


async def test_after_a_long_silence_the_whole_limit_is_back(store: RateLimitStore) -> None:
    await hits(store, KEY, TEN, [T0, T0, T0])
    later = await hits(store, KEY, TEN, [T0 + 3600] * 4)
    assert [d.allowed for d in later] == [True, True, True, False]


async def test_keys_are_independent(store: RateLimitStore) -> None:
    one = RateLimit(limit=1, window=60.0)
    assert (await store.acquire(KEY, one, now=T0)).allowed
    assert not (await store.acquire(KEY, one, now=T0)).allowed
    # Keys that a sloppy store could confuse: prefixes, case, separators.
    for other in (OTHER, KEY + "x", KEY[:-1], KEY.upper(), "user:7:cmd:searc#", "user:7"):
        assert (await store.acquire(other, one, now=T0)).allowed, other
    assert not (await store.acquire(KEY, one, now=T0 + 1)).allowed


async def test_hits_stamped_out_of_order_wait_for_the_right_one(store: RateLimitStore) -> None:
    # A process whose clock is ahead stamps T0 + 5 first; one behind, T0.
    two = RateLimit(limit=2, window=10.0)
    assert (await store.acquire(KEY, two, now=T0 + 5)).allowed
    assert (await store.acquire(KEY, two, now=T0)).allowed
    refused = await store.acquire(KEY, two, now=T0 + 1)
    # The earliest hit (T0) leaves first, at T0 + 10.
    assert refused.retry_after == pytest.approx(9.0)
    assert (await store.acquire(KEY, two, now=T0 + 10)).allowed


async def test_concurrent_acquires_in_one_process_allow_exactly_the_limit(
    store: RateLimitStore,
) -> None:
    rate = RateLimit(limit=5, window=60.0)
    decisions = await asyncio.gather(*(store.acquire(KEY, rate, now=T0) for _ in range(24)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 5
    assert len({d.hit_id for d in allowed}) == 5
    assert sorted(d.remaining for d in allowed) == [0, 1, 2, 3, 4]


# Release


async def test_release_gives_the_slot_back_once(store: RateLimitStore) -> None:
    two = RateLimit(limit=2, window=60.0)
    first, second = await hits(store, KEY, two, [T0, T0 + 1])
    assert not (await store.acquire(KEY, two, now=T0 + 2)).allowed
    assert first.hit_id is not None and second.hit_id is not None

    assert await store.release(KEY, first.hit_id) is True
    assert await store.release(KEY, first.hit_id) is False
    back = await store.acquire(KEY, two, now=T0 + 2)
    assert back.allowed and back.remaining == 0
    refused = await store.acquire(KEY, two, now=T0 + 3)
    # Now the oldest counted hit is the second one (T0 + 1).
    assert refused.retry_after == pytest.approx(58.0)


async def test_releasing_every_hit_empties_the_key(store: RateLimitStore) -> None:
    one = RateLimit(limit=1, window=60.0)
    hit = await store.acquire(KEY, one, now=T0)
    assert hit.hit_id is not None
    assert await store.release(KEY, hit.hit_id) is True
    assert (await store.acquire(KEY, one, now=T0)).allowed


async def test_release_of_an_unknown_hit_or_key_is_false(store: RateLimitStore) -> None:
    two = RateLimit(limit=2, window=60.0)
    hit = await store.acquire(KEY, two, now=T0)
    assert hit.hit_id is not None
    assert await store.release(KEY, "0123456789abcdef") is False
    assert await store.release(KEY, "") is False
    assert await store.release(OTHER, hit.hit_id) is False
    assert await store.release("never:used", hit.hit_id) is False
    # Nothing was given back by those.
    assert (await store.acquire(KEY, two, now=T0)).allowed
    assert not (await store.acquire(KEY, two, now=T0)).allowed


async def test_a_hit_that_left_its_window_cannot_be_released(store: RateLimitStore) -> None:
    one = RateLimit(limit=1, window=10.0)
    old = await store.acquire(KEY, one, now=T0)
    assert old.hit_id is not None
    # The next allowed hit forgets the old one.
    assert (await store.acquire(KEY, one, now=T0 + 20)).allowed
    assert await store.release(KEY, old.hit_id) is False
    assert not (await store.acquire(KEY, one, now=T0 + 21)).allowed


# A key whose rate changes


async def test_a_lower_limit_counts_the_hits_already_held(store: RateLimitStore) -> None:
    five = RateLimit(limit=5, window=10.0)
    await hits(store, KEY, five, [T0, T0 + 1, T0 + 2])
    lower = await store.acquire(KEY, RateLimit(limit=2, window=10.0), now=T0 + 3)
    assert not lower.allowed
    # Two of the three held hits must leave: the second leaves at T0 + 11.
    assert lower.retry_after == pytest.approx(8.0)
    higher = await store.acquire(KEY, five, now=T0 + 3)
    assert higher.allowed and higher.remaining == 1


async def test_a_shorter_window_counts_only_the_hits_inside_it(store: RateLimitStore) -> None:
    await hits(store, KEY, TEN, [T0, T0 + 1, T0 + 2])
    short = RateLimit(limit=3, window=2.5)
    # At T0 + 3 only T0 + 1 and T0 + 2 fall in the last 2.5 s.
    decision = await store.acquire(KEY, short, now=T0 + 3)
    assert decision.allowed and decision.remaining == 0
    assert not (await store.acquire(KEY, short, now=T0 + 3)).allowed


async def test_a_longer_window_counts_the_hits_still_held(store: RateLimitStore) -> None:
    await hits(store, KEY, TEN, [T0, T0 + 1, T0 + 2])
    longer = RateLimit(limit=3, window=100.0)
    refused = await store.acquire(KEY, longer, now=T0 + 5)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(95.0)


# Bounded growth


async def test_keys_whose_last_hit_left_the_window_are_pruned(subject: Subject) -> None:
    store, rate = subject.store, RateLimit(limit=2, window=10.0)
    for n in range(40):
        assert (await store.acquire(f"user:{n}", rate, now=T0)).allowed
    assert await subject.size(T0) == 40
    # Past every window (and any ttl margin), the store is used again.
    later = T0 + 7200
    for _ in range(10):
        await store.acquire("user:fresh", rate, now=later)
    assert await subject.size(later) == 1
    # The pruned keys start afresh.
    assert (await store.acquire("user:3", rate, now=later)).remaining == 1


async def test_keys_still_in_their_window_are_kept(subject: Subject) -> None:
    store, rate = subject.store, RateLimit(limit=1, window=100.0)
    for n in range(20):
        await store.acquire(f"user:{n}", rate, now=T0)
    for _ in range(10):
        await store.acquire("user:fresh", RateLimit(limit=50, window=1.0), now=T0 + 50)
    assert await subject.size(T0 + 50) == 21
    for n in range(20):
        refused = await store.acquire(f"user:{n}", rate, now=T0 + 50)
        assert not refused.allowed
        assert refused.retry_after == pytest.approx(50.0)


async def test_a_key_never_holds_more_than_its_limit(store: RateLimitStore) -> None:
    rate = RateLimit(limit=100, window=1.0)
    for moment in (T0, T0 + 1.0):
        decisions = [await store.acquire(KEY, rate, now=moment) for _ in range(rate.limit + 3)]
        assert [d.allowed for d in decisions] == [True] * rate.limit + [False] * 3


# Bad input


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "must not be empty"),
        ("x" * (MAX_KEY_LENGTH + 1), f"{MAX_KEY_LENGTH + 1} characters"),
        ("user 7", "U+0020 at position 4"),
        ("user:\u00e9", "U+00E9 at position 5"),
        ("user:\x00", "U+0000 at position 5"),
        ("user:\ud800", "U+D800 at position 5"),
        (7, "must be a string, not int"),
        (b"user:7", "must be a string, not bytes"),
    ],
)
async def test_a_bad_key_is_refused_naming_the_problem(
    store: RateLimitStore, key: Any, problem: str
) -> None:
    with pytest.raises(ValueError, match="rate limit key") as caught:
        await store.acquire(key, TEN, now=T0)
    assert problem in str(caught.value)
    with pytest.raises(ValueError, match="rate limit key"):
        await store.release(key, "0123456789abcdef")


async def test_the_longest_key_is_accepted(store: RateLimitStore) -> None:
    longest = "k" * MAX_KEY_LENGTH
    one = RateLimit(limit=1, window=60.0)
    assert (await store.acquire(longest, one, now=T0)).allowed
    assert not (await store.acquire(longest, one, now=T0)).allowed
    assert (await store.acquire(longest[:-1], one, now=T0)).allowed


@pytest.mark.parametrize("now", [float("nan"), float("inf"), -1.0, 1e12, True, "1", None])
async def test_a_bad_moment_is_refused_and_changes_nothing(store: RateLimitStore, now: Any) -> None:
    one = RateLimit(limit=1, window=60.0)
    with pytest.raises(ValueError, match="now must be seconds"):
        await store.acquire(KEY, one, now=now)
    assert (await store.acquire(KEY, one, now=T0)).allowed
    assert not (await store.acquire(KEY, one, now=T0 + 1)).allowed


async def test_a_hit_id_that_is_not_a_string_is_refused(store: RateLimitStore) -> None:
    with pytest.raises(ValueError, match="hit ID must be a string"):
        await store.release(KEY, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, True, 2.0])
def test_a_rate_outside_the_bounds_is_refused(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit must be an integer from 1"):
        RateLimit(limit=limit, window=1.0)


def _accepted(key: str) -> bool:
    # The contract's rule, written independently of the port's checker.
    return 1 <= len(key) <= MAX_KEY_LENGTH and all(33 <= ord(c) <= 126 for c in key)


_keys = (
    st.text(st.characters(codec="utf-8"), max_size=MAX_KEY_LENGTH + 20)
    | st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
    | st.from_regex(r"[!-~]{1,200}", fullmatch=True)
)


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_any_unicode_key_is_kept_faithfully_or_refused(adapter: str, tmp_path: Path) -> None:
    # One store and one event loop for the whole run; each example has its
    # own moment, an hour after the last, so earlier examples never count.
    loop = asyncio.new_event_loop()
    try:
        manager = ADAPTERS[adapter](tmp_path)
        opened = loop.run_until_complete(manager.__aenter__())
        moments = iter(T0 + 3600.0 * n for n in range(1, 10**6))

        @settings(
            max_examples=60 if adapter in {"dynalite", "moto"} else 200,
            suppress_health_check=[HealthCheck.too_slow],
            deadline=None,
        )
        @given(key=_keys)
        def check(key: str) -> None:
            loop.run_until_complete(_faithful(opened.store, key, next(moments)))

        try:
            check()
        finally:
            loop.run_until_complete(manager.__aexit__(None, None, None))
    finally:
        loop.close()


async def _faithful(store: RateLimitStore, key: str, now: float) -> None:
    one = RateLimit(limit=1, window=60.0)
    if not _accepted(key):
        with pytest.raises(ValueError, match="rate limit key: "):
            await store.acquire(key, one, now=now)
        with pytest.raises(ValueError, match="rate limit key: "):
            await store.release(key, "0123456789abcdef")
        return
    first = await store.acquire(key, one, now=now)
    assert first.allowed and first.hit_id is not None
    assert not (await store.acquire(key, one, now=now)).allowed
    # A neighbour a lossy encoding could fold into the same entry.
    neighbour = key.swapcase() if key.swapcase() != key else (key[:-1] or "~") + "!"
    if neighbour != key:
        assert (await store.acquire(neighbour, one, now=now)).allowed
    assert await store.release(key, first.hit_id) is True
    assert (await store.acquire(key, one, now=now)).allowed


# The store down: an error, never "allowed"


async def test_a_locked_sqlite_file_is_unavailable_not_allowed(tmp_path: Path) -> None:
    path = tmp_path / "var" / "timmybot.db"
    async with SqliteDatabase(path, busy_timeout=0.2) as db:
        store = await SqliteRateLimitStore.open(db)
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            # Another process holding the write lock beyond the busy timeout.
            holder.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreUnavailable, match="rate limit store: acquire failed"):
                await store.acquire(KEY, TEN, now=T0)
            with pytest.raises(StoreUnavailable, match="rate limit store: release failed"):
                await store.release(KEY, "0123456789abcdef")
            holder.execute("ROLLBACK")
            assert (await store.acquire(KEY, TEN, now=T0)).allowed
        finally:
            holder.close()


def _set_hits(text: str) -> Callable[[sqlite3.Connection], object]:
    def write(connection: sqlite3.Connection) -> object:
        return connection.execute("UPDATE rate_limit_keys SET hits = ?", (text,))

    return write


async def test_a_damaged_sqlite_row_is_unavailable_not_allowed(tmp_path: Path) -> None:
    path = tmp_path / "var" / "timmybot.db"
    async with SqliteDatabase(path) as db:
        store = await SqliteRateLimitStore.open(db)
        await store.acquire(KEY, TEN, now=T0)
        for damage in ("not json", '{"a": 1}', "[[1.0, 2]]", '[["x", "id"]]', '[[1e999, "id"]]'):
            await db.write(_set_hits(damage))
            with pytest.raises(StoreUnavailable, match="a key's row is damaged") as caught:
                await store.acquire(KEY, TEN, now=T0 + 1)
            assert damage not in str(caught.value)
            with pytest.raises(StoreUnavailable, match="a key's row is damaged"):
                await store.release(KEY, "0123456789abcdef")
        # Other keys still work, and the damaged row is pruned once it expires.
        assert (await store.acquire(OTHER, TEN, now=T0 + 1)).allowed
        await store.acquire(OTHER, TEN, now=T0 + 100)
        assert (await store.acquire(KEY, TEN, now=T0 + 100)).allowed


async def test_an_unreachable_dynamodb_is_unavailable_not_allowed() -> None:
    from tests import aws_servers
    from timmybot_adapters.aws import AwsClients, DynamoRateLimitStore

    # Port 9 (discard) on 127.0.0.1: nothing listens there.
    aws = AwsClients(
        aws_servers.config(
            endpoint_url="http://127.0.0.1:9",
            dynamodb_endpoint_url="http://127.0.0.1:9",
            connect_timeout=0.5,
            max_attempts=2,
        ),
        session=aws_servers.session(),
    )
    try:
        store = DynamoRateLimitStore(aws, "timmybot-access")
        with pytest.raises(StoreUnavailable, match=r"rate limit store: acquire failed: could not"):
            await store.acquire(KEY, TEN, now=T0)
        with pytest.raises(StoreUnavailable, match=r"rate limit store: release failed: could not"):
            await store.release(KEY, "0123456789abcdef")
    finally:
        await aws.aclose()


async def test_a_damaged_dynamodb_item_is_unavailable_not_allowed() -> None:
    from tests import aws_servers
    from timmybot_adapters.aws import DynamoRateLimitStore

    clients = aws_servers.shared_clients()
    async with aws_servers.fresh_tables(roles=["access"]) as tables:
        store = DynamoRateLimitStore(clients, tables.access)
        key = {"pk": {"S": "rate#" + KEY}, "sk": {"S": "window"}}
        for damage in (
            {"hits": {"S": "[[1.0]]"}, "version": {"N": "1"}},
            {"hits": {"S": "nope"}, "version": {"N": "1"}},
            {"version": {"N": "1"}},
            {"hits": {"S": "[]"}},
        ):
            await asyncio.to_thread(
                clients.dynamodb.put_item, TableName=tables.access, Item={**key, **damage}
            )
            with pytest.raises(StoreUnavailable, match="rate limit store: a key's item"):
                await store.acquire(KEY, TEN, now=T0)
