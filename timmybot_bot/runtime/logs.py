"""Where log lines go: JSON lines on stdout for a container's log driver.

The bot on Discord writes one JSON object per line to standard output
(``{"at": ..., "level": ..., "logger": ..., "message": ...}``), which is what
ECS's ``awslogs`` driver (or any container log driver) ships, with nothing
to run in the process. The offline console keeps standard output for its
replies, so its log lines are text on standard error. Sending lines to
CloudWatch Logs directly, where no log driver does, is watchtower's job
(see :func:`timmybot_bot.runtime.bootstrap.bootstrap` and docs/aws-adapters.md).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["JsonLines", "configure_logging"]

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record; an exception shows as its type only (never its text)."""

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
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, *, json_lines: bool) -> None:
    """Send every log line to stdout as JSON (``json_lines``) or to stderr as text."""
    handler = logging.StreamHandler(sys.stdout if json_lines else sys.stderr)
    handler.setFormatter(JsonLines() if json_lines else logging.Formatter(_TEXT))
    logging.basicConfig(level=level, handlers=[handler])
