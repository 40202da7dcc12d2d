"""Contract of the Alerter port: every adapter delivers every alert, intact.

Each adapter comes with a way to read back what it delivered, so one suite
specifies them all; a new adapter (SNS) joins by adding one entry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from timmybot_adapters.log import LoggingAlerter
from timmybot_adapters.memory import MemoryAlerter
from timmybot_core import Alert, Alerter, Severity

Delivered = Callable[[], list[dict[str, Any]]]
AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def memory() -> AsyncIterator[tuple[Alerter, Delivered]]:
    alerter = MemoryAlerter()
    yield (
        alerter,
        lambda: [
            {
                "title": a.title,
                "severity": a.severity.value,
                "at": a.at.isoformat(),
                "details": dict(a.details),
            }
            for a in alerter.sent
        ],
    )


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@asynccontextmanager
async def log() -> AsyncIterator[tuple[Alerter, Delivered]]:
    logger = logging.getLogger("timmybot.alerts.contract")
    handler = _Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:

        def delivered() -> list[dict[str, Any]]:
            out = []
            for record in handler.records:
                line = json.loads(record.getMessage())
                out.append(
                    {
                        "title": line["alert"],
                        "severity": line["severity"],
                        "at": line["at"],
                        "details": line["details"],
                    }
                )
            return out

        yield LoggingAlerter(logger), delivered
    finally:
        logger.removeHandler(handler)


@asynccontextmanager
async def sns() -> AsyncIterator[tuple[Alerter, Delivered]]:
    # Delivered for real: the topic fans out to an SQS queue (raw delivery), read back here.
    from tests import aws_servers
    from timmybot_adapters.aws import SnsAlerter

    endpoint, session = aws_servers.moto_endpoint(), aws_servers.session()
    topics = session.client("sns", endpoint_url=endpoint)
    queues = session.client("sqs", endpoint_url=endpoint)
    name = aws_servers.unique("alerts")
    topic = topics.create_topic(Name=name)["TopicArn"]
    queue = queues.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = queues.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    topics.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    received: list[dict[str, Any]] = []

    def delivered() -> list[dict[str, Any]]:
        while True:
            batch = queues.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
            messages = batch.get("Messages", [])
            if not messages:
                return [
                    {
                        "title": line["alert"],
                        "severity": line["severity"],
                        "at": line["at"],
                        "details": line["details"],
                    }
                    for line in received
                ]
            for message in messages:
                received.append(json.loads(message["Body"]))
                queues.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    yield SnsAlerter(aws_servers.shared_clients(), topic_arn=topic), delivered


ADAPTERS = {"memory": memory, "log": log, "aws": sns}


@pytest.fixture(params=sorted(ADAPTERS))
async def alerter(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Alerter, Delivered]]:
    async with ADAPTERS[request.param]() as pair:
        yield pair


async def test_satisfies_the_port(alerter: tuple[Alerter, Delivered]) -> None:
    assert isinstance(alerter[0], Alerter)


@pytest.mark.parametrize("severity", list(Severity))
async def test_delivers_every_severity_intact(
    alerter: tuple[Alerter, Delivered], severity: Severity
) -> None:
    sender, delivered = alerter
    await sender.send(
        Alert(
            severity=severity,
            title="Guild banned",
            at=AT,
            details={"guild": "p1:" + "a" * 32, "attempts": 11, "ok": False, "none": None},
        )
    )
    assert delivered() == [
        {
            "title": "Guild banned",
            "severity": severity.value,
            "at": AT.isoformat(),
            "details": {"guild": "p1:" + "a" * 32, "attempts": 11, "ok": False, "none": None},
        }
    ]


async def test_delivers_in_order(alerter: tuple[Alerter, Delivered]) -> None:
    sender, delivered = alerter
    for index in range(5):
        await sender.send(Alert(severity=Severity.P3, title=f"alert {index}", at=AT))
    assert [a["title"] for a in delivered()] == [f"alert {index}" for index in range(5)]


async def test_text_with_line_breaks_arrives_unchanged(alerter: tuple[Alerter, Delivered]) -> None:
    sender, delivered = alerter
    await sender.send(
        Alert(severity=Severity.P1, title="a\nb\u202ec", at=AT, details={"x": "1\r\n2"})
    )
    (alert,) = delivered()
    assert alert["title"] == "a\nb\u202ec"
    assert alert["details"] == {"x": "1\r\n2"}


def test_alert_details_are_read_only() -> None:
    alert = Alert(severity=Severity.P2, title="t", at=AT, details={"a": 1})
    with pytest.raises(TypeError):
        alert.details["a"] = 2  # type: ignore[index]


async def test_the_log_adapter_writes_one_line_at_a_level_per_severity() -> None:
    logger = logging.getLogger("timmybot.alerts.levels")
    handler = _Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        sender = LoggingAlerter(logger)
        for severity in Severity:
            await sender.send(Alert(severity=severity, title="x\ny", at=AT))
        assert [r.levelno for r in handler.records] == [
            logging.CRITICAL,
            logging.ERROR,
            logging.WARNING,
            logging.INFO,
        ]
        assert all("\n" not in r.getMessage() for r in handler.records)
    finally:
        logger.removeHandler(handler)


def test_the_sns_alerter_checks_the_whole_topic_arn() -> None:
    from timmybot_adapters.aws.alerts import check_topic_arn

    good = "arn:aws:sns:eu-west-1:123456789012:timmybot-alerts"
    assert check_topic_arn(good) == good
    # With re.match, "$" also matches before a final newline.
    for bad in (good + "\n", good + ".fifo\n", good.rsplit(":", 1)[0] + ":"):
        with pytest.raises(ValueError, match="must be an SNS topic ARN"):
            check_topic_arn(bad)
