"""Specification of ServerAccessControl, on memory adapters with a FakeClock."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from tests.unit.conftest import ALLOWED_GUILD, OWNER, START, STRANGER_GUILD, USER, Wired, wire
from timmybot_adapters.memory import MemoryAccessPolicyStore
from timmybot_core import (
    AccessDecision,
    AccessReason,
    AccessSettings,
    Severity,
    StoreUnavailable,
    Switch,
    SwitchState,
)


async def deny(w: Wired, times: int, guild: int = STRANGER_GUILD) -> list[AccessReason]:
    reasons = []
    for _ in range(times):
        reasons.append((await w.access.check(guild, USER, "search")).reason)
    return reasons


class TestAllowlist:
    async def test_an_allowlisted_guild_passes(self, w: Wired) -> None:
        await w.access.allow_guild(ALLOWED_GUILD, actor=OWNER)
        decision = await w.access.check(ALLOWED_GUILD, USER, "search")
        assert decision.allowed
        assert decision.reason is AccessReason.ALLOWED
        assert w.metrics.snapshot().unauthorized_access == 0

    async def test_a_stranger_is_denied_with_its_reason(self, w: Wired) -> None:
        decision = await w.access.check(STRANGER_GUILD, USER, "search")
        assert not decision.allowed
        assert decision.reason is AccessReason.NOT_ALLOWLISTED
        assert decision.retry_after is None
        assert "not authorized" in decision.message

    async def test_guilds_in_settings_are_allowed_and_listed(self) -> None:
        w = wire(AccessSettings(allowed_guilds={ALLOWED_GUILD}))
        assert await w.access.is_guild_allowed(ALLOWED_GUILD)
        assert (await w.access.check(ALLOWED_GUILD, USER, "search")).allowed
        assert await w.access.list_allowed_guilds() == [ALLOWED_GUILD]

    async def test_removed_guilds_are_denied_again(self, w: Wired) -> None:
        await w.access.allow_guild(ALLOWED_GUILD, actor=OWNER)
        assert await w.access.remove_guild(ALLOWED_GUILD, actor=OWNER)
        assert not (await w.access.check(ALLOWED_GUILD, USER, "search")).allowed

    @pytest.mark.parametrize("bad", [0, -1, 2**64])
    async def test_guild_ids_must_be_snowflakes(self, w: Wired, bad: int) -> None:
        with pytest.raises(ValueError, match="positive 64-bit"):
            await w.access.allow_guild(bad, actor=OWNER)

    async def test_the_seed_helper_is_guild_allowed(self, w: Wired) -> None:
        assert not await w.access.is_guild_allowed(STRANGER_GUILD)
        await w.access.allow_guild(STRANGER_GUILD, actor=OWNER)
        assert await w.access.is_guild_allowed(STRANGER_GUILD)


class TestBans:
    async def test_the_eleventh_attempt_within_an_hour_bans_and_alerts_once(self, w: Wired) -> None:
        reasons = await deny(w, 10)
        assert reasons == [AccessReason.NOT_ALLOWLISTED] * 10
        assert w.alerter.sent == []
        eleventh = await w.access.check(STRANGER_GUILD, USER, "search")
        assert eleventh.reason is AccessReason.GUILD_BANNED
        assert eleventh.retry_after == timedelta(hours=1)
        # More attempts while banned: denied as banned, no further alert.
        assert await deny(w, 5) == [AccessReason.GUILD_BANNED] * 5
        assert len(w.alerter.sent) == 1
        alert = w.alerter.sent[0]
        assert alert.severity is Severity.P2
        assert alert.details["guild"] == w.pseudonymizer.guild(STRANGER_GUILD)
        assert str(STRANGER_GUILD) not in str(dict(alert.details))

    async def test_an_alerter_that_never_answers_does_not_hold_the_banning_check(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        w = wire(
            AccessSettings(
                owner_ids={OWNER}, cache_ttl=timedelta(0), alert_timeout=timedelta(seconds=0.1)
            )
        )

        async def never(alert: object) -> None:
            await asyncio.sleep(3600)

        monkeypatch.setattr(w.alerter, "send", never)
        await deny(w, 10)
        # Bounded by the test, far above the 0.1 s the settings give the alerter.
        eleventh = await asyncio.wait_for(w.access.check(STRANGER_GUILD, USER, "search"), 5)
        assert eleventh.reason is AccessReason.GUILD_BANNED
        # The failed delivery is on record.
        assert any(e.type.value == "ALERT_FAILED" for e in w.security_log.recent())

    async def test_retry_after_counts_down(self, w: Wired) -> None:
        await deny(w, 11)
        w.clock.advance(timedelta(minutes=20))
        decision = await w.access.check(STRANGER_GUILD, USER, "search")
        assert decision.retry_after == timedelta(minutes=40)
        assert "Try again in 40 minutes" in decision.message

    @pytest.mark.parametrize(
        ("left", "shown"),
        [
            (timedelta(seconds=60, milliseconds=400), 2),
            (timedelta(seconds=60), 1),
            (timedelta(milliseconds=200), 1),
        ],
    )
    def test_the_time_left_is_rounded_up_to_whole_minutes(
        self, left: timedelta, shown: int
    ) -> None:
        decision = AccessDecision(allowed=False, reason=AccessReason.GUILD_BANNED, retry_after=left)
        assert decision.message.endswith(f"Try again in {shown} minute{'s' if shown != 1 else ''}.")

    async def test_the_ban_ends_after_its_duration(self, w: Wired) -> None:
        await deny(w, 11)
        w.clock.advance(timedelta(hours=1))
        decision = await w.access.check(STRANGER_GUILD, USER, "search")
        assert decision.reason is AccessReason.NOT_ALLOWLISTED
        assert await w.access.list_bans() == []

    async def test_attempts_older_than_the_window_stop_counting(self, w: Wired) -> None:
        await deny(w, 10)
        w.clock.advance(timedelta(hours=1, seconds=1))
        assert await deny(w, 10) == [AccessReason.NOT_ALLOWLISTED] * 10
        assert w.alerter.sent == []

    async def test_the_window_slides(self, w: Wired) -> None:
        await deny(w, 5)
        w.clock.advance(timedelta(minutes=40))
        await deny(w, 5)
        w.clock.advance(timedelta(minutes=21))  # the first five are now 61 minutes old
        assert await deny(w, 5) == [AccessReason.NOT_ALLOWLISTED] * 5
        assert (await w.access.check(STRANGER_GUILD, USER, "search")).reason is (
            AccessReason.GUILD_BANNED
        )

    async def test_limit_and_duration_are_configurable(self) -> None:
        w = wire(
            AccessSettings(
                attempt_limit=2,
                attempt_window=timedelta(minutes=5),
                ban_duration=timedelta(minutes=5),
                cache_ttl=timedelta(0),
            )
        )
        assert await deny(w, 3) == [
            AccessReason.NOT_ALLOWLISTED,
            AccessReason.NOT_ALLOWLISTED,
            AccessReason.GUILD_BANNED,
        ]
        w.clock.advance(timedelta(minutes=5))
        assert (await w.access.check(STRANGER_GUILD, USER, "x")).reason is (
            AccessReason.NOT_ALLOWLISTED
        )

    async def test_attempts_inside_the_window_still_count_after_a_ban_ends(self) -> None:
        w = wire(AccessSettings(attempt_limit=2, ban_duration=timedelta(minutes=5)))
        await deny(w, 3)
        w.clock.advance(timedelta(minutes=5))
        # Three attempts in the last hour already: a persistent guild is banned again.
        assert (await w.access.check(STRANGER_GUILD, USER, "x")).reason is (
            AccessReason.GUILD_BANNED
        )

    async def test_an_unbanned_guild_starts_from_zero(self, w: Wired) -> None:
        await deny(w, 11)
        assert await w.access.unban(STRANGER_GUILD, actor=OWNER)
        assert await deny(w, 10) == [AccessReason.NOT_ALLOWLISTED] * 10
        assert len(w.alerter.sent) == 1

    async def test_a_ban_race_loser_reports_the_time_left(self, w: Wired) -> None:
        from timmybot_core import Ban

        await w.store.place_ban(
            Ban(
                guild_id=STRANGER_GUILD,
                until=START + timedelta(minutes=7),
                reason="x",
                placed_at=START,
            ),
            now=START,
        )
        await w.store.lift_ban(STRANGER_GUILD, now=START)
        for _ in range(10):
            await w.store.record_attempt(STRANGER_GUILD, at=START, window=timedelta(hours=1))
        # A ban placed by "another process" between our count and our place_ban:
        original = w.store.place_ban

        async def lose(ban: object, *, now: object) -> bool:
            await original(
                Ban(
                    guild_id=STRANGER_GUILD,
                    until=START + timedelta(minutes=7),
                    reason="y",
                    placed_at=START,
                ),
                now=START,
            )
            return False

        w.store.place_ban = lose  # type: ignore[method-assign]
        decision = await w.access.check(STRANGER_GUILD, USER, "search")
        assert decision.retry_after == timedelta(minutes=7)
        assert w.alerter.sent == []

    async def test_unban_and_allow_lift_bans(self, w: Wired) -> None:
        await deny(w, 11)
        assert await w.access.unban(STRANGER_GUILD, actor=OWNER)
        assert not await w.access.unban(STRANGER_GUILD, actor=OWNER)
        await deny(w, 11)
        await w.access.allow_guild(STRANGER_GUILD, actor=OWNER)
        assert (await w.access.check(STRANGER_GUILD, USER, "search")).allowed

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("attempt_limit", 0, "attempt_limit must be at least 1"),
            ("ban_duration", timedelta(0), "ban_duration must be positive"),
            ("attempt_window", timedelta(seconds=-1), "attempt_window must be positive"),
        ],
    )
    def test_nonsense_settings_are_refused(self, field: str, value: object, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            AccessSettings(**{field: value})  # type: ignore[arg-type]


class TestKillSwitch:
    async def test_denies_everyone_but_owners(self, w: Wired) -> None:
        await w.access.allow_guild(ALLOWED_GUILD, actor=OWNER)
        await w.access.set_switch(Switch.KILL_SWITCH, True, reason="breach", actor=OWNER)
        decision = await w.access.check(ALLOWED_GUILD, USER, "search")
        assert decision.reason is AccessReason.KILL_SWITCH
        assert (await w.access.check(ALLOWED_GUILD, OWNER, "admin")).allowed
        assert (await w.access.check(STRANGER_GUILD, OWNER, "admin")).allowed
        await w.access.set_switch(Switch.KILL_SWITCH, False, reason=None, actor=OWNER)
        assert (await w.access.check(ALLOWED_GUILD, USER, "search")).allowed

    async def test_kill_switch_denials_do_not_count_toward_a_ban(self, w: Wired) -> None:
        await w.access.set_switch(Switch.KILL_SWITCH, True, reason="maintenance", actor=OWNER)
        for _ in range(30):
            await w.access.check(STRANGER_GUILD, USER, "search")
        assert await w.access.list_bans() == []

    async def test_state_records_who_and_why(self, w: Wired) -> None:
        await w.access.set_switch(Switch.KILL_SWITCH, True, reason="breach", actor=OWNER)
        state = await w.access.switch_state(Switch.KILL_SWITCH)
        assert state.on
        assert state.reason == "breach"
        assert state.actor is not None
        assert str(OWNER) not in state.actor
        assert state.changed_at == START


class TestDirectMessages:
    async def test_denied_by_default(self, w: Wired) -> None:
        decision = await w.access.check(None, USER, "search")
        assert decision.reason is AccessReason.DIRECT_MESSAGE

    async def test_allowed_when_configured(self) -> None:
        w = wire(AccessSettings(allow_direct_messages=True))
        assert (await w.access.check(None, USER, "search")).allowed


class TestLockdown:
    async def test_tightens_the_limit_while_on(self, w: Wired) -> None:
        await w.access.set_switch(
            Switch.LOCKDOWN, True, reason="p1", actor=None, duration=timedelta(hours=1)
        )
        assert await deny(w, 4) == [AccessReason.NOT_ALLOWLISTED] * 3 + [AccessReason.GUILD_BANNED]

    async def test_logs_granted_commands_while_on(
        self, w: Wired, caplog: pytest.LogCaptureFixture
    ) -> None:
        await w.access.allow_guild(ALLOWED_GUILD, actor=OWNER)
        with caplog.at_level(logging.INFO, logger="timmybot.security"):
            await w.access.check(ALLOWED_GUILD, USER, "search")
            assert "ACCESS_GRANTED" not in caplog.text
            await w.access.set_switch(
                Switch.LOCKDOWN, True, reason="p1", actor=None, duration=timedelta(minutes=10)
            )
            await w.access.check(ALLOWED_GUILD, USER, "search")
            assert "ACCESS_GRANTED" in caplog.text

    async def test_expires_by_itself(self, w: Wired) -> None:
        await w.access.set_switch(
            Switch.LOCKDOWN, True, reason="p1", actor=None, duration=timedelta(minutes=10)
        )
        w.clock.advance(timedelta(minutes=10))
        assert await deny(w, 10) == [AccessReason.NOT_ALLOWLISTED] * 10


class TestFailClosed:
    async def test_a_store_outage_denies_everyone_but_owners(self) -> None:
        class Down(MemoryAccessPolicyStore):
            async def get_switch(self, switch: Switch):  # type: ignore[no-untyped-def]
                raise StoreUnavailable("access store: database is locked")

        w = wire()
        w.access._store = Down()
        decision = await w.access.check(ALLOWED_GUILD, USER, "search")
        assert decision.reason is AccessReason.UNAVAILABLE
        assert "try again" in decision.message.lower()
        assert (await w.access.check(ALLOWED_GUILD, OWNER, "search")).allowed

    async def test_an_outage_is_not_counted_as_an_attack(self) -> None:
        class Down(MemoryAccessPolicyStore):
            async def get_switch(self, switch: Switch):  # type: ignore[no-untyped-def]
                raise StoreUnavailable("access store: database is locked")

        w = wire()
        w.access._store = Down()
        for offset in range(30):
            await w.access.check(900_000_000_000_000_000 + offset, USER, "search")
        assert w.metrics.snapshot().unauthorized_access == 0
        assert list(w.alarms.raised) == []
        types = {event.type.value for event in w.security_log.recent(100)}
        assert types == {"STORE_UNAVAILABLE"}

    async def test_a_failing_alerter_does_not_break_the_ban(self, w: Wired) -> None:
        from timmybot_core import AlertDeliveryError

        async def broken(alert: object) -> None:
            raise AlertDeliveryError("sns: throttled")

        w.alerter.send = broken  # type: ignore[method-assign]
        await deny(w, 11)
        assert len(await w.access.list_bans()) == 1
        assert any(e.type.value == "ALERT_FAILED" for e in w.security_log.recent())


class TestCaching:
    async def test_allowed_path_reuses_answers_within_the_ttl(self) -> None:
        calls = 0

        class Counting(MemoryAccessPolicyStore):
            async def is_guild_allowed(self, guild_id: int) -> bool:
                nonlocal calls
                calls += 1
                return await super().is_guild_allowed(guild_id)

        w = wire(AccessSettings(cache_ttl=timedelta(seconds=5)))
        w.access._store = Counting()
        await w.access._store.allow_guild(ALLOWED_GUILD, at=START)
        for _ in range(100):
            assert (await w.access.check(ALLOWED_GUILD, USER, "search")).allowed
        assert calls == 1
        w.clock.advance(timedelta(seconds=5))
        await w.access.check(ALLOWED_GUILD, USER, "search")
        assert calls == 2

    async def test_a_clock_set_back_does_not_stretch_the_ttl(self) -> None:
        # Another process turns the kill switch on in the shared store after
        # this one cached "off"; then NTP steps this host's clock back an hour.
        # A negative age must make the entry stale, or the switch would be
        # missed for an hour instead of at most cache_ttl.
        w = wire(AccessSettings(cache_ttl=timedelta(seconds=5)))
        await w.access._store.allow_guild(ALLOWED_GUILD, at=START)
        assert (await w.access.check(ALLOWED_GUILD, USER, "search")).allowed
        await w.access._store.set_switch(
            SwitchState(
                switch=Switch.KILL_SWITCH,
                on=True,
                reason="x",
                actor=None,
                changed_at=START - timedelta(hours=2),
            )
        )
        w.clock.set(START - timedelta(hours=1))
        decision = await w.access.check(ALLOWED_GUILD, USER, "search")
        assert decision.reason is AccessReason.KILL_SWITCH

    async def test_local_changes_are_seen_at_once(self) -> None:
        w = wire(AccessSettings(cache_ttl=timedelta(minutes=5)))
        assert not (await w.access.check(ALLOWED_GUILD, USER, "search")).allowed
        await w.access.allow_guild(ALLOWED_GUILD, actor=OWNER)
        assert (await w.access.check(ALLOWED_GUILD, USER, "search")).allowed
        await w.access.set_switch(Switch.KILL_SWITCH, True, reason="x", actor=OWNER)
        assert not (await w.access.check(ALLOWED_GUILD, USER, "search")).allowed


class TestSecurityEvents:
    async def test_a_denial_is_logged_with_pseudonyms_and_counted(
        self, w: Wired, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="timmybot.security"):
            await w.access.check(STRANGER_GUILD, USER, "search")
        (line,) = [r.getMessage() for r in caplog.records if r.name == "timmybot.security"]
        assert '"event":"UNAUTHORIZED_ACCESS"' in line
        assert w.pseudonymizer.guild(STRANGER_GUILD) in line
        assert w.pseudonymizer.user(USER) in line
        assert str(STRANGER_GUILD) not in line
        assert str(USER) not in line
        assert w.metrics.snapshot().unauthorized_access == 1

    async def test_a_ban_is_logged(self, w: Wired) -> None:
        await deny(w, 11)
        types = [e.type.value for e in w.security_log.recent(100)]
        assert types.count("BAN_PLACED") == 1
