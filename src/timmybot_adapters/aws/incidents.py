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

import enum
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

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
from timmybot_adapters.aws.clients import aws_errors
from timmybot_core.errors import StoreUnavailable
from timmybot_core.ports.access import Switch
from timmybot_core.ports.alerts import Severity
from timmybot_core.ports.incidents import IncidentRecord, RetentionHold

__all__ = ["DynamoIncidentStore"]

_INCIDENT: Final = "incident"
_HOLD: Final = "hold"

# A JSON object with this key is a tagged value; a stored mapping that has
# the key itself is wrapped in a "map" tag so it cannot be mistaken for one.
_TAG: Final = "$t"
_ENUMS: Final[dict[str, type[enum.Enum]]] = {"Severity": Severity, "Switch": Switch}
_PLAIN: Final = (str, int, float, bool, type(None))


def _encode(value: object) -> Any:
    # Exact type checks: a StrEnum is a str and a bool an int, and json would
    # flatten an unregistered subclass into its base type silently.
    if type(value) in _PLAIN:
        return value
    if isinstance(value, enum.Enum) and _ENUMS.get(type(value).__name__) is type(value):
        return {_TAG: "enum", "class": type(value).__name__, "value": value.value}
    if type(value) is datetime:
        return {_TAG: "datetime", "value": value.isoformat()}
    if type(value) is timedelta:
        return {_TAG: "timedelta", "value": value // timedelta(microseconds=1)}
    if type(value) is list:
        return [_encode(item) for item in value]
    if type(value) is tuple:
        return {_TAG: "tuple", "value": [_encode(item) for item in value]}
    if isinstance(value, Mapping):
        encoded: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(
                    f"incident data mappings need str keys, not {type(key).__qualname__}"
                )
            encoded[key] = _encode(item)
        return {_TAG: "map", "value": encoded} if _TAG in encoded else encoded
    raise TypeError(f"incident data cannot hold a value of type {type(value).__qualname__}")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {key: _decode(item) for key, item in value.items()}
    if tag == "map":
        return {key: _decode(item) for key, item in value["value"].items()}
    if tag == "tuple":
        return tuple(_decode(item) for item in value["value"])
    if tag == "datetime":
        return datetime.fromisoformat(value["value"])
    if tag == "timedelta":
        return timedelta(microseconds=value["value"])
    if tag == "enum":
        return _ENUMS[value["class"]](value["value"])
    raise ValueError("unknown tag in stored incident data")


def _dumps(value: object) -> str:
    return json.dumps(_encode(value), ensure_ascii=False, separators=(",", ":"))


def _incident(item: Item) -> IncidentRecord:
    try:
        steps = _decode(json.loads(text(item, "steps")))
        snapshot_text = text_or_none(item, "snapshot")
        snapshot = None if snapshot_text is None else _decode(json.loads(snapshot_text))
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
            "steps": s(_dumps(list(record.steps))),
        }
        if record.declared_by is not None:
            item["declared_by"] = s(record.declared_by)
        if record.snapshot is not None:
            item["snapshot"] = s(_dumps(record.snapshot))
        with aws_errors(self.LABEL, "save"):
            await self._aws.run(self._db.put_item, TableName=self._table, Item=item)

    async def get(self, incident_id: str) -> IncidentRecord | None:
        """Return the incident, or ``None``."""
        with aws_errors(self.LABEL, "get"):
            answer = await self._aws.run(
                self._db.get_item,
                TableName=self._table,
                Key={"pk": s(_INCIDENT), "sk": s(incident_id)},
                ConsistentRead=True,
            )
        item = answer.get("Item")
        return None if item is None else _incident(item)

    async def list_recent(self, *, limit: int = 20) -> list[IncidentRecord]:
        """Return up to ``limit`` incidents, newest first (ties: highest ID first)."""
        if limit <= 0:
            return []
        items = await self._all(
            "list_recent",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": s(_INCIDENT)},
            ConsistentRead=True,
        )
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
        with aws_errors(self.LABEL, "add_hold"):
            await self._aws.run(self._db.put_item, TableName=self._table, Item=item)

    async def list_holds(self) -> list[RetentionHold]:
        """Return every hold not yet released, oldest first (ties by ID)."""
        items = await self._all(
            "list_holds",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": s(_HOLD)},
            ConsistentRead=True,
        )
        holds = [_hold(item) for item in items]
        return sorted(holds, key=lambda hold: (hold.placed_at, hold.hold_id))

    async def release_hold(self, hold_id: str) -> bool:
        """Release a hold; ``True`` if it existed."""
        with aws_errors(self.LABEL, "release_hold"):
            answer = await self._aws.run(
                self._db.delete_item,
                TableName=self._table,
                Key={"pk": s(_HOLD), "sk": s(hold_id)},
                ReturnValues="ALL_OLD",
            )
        return bool(answer.get("Attributes"))
