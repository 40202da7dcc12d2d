"""IncidentStore in memory."""

from __future__ import annotations

from timmybot_core.ports.incidents import IncidentRecord, RetentionHold

__all__ = ["MemoryIncidentStore"]


class MemoryIncidentStore:
    """Incidents and retention holds of one process."""

    def __init__(self) -> None:
        self._incidents: dict[str, IncidentRecord] = {}
        self._holds: dict[str, RetentionHold] = {}

    async def save(self, record: IncidentRecord) -> None:
        """Insert or replace the record."""
        self._incidents[record.incident_id] = record

    async def get(self, incident_id: str) -> IncidentRecord | None:
        """Return the incident, or ``None``."""
        return self._incidents.get(incident_id)

    async def list_recent(self, *, limit: int = 20) -> list[IncidentRecord]:
        """Return up to ``limit`` incidents, newest first."""
        ordered = sorted(
            self._incidents.values(), key=lambda r: (r.declared_at, r.incident_id), reverse=True
        )
        return ordered[: max(limit, 0)]

    async def add_hold(self, hold: RetentionHold) -> None:
        """Store a retention hold."""
        self._holds[hold.hold_id] = hold

    async def list_holds(self) -> list[RetentionHold]:
        """Return every hold, oldest first."""
        return sorted(self._holds.values(), key=lambda h: (h.placed_at, h.hold_id))

    async def release_hold(self, hold_id: str) -> bool:
        """Release a hold; ``True`` if it existed."""
        return self._holds.pop(hold_id, None) is not None
