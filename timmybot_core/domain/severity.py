"""Incident and alert severities (P0 to P3) and their response times."""

from __future__ import annotations

import enum
from datetime import timedelta

__all__ = ["Severity"]


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
