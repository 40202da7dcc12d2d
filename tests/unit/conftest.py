"""A wired set of security services on memory adapters, for service specs."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from timmybot_adapters.memory import (
    MemoryAccessPolicyStore,
    MemoryAlerter,
    MemoryIncidentStore,
    MemorySecurityMetrics,
)
from timmybot_core import (
    AccessSettings,
    AlarmMonitor,
    FakeClock,
    IncidentResponseService,
    Pseudonymizer,
    SecurityAuditLogger,
    ServerAccessControl,
    SuspicionMeter,
)

OWNER = 111_111_111_111_111_111
ALLOWED_GUILD = 222_222_222_222_222_222
STRANGER_GUILD = 333_333_333_333_333_333
USER = 444_444_444_444_444_444
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = b"unit-test-pseudonym-key-32-bytes!"


@attrs.define
class Wired:
    clock: FakeClock
    store: MemoryAccessPolicyStore
    alerter: MemoryAlerter
    metrics: MemorySecurityMetrics
    incidents_store: MemoryIncidentStore
    security_log: SecurityAuditLogger
    suspicion: SuspicionMeter
    access: ServerAccessControl
    incidents: IncidentResponseService
    alarms: AlarmMonitor
    pseudonymizer: Pseudonymizer


def wire(settings: AccessSettings | None = None) -> Wired:
    clock = FakeClock(START)
    store = MemoryAccessPolicyStore()
    alerter = MemoryAlerter()
    metrics = MemorySecurityMetrics()
    incidents_store = MemoryIncidentStore()
    pseudonymizer = Pseudonymizer(key=KEY, key_id="t1")
    security_log = SecurityAuditLogger(pseudonymizer=pseudonymizer, clock=clock)
    suspicion = SuspicionMeter(clock)
    security_log.subscribe(suspicion.on_event)
    metrics.observe_suspicious_activity(suspicion.level)
    access = ServerAccessControl(
        store=store,
        security_log=security_log,
        metrics=metrics,
        alerter=alerter,
        clock=clock,
        settings=settings
        or AccessSettings(owner_ids={OWNER}, allowed_guilds=set(), cache_ttl=START - START),
    )
    incidents = IncidentResponseService(
        access=access,
        incidents=incidents_store,
        security_log=security_log,
        metrics=metrics,
        alerter=alerter,
        clock=clock,
        suspicion=suspicion,
    )
    alarms = AlarmMonitor(incidents, clock)
    security_log.subscribe(alarms.on_event)
    return Wired(
        clock=clock,
        store=store,
        alerter=alerter,
        metrics=metrics,
        incidents_store=incidents_store,
        security_log=security_log,
        suspicion=suspicion,
        access=access,
        incidents=incidents,
        alarms=alarms,
        pseudonymizer=pseudonymizer,
    )


@pytest.fixture
def w() -> Wired:
    return wire()
