"""Refresh under faults: unknown outcomes, dead and skewed claims, stops, hostile failures.

Every rule here protects one promise: a refresh token the provider may
already have spent is never presented again, by any process, and a rotated
refresh token is not lost because of a timeout, a stop or a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import attrs
import pytest

from tests.unit.conftest import USER, Wired, wire
from tests.unit.fake_oauth import FakeOAuthClient, unavailable
from timmybot_adapters.memory import MemoryTokenVault
from timmybot_core.domain.clock import FakeClock
from timmybot_core.domain.errors import (
    NotLinked,
    ProviderUnavailable,
    RefreshOutcomeUnknown,
    RefreshPaused,
    ReLinkRequired,
)
from timmybot_core.domain.events import SecurityEvent, SecurityEventType
from timmybot_core.domain.tokens import OAuthTokens
from timmybot_core.ports.access import Switch
from timmybot_core.services.rotation import RotationSettings, TokenRotationService
from timmybot_core.services.tokens import SecureTokenService, TokenSettings

CLAIM_TIMEOUT = timedelta(seconds=30)


@attrs.define
class Monotonic:
    """One process's monotonic clock: it advances only while that process sleeps."""

    seconds: float = 5000.0

    def __call__(self) -> float:
        return self.seconds

    async def sleep(self, delay: float) -> None:
        self.seconds += delay
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (bounded)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


@attrs.define
class Process:
    """One bot process: its own wall clock, monotonic clock and OAuth client."""

    clock: FakeClock
    monotonic: Monotonic
    oauth: FakeOAuthClient
    tokens: SecureTokenService


def process(w: Wired, vault: MemoryTokenVault, oauth: FakeOAuthClient, skew: float = 0) -> Process:
    clock = FakeClock(w.clock.now() + timedelta(seconds=skew))
    monotonic = Monotonic()
    tokens = SecureTokenService(
        vault=vault,
        oauth=oauth,
        security_log=w.security_log,
        metrics=w.metrics,
        clock=clock,
        settings=TokenSettings(claim_timeout=CLAIM_TIMEOUT),
        sleep=monotonic.sleep,
        monotonic=monotonic,
    )
    return Process(clock=clock, monotonic=monotonic, oauth=oauth, tokens=tokens)


async def link_expiring(w: Wired, p: Process) -> OAuthTokens:
    """Link USER on ``p`` and move time on to 2 minutes before expiry (processes made
    later start from the moved clock)."""
    issued = p.oauth.issue()
    await p.tokens.store_user_tokens(USER, issued)
    w.clock.advance(timedelta(minutes=58))
    p.clock.advance(timedelta(minutes=58))
    return issued


class BlockingOAuth(FakeOAuthClient):
    """A provider that holds each refresh until the test lets it answer."""

    def __init__(self, clock: FakeClock, *, retry_safe: bool = False) -> None:
        super().__init__(clock, retry_safe=retry_safe)
        self.answer = asyncio.Event()
        self.gate = self.answer


class TestUnknownOutcome:
    async def test_a_lost_answer_marks_the_link_and_the_token_is_never_presented_again(
        self,
    ) -> None:
        w = wire()
        vault = MemoryTokenVault()
        a = process(w, vault, FakeOAuthClient(w.clock))
        issued = await link_expiring(w, a)
        a.oauth.lose_answers = 1  # rotates, then the answer is lost
        with pytest.raises(ReLinkRequired, match="link the account again"):
            await a.tokens.get_valid_access_token(USER, "spotify")
        assert a.oauth.presented == [issued.refresh_token]
        # The fact is in the vault record: a second process refuses too.
        b = process(w, vault, a.oauth)
        with pytest.raises(ReLinkRequired, match="answer was lost"):
            await b.tokens.get_valid_access_token(USER, "spotify")
        with pytest.raises(ReLinkRequired):
            await a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        assert a.oauth.presented == [issued.refresh_token]
        record = await vault.get(USER)
        assert record is not None
        link = record.links["spotify"]
        assert link.needs_relink and link.refresh_claim is None
        assert link.relink_reason is not None and "canary" not in link.relink_reason

    async def test_a_preset_that_allows_reuse_retries_once_with_the_same_token(self) -> None:
        w = wire()
        oauth = FakeOAuthClient(w.clock, rotate=False, retry_safe=True)
        a = process(w, MemoryTokenVault(), oauth)
        issued = await link_expiring(w, a)
        oauth.lose_answers = 1
        access = await a.tokens.get_valid_access_token(USER, "spotify")
        assert access != issued.access_token
        assert oauth.presented == [issued.refresh_token, issued.refresh_token]

    async def test_a_second_unknown_outcome_after_the_retry_needs_relink(self) -> None:
        w = wire()
        oauth = FakeOAuthClient(w.clock, rotate=False, retry_safe=True)
        a = process(w, MemoryTokenVault(), oauth)
        await link_expiring(w, a)
        oauth.lose_answers = 2
        with pytest.raises(ReLinkRequired):
            await a.tokens.get_valid_access_token(USER, "spotify")
        assert oauth.refresh_calls == 2

    async def test_a_connect_error_releases_the_claim_and_is_retried_later(self) -> None:
        w = wire()
        a = process(w, MemoryTokenVault(), FakeOAuthClient(w.clock))
        issued = await link_expiring(w, a)
        a.oauth.failures = [unavailable()]  # the request never left
        with pytest.raises(ProviderUnavailable) as caught:
            await a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        assert not isinstance(caught.value, RefreshOutcomeUnknown)
        outcome = await a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        assert outcome.refreshed
        assert a.oauth.presented == [issued.refresh_token, issued.refresh_token]

    async def test_our_own_cancellation_leaves_the_claim_as_the_spent_marker(self) -> None:
        w = wire()
        vault = MemoryTokenVault()
        oauth = BlockingOAuth(w.clock)
        a = process(w, vault, oauth)
        issued = await link_expiring(w, a)
        task = asyncio.ensure_future(a.tokens.refresh(USER, "spotify", within=timedelta(hours=1)))
        await oauth.entered.wait()
        for inflight in list(a.tokens._inflight.values()):  # the process dies
            inflight.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        record = await vault.get(USER)
        assert record is not None and record.links["spotify"].refresh_claim is not None
        # Another process waits out the claim on its own clock, then refuses
        # to present the possibly spent token.
        b = process(w, vault, FakeOAuthClient(w.clock))
        with pytest.raises(ReLinkRequired, match="interrupted"):
            await b.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        assert b.monotonic.seconds - 5000.0 >= CLAIM_TIMEOUT.total_seconds()
        assert b.oauth.presented == []
        assert oauth.presented == [issued.refresh_token]


class TestClaimsOnMonotonicTime:
    @pytest.mark.parametrize("skew", [40.0, -40.0])
    async def test_a_skewed_host_waits_for_a_live_claim_and_uses_its_result(
        self, skew: float
    ) -> None:
        w = wire()
        vault = MemoryTokenVault()
        oauth = BlockingOAuth(w.clock)
        a = process(w, vault, oauth)
        issued = await link_expiring(w, a)
        b = process(w, vault, oauth, skew=skew)  # B's wall clock is 40 s off
        first = asyncio.ensure_future(a.tokens.get_valid_access_token(USER, "spotify"))
        await oauth.entered.wait()
        second = asyncio.ensure_future(b.tokens.get_valid_access_token(USER, "spotify"))
        # B polls; its own clock advances 20 s: not yet the claim timeout.
        await until(lambda: b.monotonic.seconds - 5000.0 >= 20)
        assert not second.done()
        oauth.answer.set()
        assert await first == await second
        assert oauth.presented == [issued.refresh_token]

    async def test_a_wall_clock_far_ahead_does_not_expire_a_claim_early(self) -> None:
        w = wire()
        vault = MemoryTokenVault()
        oauth = BlockingOAuth(w.clock)
        a = process(w, vault, oauth)
        await link_expiring(w, a)
        # Hours ahead: any comparison with A's deadline would take over at once.
        b = process(w, vault, oauth, skew=3 * 3600.0)
        first = asyncio.ensure_future(a.tokens.refresh(USER, "spotify", within=timedelta(hours=9)))
        await oauth.entered.wait()
        second = asyncio.ensure_future(b.tokens.refresh(USER, "spotify", within=timedelta(hours=9)))
        await until(lambda: b.monotonic.seconds - 5000.0 >= CLAIM_TIMEOUT.total_seconds() - 1)
        assert not second.done() and oauth.refresh_calls == 1
        oauth.answer.set()
        await first
        await second  # B may refresh A's new token later; never A's old one
        assert len(set(oauth.presented)) == len(oauth.presented)

    async def test_a_claim_replaced_by_another_starts_the_wait_again(self) -> None:
        w = wire()
        vault = MemoryTokenVault()
        oauth = FakeOAuthClient(w.clock, retry_safe=True)
        a = process(w, vault, oauth)
        await link_expiring(w, a)
        record = await vault.get(USER)
        assert record is not None
        claimed = record.with_link(
            attrs.evolve(record.links["spotify"], refresh_claim=("one", a.clock.now())),
            now=a.clock.now(),
        )
        version = await vault.put(USER, claimed, expected_version=record.version)
        b = process(w, vault, oauth)
        waiting = asyncio.ensure_future(
            b.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        )
        await until(lambda: b.monotonic.seconds - 5000.0 >= 20)
        # The claim changes hands (a new ID): B's 30 s start again from now.
        replaced = claimed.with_link(
            attrs.evolve(claimed.links["spotify"], refresh_claim=("two", a.clock.now())),
            now=a.clock.now(),
        )
        await vault.put(USER, replaced, expected_version=version)
        seen = b.monotonic.seconds
        await until(lambda: b.monotonic.seconds - seen >= 20)
        assert not waiting.done()
        outcome = await waiting
        assert outcome.refreshed  # preset allows reuse: the taker presents once
        assert b.monotonic.seconds - seen >= CLAIM_TIMEOUT.total_seconds()


class TestRelinkDuringRefresh:
    """The user links the platform again (on the web server's process) while a refresh runs."""

    @pytest.mark.parametrize("answer", ["rotated", "invalid_grant", "lost"])
    async def test_the_refresh_never_replaces_or_spoils_the_new_link(self, answer: str) -> None:
        w = wire()
        vault = MemoryTokenVault()
        oauth = BlockingOAuth(w.clock)
        a = process(w, vault, oauth)
        issued = await link_expiring(w, a)
        running = asyncio.ensure_future(
            a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        )
        await oauth.entered.wait()
        relinked = oauth.issue()  # a new grant, perhaps of another account
        await process(w, vault, oauth).tokens.store_user_tokens(USER, relinked)
        if answer == "invalid_grant":
            oauth.valid_refresh.discard(issued.refresh_token or "")
        elif answer == "lost":
            oauth.lose_answers = 1
        oauth.answer.set()
        if answer == "rotated":
            # The caller is handed the new link's tokens, not the old grant's.
            assert (await running).tokens.access_token == relinked.access_token
        else:
            with pytest.raises(ReLinkRequired):
                await running
        record = await vault.get(USER)
        assert record is not None
        link = record.links["spotify"]
        assert link.tokens.refresh_token == relinked.refresh_token
        assert not link.needs_relink and link.refresh_claim is None
        assert await a.tokens.get_valid_access_token(USER, "spotify") == relinked.access_token


class AnswerLateOAuth(FakeOAuthClient):
    """A provider that rotates at once and holds its answer until the test lets it go."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.answer = asyncio.Event()

    async def refresh(self, platform: str, *, refresh_token: str) -> OAuthTokens:
        fresh = await super().refresh(platform, refresh_token=refresh_token)
        self.entered.set()
        await self.answer.wait()
        return fresh


class TestDiscardedRefreshResult:
    """The provider's answer arrives after the link was replaced or removed: its tokens die."""

    async def relinked_during_refresh(
        self, *, rotate: bool = True
    ) -> tuple[Wired, MemoryTokenVault, BlockingOAuth, Process, OAuthTokens, OAuthTokens]:
        w = wire()
        vault = MemoryTokenVault()
        oauth = BlockingOAuth(w.clock)
        oauth.rotate = rotate
        a = process(w, vault, oauth)
        issued = await link_expiring(w, a)
        return w, vault, oauth, a, issued, oauth.issue()

    async def test_tokens_issued_for_a_replaced_link_are_revoked(self) -> None:
        w, vault, oauth, a, issued, relinked = await self.relinked_during_refresh()
        running = asyncio.ensure_future(
            a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        )
        await oauth.entered.wait()
        await process(w, vault, oauth).tokens.store_user_tokens(USER, relinked)
        oauth.answer.set()
        assert (await running).tokens.access_token == relinked.access_token
        unused = oauth.issued[-2:]  # what the refresh was given
        assert sorted(oauth.revoked) == sorted(unused)
        assert issued.refresh_token not in oauth.revoked  # spent already: left alone
        assert relinked.refresh_token in oauth.valid_refresh
        record = await vault.get(USER)
        assert record is not None
        assert record.links["spotify"].tokens == relinked

    async def test_a_provider_that_does_not_rotate_keeps_the_presented_token_out_of_it(
        self,
    ) -> None:
        w, vault, oauth, a, issued, relinked = await self.relinked_during_refresh(rotate=False)
        running = asyncio.ensure_future(
            a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        )
        await oauth.entered.wait()
        await process(w, vault, oauth).tokens.store_user_tokens(USER, relinked)
        oauth.answer.set()
        assert (await running).tokens == relinked
        # Only the new access token: no refresh token was issued, and the one
        # presented belongs to the old grant, not to this refresh.
        assert oauth.revoked == [oauth.issued[-2]]
        assert issued.refresh_token not in oauth.revoked

    @pytest.mark.parametrize(
        "error",
        [RuntimeError("bug in revoke"), unavailable(), ReLinkRequired("gone", platform="spotify")],
    )
    async def test_a_failing_revocation_never_reaches_the_caller(self, error: Exception) -> None:
        w, vault, oauth, a, _, relinked = await self.relinked_during_refresh()
        attempts: list[str] = []

        async def broken(platform: str, *, token: str) -> bool:
            attempts.append(token)
            raise error

        oauth.revoke = broken  # type: ignore[method-assign]
        running = asyncio.ensure_future(
            a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        )
        await oauth.entered.wait()
        await process(w, vault, oauth).tokens.store_user_tokens(USER, relinked)
        oauth.answer.set()
        assert (await running).tokens == relinked
        assert sorted(attempts) == sorted(oauth.issued[-2:])  # each tried once
        assert await a.tokens.get_valid_access_token(USER, "spotify") == relinked.access_token

    async def test_tokens_issued_for_a_link_unlinked_meanwhile_are_revoked(self) -> None:
        w = wire()
        vault = MemoryTokenVault()
        oauth = AnswerLateOAuth(w.clock)
        a = process(w, vault, oauth)
        await link_expiring(w, a)
        running = asyncio.ensure_future(
            a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        )
        await oauth.entered.wait()
        await process(w, vault, oauth).tokens.unlink(USER, "spotify")
        oauth.answer.set()
        with pytest.raises(NotLinked):
            await running
        unused = oauth.issued[-2:]
        assert set(unused) <= set(oauth.revoked)
        assert not set(unused) & oauth.valid_refresh
        assert await vault.get(USER) is None


class TestStop:
    async def test_drain_waits_for_the_refresh_in_flight_and_starts_no_other(self) -> None:
        w = wire()
        vault = MemoryTokenVault()
        oauth = BlockingOAuth(w.clock)
        a = process(w, vault, oauth)
        await link_expiring(w, a)
        other = oauth.issue()
        await a.tokens.store_user_tokens(USER + 1, other)
        running = asyncio.ensure_future(
            a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
        )
        await oauth.entered.wait()
        a.tokens.stop_refreshing()
        # Not expired yet: the current token is served, nothing is presented.
        outcome = await a.tokens.refresh(USER + 1, "spotify", within=timedelta(hours=2))
        assert not outcome.refreshed and outcome.tokens.refresh_token == other.refresh_token
        drain = asyncio.ensure_future(a.tokens.drain(5.0))
        await asyncio.sleep(0)
        assert not drain.done()
        oauth.answer.set()
        assert await drain == (1, 0)
        assert (await running).refreshed
        record = await vault.get(USER)
        assert record is not None and record.links["spotify"].refresh_claim is None
        a.clock.advance(timedelta(hours=3))
        with pytest.raises(RefreshPaused, match="shutting down"):
            await a.tokens.refresh(USER + 1, "spotify", within=timedelta(hours=1))
        assert oauth.refresh_calls == 1


def rotation_for(
    w: Wired, oauth: FakeOAuthClient
) -> tuple[SecureTokenService, TokenRotationService]:
    async def no_sleep(_: float) -> None:
        await asyncio.sleep(0)

    tokens = SecureTokenService(
        vault=MemoryTokenVault(),
        oauth=oauth,
        security_log=w.security_log,
        metrics=w.metrics,
        clock=w.clock,
        sleep=no_sleep,
    )
    rotation = TokenRotationService(
        tokens=tokens,
        alerter=w.alerter,
        clock=w.clock,
        settings=RotationSettings(concurrency=4, attempts=2),
        sleep=no_sleep,
    )
    return tokens, rotation


class TestRotationSurvives:
    @pytest.mark.parametrize(
        "error", [RecursionError("maximum recursion depth exceeded"), KeyError("x"), ValueError()]
    )
    async def test_a_raising_refresh_is_counted_and_the_run_goes_on(self, error: Exception) -> None:
        w = wire()
        oauth = FakeOAuthClient(w.clock, lifetime=timedelta(hours=12))
        tokens, rotation = rotation_for(w, oauth)
        for user in range(1, 9):
            await tokens.store_user_tokens(user, oauth.issue())
        oauth.failures = [error]
        report = await rotation.rotate_expiring()
        assert (report.users, report.refreshed, report.failed) == (8, 7, 1)
        (alert,) = w.alerter.sent
        assert alert.details["failed"] == 1
        for user in range(1, 9):
            record = await tokens.vault.get(user)
            assert record is not None
            assert record.links["spotify"].refresh_claim is None  # released

    async def test_a_platform_not_configured_here_is_a_configuration_problem(self) -> None:
        w = wire()
        oauth = FakeOAuthClient(w.clock, platforms=("spotify",), lifetime=timedelta(hours=12))
        tokens, rotation = rotation_for(w, oauth)
        events: list[SecurityEventType] = []

        async def seen(event: SecurityEvent) -> None:
            events.append(event.type)

        w.security_log.subscribe(seen)
        # 40 users linked a platform another process configures: enough
        # authentication failures to trip the alarm, were they counted as such.
        for user in range(1, 41):
            await tokens.store_user_tokens(user, oauth.issue("tidal"))
        report = await rotation.rotate_expiring()
        assert (report.misconfigured, report.failed, report.refreshed) == (40, 0, 0)
        assert SecurityEventType.AUTHENTICATION_ATTEMPT not in events
        assert await w.incidents_store.list_recent() == []
        for switch in Switch:
            assert not (await w.access.switch_state(switch)).active(w.clock.now())
        (alert,) = w.alerter.sent
        assert alert.details["unconfigured_platforms"] == "tidal"
        record = await tokens.vault.get(1)
        assert record is not None
        link = record.links["tidal"]
        assert link.refresh_claim is None and not link.needs_relink

    async def test_a_stopping_process_starts_no_refresh_and_reports_the_run_incomplete(
        self,
    ) -> None:
        w = wire()
        oauth = FakeOAuthClient(w.clock, lifetime=timedelta(minutes=1))
        tokens, rotation = rotation_for(w, oauth)
        for user in range(1, 6):
            await tokens.store_user_tokens(user, oauth.issue())
        w.clock.advance(timedelta(minutes=2))  # expired: a stop cannot serve them
        tokens.stop_refreshing()
        report = await rotation.rotate_expiring()
        assert report.incomplete and not report.paused
        assert oauth.refresh_calls == 0
        (alert,) = w.alerter.sent
        assert alert.details["incomplete"] is True
