"""Specification of IncidentResponseService playbooks and the alarm rules."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from tests.unit.conftest import ALLOWED_GUILD, OWNER, START, USER, Wired, wire
from timmybot_core import (
    AccessReason,
    AlertDeliveryError,
    Incident,
    SecurityEventType,
    Severity,
    StoreUnavailable,
    Switch,
)
from timmybot_core.ports.access import Ban
from timmybot_core.services.access_control import AccessSettings
from timmybot_core.services.incidents import IncidentResponseService, IncidentSettings


def steps(report: object) -> dict[str, bool]:
    return {step.name: step.ok for step in report.steps}  # type: ignore[attr-defined]


async def test_severities_carry_the_seed_response_times() -> None:
    assert [s.response_time for s in Severity] == [
        timedelta(0),
        timedelta(hours=2),
        timedelta(hours=24),
        timedelta(weeks=1),
    ]


class TestP0:
    async def test_a_snapshot_after_a_mass_ban_lists_the_latest_and_counts_them_all(
        self, w: Wired
    ) -> None:
        for n in range(600):
            placed = START + timedelta(seconds=n)
            ban = Ban(
                guild_id=10**17 + n, until=placed + timedelta(hours=1), reason="t", placed_at=placed
            )
            await w.store.place_ban(ban, now=placed)
        report = await w.incidents.handle(Incident(severity="P0", title="mass attack"))
        assert report.ok
        assert report.snapshot is not None
        assert report.snapshot["bans_total"] == 600
        listed = report.snapshot["bans"]
        assert len(listed) == 500
        newest = w.pseudonymizer.guild(10**17 + 599)
        assert listed[0]["guild"] == newest  # the attack under way comes first
        # The record stays far below one DynamoDB item (400 KB).
        assert len(json.dumps(report.snapshot)) < 200_000

    async def test_isolates_snapshots_holds_alerts_and_records(self, w: Wired) -> None:
        await w.access.allow_guild(ALLOWED_GUILD, actor=OWNER)
        report = await w.incidents.handle(
            Incident(severity="P0", title="Token store breach", declared_by=OWNER)
        )
        assert steps(report) == {
            "kill_switch": True,
            "pause_token_refresh": True,
            "snapshot": True,
            "retention_hold": True,
            "alert": True,
            "record": True,
        }
        assert report.ok
        assert report.respond_by == START
        # Isolation: users are locked out, refresh is paused.
        assert (await w.access.check(ALLOWED_GUILD, USER, "search")).reason is (
            AccessReason.KILL_SWITCH
        )
        assert (await w.access.switch_state(Switch.REFRESH_PAUSED)).on
        # Evidence: snapshot, hold and the record.
        assert report.snapshot is not None
        assert set(report.snapshot) >= {"metrics", "bans", "recent_events", "switches"}
        (hold,) = await w.incidents_store.list_holds()
        assert hold.incident_id == report.incident_id
        assert hold.covers(START - timedelta(days=29))
        record = await w.incidents_store.get(report.incident_id)
        assert record is not None
        assert record.severity is Severity.P0
        assert record.declared_by is not None
        assert str(OWNER) not in record.declared_by
        (alert,) = w.alerter.sent
        assert alert.severity is Severity.P0

    async def test_still_shuts_down_when_alerting_fails(self, w: Wired) -> None:
        async def broken(alert: object) -> None:
            raise AlertDeliveryError("sns unreachable")

        w.alerter.send = broken  # type: ignore[method-assign]
        report = await w.incidents.handle(Incident(severity=Severity.P0, title="breach"))
        assert not report.ok
        assert report.failed_steps == ("alert",)
        assert (await w.access.switch_state(Switch.KILL_SWITCH)).on
        record = await w.incidents_store.get(report.incident_id)
        assert record is not None
        assert {"name": "alert", "ok": False, "detail": "AlertDeliveryError: sns unreachable"} in (
            list(record.steps)
        )

    async def test_a_failing_store_step_is_reported_and_the_rest_still_run(self, w: Wired) -> None:
        async def down(hold: object) -> None:
            raise StoreUnavailable("incident store: disk I/O error")

        w.incidents_store.add_hold = down  # type: ignore[method-assign]
        report = await w.incidents.handle(Incident(severity=Severity.P0, title="breach"))
        assert report.failed_steps == ("retention_hold",)
        assert steps(report)["alert"] and steps(report)["record"]

    async def test_a_failed_record_still_leaves_its_incident_declared_line(self, w: Wired) -> None:
        async def down(record: object) -> None:
            raise StoreUnavailable("incident store: disk I/O error")

        w.incidents_store.save = down  # type: ignore[method-assign]
        report = await w.incidents.handle(Incident(severity=Severity.P0, title="breach"))
        assert report.failed_steps == ("record",)
        (declared,) = [
            e for e in w.security_log.recent(10) if e.type is SecurityEventType.INCIDENT_DECLARED
        ]
        assert declared.details["incident_id"] == report.incident_id


class TestP1:
    async def test_alerts_tightens_limits_and_raises_log_detail(self, w: Wired) -> None:
        report = await w.incidents.handle(Incident(severity="P1", title="Credential stuffing"))
        assert steps(report) == {"alert": True, "lockdown": True, "record": True}
        assert report.respond_by == START + timedelta(hours=2)
        state = await w.access.switch_state(Switch.LOCKDOWN)
        assert state.active(START)
        assert state.expires_at == START + timedelta(hours=6)
        assert not (await w.access.switch_state(Switch.KILL_SWITCH)).on
        assert w.alerter.sent[0].severity is Severity.P1

    @pytest.mark.parametrize("duration", [None, timedelta(hours=48)])
    async def test_a_longer_lockdown_already_on_is_not_shortened(
        self, w: Wired, duration: timedelta | None
    ) -> None:
        # An operator's lockdown (timmybot-admin switch on lockdown [--for]):
        # an alarm's P1 may only tighten, never end it sooner.
        await w.access.set_switch(
            Switch.LOCKDOWN, True, reason="operator", actor=OWNER, duration=duration
        )
        report = await w.incidents.handle(Incident(severity="P1", title="Credential stuffing"))
        assert steps(report) == {"alert": True, "lockdown": True, "record": True}
        state = await w.access.switch_state(Switch.LOCKDOWN)
        assert state.active(START + timedelta(hours=7))
        assert state.expires_at == (None if duration is None else START + duration)
        assert state.reason == "operator"

    async def test_an_alerter_that_never_answers_fails_the_alert_and_the_lockdown_still_runs(
        self, w: Wired
    ) -> None:
        # A host's alerter (a webhook, say) that hangs: the playbook must not
        # hang with it, and the report says what failed.
        async def hangs(alert: object) -> None:
            await asyncio.Event().wait()

        w.alerter.send = hangs  # type: ignore[method-assign]
        incidents = IncidentResponseService(
            access=w.access,
            incidents=w.incidents_store,
            security_log=w.security_log,
            metrics=w.metrics,
            alerter=w.alerter,
            clock=w.clock,
            settings=IncidentSettings(alert_timeout=timedelta(milliseconds=50)),
        )
        report = await incidents.handle(Incident(severity="P1", title="Credential stuffing"))
        assert report.failed_steps == ("alert",)
        assert report.steps[0].detail.startswith("AlertDeliveryError: the alerter did not answer")
        assert (await w.access.switch_state(Switch.LOCKDOWN)).active(START)
        record = await w.incidents_store.get(report.incident_id)
        assert record is not None
        assert [(step["name"], step["ok"]) for step in record.steps] == [
            ("alert", False),
            ("lockdown", True),
        ]


class TestP2AndP3:
    async def test_p2_records_for_investigation_and_notifies(self, w: Wired) -> None:
        report = await w.incidents.handle(Incident(severity="P2", title="Odd traffic"))
        assert [step.name for step in report.steps] == ["alert", "record"]
        assert report.steps[1].detail == "recorded for investigation"
        record = await w.incidents_store.get(report.incident_id)
        assert record is not None
        assert [step["name"] for step in record.steps] == ["alert"]
        assert not (await w.access.switch_state(Switch.KILL_SWITCH)).on

    async def test_p3_records_for_review_only(self, w: Wired) -> None:
        report = await w.incidents.handle(Incident(severity="P3", title="Typo in docs"))
        assert steps(report) == {"record": True}
        assert report.steps[0].detail == "recorded for review"
        assert w.alerter.sent == []
        assert report.respond_by == START + timedelta(weeks=1)

    async def test_recorded_incidents_are_listed_newest_first(self, w: Wired) -> None:
        first = await w.incidents.handle(Incident(severity="P3", title="first"))
        w.clock.advance(timedelta(minutes=1))
        second = await w.incidents.handle(Incident(severity="P3", title="second"))
        assert [r.incident_id for r in await w.incidents.recent()] == [
            second.incident_id,
            first.incident_id,
        ]


class TestIncidentInput:
    def test_titles_are_cleaned(self) -> None:
        incident = Incident(severity="P2", title="line\nbreak\u202e and\x00 more")
        assert incident.title == "line break and more"

    @pytest.mark.parametrize("title", ["", "  ", "\u200b"])
    def test_a_title_is_required(self, title: str) -> None:
        with pytest.raises(ValueError, match="needs a title"):
            Incident(severity="P2", title=title)

    def test_unknown_severities_are_refused(self) -> None:
        with pytest.raises(ValueError, match="P5"):
            Incident(severity="P5", title="x")


class TestAlarmRules:
    async def test_more_than_ten_unauthorized_attempts_in_five_minutes_raise_a_p1(
        self, w: Wired
    ) -> None:
        # Eleven different guilds, one attempt each: no ban, but a surge.
        for offset in range(11):
            await w.access.check(900_000_000_000_000_000 + offset, USER, "search")
        (report,) = w.alarms.raised
        assert report.severity is Severity.P1
        assert (await w.access.switch_state(Switch.LOCKDOWN)).active(w.clock.now())

    async def test_one_guild_spamming_is_a_ban_not_an_incident(self, w: Wired) -> None:
        for _ in range(30):
            await w.access.check(900_000_000_000_000_000, USER, "search")
        assert list(w.alarms.raised) == []
        assert len(w.alerter.sent) == 1

    async def test_attempts_spread_over_more_than_five_minutes_do_not_trip(self, w: Wired) -> None:
        for offset in range(20):
            await w.access.check(900_000_000_000_000_000 + offset, USER, "search")
            w.clock.advance(timedelta(seconds=31))
        assert list(w.alarms.raised) == []

    async def test_an_episode_raises_one_incident(self, w: Wired) -> None:
        for offset in range(40):
            await w.access.check(900_000_000_000_000_000 + offset, USER, "search")
        assert len(w.alarms.raised) == 1

    async def test_one_guild_under_a_high_attempt_limit_is_not_an_incident(self) -> None:
        # With a limit above the rule's threshold, a guild makes more than 10
        # attempts before its ban: still one guild spamming, not a surge.
        w = wire(
            AccessSettings(
                owner_ids={OWNER}, allowed_guilds=set(), cache_ttl=START - START, attempt_limit=50
            )
        )
        for _ in range(30):
            await w.access.check(900_000_000_000_000_000, USER, "search")
        assert list(w.alarms.raised) == []
        assert not (await w.access.switch_state(Switch.LOCKDOWN)).active(w.clock.now())

    async def test_one_user_spamming_direct_messages_is_not_an_incident(self, w: Wired) -> None:
        for _ in range(30):
            await w.access.check(None, USER, "search")
        assert list(w.alarms.raised) == []

    async def test_a_flood_from_one_guild_neither_trips_the_rule_nor_hides_the_others(
        self, w: Wired
    ) -> None:
        for offset in range(5):
            await w.access.check(900_000_000_000_000_000 + offset, USER, "search")
        for _ in range(30):  # banned at its 11th attempt
            await w.access.check(900_000_000_000_000_100, USER, "search")
        for offset in range(5, 10):
            await w.access.check(900_000_000_000_000_000 + offset, USER, "search")
        assert list(w.alarms.raised) == []  # ten guilds not banned
        await w.access.check(900_000_000_000_000_200, USER, "search")
        (report,) = w.alarms.raised  # eleven guilds, none banned, within five minutes
        assert report.title == "Surge of unauthorized access attempts"

    async def test_attempts_from_before_a_backward_clock_jump_stop_counting(self, w: Wired) -> None:
        for offset in range(10):
            await w.access.check(900_000_000_000_000_000 + offset, USER, "search")
        w.clock.set(START - timedelta(hours=1))  # the clock is corrected an hour back
        w.clock.advance(timedelta(minutes=30))
        await w.access.check(900_000_000_000_000_100, USER, "search")
        assert list(w.alarms.raised) == []

    async def test_a_backward_clock_jump_does_not_prolong_the_quiet_period(self, w: Wired) -> None:
        for offset in range(11):
            await w.access.check(900_000_000_000_000_000 + offset, USER, "search")
        assert len(w.alarms.raised) == 1
        w.clock.set(START - timedelta(hours=1))
        for offset in range(11):
            await w.access.check(900_000_000_000_000_100 + offset, USER, "search")
        assert len(w.alarms.raised) == 2  # a new episode, an hour before the first by the clock

    async def test_more_than_twenty_auth_failures_in_fifteen_minutes_raise_a_p1(
        self, w: Wired
    ) -> None:
        for _ in range(20):
            await w.security_log.authentication_attempt(
                user_id=USER, platform="spotify", success=False, reason="invalid_grant"
            )
            w.clock.advance(timedelta(seconds=40))
        assert list(w.alarms.raised) == []
        await w.security_log.authentication_attempt(
            user_id=USER, platform="spotify", success=False, reason="invalid_grant"
        )
        (report,) = w.alarms.raised
        assert report.title == "Surge of authentication failures"

    async def test_successes_do_not_count(self, w: Wired) -> None:
        for _ in range(50):
            await w.security_log.authentication_attempt(
                user_id=USER, platform="spotify", success=True
            )
        assert list(w.alarms.raised) == []
        events = [e.type for e in w.security_log.recent(100)]
        assert SecurityEventType.INCIDENT_DECLARED not in events
