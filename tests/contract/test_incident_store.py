"""The IncidentStore contract: every adapter of the port passes this suite.

A new adapter joins by adding one entry to ``ADAPTERS``: an async context
manager that yields a fresh, empty store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from timmybot_adapters.memory import MemoryIncidentStore
from timmybot_adapters.sqlite import SqliteDatabase, SqliteIncidentStore
from timmybot_core.ports.access import Switch
from timmybot_core.ports.alerts import Severity
from timmybot_core.ports.incidents import IncidentRecord, IncidentStore, RetentionHold

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[IncidentStore]:
    yield MemoryIncidentStore()


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[IncidentStore]:
    async with SqliteDatabase(tmp_path / "var" / "timmybot.db") as db:
        yield await SqliteIncidentStore.open(db)


@asynccontextmanager
async def _aws(tmp_path: Path) -> AsyncIterator[IncidentStore]:
    from tests import aws_servers
    from timmybot_adapters.aws import DynamoIncidentStore

    async with aws_servers.fresh_tables(roles=["incidents"]) as tables:
        yield DynamoIncidentStore(aws_servers.shared_clients(), tables.incidents)


ADAPTERS: dict[str, Callable[[Path], AbstractAsyncContextManager[IncidentStore]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "aws": _aws,
}


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IncidentStore]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


def incident(
    incident_id: str = "INC-1", *, declared_at: datetime = T0, **changes: Any
) -> IncidentRecord:
    fields: dict[str, Any] = {
        "incident_id": incident_id,
        "severity": Severity.P1,
        "title": "Token refresh failures",
        "description": "Refresh failed for 40% of users",
        "source": "metrics",
        "declared_at": declared_at,
        "declared_by": "admin:3f9a",
    }
    fields.update(changes)
    return IncidentRecord(**fields)


def hold(
    hold_id: str = "H-1",
    *,
    placed_at: datetime = T0,
    start: datetime = T0 - timedelta(days=7),
    end: datetime | None = None,
) -> RetentionHold:
    return RetentionHold(
        hold_id=hold_id, incident_id="INC-1", start=start, end=end, placed_at=placed_at
    )


def test_the_store_implements_the_port(store: IncidentStore) -> None:
    assert isinstance(store, IncidentStore)


# Incidents


async def test_an_unknown_incident_is_none(store: IncidentStore) -> None:
    assert await store.get("INC-404") is None
    assert await store.list_recent() == []


async def test_a_minimal_incident_round_trips(store: IncidentStore) -> None:
    record = incident(declared_by=None)
    await store.save(record)
    assert await store.get("INC-1") == record


@pytest.mark.parametrize("severity", list(Severity))
async def test_every_severity_round_trips_as_the_enum(
    store: IncidentStore, severity: Severity
) -> None:
    await store.save(incident(severity=severity))
    got = await store.get("INC-1")
    assert got is not None
    assert got.severity is severity


async def test_steps_and_snapshot_round_trip_exactly(store: IncidentStore) -> None:
    steps = (
        {"action": "kill_switch", "ok": True, "at": T0, "switch": Switch.KILL_SWITCH},
        {
            "action": "page",
            "severity": Severity.P0,
            "after": timedelta(minutes=2, microseconds=5),
            "targets": ["oncall", "lead"],
            "attempt": 2,
            "ratio": 0.1,
            "note": None,
        },
        MappingProxyType({"action": "snapshot", "shape": (1, (2, 3), [4])}),
    )
    snapshot = {
        "switches": {"kill_switch": {"on": True, "expires_at": None}},
        "bans": [{"guild": 2**64 - 1, "until": T0 + MINUTE}],
        "offset": datetime(2026, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))),
        "big": 2**70,
        "negative": -1.5e-300,
        "text": 'Beyoncé "quoted" \\ \n tab\t ✋ 😀',
        "empty": {},
        "nested_empty": [[], {}, ()],
        # Keys that look like a serializer's own markers stay data.
        "$t": "tuple",
        "value": [1],
        "__type__": "datetime",
    }
    record = incident(steps=steps, snapshot=snapshot)
    await store.save(record)
    got = await store.get("INC-1")
    assert got == record
    assert got is not None
    assert got.snapshot is not None
    assert type(got.steps) is tuple
    assert got.steps[0]["switch"] is Switch.KILL_SWITCH
    assert got.steps[0]["at"] == T0
    assert got.steps[0]["at"].utcoffset() == timedelta(0)
    assert got.steps[1]["severity"] is Severity.P0
    assert type(got.steps[1]["targets"]) is list
    assert type(got.steps[2]["shape"]) is tuple
    assert type(got.steps[2]["shape"][1]) is tuple
    assert type(got.steps[2]["shape"][2]) is list
    assert got.snapshot["offset"] == snapshot["offset"]
    assert got.snapshot["offset"].utcoffset() == timedelta(hours=2)
    assert type(got.snapshot["big"]) is int
    assert type(got.snapshot["nested_empty"][2]) is tuple


async def test_a_snapshot_of_none_stays_none(store: IncidentStore) -> None:
    await store.save(incident(snapshot=None, steps=()))
    got = await store.get("INC-1")
    assert got is not None
    assert got.snapshot is None
    assert got.steps == ()


async def test_an_empty_snapshot_stays_empty_not_none(store: IncidentStore) -> None:
    await store.save(incident(snapshot={}))
    got = await store.get("INC-1")
    assert got is not None
    assert got.snapshot == {}


async def test_declared_at_comes_back_as_the_same_instant(store: IncidentStore) -> None:
    moment = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    await store.save(incident(declared_at=moment))
    got = await store.get("INC-1")
    assert got is not None
    assert got.declared_at == moment
    assert got.declared_at.utcoffset() is not None


async def test_save_replaces_a_record_with_the_same_id(store: IncidentStore) -> None:
    await store.save(incident(title="first"))
    replacement = incident(title="second", severity=Severity.P0, steps=({"n": 1},))
    await store.save(replacement)
    assert await store.get("INC-1") == replacement
    assert await store.list_recent() == [replacement]


async def test_list_recent_is_newest_first_with_ties_by_id(store: IncidentStore) -> None:
    records = [
        incident("INC-a", declared_at=T0),
        incident("INC-c", declared_at=T0 + MINUTE),
        incident("INC-b", declared_at=T0 + MINUTE),
        incident("INC-d", declared_at=T0 - MINUTE),
    ]
    for record in records:
        await store.save(record)
    ids = [r.incident_id for r in await store.list_recent()]
    assert ids == ["INC-c", "INC-b", "INC-a", "INC-d"]


async def test_list_recent_honours_the_limit(store: IncidentStore) -> None:
    for i in range(25):
        await store.save(incident(f"INC-{i:02}", declared_at=T0 + i * MINUTE))
    recent = await store.list_recent()
    assert [r.incident_id for r in recent] == [f"INC-{i:02}" for i in range(24, 4, -1)]
    assert [r.incident_id for r in await store.list_recent(limit=2)] == ["INC-24", "INC-23"]
    assert len(await store.list_recent(limit=100)) == 25
    assert await store.list_recent(limit=0) == []
    assert await store.list_recent(limit=-1) == []


# Retention holds


async def test_there_are_no_holds_at_first(store: IncidentStore) -> None:
    assert await store.list_holds() == []
    assert await store.release_hold("H-404") is False


async def test_holds_round_trip_with_and_without_an_end(store: IncidentStore) -> None:
    open_ended = hold("H-1")
    bounded = hold("H-2", placed_at=T0 + MINUTE, end=T0 + timedelta(days=1))
    await store.add_hold(open_ended)
    await store.add_hold(bounded)
    assert await store.list_holds() == [open_ended, bounded]


async def test_holds_are_listed_oldest_first_with_ties_by_id(store: IncidentStore) -> None:
    for placed in [hold("H-c", placed_at=T0), hold("H-a", placed_at=T0 + MINUTE)]:
        await store.add_hold(placed)
    await store.add_hold(hold("H-b", placed_at=T0))
    assert [h.hold_id for h in await store.list_holds()] == ["H-b", "H-c", "H-a"]


async def test_release_hold_tells_whether_it_existed(store: IncidentStore) -> None:
    await store.add_hold(hold("H-1"))
    await store.add_hold(hold("H-2"))
    assert await store.release_hold("H-1") is True
    assert await store.release_hold("H-1") is False
    assert [h.hold_id for h in await store.list_holds()] == ["H-2"]


async def test_adding_a_hold_with_the_same_id_replaces_it(store: IncidentStore) -> None:
    await store.add_hold(hold("H-1"))
    replacement = hold("H-1", end=T0)
    await store.add_hold(replacement)
    assert await store.list_holds() == [replacement]


async def test_holds_and_incidents_are_independent(store: IncidentStore) -> None:
    await store.add_hold(hold("H-1"))
    assert await store.get("INC-1") is None
    await store.save(incident())
    await store.release_hold("H-1")
    assert await store.get("INC-1") == incident()
