"""The RefreshLeases contract: every adapter passes this suite.

The DynamoDB adapter runs against dynalite and against moto's server (both
on 127.0.0.1). Expiry is the waiting process's business (it watches the
holder on its own monotonic clock and then takes over with ``replaces``),
so no test here moves a clock: a store never judges expiry.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from timmybot_adapters.memory import MemoryRefreshLeases
from timmybot_core.ports.refresh_leases import RefreshLeases

USER = 1234567890123456789
OTHER = 987654321098765432
UNTIL = datetime(2026, 1, 1, 2, 0, 30, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def _memory() -> AsyncIterator[tuple[RefreshLeases, dict[str, str] | None]]:
    yield MemoryRefreshLeases(), None


@asynccontextmanager
async def _dynalite() -> AsyncIterator[tuple[RefreshLeases, dict[str, str] | None]]:
    from tests import aws_servers
    from timmybot_adapters.aws import DynamoRefreshLeases

    async with aws_servers.fresh_tables(roles=["access"]) as tables:
        where = {"endpoint": aws_servers.dynalite_endpoint(), "table": tables.access}
        yield DynamoRefreshLeases(aws_servers.shared_clients(), tables.access), where


@asynccontextmanager
async def _moto() -> AsyncIterator[tuple[RefreshLeases, dict[str, str] | None]]:
    from tests import aws_servers
    from timmybot_adapters.aws import DynamoRefreshLeases, TableNames, create_tables, delete_tables

    endpoint = aws_servers.moto_endpoint()
    clients = aws_servers.new_clients(dynamodb_endpoint_url=endpoint)
    names = TableNames.with_prefix(aws_servers.unique("tb") + "-")
    await asyncio.to_thread(create_tables, clients.dynamodb, names, only=[names.access])
    try:
        yield (
            DynamoRefreshLeases(clients, names.access),
            {"endpoint": endpoint, "table": names.access},
        )
    finally:
        await asyncio.to_thread(delete_tables, clients.dynamodb, [names.access])
        await clients.aclose()


ADAPTERS: dict[
    str, Callable[[], AbstractAsyncContextManager[tuple[RefreshLeases, dict[str, str] | None]]]
] = {"memory": _memory, "aws-dynalite": _dynalite, "aws-moto": _moto}


@pytest.fixture(params=list(ADAPTERS))
async def opened(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[RefreshLeases, dict[str, str] | None]]:
    async with ADAPTERS[request.param]() as pair:
        yield pair


@pytest.fixture
def leases(opened: tuple[RefreshLeases, dict[str, str] | None]) -> RefreshLeases:
    return opened[0]


async def take(
    leases: RefreshLeases, claim: str, *, fence: str = "f1", replaces: str | None = None
) -> bool:
    return await leases.acquire(
        USER, "spotify", claim_id=claim, fence=fence, until=UNTIL, replaces=replaces
    )


def test_the_store_implements_the_port(leases: RefreshLeases) -> None:
    assert isinstance(leases, RefreshLeases)


async def test_a_free_lease_is_taken_and_names_its_holder(leases: RefreshLeases) -> None:
    assert await leases.holder(USER, "spotify") is None
    assert await take(leases, "a") is True
    assert await leases.holder(USER, "spotify") == "a"


async def test_a_held_lease_refuses_everyone_else(leases: RefreshLeases) -> None:
    assert await take(leases, "a")
    assert await take(leases, "b") is False
    assert await take(leases, "b", fence="f2") is False
    assert await take(leases, "a") is False  # not even its holder, a second time
    assert await leases.holder(USER, "spotify") == "a"


async def test_a_watched_holder_is_taken_over_only_by_name_and_fence(
    leases: RefreshLeases,
) -> None:
    assert await take(leases, "a")
    # Taking over needs the holder that was watched, and the same refresh token.
    assert await take(leases, "b", replaces="x") is False
    assert await take(leases, "b", replaces="a", fence="f2") is False
    assert await take(leases, "b", replaces="a") is True
    assert await leases.holder(USER, "spotify") == "b"
    # A second taker that watched the old holder is too late.
    assert await take(leases, "c", replaces="a") is False


async def test_a_free_lease_cannot_be_taken_over(leases: RefreshLeases) -> None:
    assert await take(leases, "b", replaces="a") is False
    assert await leases.holder(USER, "spotify") is None


async def test_only_the_holder_releases(leases: RefreshLeases) -> None:
    assert await leases.release(USER, "spotify", claim_id="a", spent=False) is False
    assert await take(leases, "a")
    assert await leases.release(USER, "spotify", claim_id="b", spent=False) is False
    assert await leases.holder(USER, "spotify") == "a"
    assert await leases.release(USER, "spotify", claim_id="a", spent=False) is True
    assert await leases.holder(USER, "spotify") is None
    assert await leases.release(USER, "spotify", claim_id="a", spent=False) is False


async def test_a_holder_taken_over_cannot_release(leases: RefreshLeases) -> None:
    await take(leases, "a")
    await take(leases, "b", replaces="a")
    assert await leases.release(USER, "spotify", claim_id="a", spent=False) is False
    assert await leases.holder(USER, "spotify") == "b"


async def test_a_spent_release_fences_off_the_token_presented(leases: RefreshLeases) -> None:
    await take(leases, "a", fence="f1")
    await leases.release(USER, "spotify", claim_id="a", spent=True)
    # A stale read still showing the spent token is refused; the new token is not.
    assert await take(leases, "b", fence="f1") is False
    assert await take(leases, "b", fence="f2") is True


async def test_an_unspent_release_lets_the_same_token_be_presented(leases: RefreshLeases) -> None:
    await take(leases, "a", fence="f1")
    await leases.release(USER, "spotify", claim_id="a", spent=False)
    assert await take(leases, "b", fence="f1") is True


async def test_leases_are_independent_by_user_and_platform(leases: RefreshLeases) -> None:
    assert await take(leases, "a")
    assert await leases.acquire(USER, "deezer", claim_id="b", fence="f1", until=UNTIL)
    assert await leases.acquire(OTHER, "spotify", claim_id="c", fence="f1", until=UNTIL)
    assert await leases.holder(USER, "spotify") == "a"
    assert await leases.holder(USER, "deezer") == "b"
    assert await leases.holder(OTHER, "spotify") == "c"


async def test_forget_deletes_every_lease_of_the_user_only(leases: RefreshLeases) -> None:
    await take(leases, "a")
    await leases.acquire(USER, "deezer", claim_id="b", fence="f1", until=UNTIL)
    await leases.acquire(OTHER, "spotify", claim_id="c", fence="f1", until=UNTIL)
    await leases.forget(USER)
    await leases.forget(USER)  # idempotent
    assert await leases.holder(USER, "spotify") is None
    assert await leases.holder(USER, "deezer") is None
    assert await leases.holder(OTHER, "spotify") == "c"


# Races run where writes to one item are serialized, as DynamoDB serializes them:
# moto's server does not lock items (two racing conditional updates can both
# pass), so on moto they would test moto, not the adapter.
LOCKING = ["memory", "aws-dynalite"]


@pytest.mark.parametrize("adapter", LOCKING)
async def test_racing_acquirers_get_exactly_one_lease(adapter: str) -> None:
    async with ADAPTERS[adapter]() as (leases, _):
        await _race_tasks(leases)


async def _race_tasks(leases: RefreshLeases) -> None:
    won = await asyncio.gather(*(take(leases, f"claim-{i}") for i in range(20)))
    assert won.count(True) == 1
    winner = f"claim-{won.index(True)}"
    assert await leases.holder(USER, "spotify") == winner


@pytest.mark.parametrize("adapter", LOCKING)
async def test_racing_takeovers_of_one_holder_get_exactly_one(adapter: str) -> None:
    async with ADAPTERS[adapter]() as (leases, _):
        await _race_takeovers(leases)


async def _race_takeovers(leases: RefreshLeases) -> None:
    await take(leases, "dead")
    won = await asyncio.gather(*(take(leases, f"t-{i}", replaces="dead") for i in range(20)))
    assert won.count(True) == 1


@pytest.mark.parametrize(
    ("claim", "fence", "platform", "user"),
    [
        ("", "f", "spotify", USER),
        ("a", "", "spotify", USER),
        ("a", "f", "Spotify!", USER),
        ("a", "f", "spotify", -1),
        ("a", "f", "spotify", 2**64),
    ],
)
async def test_bad_arguments_are_refused_with_a_clear_error(
    leases: RefreshLeases, claim: str, fence: str, platform: str, user: int
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by argument
        await leases.acquire(user, platform, claim_id=claim, fence=fence, until=UNTIL)


_RACER = """
import asyncio, json, sys, time
from datetime import UTC, datetime
from timmybot_adapters.aws import AwsClients, AwsConfig, DynamoRefreshLeases

endpoint, table, claim, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

async def main() -> None:
    aws = AwsClients(AwsConfig(region="eu-west-1", endpoint_url=endpoint))
    leases = DynamoRefreshLeases(aws, table)
    await leases.holder(1, "spotify")  # warm the connection before the start
    time.sleep(max(0.0, start - time.time()))
    won = await leases.acquire(
        1234567890123456789, "spotify", claim_id=claim, fence="f1",
        until=datetime(2026, 1, 1, tzinfo=UTC),
    )
    print(json.dumps({"claim": claim, "won": won}))
    await aws.aclose()

asyncio.run(main())
"""


@pytest.mark.parametrize("adapter", ["aws-dynalite"])
async def test_racing_processes_get_exactly_one_lease(adapter: str) -> None:
    async with ADAPTERS[adapter]() as (leases, where):
        assert where is not None
        await _race_processes(leases, where)


async def _race_processes(leases: RefreshLeases, where: dict[str, str]) -> None:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    start = time.time() + 4.0  # every racer has imported boto3 by then
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RACER,
            where["endpoint"],
            where["table"],
            f"p{i}",
            str(start),
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        for i in range(4)
    ]
    answers = []
    for racer in racers:
        out, _ = await asyncio.wait_for(racer.communicate(), timeout=60)
        assert racer.returncode == 0
        answers.append(json.loads(out))
    winners = [answer["claim"] for answer in answers if answer["won"]]
    assert len(winners) == 1
    assert await leases.holder(USER, "spotify") == winners[0]
