"""Incidents: declare one and run its severity's playbook."""

from __future__ import annotations

import attrs

from timmybot_bot.app.commands import DeclareIncident, Invocation
from timmybot_bot.app.recorder import AdminRecorder
from timmybot_core import Incident, IncidentReport, IncidentResponseService

__all__ = ["IncidentDeclared", "declare_incident"]


@attrs.frozen(kw_only=True)
class IncidentDeclared:
    """The playbook's report."""

    report: IncidentReport
    recorded: bool


async def declare_incident(
    command: DeclareIncident,
    invocation: Invocation,
    *,
    incidents: IncidentResponseService,
    recorder: AdminRecorder,
) -> IncidentDeclared:
    """Run the severity's playbook; a malformed incident raises ``DomainValueError``."""
    incident = Incident(
        severity=command.severity,
        title=command.title,
        description=command.description,
        declared_by=invocation.user_id,
    )
    report = await incidents.handle(incident)
    recorded = await recorder.record(
        command,
        invocation,
        "incidents",
        {
            "incident_id": report.incident_id,
            "severity": report.severity.value,
            "failed_steps": list(report.failed_steps),
        },
    )
    return IncidentDeclared(report=report, recorded=recorded)
