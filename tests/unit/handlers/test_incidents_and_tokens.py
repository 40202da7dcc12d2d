"""Incident and token handlers: the playbook's report, the rotation's counts, each recorded."""

from __future__ import annotations

import pytest

from tests.unit.handlers.conftest import AS_OWNER, admin_records
from timmybot_bot.app import commands as c
from timmybot_bot.app.handlers.incidents import IncidentDeclared
from timmybot_bot.app.handlers.tokens import Rotated
from timmybot_bot.app.replies import rotation_text
from timmybot_bot.runtime.bootstrap import Services
from timmybot_core import RotationReport, Severity, Switch


async def test_declaring_runs_the_playbook_and_records_its_outcome(services: Services) -> None:
    declared = await services.bus.handle(
        c.DeclareIncident(severity=Severity.P1, title="token leak suspected"), AS_OWNER
    )
    assert isinstance(declared, IncidentDeclared)
    assert declared.report.severity is Severity.P1
    assert (await services.access.switch_state(Switch.LOCKDOWN)).on  # P1 locks down
    [record] = await admin_records(services)
    assert record.action == "incident.declare"
    assert record.details["incident_id"] == declared.report.incident_id
    assert record.details["severity"] == "P1"


async def test_an_empty_title_is_refused_before_anything_runs(services: Services) -> None:
    with pytest.raises(ValueError, match="title"):
        await services.bus.handle(c.DeclareIncident(severity=Severity.P3, title=" "), AS_OWNER)
    assert await admin_records(services) == []


async def test_rotation_reports_and_records_its_counts(services: Services) -> None:
    rotated = await services.bus.handle(c.RunRotation(), AS_OWNER)
    assert isinstance(rotated, Rotated)
    assert rotated.report.users == 0
    [record] = await admin_records(services)
    assert (record.action, record.resource) == ("rotation.run", "tokens")
    assert record.details == rotated.report.as_dict()


@pytest.mark.parametrize(
    ("report", "said"),
    [
        (RotationReport(paused=True), "is paused (incident isolation); nothing ran."),
        (
            RotationReport(users=5, refreshed=2, unchanged=3, paused=True),
            "5 user(s), 2 refreshed, 3 unchanged, 0 need /link again, 0 failed. "
            "Refresh was paused during the run; the rest were left unchanged.",
        ),
        (RotationReport(users=1, refreshed=1), "1 user(s), 1 refreshed, 0 unchanged"),
    ],
)
def test_the_rotation_text_says_what_ran_even_when_a_pause_stopped_it_midway(
    report: RotationReport, said: str
) -> None:
    text = rotation_text(report)
    assert said in text
    assert ("nothing ran" in text) == (report.users == 0)
