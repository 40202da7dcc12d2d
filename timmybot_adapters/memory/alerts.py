"""Alerter in memory: keeps every alert, for tests and the offline console."""

from __future__ import annotations

from timmybot_core.ports.alerts import Alert

__all__ = ["MemoryAlerter"]


class MemoryAlerter:
    """Keeps the alerts it is sent, in order."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        """Keep ``alert``."""
        self.sent.append(alert)
