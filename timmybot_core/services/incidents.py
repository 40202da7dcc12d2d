"""IncidentResponseService: playbooks by severity, P0 to P3.

- P0, respond immediately: kill switch on, token refresh paused, snapshot,
  retention hold, alert, record.
- P1, within 2 hours: alert, lockdown for a period (tightened attempt limit
  and detailed security logging), record.
- P2, within 24 hours: alert, record for investigation.
- P3, within a week: record for review.

Every step runs even when an earlier one fails, and the report says which
failed and why: a P0 isolates the bot even when alerting is down. Isolation
comes first, so nothing slows it down.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.errors import AlertDeliveryError, DomainValueError, TimmyBotError
from timmybot_core.domain.events import SecurityEventType
from timmybot_core.ports.access import Switch, SwitchState
from timmybot_core.ports.alerts import Alert, Alerter, Severity
from timmybot_core.ports.incidents import IncidentRecord, IncidentStore, RetentionHold
from timmybot_core.ports.metrics import SecurityMetrics
from timmybot_core.safety.pseudonymizer import PseudonymKind
from timmybot_core.safety.text import collapse_whitespace, strip_invisible
from timmybot_core.services.access_control import ServerAccessControl
from timmybot_core.services.security_log import SecurityAuditLogger
from timmybot_core.services.suspicion import SuspicionMeter

__all__ = [
    "Incident",
    "IncidentReport",
    "IncidentResponseService",
    "IncidentSettings",
    "StepResult",
]

_log = logging.getLogger("timmybot.incidents")


def _clean_title(value: str) -> str:
    return collapse_whitespace(strip_invisible(str(value)))[:200]


@attrs.frozen(kw_only=True)
class Incident:
    """An incident to handle: declared by a person or raised by an alarm rule."""

    severity: Severity = attrs.field(converter=Severity)
    title: str = attrs.field(converter=_clean_title)
    description: str = attrs.field(default="", converter=_clean_title)
    source: str = "manual"
    declared_by: int | None = None

    def __attrs_post_init__(self) -> None:
        if not self.title:
            raise DomainValueError("an incident needs a title")


@attrs.frozen(kw_only=True)
class StepResult:
    """What one playbook step did."""

    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable form."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@attrs.frozen(kw_only=True)
class IncidentReport:
    """The outcome of a playbook."""

    incident_id: str
    severity: Severity
    title: str
    declared_at: datetime
    respond_by: datetime
    steps: tuple[StepResult, ...]
    snapshot: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """``True`` when every step succeeded."""
        return all(step.ok for step in self.steps)

    @property
    def failed_steps(self) -> tuple[str, ...]:
        """The names of the steps that failed."""
        return tuple(step.name for step in self.steps if not step.ok)


@attrs.frozen(kw_only=True)
class IncidentSettings:
    """Knobs of the playbooks.

    ``alert_timeout`` bounds the ``alert`` step: an alerter that has not
    answered by then fails the step, and the steps after it (a P1's
    lockdown, the record) still run. ``snapshot_bans`` bounds the bans a P0
    snapshot lists (their total is kept beside them): a mass attack, when a
    P0 happens, can ban thousands of guilds, and the incident record must
    still fit one store item (DynamoDB: 400 KB).
    """

    lockdown_duration: timedelta = timedelta(hours=6)
    hold_lookback: timedelta = timedelta(days=30)
    snapshot_events: int = 50
    snapshot_bans: int = 500
    alert_timeout: timedelta = timedelta(seconds=30)


@attrs.define
class _Run:
    incident: Incident
    incident_id: str
    declared_at: datetime
    steps: list[StepResult] = attrs.Factory(list)
    snapshot: dict[str, Any] | None = None


class IncidentResponseService:
    """Runs the playbook of an incident's severity."""

    def __init__(
        self,
        *,
        access: ServerAccessControl,
        incidents: IncidentStore,
        security_log: SecurityAuditLogger,
        metrics: SecurityMetrics,
        alerter: Alerter,
        clock: Clock,
        suspicion: SuspicionMeter | None = None,
        settings: IncidentSettings | None = None,
    ) -> None:
        self._access = access
        self._incidents = incidents
        self._log = security_log
        self._metrics = metrics
        self._alerter = alerter
        self._clock = clock
        self._suspicion = suspicion
        self._settings = settings if settings is not None else IncidentSettings()

    async def handle(self, incident: Incident) -> IncidentReport:
        """Run the playbook for ``incident`` and return what each step did."""
        run = _Run(incident=incident, incident_id=str(uuid.uuid4()), declared_at=self._clock.now())
        playbook: dict[Severity, list[tuple[str, Callable[[_Run], Awaitable[str]]]]] = {
            Severity.P0: [
                ("kill_switch", self._kill_switch),
                ("pause_token_refresh", self._pause_refresh),
                ("snapshot", self._snapshot),
                ("retention_hold", self._retention_hold),
                ("alert", self._alert),
                ("record", self._record),
            ],
            Severity.P1: [
                ("alert", self._alert),
                ("lockdown", self._lockdown),
                ("record", self._record),
            ],
            Severity.P2: [("alert", self._alert), ("record", self._record)],
            Severity.P3: [("record", self._record)],
        }
        for name, step in playbook[incident.severity]:
            try:
                detail = await step(run)
            except (TimmyBotError, OSError, ValueError) as error:
                _log.error("incident %s: step %s failed: %s", run.incident_id, name, error)
                run.steps.append(StepResult(name=name, ok=False, detail=_describe(error)))
            else:
                run.steps.append(StepResult(name=name, ok=True, detail=detail))
        return IncidentReport(
            incident_id=run.incident_id,
            severity=incident.severity,
            title=incident.title,
            declared_at=run.declared_at,
            respond_by=run.declared_at + incident.severity.response_time,
            steps=tuple(run.steps),
            snapshot=run.snapshot,
        )

    async def recent(self, limit: int = 20) -> list[IncidentRecord]:
        """Return the latest recorded incidents, newest first."""
        return await self._incidents.list_recent(limit=limit)

    # -- steps ---------------------------------------------------------------

    async def _switch_on(
        self, run: _Run, switch: Switch, duration: timedelta | None = None
    ) -> SwitchState:
        incident = run.incident
        return await self._access.set_switch(
            switch,
            True,
            reason=f"incident {run.incident_id} ({incident.severity.value}): {incident.title}",
            actor=incident.declared_by,
            duration=duration,
        )

    async def _kill_switch(self, run: _Run) -> str:
        await self._switch_on(run, Switch.KILL_SWITCH)
        return "kill switch on: only owners can run commands"

    async def _pause_refresh(self, run: _Run) -> str:
        await self._switch_on(run, Switch.REFRESH_PAUSED)
        return "token refresh paused"

    async def _lockdown(self, run: _Run) -> str:
        duration = self._settings.lockdown_duration
        state = await self._access.switch_state(Switch.LOCKDOWN)
        now = self._clock.now()
        longer = state.expires_at is None or state.expires_at >= now + duration
        if not (state.active(now) and longer):
            # A lockdown already on for longer (an operator's, until turned
            # off) stays as it is: an incident only ever tightens.
            state = await self._switch_on(run, Switch.LOCKDOWN, duration)
        limit = self._access.settings.lockdown_attempt_limit
        until = state.expires_at.isoformat() if state.expires_at else "released"
        return f"attempt limit {limit} and detailed security logging until {until}"

    async def _snapshot(self, run: _Run) -> str:
        now = self._clock.now()
        pseudo = self._log.pseudonymizer
        bans = await self._access.list_bans()
        switches = {
            switch.value: (await self._access.switch_state(switch)).active(now) for switch in Switch
        }
        run.snapshot = {
            "taken_at": now.isoformat(),
            "metrics": self._metrics.snapshot().as_dict(),
            "suspicious_activity": self._suspicion.level() if self._suspicion else None,
            "switches": switches,
            "bans": [
                {
                    "guild": pseudo.pseudonymize(PseudonymKind.GUILD, ban.guild_id),
                    "until": ban.until.isoformat(),
                    "reason": ban.reason,
                }
                # The latest first: those placed by the attack under way.
                for ban in sorted(bans, key=lambda ban: ban.placed_at, reverse=True)[
                    : self._settings.snapshot_bans
                ]
            ],
            "bans_total": len(bans),
            "recent_events": [
                event.as_dict() for event in self._log.recent(self._settings.snapshot_events)
            ],
        }
        return f"{len(bans)} bans, {len(run.snapshot['recent_events'])} recent events captured"

    async def _retention_hold(self, run: _Run) -> str:
        hold = RetentionHold(
            hold_id=str(uuid.uuid4()),
            incident_id=run.incident_id,
            start=run.declared_at - self._settings.hold_lookback,
            end=None,
            placed_at=run.declared_at,
        )
        await self._incidents.add_hold(hold)
        return f"records since {hold.start.isoformat()} kept until the hold is released"

    async def _alert(self, run: _Run) -> str:
        incident = run.incident
        alert = Alert(
            severity=incident.severity,
            title=f"[{incident.severity.value}] {incident.title}",
            at=run.declared_at,
            details={
                "incident_id": run.incident_id,
                "source": incident.source,
                "respond_by": (run.declared_at + incident.severity.response_time).isoformat(),
                "description": incident.description,
            },
        )
        timeout = self._settings.alert_timeout
        try:
            # An alerter is a host's or a remote service's code: one that never
            # answers must not hold back a P1's lockdown or any record.
            async with asyncio.timeout(timeout.total_seconds()) as deadline:
                await self._alerter.send(alert)
        except TimeoutError:
            if not deadline.expired():
                raise  # the alerter's own timeout, reported as it is
            raise AlertDeliveryError(
                f"the alerter did not answer within {timeout.total_seconds():g} s"
                " (the alert may still arrive)"
            ) from None
        return "alert sent"

    async def _record(self, run: _Run) -> str:
        incident = run.incident
        declared_by = (
            self._log.pseudonymizer.pseudonymize(PseudonymKind.ADMIN, incident.declared_by)
            if incident.declared_by is not None
            else None
        )
        # The log line comes first: it survives even when the store is down.
        await self._log.record(
            SecurityEventType.INCIDENT_DECLARED,
            details={
                "incident_id": run.incident_id,
                "severity": incident.severity.value,
                "title": incident.title,
                "source": incident.source,
                "declared_by": declared_by,
                "failed_steps": ",".join(s.name for s in run.steps if not s.ok) or None,
            },
            level=logging.ERROR,
        )
        await self._incidents.save(
            IncidentRecord(
                incident_id=run.incident_id,
                severity=incident.severity,
                title=incident.title,
                description=incident.description,
                source=incident.source,
                declared_at=run.declared_at,
                declared_by=declared_by,
                steps=tuple(step.as_dict() for step in run.steps),
                snapshot=run.snapshot,
            )
        )
        purpose = "investigation" if incident.severity is not Severity.P3 else "review"
        return f"recorded for {purpose}"


def _describe(error: Exception) -> str:
    text = _clean_title(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
