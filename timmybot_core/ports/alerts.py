"""The alerter port: security alerts by severity."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Alert", "Alerter", "Severity"]


class Severity(enum.StrEnum):
    """Incident and alert severities, with the seed design's response times."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def response_time(self) -> timedelta:
        """How soon someone must respond: immediately, 2 hours, 24 hours, a week."""
        return _RESPONSE_TIMES[self]

    @property
    def label(self) -> str:
        """A word for people: critical, high, medium, low."""
        return _LABELS[self]


_RESPONSE_TIMES = {
    Severity.P0: timedelta(0),
    Severity.P1: timedelta(hours=2),
    Severity.P2: timedelta(hours=24),
    Severity.P3: timedelta(weeks=1),
}
_LABELS = {Severity.P0: "critical", Severity.P1: "high", Severity.P2: "medium", Severity.P3: "low"}

DetailValue = str | int | float | bool | None


def _freeze(details: Mapping[str, DetailValue]) -> Mapping[str, DetailValue]:
    return MappingProxyType(dict(details))


@attrs.frozen(kw_only=True)
class Alert:
    """One alert. ``details`` hold pseudonyms and counts, never a secret."""

    severity: Severity
    title: str
    at: datetime
    details: Mapping[str, DetailValue] = attrs.field(factory=dict, converter=_freeze)


@runtime_checkable
class Alerter(Protocol):
    """Delivers alerts to the people on call."""

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise ``AlertDeliveryError`` if it cannot be delivered."""
        ...
