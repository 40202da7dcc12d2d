"""The UserDataStore contract: every adapter of the port passes this suite.

A new adapter joins by adding one entry to ``ADAPTERS``: an async context
manager that yields a fresh, empty store.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timmybot_adapters.memory import MemoryUserDataStore
from timmybot_adapters.sqlite import SqliteDatabase, SqliteUserDataStore, VaultKeys
from timmybot_core.ports.user_data import (
    MAX_NESTING,
    MAX_PREFERENCES,
    MAX_VALUE_BYTES,
    Preference,
    PreferenceError,
    UserDataStore,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
USER = 123456789012345678
OTHER = 876543210987654321
MAX_SNOWFLAKE = 2**64 - 1


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[UserDataStore]:
    yield MemoryUserDataStore()


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[UserDataStore]:
    async with SqliteDatabase(tmp_path / "var" / "timmybot.db") as db:
        yield await SqliteUserDataStore.open(db, keys=VaultKeys.single("c1", os.urandom(32)))


@asynccontextmanager
async def _aws(tmp_path: Path) -> AsyncIterator[UserDataStore]:
    from tests import aws_servers
    from timmybot_adapters.aws import DynamoUserDataStore

    async with aws_servers.fresh_tables(roles=["user_data"]) as tables:
        yield DynamoUserDataStore(aws_servers.shared_clients(), tables.user_data)


ADAPTERS: dict[str, Callable[[Path], AbstractAsyncContextManager[UserDataStore]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "aws": _aws,
}


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UserDataStore]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


async def test_every_adapter_is_a_user_data_store(tmp_path: Path) -> None:
    assert isinstance(MemoryUserDataStore(), UserDataStore)
    async with SqliteDatabase(tmp_path / "unused.db") as db:
        assert isinstance(SqliteUserDataStore(db), UserDataStore)


# Reading and writing


async def test_a_user_without_preferences_has_none(store: UserDataStore) -> None:
    assert await store.get_preferences(USER) == []
    assert await store.get_preference(USER, "volume") is None


async def test_a_preference_reads_back_with_its_time(store: UserDataStore) -> None:
    await store.set_preference(USER, "volume", 80, at=T0)
    assert await store.get_preference(USER, "volume") == Preference(
        key="volume", value=80, updated_at=T0
    )


async def test_preferences_come_back_sorted_by_name(store: UserDataStore) -> None:
    for key in ("volume", "default_platform", "ui.theme"):
        await store.set_preference(USER, key, key.upper(), at=T0)
    assert [p.key for p in await store.get_preferences(USER)] == [
        "default_platform",
        "ui.theme",
        "volume",
    ]


async def test_setting_again_replaces_the_value_and_the_time(store: UserDataStore) -> None:
    await store.set_preference(USER, "volume", 80, at=T0)
    await store.set_preference(USER, "volume", {"level": 30}, at=T0 + timedelta(hours=1))
    assert await store.get_preferences(USER) == [
        Preference(key="volume", value={"level": 30}, updated_at=T0 + timedelta(hours=1))
    ]


async def test_times_in_any_zone_come_back_in_utc(store: UserDataStore) -> None:
    paris = timezone(timedelta(hours=1))
    await store.set_preference(USER, "volume", 1, at=datetime(2026, 1, 1, 13, tzinfo=paris))
    stored = await store.get_preference(USER, "volume")
    assert stored is not None
    assert stored.updated_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert stored.updated_at.utcoffset() == timedelta(0)


async def test_users_are_kept_apart(store: UserDataStore) -> None:
    await store.set_preference(USER, "volume", 10, at=T0)
    await store.set_preference(OTHER, "volume", 90, at=T0)
    mine = await store.get_preference(USER, "volume")
    theirs = await store.get_preference(OTHER, "volume")
    assert mine is not None and mine.value == 10
    assert theirs is not None and theirs.value == 90


async def test_values_read_back_are_fresh_copies(store: UserDataStore) -> None:
    await store.set_preference(USER, "queue", {"recent": ["a", "b"]}, at=T0)
    first = await store.get_preference(USER, "queue")
    assert first is not None and isinstance(first.value, dict)
    first.value["recent"] = []
    again = await store.get_preference(USER, "queue")
    assert again is not None and again.value == {"recent": ["a", "b"]}


async def test_extreme_user_ids_work(store: UserDataStore) -> None:
    for user_id in (0, 1, MAX_SNOWFLAKE):
        await store.set_preference(user_id, "volume", user_id % 7, at=T0)
    for user_id in (0, 1, MAX_SNOWFLAKE):
        stored = await store.get_preference(user_id, "volume")
        assert stored is not None and stored.value == user_id % 7


# Deleting


async def test_delete_preference_says_whether_it_existed(store: UserDataStore) -> None:
    await store.set_preference(USER, "volume", 1, at=T0)
    await store.set_preference(USER, "theme", "dark", at=T0)
    assert await store.delete_preference(USER, "volume") is True
    assert await store.delete_preference(USER, "volume") is False
    assert [p.key for p in await store.get_preferences(USER)] == ["theme"]


async def test_delete_user_removes_every_preference_and_counts_them(
    store: UserDataStore,
) -> None:
    for key in ("a", "b", "c"):
        await store.set_preference(USER, key, True, at=T0)
    await store.set_preference(OTHER, "a", False, at=T0)
    assert await store.delete_user(USER) == 3
    assert await store.get_preferences(USER) == []
    assert [p.key for p in await store.get_preferences(OTHER)] == ["a"]
    assert await store.delete_user(USER) == 0


async def test_user_ids_lists_each_user_with_preferences_once(store: UserDataStore) -> None:
    users = [0, USER, OTHER, MAX_SNOWFLAKE, 42]
    for user_id in users:
        for key in ("a", "b"):
            await store.set_preference(user_id, key, 1, at=T0)
    await store.delete_user(42)
    await store.set_preference(7, "a", 1, at=T0)
    await store.delete_preference(7, "a")
    seen = [user_id async for user_id in store.user_ids()]
    assert sorted(seen) == sorted([0, USER, OTHER, MAX_SNOWFLAKE])


async def test_user_ids_pages_through_many_users(store: UserDataStore) -> None:
    users = list(range(1, 521))  # past one page of 500 (the SQLite adapter's PAGE)
    for user_id in users:
        await store.set_preference(user_id, "v", user_id, at=T0)
    seen = [user_id async for user_id in store.user_ids()]
    assert sorted(seen) == users


# The limit


async def test_a_user_keeps_at_most_the_limit_of_preferences(store: UserDataStore) -> None:
    for index in range(MAX_PREFERENCES):
        await store.set_preference(USER, f"p{index}", index, at=T0)
    with pytest.raises(PreferenceError, match=f"at most {MAX_PREFERENCES} preferences"):
        await store.set_preference(USER, "one.more", 1, at=T0)
    # Replacing an existing one is still allowed, and others are not limited by USER.
    await store.set_preference(USER, "p0", "changed", at=T0)
    await store.set_preference(OTHER, "one.more", 1, at=T0)
    assert len(await store.get_preferences(USER)) == MAX_PREFERENCES
    assert (await store.get_preference(USER, "one.more")) is None


async def test_concurrent_writers_cannot_exceed_the_limit(store: UserDataStore) -> None:
    for index in range(MAX_PREFERENCES - 3):
        await store.set_preference(USER, f"p{index}", index, at=T0)
    results = await asyncio.gather(
        *(store.set_preference(USER, f"new{index}", index, at=T0) for index in range(10)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, PreferenceError)]
    assert len(refused) == 7
    assert all(r is None or isinstance(r, PreferenceError) for r in results)
    assert len(await store.get_preferences(USER)) == MAX_PREFERENCES


# Validation: every adapter refuses the same input, before touching anything


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "preference name"),
        ("Volume", "preference name"),
        ("1st", "preference name"),
        ("a" * 65, "preference name"),
        ("vol ume", "preference name"),
        ("volume\n", "preference name"),
        ("vólume", "preference name"),
    ],
)
async def test_bad_names_are_refused(store: UserDataStore, key: str, problem: str) -> None:
    with pytest.raises(PreferenceError, match=problem):
        await store.set_preference(USER, key, 1, at=T0)
    with pytest.raises(PreferenceError, match=problem):
        await store.get_preference(USER, key)
    with pytest.raises(PreferenceError, match=problem):
        await store.delete_preference(USER, key)
    assert await store.get_preferences(USER) == []


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ((1, 2), "got tuple"),
        ({1, 2}, "got set"),
        (b"bytes", "got bytes"),
        (T0, "got datetime"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (2**63, "64 bits"),
        (-(2**63) - 1, "64 bits"),
        ("\ud800", "lone surrogate"),
        ({"\udfff": 1}, "lone surrogate"),
        ({1: "a"}, "object keys are text"),
        (_nested(MAX_NESTING + 1), "nest at most"),
        ("x" * (MAX_VALUE_BYTES + 1), "too large"),
        ("é" * (MAX_VALUE_BYTES // 2), "too large"),  # bytes, not characters
    ],
)
async def test_bad_values_are_refused_with_a_clear_reason(
    store: UserDataStore, value: Any, problem: str
) -> None:
    with pytest.raises(PreferenceError, match=problem) as raised:
        await store.set_preference(USER, "volume", value, at=T0)
    assert "'volume'" in str(raised.value)
    assert await store.get_preferences(USER) == []


async def test_limits_are_inclusive(store: UserDataStore) -> None:
    await store.set_preference(USER, "deep", _nested(MAX_NESTING), at=T0)
    await store.set_preference(USER, "big", "x" * (MAX_VALUE_BYTES - 2), at=T0)  # + 2 quotes
    await store.set_preference(USER, "ints", [2**63 - 1, -(2**63)], at=T0)
    assert len(await store.get_preferences(USER)) == 3


@pytest.mark.parametrize("user_id", [-1, 2**64, True, "123", 1.0, None])
async def test_bad_user_ids_are_refused(store: UserDataStore, user_id: Any) -> None:
    with pytest.raises(ValueError, match="user ID"):
        await store.set_preference(user_id, "volume", 1, at=T0)
    with pytest.raises(ValueError, match="user ID"):
        await store.get_preferences(user_id)
    with pytest.raises(ValueError, match="user ID"):
        await store.delete_user(user_id)


async def test_naive_times_are_refused(store: UserDataStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.set_preference(USER, "volume", 1, at=datetime(2026, 1, 1))  # noqa: DTZ001
    assert await store.get_preferences(USER) == []


# Round trip over arbitrary values

_valid_text = st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _valid_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_valid_text, children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_any_json_value_over_any_unicode_round_trips(adapter: str, tmp_path: Path) -> None:
    # One store and one event loop for the whole run (a database per example
    # would make the test slow); each example writes its own user.
    loop = asyncio.new_event_loop()
    try:
        manager = ADAPTERS[adapter](tmp_path)
        opened = loop.run_until_complete(manager.__aenter__())
        users = iter(range(1, 10**9))

        @settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
        @given(value=json_values, key=st.from_regex(r"[a-z][a-z0-9_.-]{0,63}", fullmatch=True))
        def check(value: Any, key: str) -> None:
            loop.run_until_complete(_round_trip(opened, next(users), key, value))

        try:
            check()
        finally:
            loop.run_until_complete(manager.__aexit__(None, None, None))
    finally:
        loop.close()


async def _round_trip(store: UserDataStore, user_id: int, key: str, value: Any) -> None:
    # Values are small (12 leaves, 40 characters each): well under the size limit.
    await store.set_preference(user_id, key, value, at=T0)
    stored = await store.get_preference(user_id, key)
    assert stored is not None
    assert stored.value == value
    assert _same_types(stored.value, value)
    assert await store.get_preferences(user_id) == [stored]


def _same_types(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return all(_same_types(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        return all(_same_types(left[k], right[k]) for k in right)
    if isinstance(left, float):
        return math.copysign(1, left) == math.copysign(1, right)
    return True
