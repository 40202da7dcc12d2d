"""The alerter port: security alerts by severity."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from timmybot_core.domain.events import DetailValue, freeze_details
from timmybot_core.domain.severity import Severity

__all__ = ["Alert", "Alerter", "Severity"]


@attrs.frozen(kw_only=True)
class Alert:
    """One alert. ``details`` hold pseudonyms and counts, never a secret."""

    severity: Severity
    title: str
    at: datetime
    details: Mapping[str, DetailValue] = attrs.field(factory=dict, converter=freeze_details)

    def as_dict(self) -> dict[str, object]:
        """Return the alert as the JSON object every alerter sends."""
        return {
            "alert": self.title,
            "severity": self.severity.value,
            "at": self.at.isoformat(),
            "details": dict(self.details),
        }


@runtime_checkable
class Alerter(Protocol):
    """Delivers alerts to the people on call."""

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise ``AlertDeliveryError`` if it cannot be delivered."""
        ...
