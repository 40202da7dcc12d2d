"""The ErasureJournal contract: every adapter of the port passes this suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from timmybot_adapters.memory import MemoryErasureJournal
from timmybot_adapters.sqlite import SqliteDatabase, SqliteErasureJournal
from timmybot_core.ports.erasure import ErasureEntry, ErasureJournal, ErasureStep

T0 = datetime(2026, 1, 1, tzinfo=UTC)
USER = 2**64 - 1


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[ErasureJournal]:
    yield MemoryErasureJournal()


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[ErasureJournal]:
    async with SqliteDatabase(tmp_path / "var" / "timmybot.db") as db:
        yield await SqliteErasureJournal.open(db)


@asynccontextmanager
async def _aws(tmp_path: Path) -> AsyncIterator[ErasureJournal]:
    from tests import aws_servers
    from timmybot_adapters.aws import DynamoErasureJournal

    async with aws_servers.fresh_tables(roles=["access"]) as tables:
        yield DynamoErasureJournal(aws_servers.shared_clients(), tables.access)


ADAPTERS: dict[str, Callable[[Path], AbstractAsyncContextManager[ErasureJournal]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "aws": _aws,
}


@pytest.fixture(params=list(ADAPTERS))
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ErasureJournal]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


def entry(request_id: str = "r1", *, at: datetime = T0, user_id: int = USER) -> ErasureEntry:
    return ErasureEntry(request_id=request_id, user_id=user_id, requester="user", requested_at=at)


def test_the_journal_implements_the_port(journal: ErasureJournal) -> None:
    assert isinstance(journal, ErasureJournal)


async def test_a_new_journal_has_nothing_pending(journal: ErasureJournal) -> None:
    assert await journal.pending() == []


async def test_a_begun_request_is_pending_with_its_user_until_finished(
    journal: ErasureJournal,
) -> None:
    await journal.begin(entry())
    assert await journal.pending() == [entry()]
    assert await journal.finish("r1")
    assert await journal.pending() == []
    assert not await journal.finish("r1")


async def test_each_steps_outcome_is_kept(journal: ErasureJournal) -> None:
    await journal.begin(entry())
    vault = ErasureStep(ok=False, detail="revocation failed at demo", final=True)
    assert await journal.record_step("r1", "link_states", ErasureStep(ok=True, deleted=2))
    assert await journal.record_step("r1", "vault", vault)
    (pending,) = await journal.pending()
    assert dict(pending.steps) == {"link_states": ErasureStep(ok=True, deleted=2), "vault": vault}
    # A later outcome of the same store replaces the earlier one.
    assert await journal.record_step("r1", "vault", ErasureStep(ok=True, deleted=1))
    (pending,) = await journal.pending()
    assert pending.steps["vault"] == ErasureStep(ok=True, deleted=1)


async def test_a_step_of_an_unknown_or_finished_request_is_refused(
    journal: ErasureJournal,
) -> None:
    assert not await journal.record_step("nope", "vault", ErasureStep(ok=True))
    await journal.begin(entry())
    await journal.finish("r1")
    assert not await journal.record_step("r1", "vault", ErasureStep(ok=True))
    assert await journal.pending() == []


async def test_beginning_a_known_request_again_changes_nothing(journal: ErasureJournal) -> None:
    await journal.begin(entry())
    await journal.record_step("r1", "vault", ErasureStep(ok=True, deleted=1))
    await journal.begin(entry())
    (pending,) = await journal.pending()
    assert pending.steps["vault"].deleted == 1


async def test_pending_requests_come_oldest_first_up_to_the_limit(
    journal: ErasureJournal,
) -> None:
    for index, request_id in enumerate(["c", "a", "b"]):
        await journal.begin(entry(request_id, at=T0 - timedelta(minutes=index), user_id=index + 1))
    assert [e.request_id for e in await journal.pending()] == ["b", "a", "c"]
    assert [e.request_id for e in await journal.pending(limit=2)] == ["b", "a"]
    assert await journal.pending(limit=0) == []


async def test_concurrent_steps_of_one_request_are_all_kept(journal: ErasureJournal) -> None:
    await journal.begin(entry())
    stores = [f"store{n}" for n in range(6)]
    await asyncio.gather(
        *(
            journal.record_step("r1", name, ErasureStep(ok=True, deleted=n))
            for n, name in enumerate(stores)
        )
    )
    (pending,) = await journal.pending()
    assert sorted(pending.steps) == stores
