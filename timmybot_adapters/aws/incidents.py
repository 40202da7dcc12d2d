"""IncidentStore on DynamoDB: declared incidents and retention holds.

Items (table ``timmybot-incidents``, keys ``pk``/``sk``)::

    pk="incident"  sk=<incident_id>  severity, title, description, source,
                                     declared_at, declared_by?, steps, snapshot?
    pk="hold"      sk=<hold_id>      incident_id, start, end?, placed_at

Times are microseconds since 0001-01-01 UTC. Incidents and holds never
expire (no TTL): they are the record of what happened.

Incidents are rare (a handful a year), so listing reads the whole
``incident`` partition with one strongly consistent ``Query`` and sorts in
memory; a save is visible to the next list at once, which an index (whose
reads are eventually consistent) would not promise.

``steps`` and ``snapshot`` are stored as JSON that round-trips exactly,
with the same tagged encoding as the SQLite store: tuples stay tuples, and
datetimes, timedeltas and the core's enums come back as themselves. Any
other type is refused with ``TypeError`` before anything is written.
"""

from __future__ import annotations

from typing import Final

from timmybot_adapters.aws._dynamo import (
    DynamoStore,
    Item,
    from_micros,
    micros,
    num,
    num_or_none,
    number,
    s,
    text,
    text_or_none,
)
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.domain.incident_data import dumps_incident_data, loads_incident_data
from timmybot_core.ports.alerts import Severity
from timmybot_core.ports.incidents import IncidentRecord, RetentionHold

__all__ = ["DynamoIncidentStore"]

_INCIDENT: Final = "incident"
_HOLD: Final = "hold"


def _incident(item: Item) -> IncidentRecord:
    try:
        steps = loads_incident_data(text(item, "steps"))
        snapshot_text = text_or_none(item, "snapshot")
        snapshot = None if snapshot_text is None else loads_incident_data(snapshot_text)
        if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
            raise ValueError("steps are not a list of mappings")
        if snapshot is not None and not isinstance(snapshot, dict):
            raise ValueError("snapshot is not a mapping")
        return IncidentRecord(
            incident_id=text(item, "sk"),
            severity=Severity(text(item, "severity")),
            title=text(item, "title"),
            description=text(item, "description"),
            source=text(item, "source"),
            declared_at=from_micros(number(item, "declared_at")),
            declared_by=text_or_none(item, "declared_by"),
            steps=tuple(steps),
            snapshot=snapshot,
        )
    except (ValueError, KeyError, TypeError) as error:
        # Never echo the stored text: it may hold whatever the incident captured.
        raise StoreUnavailable(
            f"incident store: a stored incident is unreadable ({type(error).__name__})"
        ) from None


def _hold(item: Item) -> RetentionHold:
    end = num_or_none(item, "end")
    return RetentionHold(
        hold_id=text(item, "sk"),
        incident_id=text(item, "incident_id"),
        start=from_micros(number(item, "start")),
        end=None if end is None else from_micros(end),
        placed_at=from_micros(number(item, "placed_at")),
    )


class DynamoIncidentStore(DynamoStore):
    """Incidents and retention holds on a DynamoDB table (see the module docstring)."""

    LABEL = "incident store"

    async def save(self, record: IncidentRecord) -> None:
        """Insert or replace the record with ``record.incident_id``.

        Raises:
            TypeError: ``steps`` or ``snapshot`` hold a value that would not
                round-trip; nothing is written.

        """
        item: Item = {
            "pk": s(_INCIDENT),
            "sk": s(record.incident_id),
            "severity": s(record.severity.value),
            "title": s(record.title),
            "description": s(record.description),
            "source": s(record.source),
            "declared_at": num(micros(record.declared_at)),
            "steps": s(dumps_incident_data(list(record.steps))),
        }
        if record.declared_by is not None:
            item["declared_by"] = s(record.declared_by)
        if record.snapshot is not None:
            item["snapshot"] = s(dumps_incident_data(record.snapshot))
        await self._call("save", self._db.put_item, Item=item)

    async def get(self, incident_id: str) -> IncidentRecord | None:
        """Return the incident, or ``None``."""
        item = await self._get_item("get", {"pk": s(_INCIDENT), "sk": s(incident_id)})
        return None if item is None else _incident(item)

    async def list_recent(self, *, limit: int = 20) -> list[IncidentRecord]:
        """Return up to ``limit`` incidents, newest first (ties: highest ID first)."""
        if limit <= 0:
            return []
        items = await self._partition("list_recent", _INCIDENT)
        items.sort(key=lambda item: (number(item, "declared_at"), text(item, "sk")), reverse=True)
        return [_incident(item) for item in items[:limit]]

    async def add_hold(self, hold: RetentionHold) -> None:
        """Store a retention hold (replacing one with the same ID)."""
        item: Item = {
            "pk": s(_HOLD),
            "sk": s(hold.hold_id),
            "incident_id": s(hold.incident_id),
            "start": num(micros(hold.start)),
            "placed_at": num(micros(hold.placed_at)),
        }
        if hold.end is not None:
            item["end"] = num(micros(hold.end))
        await self._call("add_hold", self._db.put_item, Item=item)

    async def list_holds(self) -> list[RetentionHold]:
        """Return every hold not yet released, oldest first (ties by ID)."""
        holds = [_hold(item) for item in await self._partition("list_holds", _HOLD)]
        return sorted(holds, key=lambda hold: (hold.placed_at, hold.hold_id))

    async def release_hold(self, hold_id: str) -> bool:
        """Release a hold; ``True`` if it existed."""
        return bool(await self._delete("release_hold", {"pk": s(_HOLD), "sk": s(hold_id)}))
