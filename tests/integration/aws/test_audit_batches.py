"""Batched audit appends on DynamoDB (dynalite): few calls, and nothing lost or doubled.

Security events reach the log with ``append(record, wait=False)`` and are
written 25 to a ``BatchWriteItem``. Faults are injected with botocore
``before-send`` hooks on the adapter's own client: partial answers
(``UnprocessedItems``: the server applied some of the batch and lists the
rest), throttling of whole calls, and answers lost after the batch was
applied (so the same batch is sent again). After each, the chain holds
every record exactly once and verification is clean.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from botocore.awsrequest import AWSResponse
from botocore.httpsession import URLLib3Session
from botocore.retries.standard import ExponentialBackoff

from tests import aws_servers
from tests.integration.aws.injection import Faults, _Body
from timmybot_adapters.aws import AwsClients, DynamoAuditLog, TableNames
from timmybot_adapters.signing import Ed25519KeyRing, Ed25519Signer
from timmybot_core import (
    AuditSettings,
    AuditTrailService,
    FakeClock,
    Pseudonymizer,
    ResponseSanitizer,
)
from timmybot_core.domain.audit_chain import sealed
from timmybot_core.domain.errors import AuditConflict, StoreUnavailable
from timmybot_core.domain.events import SecurityEvent, SecurityEventType

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SIGNER = Ed25519Signer.generate()
RING = Ed25519KeyRing()
RING.add(SIGNER.public_key)


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
async def tables() -> AsyncIterator[TableNames]:
    async with aws_servers.fresh_tables(roles=["audit"]) as names:
        yield names


class Calls:
    """Counts every HTTP request (retries included) by operation."""

    def __init__(self, client: Any) -> None:
        self.by_operation: Counter[str] = Counter()
        client.meta.events.register("before-send.dynamodb", self)

    def __call__(self, event_name: str = "", **_: Any) -> None:
        self.by_operation[event_name.rsplit(".", 1)[-1]] += 1


class PartialBatches:
    """Answers some ``BatchWriteItem`` calls as a throttled DynamoDB does.

    The server applies the first ``keep`` items of the batch (the request,
    cut to them, is sent as it is: dynalite does not check signatures); the
    answer lists the others as ``UnprocessedItems``.
    """

    def __init__(self, client: Any, *, keep: int, times: int) -> None:
        self.keep = keep
        self.left = times
        self.unprocessed = 0
        self._lock = threading.Lock()
        self._http = URLLib3Session()
        client.meta.events.register("before-send.dynamodb.BatchWriteItem", self)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        with self._lock:
            if self.left <= 0:
                return None
            self.left -= 1
        body = json.loads(request.body)
        [(table, writes)] = body["RequestItems"].items()
        done, rest = writes[: self.keep], writes[self.keep :]
        if done:
            cut = json.dumps({**body, "RequestItems": {table: done}}).encode()
            request.body = cut
            request.headers["Content-Length"] = str(len(cut))
            answer = self._http.send(request)
            assert answer.status_code == 200, answer.content
        self.unprocessed += len(rest)
        answer = json.dumps({"UnprocessedItems": {table: rest} if rest else {}}).encode()
        return AWSResponse(
            request.url, 200, {"x-amzn-requestid": "req-partial-0001"}, _Body(answer)
        )


def trail(log: DynamoAuditLog, clock: FakeClock, writer: str = "w-batches") -> AuditTrailService:
    return AuditTrailService(
        log=log,
        pseudonymizer=Pseudonymizer(key=b"batch-test-pseudonym-key-32bytes", key_id="t1"),
        sanitizer=ResponseSanitizer(),
        signer=SIGNER,
        verifier=RING,
        clock=clock,
        settings=AuditSettings(digest_interval=timedelta(days=1), digest_every=10_000),
        writer_id=writer,
    )


def denial(clock: FakeClock, n: int) -> SecurityEvent:
    return SecurityEvent(
        type=SecurityEventType.UNAUTHORIZED_ACCESS,
        at=clock.now(),
        guild=f"p1:guild-{n % 7}",
        user=f"p1:user-{n % 13}",
        details={"attempts": n},
    )


async def flood(service: AuditTrailService, clock: FakeClock, count: int) -> None:
    for n in range(count):
        clock.advance(timedelta(milliseconds=3))
        await service.on_security_event(denial(clock, n))


async def assert_whole(log: DynamoAuditLog, service: AuditTrailService, count: int) -> None:
    chain = await log.chain(service.writer_id)
    assert [r.sequence for r in chain] == list(range(1, count + 1))  # none lost, none twice
    assert len({r.event_id for r in chain}) == count
    report = await service.verify()
    assert report.ok, [str(p) for p in report.problems]
    assert report.records_checked == count


async def test_a_stream_of_events_costs_one_call_per_25_records(
    aws: AwsClients, tables: TableNames
) -> None:
    log = DynamoAuditLog(aws, tables.audit)
    clock = FakeClock(START)
    service = trail(log, clock)
    calls = Calls(aws.dynamodb)
    await flood(service, clock, 500)
    writes = calls.by_operation["BatchWriteItem"]
    # Claiming the writer and widening the day range happen once.
    assert writes == 500 // 25
    assert sum(calls.by_operation.values()) <= 500 / 20
    await service.close()
    await assert_whole(log, service, 500)


async def test_an_admin_action_is_stored_before_its_reply_with_the_events_before_it(
    aws: AwsClients, tables: TableNames
) -> None:
    log = DynamoAuditLog(aws, tables.audit)
    clock = FakeClock(START)
    service = trail(log, clock)
    await flood(service, clock, 7)
    assert log.pending == 7
    await service.record_admin_action(111, "guild.allow", "guild:1")
    assert log.pending == 0
    # Another process (another log on the same table) sees all eight now.
    other = DynamoAuditLog(aws_servers.shared_clients(), tables.audit)
    assert [r.sequence for r in await other.chain(service.writer_id)] == list(range(1, 9))


async def test_a_buffered_record_is_written_within_the_batch_interval(
    aws: AwsClients, tables: TableNames
) -> None:
    log = DynamoAuditLog(aws, tables.audit, batch_interval=0.05)
    clock = FakeClock(START)
    service = trail(log, clock)
    await flood(service, clock, 3)
    other = DynamoAuditLog(aws_servers.shared_clients(), tables.audit)
    # The table shows the batch a moment before the writer's own buffer lets
    # go of it (the answer travels back after the write), so wait for both.
    for _ in range(100):  # at most 5 s
        if log.pending == 0 and len(await other.chain(service.writer_id)) == 3:
            break
        await asyncio.sleep(0.05)
    assert log.pending == 0
    assert [r.sequence for r in await other.chain(service.writer_id)] == [1, 2, 3]


async def test_unprocessed_items_are_sent_again_until_every_record_is_stored(
    aws: AwsClients, tables: TableNames
) -> None:
    log = DynamoAuditLog(aws, tables.audit)
    clock = FakeClock(START)
    service = trail(log, clock)
    partial = PartialBatches(aws.dynamodb, keep=10, times=6)
    await flood(service, clock, 120)
    await service.close()
    assert partial.unprocessed > 0
    await assert_whole(log, service, 120)


async def test_throttled_and_lost_batches_leave_each_record_once(
    aws: AwsClients, tables: TableNames
) -> None:
    log = DynamoAuditLog(aws, tables.audit)
    clock = FakeClock(START)
    service = trail(log, clock)
    # Every other attempt of the first batches fails: applied with its answer lost
    # (so the same batch is sent again), or throttled, or a 500.
    pattern = [True, False] * 4
    for kind in ("lost", "throttle", "error500"):
        faults = Faults(kinds=(kind,), operations=["BatchWriteItem"], schedule=pattern)
        faults.attach(aws.dynamodb, "dynamodb")
    await flood(service, clock, 200)
    await service.close()
    assert faults.counts["error500"] == 4
    await assert_whole(log, service, 200)


async def test_a_batch_dynamodb_will_not_take_stays_buffered_and_is_written_later(
    aws: AwsClients, tables: TableNames
) -> None:
    log = DynamoAuditLog(aws, tables.audit)
    clock = FakeClock(START)
    service = trail(log, clock)
    PartialBatches(aws.dynamodb, keep=0, times=10)  # every try of the first flush: nothing taken
    await flood(service, clock, 24)
    with pytest.raises(StoreUnavailable, match="unprocessed") as raised:
        await log.flush()
    assert "p1:user" not in str(raised.value)
    assert log.pending == 24
    await flood(service, clock, 6)  # the 25th record flushes the buffer, which now goes through
    await service.close()
    await assert_whole(log, service, 30)


async def test_another_process_cannot_write_a_claimed_writer(
    aws: AwsClients, tables: TableNames
) -> None:
    clock = FakeClock(START)
    mine = trail(DynamoAuditLog(aws, tables.audit), clock, writer="w-claimed")
    await flood(mine, clock, 2)
    intruder = trail(DynamoAuditLog(aws_servers.shared_clients(), tables.audit), clock, "w-claimed")
    with pytest.raises(AuditConflict, match="another process"):
        await flood(intruder, clock, 1)
    await mine.close()


async def test_a_batch_of_a_writer_sealed_while_stalled_never_overwrites_the_seal(
    aws: AwsClients, tables: TableNames
) -> None:
    """A live writer wrongly sealed (it was stalled) continues under a new ID.

    Batches are unconditional puts; without the seal revoking the writer's
    claim, the stalled writer's next batch would land on the seal's position
    and replace it.
    """
    clock = FakeClock(START)
    settings = AuditSettings(digest_interval=timedelta(minutes=5))
    stalled_log = DynamoAuditLog(aws, tables.audit, reclaim_after=0.0)
    stalled = AuditTrailService(
        log=stalled_log,
        pseudonymizer=Pseudonymizer(key=b"batch-test-pseudonym-key-32bytes", key_id="t1"),
        sanitizer=ResponseSanitizer(),
        signer=SIGNER,
        verifier=RING,
        clock=clock,
        settings=settings,
        writer_id="w-stalled",
    )
    await flood(stalled, clock, 3)
    await stalled_log.flush()
    clock.advance(timedelta(minutes=15))  # silent for longer than the seal's grace
    sealer = AuditTrailService(
        log=DynamoAuditLog(aws, tables.audit),
        pseudonymizer=Pseudonymizer(key=b"batch-test-pseudonym-key-32bytes", key_id="t1"),
        sanitizer=ResponseSanitizer(),
        signer=SIGNER,
        verifier=RING,
        clock=clock,
        settings=settings,
        writer_id="w-sealer",
    )
    assert await sealer.seal_abandoned() == 1
    await flood(stalled, clock, 2)  # it resumes: its records go in a batch
    await stalled_log.flush()
    old = await stalled_log.chain("w-stalled")
    assert [r.action for r in old][-1] == "audit.writer_sealed"
    assert len(old) == 4  # three records and the seal, untouched
    assert stalled.writer_id != "w-stalled"
    assert [r.sequence for r in await stalled_log.chain(stalled.writer_id)] == [1, 2]
    await stalled.close()
    report = await sealer.verify()
    assert report.ok, [str(p) for p in report.problems]
    await sealer.close()


async def test_an_admin_action_named_like_the_seal_does_not_take_the_writers_claim(
    aws: AwsClients, tables: TableNames
) -> None:
    clock = FakeClock(START)
    log = DynamoAuditLog(aws, tables.audit, reclaim_after=0.0)
    host = trail(log, clock, writer="w-host")
    # A host bot's own action under the seal's name, written before any claim.
    await host.record_admin_action(1, "audit.writer_sealed", "thing:1")
    await flood(host, clock, 3)
    await log.flush()
    assert host.writer_id == "w-host"
    await assert_whole(log, host, 4)
    await host.close()


async def test_a_seal_that_loses_to_a_live_writer_gives_its_claim_back(
    aws: AwsClients, tables: TableNames
) -> None:
    clock = FakeClock(START)
    live_log = DynamoAuditLog(aws, tables.audit, reclaim_after=0.0)
    live = trail(live_log, clock, writer="w-live")
    await flood(live, clock, 3)
    await live_log.flush()
    (*_, last) = await live_log.chain("w-live")
    # Another process's seal, drafted from an older view: its position is taken.
    seal = sealed(
        attrs.evolve(
            last,
            event_id="seal-event",
            action="audit.writer_sealed",
            details={"reason": "abandoned writer: its process is gone"},
            hash="",
        )
    )
    with pytest.raises(AuditConflict):
        await DynamoAuditLog(aws, tables.audit).append(seal)
    await flood(live, clock, 2)  # the live writer's claim is its own again
    await live_log.flush()
    assert live.writer_id == "w-live"
    await assert_whole(live_log, live, 5)
    await live.close()


class StalledBatch:
    """Holds the next ``BatchWriteItem`` attempt in its thread until released."""

    def __init__(self, client: Any) -> None:
        self.armed = False
        self.reached = threading.Event()
        self.release = threading.Event()
        client.meta.events.register("before-send.dynamodb.BatchWriteItem", self)

    def __call__(self, **_: Any) -> None:
        if self.armed:
            self.armed = False
            self.reached.set()
            self.release.wait(10)


async def test_an_append_cancelled_during_its_flush_is_not_buffered_twice(
    aws: AwsClients, tables: TableNames
) -> None:
    """A buffered append whose flush is cancelled (a request's timeout) leaves no copy behind.

    The caller sees that append fail and appends again at the same position.
    With the first record still buffered, both went into one ``BatchWriteItem``,
    which DynamoDB refuses whole (duplicate keys): every later flush failed,
    and with it every admin action and the final flush at close.
    """
    log = DynamoAuditLog(aws, tables.audit, batch_interval=60.0)
    clock = FakeClock(START)
    service = trail(log, clock)
    throttled = Faults(operations=["BatchWriteItem"])
    throttled.always = (400, "ThrottlingException")
    throttled.attach(aws.dynamodb, "dynamodb")
    await flood(service, clock, 25)  # the 25th record's flush is throttled: all stay buffered
    assert log.pending == 25
    throttled.always = None
    stall = StalledBatch(aws.dynamodb)
    stall.armed = True
    clock.advance(timedelta(milliseconds=3))
    cut = asyncio.ensure_future(service.on_security_event(denial(clock, 25)))
    assert await asyncio.to_thread(stall.reached.wait, 10)
    cut.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cut
    stall.release.set()
    await flood(service, clock, 3)  # the first of them takes the cancelled record's position
    await service.close()
    assert log.pending == 0
    await assert_whole(log, service, 28)
