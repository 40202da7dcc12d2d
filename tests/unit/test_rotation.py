"""Specification of TokenRotationService."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.unit.conftest import START, wire
from tests.unit.fake_oauth import FakeOAuthClient, unavailable
from timmybot_adapters.memory import MemoryTokenVault
from timmybot_core import Severity
from timmybot_core.services.rotation import RotationSettings, TokenRotationService
from timmybot_core.services.tokens import SecureTokenService


async def no_sleep(_: float) -> None:
    return None


async def setup(paused: bool = False):  # type: ignore[no-untyped-def]
    w = wire()
    oauth = FakeOAuthClient(w.clock, lifetime=timedelta(hours=12))
    tokens = SecureTokenService(
        vault=MemoryTokenVault(),
        oauth=oauth,
        security_log=w.security_log,
        metrics=w.metrics,
        clock=w.clock,
        sleep=no_sleep,
    )

    async def is_paused() -> bool:
        return paused

    rotation = TokenRotationService(
        tokens=tokens,
        alerter=w.alerter,
        clock=w.clock,
        settings=RotationSettings(concurrency=4, attempts=3),
        paused=is_paused,
        sleep=no_sleep,
    )
    return w, oauth, tokens, rotation


async def test_refreshes_what_expires_within_the_window_and_counts_the_rest() -> None:
    w, oauth, tokens, rotation = await setup()
    for user in range(1, 11):
        await tokens.store_user_tokens(user, oauth.issue())  # expire in 12 h
    oauth.lifetime = timedelta(days=3)
    for user in range(11, 16):
        await tokens.store_user_tokens(user, oauth.issue())  # expire in 3 days
    report = await rotation.rotate_expiring(within=timedelta(hours=24))
    assert (report.users, report.refreshed, report.unchanged) == (15, 10, 5)
    assert (report.needs_relink, report.failed) == (0, 0)
    assert oauth.refresh_calls == 10
    assert w.alerter.sent == []


async def test_rejected_grants_are_marked_once_and_summarised_in_one_alert() -> None:
    w, oauth, tokens, rotation = await setup()
    for user in range(1, 6):
        issued = oauth.issue()
        await tokens.store_user_tokens(user, issued)
        if user <= 3:
            oauth.valid_refresh.discard(issued.refresh_token or "")
    first = await rotation.rotate_expiring()
    assert (first.refreshed, first.needs_relink) == (2, 3)
    calls = oauth.refresh_calls
    second = await rotation.rotate_expiring()
    assert (second.refreshed, second.needs_relink) == (2, 3)
    assert oauth.refresh_calls == calls + 2  # marked links are not retried
    (alert,) = w.alerter.sent
    assert alert.severity is Severity.P2
    assert alert.details["newly_need_relink"] == 3


async def test_transient_failures_are_retried_with_backoff() -> None:
    _, oauth, tokens, rotation = await setup()
    await tokens.store_user_tokens(1, oauth.issue())
    oauth.failures = [unavailable(), unavailable()]
    report = await rotation.rotate_expiring()
    assert (report.refreshed, report.failed) == (1, 0)
    assert oauth.refresh_calls == 3


async def test_persistent_failures_are_counted_and_alerted_once() -> None:
    w, oauth, tokens, rotation = await setup()
    for user in range(1, 4):
        await tokens.store_user_tokens(user, oauth.issue())
    oauth.failures = [unavailable() for _ in range(9)]
    report = await rotation.rotate_expiring()
    assert report.failed == 3
    assert len(w.alerter.sent) == 1


async def test_a_paused_refresh_skips_the_run() -> None:
    _, oauth, tokens, rotation = await setup(paused=True)
    await tokens.store_user_tokens(1, oauth.issue())
    report = await rotation.rotate_expiring()
    assert report.paused
    assert oauth.refresh_calls == 0


async def test_an_empty_vault_is_a_quiet_run() -> None:
    w, _, _, rotation = await setup()
    report = await rotation.rotate_expiring()
    assert report.users == 0
    assert w.clock.now() == START


async def test_a_pause_during_the_run_stops_refreshing_and_still_reports() -> None:
    _, oauth, tokens, rotation = await setup()
    for user in range(1, 6):
        await tokens.store_user_tokens(user, oauth.issue())
    calls = 0

    async def pause_after_two() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2

    tokens._paused = pause_after_two
    tokens._clock.advance(timedelta(hours=13))  # type: ignore[attr-defined]
    report = await rotation.rotate_expiring()
    assert report.paused
    assert report.users == 5
    assert report.refreshed + report.unchanged == 5


async def test_a_cancelled_run_starts_no_more_refreshes_and_lets_those_in_flight_finish() -> None:
    # The scheduler cancels a run whose lease it lost: the next holder may
    # start its own run at once, so this one must not go on refreshing the
    # users it had already queued.
    w, oauth, tokens, rotation = await setup()
    for user in range(1, 101):
        await tokens.store_user_tokens(user, oauth.issue())
    w.clock.advance(timedelta(hours=13))
    oauth.gate = asyncio.Event()
    run = asyncio.create_task(rotation.rotate_expiring())
    for _ in range(1000):
        if oauth.refresh_calls == 4:  # one per worker, each waiting for its answer
            break
        await asyncio.sleep(0)
    for _ in range(100):
        await asyncio.sleep(0)  # the queue fills up behind them
    assert oauth.refresh_calls == 4
    run.cancel()
    await asyncio.sleep(0)
    oauth.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, timeout=5)
    for _ in range(100):
        await asyncio.sleep(0)
    assert tokens.in_flight == 0
    assert oauth.refresh_calls == 4  # nothing queued was started
    refreshed = [
        user
        for user in range(1, 101)
        if (record := await tokens.vault.get(user)) is not None
        and not record.links["spotify"].tokens.expires_within(w.clock.now(), timedelta(hours=1))
    ]
    assert len(refreshed) == 4  # the refreshes in flight reached the vault
