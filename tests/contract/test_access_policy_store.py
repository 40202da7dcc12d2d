"""The AccessPolicyStore contract: every adapter of the port passes this suite.

A new adapter joins by adding one entry to ``ADAPTERS``: an async context
manager that yields a fresh, empty store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from timmybot_adapters.memory import MemoryAccessPolicyStore
from timmybot_adapters.sqlite import SqliteAccessPolicyStore, SqliteDatabase
from timmybot_core.ports.access import AccessPolicyStore, Ban, PurgeCounts, Switch, SwitchState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
EVER = timedelta(days=3650)
MAX_SNOWFLAKE = 2**64 - 1
GUILD = 1234567890123456789
OTHER = 987654321098765432


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[AccessPolicyStore]:
    yield MemoryAccessPolicyStore()


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[AccessPolicyStore]:
    async with SqliteDatabase(tmp_path / "var" / "timmybot.db") as db:
        yield await SqliteAccessPolicyStore.open(db)


@asynccontextmanager
async def _aws(tmp_path: Path) -> AsyncIterator[AccessPolicyStore]:
    from tests import aws_servers
    from timmybot_adapters.aws import DynamoAccessPolicyStore

    async with aws_servers.fresh_tables(roles=["access"]) as tables:
        yield DynamoAccessPolicyStore(aws_servers.shared_clients(), tables.access)


ADAPTERS: dict[str, Callable[[Path], AbstractAsyncContextManager[AccessPolicyStore]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "aws": _aws,
}


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AccessPolicyStore]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


def ban(guild_id: int = GUILD, *, until: datetime = T0 + HOUR, reason: str = "flood") -> Ban:
    return Ban(guild_id=guild_id, until=until, reason=reason, placed_at=T0)


def test_the_store_implements_the_port(store: AccessPolicyStore) -> None:
    assert isinstance(store, AccessPolicyStore)


# Allowlist


async def test_a_guild_is_not_allowed_until_added(store: AccessPolicyStore) -> None:
    assert not await store.is_guild_allowed(GUILD)
    assert await store.list_allowed_guilds() == []


async def test_allow_guild_is_idempotent_and_tells_whether_it_added(
    store: AccessPolicyStore,
) -> None:
    assert await store.allow_guild(GUILD, at=T0) is True
    assert await store.allow_guild(GUILD, at=T0 + HOUR) is False
    assert await store.is_guild_allowed(GUILD)
    assert await store.list_allowed_guilds() == [GUILD]


async def test_remove_guild_is_idempotent_and_tells_whether_it_removed(
    store: AccessPolicyStore,
) -> None:
    assert await store.remove_guild(GUILD) is False
    await store.allow_guild(GUILD, at=T0)
    await store.allow_guild(OTHER, at=T0)
    assert await store.remove_guild(GUILD) is True
    assert await store.remove_guild(GUILD) is False
    assert not await store.is_guild_allowed(GUILD)
    assert await store.is_guild_allowed(OTHER)
    assert await store.list_allowed_guilds() == [OTHER]


async def test_a_removed_guild_can_be_added_again(store: AccessPolicyStore) -> None:
    await store.allow_guild(GUILD, at=T0)
    await store.remove_guild(GUILD)
    assert await store.allow_guild(GUILD, at=T0) is True
    assert await store.is_guild_allowed(GUILD)


async def test_the_allowlist_is_sorted_numerically(store: AccessPolicyStore) -> None:
    # 10 after 9 and 2**64-1 last: a store keeping IDs as text must not sort them as text.
    guilds = [MAX_SNOWFLAKE, 10, 2**63, 9, 1, 2**63 - 1, 100]
    for guild_id in guilds:
        await store.allow_guild(guild_id, at=T0)
    assert await store.list_allowed_guilds() == sorted(guilds)


async def test_the_largest_snowflake_is_allowed_and_removed(store: AccessPolicyStore) -> None:
    assert await store.allow_guild(MAX_SNOWFLAKE, at=T0) is True
    assert await store.is_guild_allowed(MAX_SNOWFLAKE)
    assert not await store.is_guild_allowed(MAX_SNOWFLAKE - 1)
    assert await store.list_allowed_guilds() == [MAX_SNOWFLAKE]
    assert await store.remove_guild(MAX_SNOWFLAKE) is True


# Attempts


async def test_record_attempt_returns_the_running_count(store: AccessPolicyStore) -> None:
    counts = [await store.record_attempt(GUILD, at=T0, window=MINUTE) for _ in range(5)]
    assert counts == [1, 2, 3, 4, 5]
    assert await store.count_attempts(GUILD, now=T0, window=MINUTE) == 5


async def test_clear_attempts_forgets_one_guild(store: AccessPolicyStore) -> None:
    for _ in range(3):
        await store.record_attempt(GUILD, at=T0, window=MINUTE)
    await store.record_attempt(GUILD + 1, at=T0, window=MINUTE)
    assert await store.clear_attempts(GUILD) == 3
    assert await store.clear_attempts(GUILD) == 0
    assert await store.count_attempts(GUILD, now=T0, window=MINUTE) == 0
    assert await store.count_attempts(GUILD + 1, now=T0, window=MINUTE) == 1


async def test_a_cap_bounds_the_returned_count_but_every_attempt_is_recorded(
    store: AccessPolicyStore,
) -> None:
    counts = [await store.record_attempt(GUILD, at=T0, window=MINUTE, cap=3) for _ in range(6)]
    assert counts == [1, 2, 3, 3, 3, 3]
    assert await store.record_attempt(GUILD, at=T0, window=MINUTE, cap=0) == 0
    assert await store.count_attempts(GUILD, now=T0, window=MINUTE) == 7


async def test_an_attempt_exactly_window_old_does_not_count(store: AccessPolicyStore) -> None:
    await store.record_attempt(GUILD, at=T0, window=MINUTE)
    assert await store.count_attempts(GUILD, now=T0 + MINUTE - US, window=MINUTE) == 1
    assert await store.count_attempts(GUILD, now=T0 + MINUTE, window=MINUTE) == 0
    assert await store.record_attempt(GUILD, at=T0 + MINUTE, window=MINUTE) == 1


async def test_an_attempt_one_microsecond_younger_than_window_counts(
    store: AccessPolicyStore,
) -> None:
    await store.record_attempt(GUILD, at=T0, window=MINUTE)
    assert await store.record_attempt(GUILD, at=T0 + MINUTE - US, window=MINUTE) == 2


async def test_the_window_ends_at_now_inclusive(store: AccessPolicyStore) -> None:
    await store.record_attempt(GUILD, at=T0, window=MINUTE)
    assert await store.count_attempts(GUILD, now=T0, window=MINUTE) == 1
    assert await store.count_attempts(GUILD, now=T0 - US, window=MINUTE) == 0


async def test_attempts_recorded_out_of_order_count_by_their_time(
    store: AccessPolicyStore,
) -> None:
    assert await store.record_attempt(GUILD, at=T0 + timedelta(seconds=50), window=MINUTE) == 1
    # Stamped earlier than the first but recorded after it: the first counts
    # (a process stamps its time before its record gets in).
    assert await store.record_attempt(GUILD, at=T0, window=MINUTE) == 2
    assert await store.record_attempt(GUILD, at=T0 + timedelta(seconds=30), window=MINUTE) == 3
    await store.record_attempt(GUILD, at=T0 + timedelta(seconds=70), window=MINUTE)
    # Counting afterwards goes by the attempts' own times.
    assert await store.count_attempts(GUILD, now=T0 + timedelta(seconds=50), window=MINUTE) == 3
    assert await store.count_attempts(GUILD, now=T0 + timedelta(seconds=70), window=MINUTE) == 3
    assert await store.count_attempts(GUILD, now=T0 + timedelta(seconds=90), window=MINUTE) == 2
    assert await store.count_attempts(GUILD, now=T0 + HOUR, window=EVER) == 4


async def test_attempts_are_counted_per_guild(store: AccessPolicyStore) -> None:
    await store.record_attempt(GUILD, at=T0, window=MINUTE)
    await store.record_attempt(GUILD, at=T0, window=MINUTE)
    assert await store.record_attempt(OTHER, at=T0, window=MINUTE) == 1
    assert await store.record_attempt(MAX_SNOWFLAKE, at=T0, window=MINUTE) == 1
    assert await store.count_attempts(GUILD, now=T0, window=MINUTE) == 2
    assert await store.count_attempts(OTHER, now=T0, window=MINUTE) == 1
    assert await store.count_attempts(MAX_SNOWFLAKE, now=T0, window=MINUTE) == 1
    assert await store.count_attempts(MAX_SNOWFLAKE - 1, now=T0, window=MINUTE) == 0


async def test_count_attempts_does_not_record(store: AccessPolicyStore) -> None:
    assert await store.count_attempts(GUILD, now=T0, window=MINUTE) == 0
    assert await store.count_attempts(GUILD, now=T0, window=MINUTE) == 0
    assert await store.record_attempt(GUILD, at=T0, window=MINUTE) == 1


async def test_the_window_is_chosen_per_call(store: AccessPolicyStore) -> None:
    for minutes in range(10):
        await store.record_attempt(GUILD, at=T0 + minutes * MINUTE, window=MINUTE)
    now = T0 + 9 * MINUTE
    assert await store.count_attempts(GUILD, now=now, window=MINUTE) == 1
    assert await store.count_attempts(GUILD, now=now, window=5 * MINUTE) == 5
    assert await store.count_attempts(GUILD, now=now, window=HOUR) == 10


async def test_attempts_stamped_in_any_order_each_get_a_distinct_count(
    store: AccessPolicyStore,
) -> None:
    # Processes stamp their time, then await other stores: the records come
    # in out of stamp order, and still every count is given once.
    stamps = [T0 + timedelta(milliseconds=(index * 7919) % 97) for index in range(40)]
    counts = [await store.record_attempt(GUILD, at=at, window=HOUR) for at in stamps]
    assert counts == list(range(1, 41))
    assert await store.count_attempts(GUILD, now=T0 + MINUTE, window=HOUR) == 40


async def test_concurrent_attempts_stamped_apart_each_get_a_distinct_count(
    store: AccessPolicyStore,
) -> None:
    counts = await asyncio.gather(
        *(
            store.record_attempt(GUILD, at=T0 + index * US * 13, window=HOUR, cap=31)
            for index in range(50)
        )
    )
    assert sorted(counts) == [*range(1, 31), *[31] * 20]


async def test_counting_after_a_purge_starts_from_the_attempts_left(
    store: AccessPolicyStore,
) -> None:
    for _ in range(5):
        await store.record_attempt(GUILD, at=T0, window=MINUTE)
    later = T0 + 2 * MINUTE
    assert (await store.purge_expired(now=later, window=MINUTE)).attempts == 5
    assert await store.record_attempt(GUILD, at=later, window=MINUTE) == 1
    assert await store.record_attempt(GUILD, at=later, window=MINUTE) == 2


async def test_concurrent_attempts_each_get_a_distinct_count(store: AccessPolicyStore) -> None:
    counts = await asyncio.gather(
        *(store.record_attempt(GUILD, at=T0, window=MINUTE) for _ in range(50))
    )
    assert sorted(counts) == list(range(1, 51))
    assert await store.count_attempts(GUILD, now=T0, window=MINUTE) == 50


# Bans


async def test_a_guild_without_a_ban_has_none(store: AccessPolicyStore) -> None:
    assert await store.get_ban(GUILD, now=T0) is None
    assert await store.list_bans(now=T0) == []


async def test_place_ban_stores_every_field(store: AccessPolicyStore) -> None:
    placed = Ban(guild_id=GUILD, until=T0 + HOUR, reason="spam: 12 attempts", placed_at=T0)
    assert await store.place_ban(placed, now=T0) is True
    assert await store.get_ban(GUILD, now=T0) == placed
    assert await store.list_bans(now=T0) == [placed]


async def test_place_ban_refuses_while_a_ban_is_active(store: AccessPolicyStore) -> None:
    first = ban(reason="first")
    assert await store.place_ban(first, now=T0) is True
    second = ban(until=T0 + 2 * HOUR, reason="second")
    assert await store.place_ban(second, now=T0 + HOUR - US) is False
    assert await store.get_ban(GUILD, now=T0 + HOUR - US) == first


async def test_a_new_ban_can_be_placed_once_the_old_one_ended(store: AccessPolicyStore) -> None:
    await store.place_ban(ban(reason="first"), now=T0)
    # A ban holds while now < until, so at `until` it has ended.
    second = Ban(guild_id=GUILD, until=T0 + 3 * HOUR, reason="second", placed_at=T0 + HOUR)
    assert await store.place_ban(second, now=T0 + HOUR) is True
    assert await store.get_ban(GUILD, now=T0 + HOUR) == second


async def test_bans_are_per_guild(store: AccessPolicyStore) -> None:
    assert await store.place_ban(ban(GUILD), now=T0) is True
    assert await store.place_ban(ban(OTHER), now=T0) is True
    assert await store.place_ban(ban(MAX_SNOWFLAKE), now=T0) is True
    assert await store.get_ban(MAX_SNOWFLAKE - 1, now=T0) is None
    assert await store.lift_ban(OTHER, now=T0) is True
    assert await store.get_ban(GUILD, now=T0) == ban(GUILD)
    assert await store.get_ban(MAX_SNOWFLAKE, now=T0) == ban(MAX_SNOWFLAKE)


async def test_get_ban_and_list_bans_ignore_ended_bans(store: AccessPolicyStore) -> None:
    await store.place_ban(ban(GUILD, until=T0 + MINUTE), now=T0)
    await store.place_ban(ban(OTHER, until=T0 + HOUR), now=T0)
    assert await store.get_ban(GUILD, now=T0 + MINUTE - US) == ban(GUILD, until=T0 + MINUTE)
    assert await store.get_ban(GUILD, now=T0 + MINUTE) is None
    assert await store.list_bans(now=T0 + MINUTE) == [ban(OTHER, until=T0 + HOUR)]
    # Ended is not deleted: asking about an earlier moment still finds it.
    assert await store.get_ban(GUILD, now=T0) == ban(GUILD, until=T0 + MINUTE)


async def test_list_bans_is_ordered_by_guild_id_numerically(store: AccessPolicyStore) -> None:
    guilds = [MAX_SNOWFLAKE, 10, 9, 2**63, 100]
    for guild_id in guilds:
        await store.place_ban(ban(guild_id), now=T0)
    assert [b.guild_id for b in await store.list_bans(now=T0)] == sorted(guilds)


async def test_lift_ban_tells_whether_an_active_ban_was_lifted(store: AccessPolicyStore) -> None:
    assert await store.lift_ban(GUILD, now=T0) is False
    await store.place_ban(ban(), now=T0)
    assert await store.lift_ban(GUILD, now=T0) is True
    assert await store.get_ban(GUILD, now=T0) is None
    assert await store.lift_ban(GUILD, now=T0) is False
    assert await store.place_ban(ban(reason="again"), now=T0) is True


async def test_lifting_an_ended_ban_returns_false_and_removes_it(
    store: AccessPolicyStore,
) -> None:
    await store.place_ban(ban(until=T0 + MINUTE), now=T0)
    assert await store.lift_ban(GUILD, now=T0 + MINUTE) is False
    assert await store.get_ban(GUILD, now=T0) is None


async def test_concurrent_place_ban_places_exactly_one(store: AccessPolicyStore) -> None:
    candidates = [ban(reason=f"racer {i}") for i in range(20)]
    results = await asyncio.gather(*(store.place_ban(b, now=T0) for b in candidates))
    assert results.count(True) == 1
    winner = candidates[results.index(True)]
    assert await store.get_ban(GUILD, now=T0) == winner


# Switches


@pytest.mark.parametrize("switch", list(Switch))
async def test_a_never_set_switch_is_off(store: AccessPolicyStore, switch: Switch) -> None:
    state = await store.get_switch(switch)
    assert state == SwitchState(switch=switch)
    assert not state.active(T0)


@pytest.mark.parametrize("switch", list(Switch))
async def test_a_switch_round_trips_every_field(store: AccessPolicyStore, switch: Switch) -> None:
    state = SwitchState(
        switch=switch,
        on=True,
        reason="incident INC-7: token leak ✋",
        actor="admin:3f9a",
        changed_at=T0,
        expires_at=T0 + HOUR,
    )
    await store.set_switch(state)
    assert await store.get_switch(switch) == state
    for other in set(Switch) - {switch}:
        assert await store.get_switch(other) == SwitchState(switch=other)


async def test_a_switch_without_optional_fields_round_trips(store: AccessPolicyStore) -> None:
    state = SwitchState(switch=Switch.LOCKDOWN, on=True)
    await store.set_switch(state)
    assert await store.get_switch(Switch.LOCKDOWN) == state


async def test_the_last_switch_write_wins(store: AccessPolicyStore) -> None:
    await store.set_switch(
        SwitchState(switch=Switch.KILL_SWITCH, on=True, reason="on", actor="a", changed_at=T0)
    )
    off = SwitchState(switch=Switch.KILL_SWITCH, on=False, actor="b", changed_at=T0 + MINUTE)
    await store.set_switch(off)
    assert await store.get_switch(Switch.KILL_SWITCH) == off


async def test_a_stored_switch_expires_at_expires_at(store: AccessPolicyStore) -> None:
    await store.set_switch(
        SwitchState(switch=Switch.REFRESH_PAUSED, on=True, changed_at=T0, expires_at=T0 + HOUR)
    )
    state = await store.get_switch(Switch.REFRESH_PAUSED)
    assert state.active(T0)
    assert state.active(T0 + HOUR - US)
    assert not state.active(T0 + HOUR)
    await store.set_switch(SwitchState(switch=Switch.REFRESH_PAUSED, on=True, changed_at=T0))
    assert (await store.get_switch(Switch.REFRESH_PAUSED)).active(T0 + EVER)


# Purge


async def test_purge_of_an_empty_store_removes_nothing(store: AccessPolicyStore) -> None:
    assert await store.purge_expired(now=T0, window=MINUTE) == PurgeCounts()


async def test_purge_removes_attempts_at_least_window_old(store: AccessPolicyStore) -> None:
    now = T0 + HOUR
    await store.record_attempt(GUILD, at=now - MINUTE - US, window=MINUTE)  # purged
    await store.record_attempt(GUILD, at=now - MINUTE, window=MINUTE)  # purged: the edge
    await store.record_attempt(GUILD, at=now - MINUTE + US, window=MINUTE)  # kept
    await store.record_attempt(OTHER, at=T0, window=MINUTE)  # purged
    await store.record_attempt(OTHER, at=now + MINUTE, window=MINUTE)  # kept: future
    counts = await store.purge_expired(now=now, window=MINUTE)
    assert counts == PurgeCounts(attempts=3)
    assert await store.count_attempts(GUILD, now=now + HOUR, window=EVER) == 1
    assert await store.count_attempts(OTHER, now=now + HOUR, window=EVER) == 1
    assert await store.purge_expired(now=now, window=MINUTE) == PurgeCounts()


async def test_purge_removes_ended_bans(store: AccessPolicyStore) -> None:
    now = T0 + HOUR
    await store.place_ban(ban(GUILD, until=now - MINUTE), now=T0)  # ended
    await store.place_ban(ban(OTHER, until=now), now=T0)  # ended: the edge
    await store.place_ban(ban(MAX_SNOWFLAKE, until=now + US), now=T0)  # active
    assert await store.purge_expired(now=now, window=MINUTE) == PurgeCounts(bans=2)
    # Gone, not just inactive: even an earlier moment no longer finds them.
    assert await store.get_ban(GUILD, now=T0) is None
    assert await store.get_ban(OTHER, now=T0) is None
    assert await store.list_bans(now=T0) == [ban(MAX_SNOWFLAKE, until=now + US)]


async def test_purge_resets_expired_switches_only(store: AccessPolicyStore) -> None:
    now = T0 + HOUR
    expired = SwitchState(switch=Switch.KILL_SWITCH, on=True, reason="r", expires_at=now)
    running = SwitchState(switch=Switch.LOCKDOWN, on=True, reason="r", expires_at=now + US)
    # An off switch is not "expired", whatever its expires_at says.
    off = SwitchState(switch=Switch.REFRESH_PAUSED, on=False, reason="r", expires_at=T0)
    for state in (expired, running, off):
        await store.set_switch(state)
    assert await store.purge_expired(now=now, window=MINUTE) == PurgeCounts(switches=1)
    assert await store.get_switch(Switch.KILL_SWITCH) == SwitchState(switch=Switch.KILL_SWITCH)
    assert await store.get_switch(Switch.LOCKDOWN) == running
    assert await store.get_switch(Switch.REFRESH_PAUSED) == off


async def test_a_switch_without_expiry_survives_purge(store: AccessPolicyStore) -> None:
    forever = SwitchState(switch=Switch.KILL_SWITCH, on=True, changed_at=T0)
    await store.set_switch(forever)
    assert await store.purge_expired(now=T0 + EVER, window=MINUTE) == PurgeCounts()
    assert await store.get_switch(Switch.KILL_SWITCH) == forever


async def test_purge_counts_everything_at_once(store: AccessPolicyStore) -> None:
    await store.record_attempt(GUILD, at=T0, window=MINUTE)
    await store.record_attempt(GUILD, at=T0, window=MINUTE)
    await store.place_ban(ban(until=T0 + MINUTE), now=T0)
    await store.set_switch(SwitchState(switch=Switch.LOCKDOWN, on=True, expires_at=T0 + MINUTE))
    await store.allow_guild(GUILD, at=T0)
    counts = await store.purge_expired(now=T0 + HOUR, window=MINUTE)
    assert counts == PurgeCounts(attempts=2, bans=1, switches=1)
    # The allowlist is not subject to expiry.
    assert await store.is_guild_allowed(GUILD)
