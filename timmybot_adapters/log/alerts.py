"""Alerter that writes each alert as one JSON line to the ``timmybot.alerts`` logger."""

from __future__ import annotations

import json
import logging

from timmybot_core.ports.alerts import Alert, Severity

__all__ = ["LoggingAlerter"]

_LEVELS = {
    Severity.P0: logging.CRITICAL,
    Severity.P1: logging.ERROR,
    Severity.P2: logging.WARNING,
    Severity.P3: logging.INFO,
}


class LoggingAlerter:
    """Writes alerts to a logger; the operator's log pipeline does the paging."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger if logger is not None else logging.getLogger("timmybot.alerts")

    async def send(self, alert: Alert) -> None:
        """Write ``alert`` as one JSON line at a level matching its severity."""
        line = json.dumps(
            alert.as_dict(),
            ensure_ascii=True,  # escapes every control character: one alert, one line
            separators=(",", ":"),
            default=str,
        )
        self._logger.log(_LEVELS[alert.severity], line)
