"""Where log lines go: JSON lines on stdout for a container's log driver.

On Discord, one JSON object per line on standard output, which ECS's
``awslogs`` driver (or any log driver) ships. The offline console keeps
stdout for its replies and logs text on stderr. Shipping to CloudWatch Logs
directly is watchtower's job (``bootstrap``, docs/deploy-aws.md).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["JsonLines", "MessageOnly", "configure_logging"]

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One ASCII JSON object per record; an exception shows as its type only (never its text)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        line: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
        # ASCII only: a lone surrogate would make the line unencodable on a
        # strict UTF-8 stdout (logging drops it), and U+2028, U+2029 and
        # U+0085, which JSON leaves as they are, end a line for many readers.
        return json.dumps(line, ensure_ascii=True)


class MessageOnly(logging.Formatter):
    """The record's message; an exception adds its type only (never its text or traceback).

    For the handlers that ship the same loggers' lines elsewhere (watchtower's
    log groups): the rule of :class:`JsonLines`, without the JSON envelope, so
    a security event stays the JSON object it was logged as.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the message, and the exception's type in brackets if there is one."""
        # Never record.exc_text: another handler's formatter may have cached
        # the whole traceback there.
        message = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            return f"{message} [{record.exc_info[0].__name__}]"
        return message


def configure_logging(level: str, *, json_lines: bool) -> None:
    """Send every log line to stdout as JSON (``json_lines``) or to stderr as text."""
    handler = logging.StreamHandler(sys.stdout if json_lines else sys.stderr)
    handler.setFormatter(JsonLines() if json_lines else logging.Formatter(_TEXT))
    logging.basicConfig(level=level, handlers=[handler])
