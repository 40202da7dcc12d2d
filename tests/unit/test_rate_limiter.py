"""Specification of the RateLimiter: three windows in one call, failure modes, what refusals leave."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timmybot_adapters.memory import MemoryRateLimitStore
from timmybot_core import (
    RateLimit,
    RateLimiter,
    RateLimitSettings,
    Severity,
    StoreUnavailable,
)
from timmybot_core.ports.rate_limits import RateDecision
from timmybot_core.services.refusals import RefusalLedger
from timmybot_core.services.suspicion import Signal

from .conftest import Wired, wire

GUILD, OTHER_GUILD = 420_000_000_000_000_042, 430_000_000_000_000_043
USER, OTHER_USER = 700_000_000_000_000_007, 800_000_000_000_000_008


def limiter_for(
    wired: Wired, rate_settings: RateLimitSettings | None = None, store: object = None
) -> tuple[RateLimiter, RefusalLedger]:
    refusals = RefusalLedger(security_log=wired.security_log, clock=wired.clock)
    limiter = RateLimiter(
        store=store if store is not None else MemoryRateLimitStore(),  # type: ignore[arg-type]
        clock=wired.clock,
        security_log=wired.security_log,
        metrics=wired.metrics,
        refusals=refusals,
        settings=rate_settings,
    )
    return limiter, refusals


async def run(
    limiter: RateLimiter,
    user: int = USER,
    guild: int | None = GUILD,
    command: str = "playlist",
    quota: bool = False,
) -> bool:
    verdict = await limiter.check(user_id=user, guild_id=guild, command=command, spends_quota=quota)
    return verdict.allowed


class BrokenStore:
    """A rate-limit store whose backend is down."""

    async def acquire(self, key: str, rate: RateLimit, *, now: float) -> RateDecision:
        raise StoreUnavailable("rate limit store: database is locked")

    async def release(self, key: str, hit_id: str) -> bool:
        raise StoreUnavailable("rate limit store: database is locked")


async def test_a_member_gets_the_command_limit_then_the_wait() -> None:
    wired = wire()
    limiter, _ = limiter_for(wired)

    assert [await run(limiter) for _ in range(5)] == [True] * 5
    wired.clock.advance(timedelta(seconds=4))
    verdict = await limiter.check(user_id=USER, guild_id=GUILD, command="playlist")

    assert (verdict.allowed, verdict.scope, verdict.retry_after) == (False, "command", 6.0)
    wired.clock.advance(timedelta(seconds=6))
    assert await run(limiter)


async def test_commands_that_spend_quota_have_the_stricter_window() -> None:
    wired = wire()
    limiter, _ = limiter_for(wired)

    assert [await run(limiter, command="search", quota=True) for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    # Another command of the same member has its own window.
    assert await run(limiter, command="playlist")


async def test_a_refusal_by_a_later_key_gives_the_earlier_hits_back() -> None:
    wired = wire()
    tight_guild = RateLimitSettings(guild=RateLimit(limit=1, window=60))
    limiter, _ = limiter_for(wired, tight_guild)
    assert await run(limiter, user=OTHER_USER)

    # The guild refuses USER ten times; none of them counts on USER's own windows.
    assert [await run(limiter) for _ in range(10)] == [False] * 10
    assert [await run(limiter, guild=None) for _ in range(5)] == [True] * 5


async def test_the_longest_wait_of_the_refusing_keys_is_the_answer() -> None:
    wired = wire()
    limiter, _ = limiter_for(
        wired,
        RateLimitSettings(
            command=RateLimit(limit=1, window=10), user=RateLimit(limit=1, window=60)
        ),
    )
    assert await run(limiter)

    verdict = await limiter.check(user_id=USER, guild_id=GUILD, command="playlist")

    assert (verdict.scope, verdict.retry_after) == ("user", 60.0)


async def test_a_direct_message_has_no_guild_window() -> None:
    wired = wire()
    limiter, _ = limiter_for(wired)

    keys = limiter.keys(user_id=USER, guild_id=None, command="playlist")

    assert [scope for scope, _, _ in keys] == ["command", "user"]
    assert all(key.isascii() and len(key) <= 200 for _, key, _ in keys)


def test_keys_hold_pseudonyms_never_discord_ids() -> None:
    limiter, _ = limiter_for(wire())

    keys = [key for _, key, _ in limiter.keys(user_id=USER, guild_id=GUILD, command="search")]

    assert not any(str(USER) in key or str(GUILD) in key for key in keys)
    # The same pseudonymizer key gives the same keys in every process.
    again, _ = limiter_for(wire())
    assert [key for _, key, _ in again.keys(user_id=USER, guild_id=GUILD, command="search")] == keys


def test_a_command_named_in_any_script_makes_a_short_ascii_key() -> None:
    limiter, _ = limiter_for(wire())

    (_, key, _), *_ = limiter.keys(user_id=USER, guild_id=GUILD, command="поиск " * 40)

    assert key.isascii() and len(key) < 60


def test_each_subcommand_path_has_a_key_of_its_own() -> None:
    # Keyed by the root name, /music queue used up /music search's window.
    limiter, _ = limiter_for(wire())

    def command_key(command: str) -> str:
        (_, key, _), *_ = limiter.keys(user_id=USER, guild_id=GUILD, command=command)
        return key

    user = command_key("search").split(":", 2)[2]
    assert command_key("search") == f"cmd:search:{user}"  # a plain name keeps its key
    assert command_key("music search") == f"cmd:music.search:{user}"
    assert command_key("music queue") != command_key("music search") != command_key("music")
    deepest = command_key("й" * 32 + " " + "ы" * 32 + " " + "z" * 32)
    assert deepest.isascii() and len(deepest) <= 200
    assert command_key("a.b") != command_key("a b")  # "." is in no name: hashed


async def test_a_command_name_with_a_trailing_newline_is_hashed_like_any_other() -> None:
    # ``$`` also matches before a final newline: such a name passed the
    # plain-name check and made a key the store refuses (ValueError).
    limiter, _ = limiter_for(wire())

    (_, key, _), *_ = limiter.keys(user_id=USER, guild_id=GUILD, command="playlist\n")

    assert "\n" not in key
    assert await run(limiter, command="playlist\n")


async def test_the_member_is_told_once_per_episode() -> None:
    wired = wire()
    limiter, _ = limiter_for(wired, RateLimitSettings(command=RateLimit(limit=1, window=10)))
    assert await run(limiter)

    told = [
        (await limiter.check(user_id=USER, guild_id=GUILD, command="playlist")).first
        for _ in range(4)
    ]
    wired.clock.advance(timedelta(seconds=10))
    assert await run(limiter)
    again = await limiter.check(user_id=USER, guild_id=GUILD, command="playlist")

    assert told == [True, False, False, False]
    assert again.first  # a new episode is told again


async def test_refusals_are_one_security_line_per_key_and_window_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="timmybot.security")
    wired = wire()
    limiter, refusals = limiter_for(wired, RateLimitSettings(command=RateLimit(limit=1, window=10)))
    assert await run(limiter) and await run(limiter, user=OTHER_USER)
    for _ in range(7):
        await run(limiter)
    for _ in range(3):
        await run(limiter, user=OTHER_USER)
    assert "REQUESTS_REFUSED" not in caplog.text  # nothing per refusal

    wired.clock.advance(refusals.window)
    await refusals.flush_due()

    lines = [
        json.loads(record.getMessage())
        for record in caplog.records
        if "REQUESTS_REFUSED" in record.getMessage()
    ]
    assert sorted(line["count"] for line in lines) == [3, 7]
    assert {line["reason"] for line in lines} == {"command:playlist"}
    assert {line["source"] for line in lines} == {"rate_limit"}
    assert len({line["user"] for line in lines}) == 2
    assert str(USER) not in caplog.text  # pseudonyms only


async def test_hammering_for_long_is_suspicious_activity_and_never_an_incident() -> None:
    wired = wire()
    limiter, _ = limiter_for(wired, RateLimitSettings(command=RateLimit(limit=1, window=600)))
    assert await run(limiter)

    for _ in range(100):
        await run(limiter)

    events = [event.type.value for event in wired.security_log.recent(500)]
    assert events.count("RATE_LIMIT_ABUSE") == 1  # reported once per refusal window
    assert wired.suspicion.counts()[Signal.RATE_LIMIT_ABUSE] == 1
    assert wired.metrics.snapshot().suspicious_activity == 20.0
    assert list(wired.alarms.raised) == []
    assert await wired.incidents_store.list_recent() == []


async def test_a_few_refusals_are_not_suspicious() -> None:
    wired = wire()
    limiter, _ = limiter_for(wired, RateLimitSettings(command=RateLimit(limit=1, window=600)))
    for _ in range(29):
        await run(limiter)

    assert wired.suspicion.level() == 0.0


@pytest.mark.parametrize(
    ("fail_open", "quota", "passes"),
    [(True, False, True), (False, False, False), (True, True, False)],
    ids=["read-only-open", "read-only-closed", "quota-closed-by-default"],
)
async def test_a_store_failure_fails_as_the_command_class_says(
    fail_open: bool, quota: bool, passes: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wired = wire()
    limiter, _ = limiter_for(wired, RateLimitSettings(fail_open=fail_open), store=BrokenStore())

    if passes:
        verdict = await limiter.check(user_id=USER, guild_id=GUILD, command="x", spends_quota=quota)
        assert verdict.allowed and verdict.degraded
    else:
        with pytest.raises(StoreUnavailable):
            await limiter.check(user_id=USER, guild_id=GUILD, command="x", spends_quota=quota)

    assert wired.metrics.snapshot().rate_limit_failures == 1
    (event,) = wired.security_log.recent()
    assert event.type.value == "STORE_UNAVAILABLE"
    assert event.details["store"] == "rate_limits"
    assert event.details["fail"] == ("open" if passes else "closed")
    # The store's own words (which can quote a path or a row) are not logged.
    assert "database is locked" not in caplog.text
    assert "failing " + event.details["fail"] in caplog.text


async def test_a_store_failure_that_persists_raises_the_p2_alarm() -> None:
    wired = wire()
    limiter, _ = limiter_for(wired, store=BrokenStore())

    for _ in range(5):
        await run(limiter)
    assert list(wired.alarms.raised) == []  # a blip is no incident
    await run(limiter)

    (report,) = wired.alarms.raised
    assert report.severity is Severity.P2
    assert wired.metrics.snapshot().rate_limit_failures == 6
    assert [alert.severity for alert in wired.alerter.sent] == [Severity.P2]


class HalfBrokenStore(MemoryRateLimitStore):
    """Answers for the member's keys, fails on the guild's."""

    def __init__(self) -> None:
        super().__init__()
        self.released: list[str] = []

    async def acquire(self, key: str, rate: RateLimit, *, now: float) -> RateDecision:
        if key.startswith("guild:"):
            raise StoreUnavailable("down")
        return await super().acquire(key, rate, now=now)

    async def release(self, key: str, hit_id: str) -> bool:
        self.released.append(key)
        return await super().release(key, hit_id)


async def test_a_failure_midway_gives_the_earlier_hits_back() -> None:
    wired = wire()
    store = HalfBrokenStore()
    limiter, _ = limiter_for(wired, RateLimitSettings(fail_open=False), store=store)

    with pytest.raises(StoreUnavailable):
        await run(limiter)

    member_keys = [
        key
        for scope, key, _ in limiter.keys(user_id=USER, guild_id=GUILD, command="playlist")
        if scope != "guild"
    ]
    assert sorted(store.released) == sorted(member_keys)


# -- the model: what "allowed" means, checked against an independent reference ------

_STEPS = st.lists(
    st.tuples(
        st.sampled_from([USER, OTHER_USER, 9]),
        st.sampled_from([GUILD, OTHER_GUILD, None]),
        st.sampled_from(["a", "b"]),
        st.floats(min_value=0, max_value=4, allow_nan=False),
    ),
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(steps=_STEPS)
async def test_decisions_match_an_all_or_nothing_sliding_window_model(
    steps: list[tuple[int, int | None, str, float]],
) -> None:
    wired = wire()
    rates = RateLimitSettings(
        command=RateLimit(limit=2, window=5),
        user=RateLimit(limit=3, window=8),
        guild=RateLimit(limit=4, window=6),
    )
    limiter, _ = limiter_for(wired, rates)
    hits: dict[str, list[float]] = {}
    for user, guild, command, pause in steps:
        wired.clock.advance(timedelta(seconds=pause))
        now = wired.clock.now().timestamp()
        keys = limiter.keys(user_id=user, guild_id=guild, command=command)
        expected = all(
            sum(1 for moment in hits.get(key, []) if moment > now - rate.window) < rate.limit
            for _, key, rate in keys
        )
        if expected:
            for _, key, _ in keys:
                hits.setdefault(key, []).append(now)

        assert await run(limiter, user=user, guild=guild, command=command) is expected


async def test_the_memory_of_who_was_told_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import timmybot_core.services.rate_limits as module

    monkeypatch.setattr(module, "_MAX_TOLD", 10)
    wired = wire()
    limiter, _ = limiter_for(wired, RateLimitSettings(command=RateLimit(limit=1, window=60)))
    for user in range(1, 40):
        assert await run(limiter, user=user, guild=None)
        assert not (await limiter.check(user_id=user, guild_id=None, command="playlist")).allowed

    assert len(limiter._told) == 10  # the oldest episodes were forgotten


async def test_a_window_that_refused_is_not_overruled_by_a_later_store_failure() -> None:
    # The member's command window answered "full"; the guild's key then
    # failed (a contended DynamoDB item, a damaged row). Failing open means
    # passing when no answer could be had, not when one window said no.
    wired = wire()
    store = HalfBrokenStore()
    limiter, _ = limiter_for(wired, RateLimitSettings(command=RateLimit(limit=1, window=60)), store)
    assert await run(limiter, guild=None)  # a DM: no guild key, the command window is full

    verdict = await limiter.check(user_id=USER, guild_id=GUILD, command="playlist")

    assert (verdict.allowed, verdict.scope, verdict.degraded) == (False, "command", False)
    assert verdict.retry_after == 60.0
    # The failure is still the P2 it always is: counted and logged.
    assert wired.metrics.snapshot().rate_limit_failures == 1
