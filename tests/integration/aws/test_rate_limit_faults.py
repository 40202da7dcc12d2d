"""DynamoRateLimitStore under injected faults, against dynalite.

* A write applied by DynamoDB whose answer is lost (botocore sends it
  again, and the retry fails its version condition) is recognised as ours:
  a hit is counted once, a release gives back once.
* Transient faults are retried by botocore and the limit stays exact.
* Persistent failures and a key contended on every try raise
  ``StoreUnavailable`` with a clear message, never "allowed".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

from tests import aws_servers
from tests.integration.aws.injection import Faults
from timmybot_adapters.aws import AwsClients, DynamoRateLimitStore
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.ports.rate_limits import RateLimit

T0 = 1_767_225_600.0
KEY = "cmd:search:user:18446744073709551533"


@pytest.fixture(autouse=True)
def _fast_throttling_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Time compression only: the 1 s base of throttling backoff becomes 20 ms.
    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale", 0.02)


@pytest.fixture
def aws() -> Iterator[AwsClients]:
    clients = aws_servers.new_clients(max_attempts=6)
    try:
        yield clients
    finally:
        clients.close()


@pytest.fixture
async def table() -> AsyncIterator[str]:
    async with aws_servers.fresh_tables(roles=["access"]) as names:
        yield names.access


def faults_on(aws: AwsClients, **options: Any) -> Faults:
    faults = Faults(**options)
    faults.attach(aws.dynamodb, "dynamodb")
    return faults


async def test_a_lost_answer_counts_the_hit_once(aws: AwsClients, table: str) -> None:
    store = DynamoRateLimitStore(aws, table)
    two = RateLimit(limit=2, window=60.0)
    faults = faults_on(aws, kinds=["lost"], operations=["PutItem"], schedule=[True, False])

    first = await store.acquire(KEY, two, now=T0)
    assert first.allowed and first.remaining == 1
    assert faults.counts["lost"] == 1
    assert faults.sent["PutItem"] == 2
    # Counted once: one more hit fits.
    assert (await store.acquire(KEY, two, now=T0)).allowed
    assert not (await store.acquire(KEY, two, now=T0)).allowed
    assert first.hit_id is not None
    assert await store.release(KEY, first.hit_id) is True


async def test_a_lost_answer_gives_a_hit_back_once(aws: AwsClients, table: str) -> None:
    store = DynamoRateLimitStore(aws, table)
    two = RateLimit(limit=2, window=60.0)
    first, second = [await store.acquire(KEY, two, now=T0) for _ in range(2)]
    assert first.hit_id is not None and second.hit_id is not None
    faults = faults_on(
        aws, kinds=["lost"], operations=["PutItem"], schedule=[True, False, True, False]
    )

    assert await store.release(KEY, first.hit_id) is True
    # The last hit too: the emptied log is a write the retry can recognise.
    assert await store.release(KEY, second.hit_id) is True
    assert faults.counts["lost"] == 2
    assert await store.release(KEY, first.hit_id) is False
    assert [(await store.acquire(KEY, two, now=T0)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]


async def test_transient_faults_keep_the_limit_exact(aws: AwsClients, table: str) -> None:
    store = DynamoRateLimitStore(aws, table)
    rate = RateLimit(limit=10, window=60.0)
    faults = faults_on(aws, rate=0.3, kinds=["throttle", "error500", "connect", "read", "lost"])

    decisions = [await store.acquire(KEY, rate, now=T0) for _ in range(20)]
    assert sum(faults.counts.values()) >= 5
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 10
    assert len({d.hit_id for d in decisions if d.allowed}) == 10


async def test_persistent_throttling_is_unavailable_never_allowed(
    aws: AwsClients, table: str
) -> None:
    store = DynamoRateLimitStore(aws, table)
    faults = faults_on(aws)
    faults.always = (400, "ThrottlingException")

    with pytest.raises(StoreUnavailable) as caught:
        await store.acquire(KEY, RateLimit(limit=5, window=60.0), now=T0)
    message = str(caught.value)
    assert message.startswith("rate limit store: acquire failed: AWS throttled the request")
    # The key holds a user ID: never in the message.
    assert "18446744073709551533" not in message
    assert "aws-message" not in message


async def test_a_key_contended_on_every_try_is_unavailable_never_allowed(
    aws: AwsClients, table: str
) -> None:
    store = DynamoRateLimitStore(aws, table, max_tries=3)
    # Every conditional write finds the key changed, as if other shards
    # always won the race.
    faults = faults_on(aws, operations=["PutItem"])
    faults.always = (400, "ConditionalCheckFailedException")

    with pytest.raises(StoreUnavailable, match="written by others on each of 3 tries"):
        await store.acquire(KEY, RateLimit(limit=5, window=60.0), now=T0)
    assert faults.sent["PutItem"] == 3
    assert faults.sent["GetItem"] == 4

    faults.always = None
    # Nothing was counted.
    one = RateLimit(limit=1, window=60.0)
    assert (await store.acquire(KEY, one, now=T0)).allowed
    assert not (await store.acquire(KEY, one, now=T0)).allowed


def test_the_store_checks_its_settings(aws: AwsClients) -> None:
    with pytest.raises(ValueError, match="max_tries must be a positive integer"):
        DynamoRateLimitStore(aws, "t", max_tries=0)
    with pytest.raises(ValueError, match="ttl_margin"):
        DynamoRateLimitStore(aws, "t", ttl_margin=-1)
    with pytest.raises(ValueError, match="a table name is required"):
        DynamoRateLimitStore(aws, "")
    assert repr(DynamoRateLimitStore(aws, "t")) == "DynamoRateLimitStore(table='t')"
