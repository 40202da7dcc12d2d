"""CloudWatchLogsHandler against moto's server on 127.0.0.1.

Faults are injected with botocore ``before-send`` hooks on the handler's own
client: a hook that raises or answers stands in for the network, so a failed
call never reaches moto and a test can tell exactly what CloudWatch received.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

from tests.aws_servers import REGION, moto_endpoint, session, unique
from timmybot_adapters.aws import AwsClients, AwsConfig
from timmybot_adapters.aws.cloudwatch_logs import (
    EVENT_OVERHEAD,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_BATCH_SPAN_MS,
    MAX_EVENT_BYTES,
    CloudWatchLogsHandler,
)

PUT = "before-send.cloudwatch-logs.PutLogEvents"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def aws_error(request: Any, status: int, code: str) -> AWSResponse:
    """An AWS JSON error answer, as CloudWatch Logs sends it."""
    body = json.dumps({"__type": code, "message": "injected"}).encode()
    return AWSResponse(request.url, status, {"x-amzn-requestid": "injected"}, _Body(body))


class Faults:
    """A before-send hook: records what is sent, and fails calls on demand."""

    def __init__(self) -> None:
        self.down = False
        self.failure_rate = 0.0
        self.random = random.Random(1234)
        self.armed = False
        self.opened = threading.Event()
        self.gate_entered = threading.Event()
        self.fail_after_gate = False
        self.fail_attempts = 0
        self.sent: list[list[dict[str, Any]]] = []
        self.failed = 0
        self.lock = threading.Lock()

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.armed:
            # The next call hangs until the test opens the gate.
            self.armed = False
            self.gate_entered.set()
            assert self.opened.wait(30), "the test never opened the gate"
            if self.fail_after_gate:
                # This attempt and botocore's retry of it: the call fails.
                self.fail_attempts = 1
                self.failed += 1
                raise EndpointConnectionError(endpoint_url=request.url)
        if self.fail_attempts:
            self.fail_attempts -= 1
            self.failed += 1
            raise EndpointConnectionError(endpoint_url=request.url)
        if self.down:
            self.failed += 1
            raise EndpointConnectionError(endpoint_url=request.url)
        if self.failure_rate and self.random.random() < self.failure_rate:
            self.failed += 1
            kind = self.random.choice(["throttle", "500", "connection"])
            if kind == "throttle":
                return aws_error(request, 400, "ThrottlingException")
            if kind == "500":
                return aws_error(request, 500, "ServiceUnavailableException")
            raise EndpointConnectionError(endpoint_url=request.url)
        with self.lock:
            self.sent.append(json.loads(request.body)["logEvents"])
        return None


@pytest.fixture
def clients() -> Iterator[AwsClients]:
    # Fresh clients per test: the fault hooks must not leak into other tests.
    config = AwsConfig(
        region=REGION,
        endpoint_url=moto_endpoint(),
        connect_timeout=1.0,
        read_timeout=5.0,
        max_attempts=2,
    )
    aws = AwsClients(config, session=session())
    yield aws
    aws.close()


@pytest.fixture
def faults(clients: AwsClients) -> Faults:
    hook = Faults()
    clients.logs.meta.events.register(PUT, hook)
    return hook


@pytest.fixture
def group(clients: AwsClients) -> str:
    name = f"/timmybot/test/{unique('cw')}"
    clients.logs.create_log_group(logGroupName=name)
    return name


@pytest.fixture
def make_handler(
    clients: AwsClients, group: str, tmp_path: Path
) -> Iterator[Callable[..., CloudWatchLogsHandler]]:
    made: list[CloudWatchLogsHandler] = []

    def make(**overrides: Any) -> CloudWatchLogsHandler:
        options: dict[str, Any] = {
            "client": clients.logs,
            "log_group": group,
            "spool_path": tmp_path / "spool" / "cwlogs.jsonl",
            "log_stream": unique("stream"),
            "flush_interval": 0.05,
            "retry_initial": 0.05,
            "retry_max": 0.2,
            "close_timeout": 5.0,
        }
        options.update(overrides)
        handler = CloudWatchLogsHandler(**options)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


def record(
    message: str, *, created: float | None = None, name: str = "tests.cwlogs"
) -> logging.LogRecord:
    fields: dict[str, Any] = {"name": name, "msg": message, "levelno": logging.INFO}
    fields["levelname"] = "INFO"
    made = logging.makeLogRecord(fields)
    if created is not None:
        made.created = created
    return made


def stored(clients: AwsClients, group: str, stream: str) -> list[dict[str, Any]]:
    """Every event of the stream, oldest first."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream,
            "startFromHead": True,
        }
        if token:
            kwargs["nextToken"] = token
        page = clients.logs.get_log_events(**kwargs)
        events.extend(page["events"])
        if not page["events"] or page["nextForwardToken"] == token:
            return events
        token = page["nextForwardToken"]


def messages(clients: AwsClients, group: str, stream: str) -> list[str]:
    return [event["message"] for event in stored(clients, group, stream)]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def spool_lines(handler_spool: Path) -> list[dict[str, Any]]:
    if not handler_spool.exists():
        return []
    return [json.loads(line) for line in handler_spool.read_text().splitlines()]


# -- delivery -----------------------------------------------------------------


def test_records_arrive_in_order_with_their_own_timestamps(
    make_handler: Callable[..., CloudWatchLogsHandler], clients: AwsClients, group: str
) -> None:
    handler = make_handler()
    logger = logging.getLogger(f"tests.cwlogs.{unique()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    created: list[float] = []

    class Remember(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            created.append(record.created)

    logger.addHandler(Remember())
    logger.addHandler(handler)
    try:
        for index in range(50):
            logger.info('{"event": "denied", "n": %d}', index)
        assert handler.drain(10)
    finally:
        logger.handlers.clear()
    events = stored(clients, group, handler.log_stream)
    assert [e["message"] for e in events] == [f'{{"event": "denied", "n": {i}}}' for i in range(50)]
    assert [e["timestamp"] for e in events] == [int(moment * 1000) for moment in created]
    assert handler.stats().delivered == 50


def test_batches_respect_the_count_and_size_limits(
    make_handler: Callable[..., CloudWatchLogsHandler],
    faults: Faults,
    clients: AwsClients,
    group: str,
) -> None:
    handler = make_handler(
        flush_interval=60.0, max_queue_events=30_000, max_queue_bytes=64 * MAX_BATCH_BYTES
    )
    now = time.time()
    small = [f"small {i}" for i in range(12_000)]
    large = [f"large {i} " + "é" * 100_000 for i in range(25)]  # ~200 KB each
    for index, message in enumerate(small + large):
        handler.handle(record(message, created=now - 60 + index / 1000))
    assert handler.drain(30)

    assert len(faults.sent) >= 2 + 3  # 12,000 events, then ~5 MB of large ones
    for call in faults.sent:
        assert len(call) <= MAX_BATCH_EVENTS
        assert sum(len(e["message"].encode()) + EVENT_OVERHEAD for e in call) <= MAX_BATCH_BYTES
        stamps = [e["timestamp"] for e in call]
        assert stamps == sorted(stamps)
    assert messages(clients, group, handler.log_stream) == small + large


def test_a_batch_never_spans_24_hours_and_events_are_sent_in_chronological_order(
    make_handler: Callable[..., CloudWatchLogsHandler],
    faults: Faults,
    clients: AwsClients,
    group: str,
) -> None:
    handler = make_handler(flush_interval=60.0)
    now = time.time()
    # Three days in one queue, and two threads' records slightly out of order.
    moments = [now - 3 * 86400, now - 2 * 86400 + 60, now - 86400 + 60, now - 10, now - 11, now - 9]
    for index, moment in enumerate(moments):
        handler.handle(record(f"event {index}", created=moment))
    assert handler.drain(10)

    for call in faults.sent:
        stamps = [e["timestamp"] for e in call]
        assert stamps == sorted(stamps)
        assert stamps[-1] - stamps[0] < MAX_BATCH_SPAN_MS
    # More than a day from event 0 to 1, exactly one from 1 to 2; the last
    # call holds the slightly-out-of-order records, sorted.
    assert [[e["message"] for e in call] for call in faults.sent] == [
        ["event 0"],
        ["event 1"],
        ["event 2", "event 4", "event 3", "event 5"],
    ]
    delivered = messages(clients, group, handler.log_stream)
    assert delivered == ["event 0", "event 1", "event 2", "event 4", "event 3", "event 5"]


def test_an_event_over_256_kib_is_cut_at_a_character_boundary_and_marked(
    make_handler: Callable[..., CloudWatchLogsHandler], clients: AwsClients, group: str
) -> None:
    handler = make_handler()
    handler.handle(record("ß" * 200_000))  # 400,000 bytes of UTF-8
    assert handler.drain(10)
    [message] = messages(clients, group, handler.log_stream)
    size = len(message.encode()) + EVENT_OVERHEAD
    assert MAX_EVENT_BYTES - 40 < size <= MAX_EVENT_BYTES
    assert message.startswith("ßßß")
    removed = 400_000 - len(message.split(" [truncated")[0].encode())
    assert message.endswith(f" [truncated {removed} bytes]")
    assert handler.stats().truncated == 1


def test_events_cloudwatch_would_refuse_go_to_the_dead_letter_file(
    make_handler: Callable[..., CloudWatchLogsHandler],
    faults: Faults,
    clients: AwsClients,
    group: str,
    tmp_path: Path,
) -> None:
    handler = make_handler()
    now = time.time()
    handler.handle(record("ancient", created=now - 15 * 86400))
    handler.handle(record("fine"))
    handler.handle(record("from the future", created=now + 3 * 3600))
    assert handler.drain(10)

    assert messages(clients, group, handler.log_stream) == ["fine"]
    rejected = [
        json.loads(line)
        for line in (tmp_path / "spool" / "cwlogs.jsonl.rejected").read_text().splitlines()
    ]
    assert {(r["m"], r["reason"]) for r in rejected} == {
        ("ancient", "older than CloudWatch accepts (14 days)"),
        ("from the future", "more than 2 hours in the future"),
    }
    assert all(e["message"] != "ancient" for call in faults.sent for e in call)
    assert handler.stats().dead_lettered == 2


def test_a_deleted_stream_is_created_again(
    make_handler: Callable[..., CloudWatchLogsHandler], clients: AwsClients, group: str
) -> None:
    handler = make_handler()
    handler.handle(record("before"))
    assert handler.drain(10)
    clients.logs.delete_log_stream(logGroupName=group, logStreamName=handler.log_stream)
    handler.handle(record("after"))
    assert handler.drain(10)
    assert messages(clients, group, handler.log_stream) == ["after"]


def test_sdk_records_and_the_handlers_own_records_are_ignored(
    make_handler: Callable[..., CloudWatchLogsHandler], clients: AwsClients, group: str
) -> None:
    handler = make_handler()
    handler.handle(record("botocore chatter", name="botocore.endpoint"))
    handler.handle(record("urllib3 chatter", name="urllib3.connectionpool"))
    handler.handle(record("own", name="timmybot_adapters.aws.cloudwatch_logs"))
    handler.handle(record("kept", name="timmybot.security"))
    assert handler.drain(10)
    assert messages(clients, group, handler.log_stream) == ["kept"]


# -- failures -------------------------------------------------------------------


def test_throttling_500s_and_connection_errors_at_a_rate_lose_and_duplicate_nothing(
    make_handler: Callable[..., CloudWatchLogsHandler],
    faults: Faults,
    clients: AwsClients,
    group: str,
) -> None:
    faults.failure_rate = 0.4
    handler = make_handler(flush_interval=0.01)
    sent = [f"line {i}" for i in range(600)]
    for index, message in enumerate(sent):
        handler.handle(record(message))
        if index % 50 == 49:
            time.sleep(0.02)  # let batches go out between bursts
    assert handler.drain(30)
    assert faults.failed > 0
    assert messages(clients, group, handler.log_stream) == sent
    assert handler.stats().delivered == 600


def test_an_outage_spools_to_disk_and_everything_is_delivered_once_in_order_after(
    make_handler: Callable[..., CloudWatchLogsHandler],
    faults: Faults,
    clients: AwsClients,
    group: str,
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool" / "cwlogs.jsonl"
    handler = make_handler()
    handler.handle(record("before the outage"))
    assert handler.drain(10)

    faults.down = True
    during = [f"during {i}" for i in range(300)]
    for message in during[:100]:
        handler.handle(record(message))
    wait_until(lambda: handler.stats().spooling)
    for message in during[100:]:
        handler.handle(record(message))
    handler.flush()  # nothing is left only in memory
    assert [line["m"] for line in spool_lines(spool)] == during
    assert spool.stat().st_mode & 0o777 == 0o600
    assert handler.stats().queued == 0
    assert not handler.drain(0.3)  # still down: not delivered

    faults.down = False
    handler.handle(record("after the outage"))
    assert handler.drain(10)
    assert messages(clients, group, handler.log_stream) == [
        "before the outage",
        *during,
        "after the outage",
    ]
    assert spool.stat().st_size == 0
    assert not spool.with_name("cwlogs.jsonl.offset").exists()
    assert not handler.stats().spooling


def test_close_during_an_outage_keeps_the_events_for_the_next_start_which_sends_them_first(
    make_handler: Callable[..., CloudWatchLogsHandler],
    faults: Faults,
    clients: AwsClients,
    group: str,
) -> None:
    faults.down = True
    first = make_handler(close_timeout=0.2, flush_interval=60.0)
    for index in range(20):
        first.handle(record(f"old {index}"))
    first.close()
    assert first.stats().delivered == 0

    faults.down = False
    second = make_handler(flush_interval=60.0)
    second.handle(record("new"))
    assert second.drain(10)
    assert messages(clients, group, second.log_stream) == [*(f"old {i}" for i in range(20)), "new"]


def test_a_replay_cut_by_a_crash_resumes_after_the_last_delivered_batch(
    make_handler: Callable[..., CloudWatchLogsHandler],
    clients: AwsClients,
    group: str,
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool" / "cwlogs.jsonl"
    spool.parent.mkdir()
    now = int(time.time() * 1000)
    lines = [json.dumps({"t": now + i, "m": f"spooled {i}"}) + "\n" for i in range(10)]
    spool.write_text("".join(lines) + '{"t": 17, "m": "cut by the cra')
    # A previous run delivered the first four before it died.
    spool.with_name("cwlogs.jsonl.offset").write_text(str(len("".join(lines[:4]))))

    handler = make_handler()
    assert handler.drain(10)
    assert messages(clients, group, handler.log_stream) == [f"spooled {i}" for i in range(4, 10)]
    rejected = spool.with_name("cwlogs.jsonl.rejected").read_text()
    assert "cut by the cra" in rejected and "unreadable spool line" in rejected


@pytest.mark.parametrize("stuck_call_ends", ["succeeds", "fails"])
def test_memory_stays_bounded_and_emit_never_waits_while_a_call_hangs(
    stuck_call_ends: str,
    make_handler: Callable[..., CloudWatchLogsHandler],
    faults: Faults,
    clients: AwsClients,
    group: str,
) -> None:
    faults.armed = True
    faults.fail_after_gate = stuck_call_ends == "fails"
    handler = make_handler(max_queue_events=100, flush_interval=0.01)
    handler.handle(record("stuck 0"))
    assert faults.gate_entered.wait(10)  # the thread is now inside a hanging call

    slowest = 0.0
    peak = 0
    sent = ["stuck 0"] + [f"event {i}" for i in range(2_000)]
    for message in sent[1:]:
        start = time.perf_counter()
        handler.handle(record(message))
        slowest = max(slowest, time.perf_counter() - start)
        peak = max(peak, handler.stats().queued)
    assert peak <= 100
    assert slowest < 0.5
    assert handler.stats().spooled >= 1_900

    faults.opened.set()
    assert handler.drain(20)
    assert faults.failed == (2 if stuck_call_ends == "fails" else 0)
    assert messages(clients, group, handler.log_stream) == sent
    assert handler.stats().delivered == len(sent)


def test_a_spooled_event_cloudwatch_would_refuse_is_set_aside_once_however_often_replay_fails(
    make_handler: Callable[..., CloudWatchLogsHandler],
    faults: Faults,
    clients: AwsClients,
    group: str,
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool" / "cwlogs.jsonl"
    spool.parent.mkdir()
    now = int(time.time() * 1000)
    spool.write_text(
        json.dumps({"t": now - 20 * 86400 * 1000, "m": "ancient"})
        + "\n"
        + json.dumps({"t": now, "m": "recent"})
        + "\n"
    )
    faults.down = True
    handler = make_handler()
    wait_until(lambda: faults.failed >= 6)  # several replay attempts failed
    faults.down = False
    assert handler.drain(10)
    assert messages(clients, group, handler.log_stream) == ["recent"]
    rejected = (tmp_path / "spool" / "cwlogs.jsonl.rejected").read_text().splitlines()
    assert [json.loads(line)["m"] for line in rejected] == ["ancient"]
