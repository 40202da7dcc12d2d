"""The incident store: declared incidents and the retention holds they place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from timmybot_core.ports.alerts import Severity

__all__ = ["IncidentRecord", "IncidentStore", "RetentionHold"]


@attrs.frozen(kw_only=True)
class IncidentRecord:
    """A declared incident, what its playbook did, and the state it captured.

    ``steps`` and ``snapshot`` hold JSON-like data only (str, int, float,
    bool, None, lists, tuples and str-keyed mappings, plus datetimes); a
    store that persists them may refuse anything else with ``TypeError``.
    """

    incident_id: str
    severity: Severity
    title: str
    description: str
    source: str
    declared_at: datetime
    declared_by: str | None
    steps: tuple[Mapping[str, Any], ...] = ()
    snapshot: Mapping[str, Any] | None = None


@attrs.frozen(kw_only=True)
class RetentionHold:
    """Security and audit records in ``[start, end)`` must survive clean-up.

    ``end`` of ``None`` holds everything from ``start`` on, until released.
    """

    hold_id: str
    incident_id: str
    start: datetime
    end: datetime | None
    placed_at: datetime

    def covers(self, moment: datetime) -> bool:
        """Tell whether a record made at ``moment`` is held."""
        return self.start <= moment and (self.end is None or moment < self.end)


@runtime_checkable
class IncidentStore(Protocol):
    """Keeps incidents and retention holds. May raise ``StoreUnavailable``."""

    async def save(self, record: IncidentRecord) -> None:
        """Insert or replace the record with ``record.incident_id``."""
        ...

    async def get(self, incident_id: str) -> IncidentRecord | None:
        """Return the incident, or ``None``."""
        ...

    async def list_recent(self, *, limit: int = 20) -> list[IncidentRecord]:
        """Return up to ``limit`` incidents, newest first."""
        ...

    async def add_hold(self, hold: RetentionHold) -> None:
        """Store a retention hold."""
        ...

    async def list_holds(self) -> list[RetentionHold]:
        """Return every hold not yet released, oldest first."""
        ...

    async def release_hold(self, hold_id: str) -> bool:
        """Release a hold; ``True`` if it existed."""
        ...
