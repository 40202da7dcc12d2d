"""The LinkStateStore contract: every adapter of the port passes this suite.

A new adapter joins by adding one entry to ``ADAPTERS``: an async context
manager that yields a fresh, empty store.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from timmybot_adapters.memory import MemoryLinkStateStore
from timmybot_adapters.sqlite import SqliteDatabase, SqliteLinkStateStore, VaultKeys
from timmybot_core.ports.link_states import LinkState, LinkStateStore, TakeOutcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
TTL = timedelta(minutes=10)
USER = 123456789012345678
OTHER = 876543210987654321
MAX_SNOWFLAKE = 2**64 - 1
VERIFIER = "canary-verifier-" + "v" * 43


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[LinkStateStore]:
    yield MemoryLinkStateStore()


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[LinkStateStore]:
    async with SqliteDatabase(tmp_path / "var" / "timmybot.db") as db:
        keys = VaultKeys.single("contract1", os.urandom(32))
        yield await SqliteLinkStateStore.open(db, keys=keys)


@asynccontextmanager
async def _sqlite_unencrypted(tmp_path: Path) -> AsyncIterator[LinkStateStore]:
    async with SqliteDatabase(tmp_path / "var" / "timmybot.db") as db:
        yield await SqliteLinkStateStore.open(db)


@asynccontextmanager
async def _aws(tmp_path: Path) -> AsyncIterator[LinkStateStore]:
    from tests import aws_servers
    from timmybot_adapters.aws import DynamoLinkStateStore

    async with aws_servers.fresh_tables(roles=["link_states"]) as tables:
        yield DynamoLinkStateStore(aws_servers.shared_clients(), tables.link_states)


ADAPTERS: dict[str, Callable[[Path], AbstractAsyncContextManager[LinkStateStore]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "sqlite-unencrypted": _sqlite_unencrypted,
    "aws": _aws,
}


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LinkStateStore]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def state(
    name: str = "state-1",
    *,
    user_id: int = USER,
    platform: str = "spotify",
    created_at: datetime = T0,
    ttl: timedelta = TTL,
    verifier: str = VERIFIER,
) -> LinkState:
    return LinkState(
        state_hash=digest(name),
        user_id=user_id,
        platform=platform,
        code_verifier=verifier,
        created_at=created_at,
        expires_at=created_at + ttl,
    )


def test_the_store_implements_the_port(store: LinkStateStore) -> None:
    assert isinstance(store, LinkStateStore)


async def test_a_state_is_taken_once_then_reads_as_used(store: LinkStateStore) -> None:
    added = state(user_id=MAX_SNOWFLAKE)
    await store.add(added)
    first = await store.take(added.state_hash, now=T0 + timedelta(minutes=1))
    assert first.outcome is TakeOutcome.TAKEN
    assert first.state is not None
    assert first.state.state_hash == added.state_hash
    assert first.state.user_id == MAX_SNOWFLAKE
    assert first.state.platform == "spotify"
    assert first.state.code_verifier == VERIFIER
    assert first.state.created_at == T0
    assert first.state.expires_at == T0 + TTL
    again = await store.take(added.state_hash, now=T0 + timedelta(minutes=2))
    assert again.outcome is TakeOutcome.USED
    assert again.state is None


async def test_an_unknown_state_is_unknown(store: LinkStateStore) -> None:
    result = await store.take(digest("never-added"), now=T0)
    assert result.outcome is TakeOutcome.UNKNOWN
    assert result.state is None


async def test_a_state_is_taken_just_before_its_expiry(store: LinkStateStore) -> None:
    await store.add(state())
    result = await store.take(digest("state-1"), now=T0 + TTL - US)
    assert result.outcome is TakeOutcome.TAKEN


@pytest.mark.parametrize("late", [timedelta(0), US, timedelta(days=1)])
async def test_a_state_is_expired_at_and_after_its_expiry(
    store: LinkStateStore, late: timedelta
) -> None:
    await store.add(state())
    result = await store.take(digest("state-1"), now=T0 + TTL + late)
    assert result.outcome is TakeOutcome.EXPIRED
    assert result.state is None
    # An expired state is gone, not spent.
    assert (await store.take(digest("state-1"), now=T0 + TTL + late)).outcome in (
        TakeOutcome.UNKNOWN,
        TakeOutcome.EXPIRED,
    )


async def test_a_used_marker_is_forgotten_at_the_states_expiry(store: LinkStateStore) -> None:
    await store.add(state())
    assert (await store.take(digest("state-1"), now=T0)).outcome is TakeOutcome.TAKEN
    assert (await store.take(digest("state-1"), now=T0 + TTL - US)).outcome is TakeOutcome.USED
    assert (await store.take(digest("state-1"), now=T0 + TTL)).outcome is TakeOutcome.UNKNOWN
    assert (
        await store.take(digest("state-1"), now=T0 + TTL + timedelta(hours=1))
    ).outcome is TakeOutcome.UNKNOWN


async def test_states_are_independent(store: LinkStateStore) -> None:
    await store.add(state("a", platform="spotify"))
    await store.add(state("b", user_id=OTHER, platform="deezer", verifier="other-verifier"))
    taken_b = await store.take(digest("b"), now=T0)
    assert taken_b.state is not None
    assert (taken_b.state.user_id, taken_b.state.platform) == (OTHER, "deezer")
    assert taken_b.state.code_verifier == "other-verifier"
    taken_a = await store.take(digest("a"), now=T0)
    assert taken_a.outcome is TakeOutcome.TAKEN
    assert taken_a.state is not None
    assert taken_a.state.code_verifier == VERIFIER


async def test_concurrent_takes_give_exactly_one_taken(store: LinkStateStore) -> None:
    await store.add(state())
    results = await asyncio.gather(
        *(store.take(digest("state-1"), now=T0 + timedelta(seconds=1)) for _ in range(20))
    )
    outcomes = [result.outcome for result in results]
    assert outcomes.count(TakeOutcome.TAKEN) == 1
    assert outcomes.count(TakeOutcome.USED) == 19
    assert next(r.state for r in results if r.state is not None).code_verifier == VERIFIER


async def test_delete_user_deletes_only_that_users_pending_states(store: LinkStateStore) -> None:
    await store.add(state("a"))
    await store.add(state("b", platform="deezer"))
    await store.add(state("c", user_id=OTHER))
    await store.add(state("spent"))
    assert (await store.take(digest("spent"), now=T0)).outcome is TakeOutcome.TAKEN
    assert await store.delete_user(USER) == 2
    assert await store.delete_user(USER) == 0
    assert (await store.take(digest("a"), now=T0)).outcome is TakeOutcome.UNKNOWN
    assert (await store.take(digest("b"), now=T0)).outcome is TakeOutcome.UNKNOWN
    assert (await store.take(digest("c"), now=T0)).outcome is TakeOutcome.TAKEN


async def test_after_an_erasure_spent_markers_still_refuse_a_replay_and_hold_nothing_of_the_user(
    store: LinkStateStore,
) -> None:
    await store.add(state("spent"))
    assert (await store.take(digest("spent"), now=T0)).outcome is TakeOutcome.TAKEN
    await store.delete_user(USER)
    assert (await store.take(digest("spent"), now=T0)).outcome is TakeOutcome.USED
    raw = await _raw_marker(store, digest("spent"))
    if raw is not None:
        assert str(USER) not in raw
        assert VERIFIER not in raw


async def _raw_marker(store: LinkStateStore, state_hash: str) -> str | None:
    """What the store keeps of a spent marker, as text (stores that keep it apart: None)."""
    from timmybot_adapters.aws import DynamoLinkStateStore

    if not isinstance(store, DynamoLinkStateStore):
        # Memory and SQLite keep spent markers as (hash, until) only.
        return None
    from tests import aws_servers

    answer = await aws_servers.shared_clients().run(
        aws_servers.shared_clients().dynamodb.get_item,
        TableName=store.table,
        Key={"pk": {"S": state_hash}},
        ConsistentRead=True,
    )
    return repr(answer.get("Item"))


async def test_the_largest_snowflakes_states_are_deleted(store: LinkStateStore) -> None:
    await store.add(state("a", user_id=MAX_SNOWFLAKE))
    assert await store.delete_user(MAX_SNOWFLAKE - 1) == 0
    assert await store.delete_user(MAX_SNOWFLAKE) == 1


async def test_purge_expired_counts_expired_states_and_spent_markers(
    store: LinkStateStore,
) -> None:
    await store.add(state("old-1", ttl=timedelta(minutes=1)))
    await store.add(state("old-2", ttl=timedelta(minutes=2)))
    await store.add(state("fresh", ttl=timedelta(hours=1)))
    await store.add(state("spent-old", ttl=timedelta(minutes=3)))
    await store.add(state("spent-fresh", ttl=timedelta(hours=2)))
    assert (await store.take(digest("spent-old"), now=T0)).outcome is TakeOutcome.TAKEN
    assert (await store.take(digest("spent-fresh"), now=T0)).outcome is TakeOutcome.TAKEN
    assert await store.purge_expired(now=T0) == 0
    # At T0 + 3 minutes: old-1, old-2 and the spent-old marker have expired.
    assert await store.purge_expired(now=T0 + timedelta(minutes=3)) == 3
    assert await store.purge_expired(now=T0 + timedelta(minutes=3)) == 0
    assert (await store.take(digest("old-1"), now=T0)).outcome is TakeOutcome.UNKNOWN
    assert (await store.take(digest("spent-old"), now=T0)).outcome is TakeOutcome.UNKNOWN
    assert (await store.take(digest("spent-fresh"), now=T0)).outcome is TakeOutcome.USED
    assert (await store.take(digest("fresh"), now=T0)).outcome is TakeOutcome.TAKEN
    # The fresh state's spent marker and the spent-fresh marker remain until their expiry.
    assert await store.purge_expired(now=T0 + timedelta(hours=2)) == 2


async def test_a_taken_state_never_shows_its_verifier(store: LinkStateStore) -> None:
    await store.add(state())
    result = await store.take(digest("state-1"), now=T0)
    assert VERIFIER not in repr(result)
    assert VERIFIER not in str(result)


# -- erasure barriers ----------------------------------------------------------------


async def test_a_user_without_an_erasure_has_no_barrier(store: LinkStateStore) -> None:
    assert await store.erasure_barrier(USER, now=T0) is None


async def test_an_erasure_barrier_is_kept_until_its_end(store: LinkStateStore) -> None:
    await store.add_erasure_barrier(USER, erased_at=T0, until=T0 + timedelta(hours=1))
    assert await store.erasure_barrier(USER, now=T0) == T0
    assert await store.erasure_barrier(USER, now=T0 + timedelta(hours=1) - US) == T0
    assert await store.erasure_barrier(USER, now=T0 + timedelta(hours=1)) is None
    assert await store.erasure_barrier(OTHER, now=T0) is None


async def test_the_latest_erasure_barrier_wins(store: LinkStateStore) -> None:
    later = T0 + timedelta(minutes=5)
    await store.add_erasure_barrier(USER, erased_at=later, until=later + timedelta(hours=1))
    # Another process's erasure that read its clock earlier writes after it.
    await store.add_erasure_barrier(USER, erased_at=T0, until=T0 + timedelta(hours=1))
    assert await store.erasure_barrier(USER, now=T0 + timedelta(hours=1)) == later
    last = T0 + timedelta(minutes=30)
    await store.add_erasure_barrier(USER, erased_at=last, until=last + timedelta(hours=1))
    assert await store.erasure_barrier(USER, now=later + timedelta(hours=1)) == last


async def test_erasing_a_users_states_keeps_their_barrier(store: LinkStateStore) -> None:
    # The erasure writes the barrier, then deletes the pending states: the
    # barrier must outlive that step, or a link in flight would not see it.
    await store.add(state("a"))
    await store.add_erasure_barrier(USER, erased_at=T0, until=T0 + timedelta(hours=1))
    assert await store.delete_user(USER) == 1
    assert await store.erasure_barrier(USER, now=T0) == T0


async def test_purge_expired_deletes_ended_erasure_barriers(store: LinkStateStore) -> None:
    await store.add_erasure_barrier(USER, erased_at=T0, until=T0 + timedelta(hours=1))
    await store.add_erasure_barrier(OTHER, erased_at=T0, until=T0 + timedelta(hours=2))
    assert await store.purge_expired(now=T0 + timedelta(minutes=59)) == 0
    assert await store.purge_expired(now=T0 + timedelta(hours=1)) == 1
    assert await store.erasure_barrier(OTHER, now=T0 + timedelta(hours=1)) == T0
    assert await store.purge_expired(now=T0 + timedelta(hours=2)) == 1
    assert await store.erasure_barrier(OTHER, now=T0) is None


async def test_an_erasure_barrier_holds_no_user_id(store: LinkStateStore) -> None:
    await store.add_erasure_barrier(MAX_SNOWFLAKE, erased_at=T0, until=T0 + timedelta(hours=1))
    assert await store.erasure_barrier(MAX_SNOWFLAKE, now=T0) == T0
    raw = await _raw_barrier(store, MAX_SNOWFLAKE)
    if raw is not None:
        assert str(MAX_SNOWFLAKE) not in raw
        assert f"{MAX_SNOWFLAKE:020d}" not in raw


async def _raw_barrier(store: LinkStateStore, user_id: int) -> str | None:
    """What the store keeps of a barrier, as text (SQLite: tests/integration/test_erasure_sqlite)."""
    from timmybot_adapters.aws import DynamoLinkStateStore

    if not isinstance(store, DynamoLinkStateStore):
        return None
    from tests import aws_servers

    answer = await aws_servers.shared_clients().run(
        aws_servers.shared_clients().dynamodb.scan, TableName=store.table, ConsistentRead=True
    )
    assert answer["Items"], "the barrier is an item of the table"
    return repr(answer["Items"])
