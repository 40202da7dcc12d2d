"""Alerter on Amazon SNS: one message per alert, to the operators' topic.

The message body is the alert as JSON, the same fields as the log
alerter's line (``alert``, ``severity``, ``at``, ``details``), so a
subscriber (an SQS queue, a Lambda, a chat integration) can parse it; the
text keeps every character (line breaks included, JSON-escaped). Email and
SMS subscribers see it as text.

The ``Subject`` (shown by email) is ``[TimmyBot P1] <title>`` reduced to
what SNS accepts: printable ASCII, no line breaks, under 100 characters.
Two message attributes, ``severity`` and ``application``, let subscription
filter policies route P0 to paging and the rest to a mailbox.

SNS standard topics do not guarantee order; each alert carries its ``at``.
Details hold pseudonyms and counts only (see
:class:`~timmybot_core.ports.alerts.Alert`), never secrets. A failed
publish, after botocore's retries, raises
:class:`~timmybot_core.domain.errors.AlertDeliveryError`.
"""

from __future__ import annotations

import json
import re
from typing import Final

from timmybot_adapters.aws.clients import AwsClients, aws_errors
from timmybot_core.domain.errors import AlertDeliveryError
from timmybot_core.ports.alerts import Alert

__all__ = ["SnsAlerter", "check_topic_arn", "subject_for"]

_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$", re.ASCII)
_NOT_SUBJECT = re.compile(r"[^\x20-\x7e]+")
_MAX_SUBJECT: Final = 99


def check_topic_arn(topic_arn: str) -> str:
    """Return ``topic_arn`` if it is an SNS topic ARN, else raise ``ValueError``."""
    # fullmatch: with match, "$" also accepts a trailing newline.
    if not _ARN.fullmatch(topic_arn):
        raise ValueError(
            "the alert topic must be an SNS topic ARN such as "
            f"arn:aws:sns:eu-west-1:123456789012:timmybot-alerts (got {topic_arn[:80]!r})"
        )
    return topic_arn


def subject_for(alert: Alert) -> str:
    """Return the SNS subject of ``alert``: printable ASCII, one line, at most 99 characters."""
    title = " ".join(_NOT_SUBJECT.sub(" ", alert.title).split())
    subject = f"[TimmyBot {alert.severity.value}] {title}".strip()
    if len(subject) > _MAX_SUBJECT:
        subject = subject[: _MAX_SUBJECT - 3].rstrip() + "..."
    return subject


class SnsAlerter:
    """Publishes alerts to one SNS topic."""

    def __init__(self, aws: AwsClients, *, topic_arn: str) -> None:
        check_topic_arn(topic_arn)
        self._aws = aws
        self._topic_arn = topic_arn

    def __repr__(self) -> str:
        return f"SnsAlerter(topic_arn={self._topic_arn!r})"

    async def send(self, alert: Alert) -> None:
        """Publish ``alert``; raise ``AlertDeliveryError`` if SNS does not take it."""
        body = json.dumps(alert.as_dict(), ensure_ascii=False, separators=(",", ":"), default=str)
        with aws_errors("alerter", "send", AlertDeliveryError):
            await self._aws.run(
                self._aws.sns.publish,
                TopicArn=self._topic_arn,
                Message=body,
                Subject=subject_for(alert),
                MessageAttributes={
                    "severity": {"DataType": "String", "StringValue": alert.severity.value},
                    "application": {"DataType": "String", "StringValue": "timmybot"},
                },
            )
