"""Refresh with the claim in a lease (the aws backend's shape): the rules of issue 11 hold.

The vault and the leases are shared by several "processes" (token services
with their own wall and monotonic clocks), as Secrets Manager and DynamoDB
are shared by several tasks. Every refresh is one vault write.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

from tests.unit.conftest import USER, Wired, wire
from tests.unit.fake_oauth import FakeOAuthClient, unavailable
from tests.unit.test_refresh_faults import CLAIM_TIMEOUT, BlockingOAuth, Monotonic, until
from timmybot_adapters.memory import MemoryRefreshLeases, MemoryTokenVault
from timmybot_core.domain.clock import FakeClock
from timmybot_core.domain.errors import ProviderUnavailable, ReLinkRequired
from timmybot_core.domain.tokens import OAuthTokens, UserTokens
from timmybot_core.services.tokens import SecureTokenService, TokenSettings, _fence

LEEWAY = timedelta(minutes=5)


class CountingVault(MemoryTokenVault):
    """The memory vault, counting writes; ``stale`` serves an old record to reads."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0
        self.stale: UserTokens | None = None

    async def get(self, user_id: int) -> UserTokens | None:
        if self.stale is not None:
            return self.stale
        return await super().get(user_id)

    async def put(self, user_id: int, record: UserTokens, *, expected_version: str | None) -> str:
        self.puts += 1
        return await super().put(user_id, record, expected_version=expected_version)


@attrs.define
class Process:
    clock: FakeClock
    monotonic: Monotonic
    tokens: SecureTokenService


def process(
    w: Wired,
    vault: CountingVault,
    leases: MemoryRefreshLeases,
    oauth: FakeOAuthClient,
    skew: float = 0,
) -> Process:
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
        leases=leases,
    )
    return Process(clock=clock, monotonic=monotonic, tokens=tokens)


async def linked(w: Wired, p: Process, oauth: FakeOAuthClient, vault: CountingVault) -> OAuthTokens:
    issued = oauth.issue()
    await p.tokens.store_user_tokens(USER, issued)
    w.clock.advance(timedelta(minutes=58))
    p.clock.advance(timedelta(minutes=58))
    vault.puts = 0
    return issued


def parts() -> tuple[Wired, CountingVault, MemoryRefreshLeases]:
    return wire(), CountingVault(), MemoryRefreshLeases()


async def test_a_refresh_is_one_vault_write_and_the_lease_is_free_after() -> None:
    w, vault, leases = parts()
    oauth = FakeOAuthClient(w.clock)
    a = process(w, vault, leases, oauth)
    issued = await linked(w, a, oauth, vault)
    outcome = await a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
    assert outcome.refreshed and vault.puts == 1
    assert oauth.presented == [issued.refresh_token]
    assert await leases.holder(USER, "spotify") is None
    record = await vault.get(USER)
    assert record is not None
    assert record.links["spotify"].tokens.refresh_token == outcome.tokens.refresh_token
    assert record.links["spotify"].refresh_claim is None


async def test_two_processes_share_one_refresh_across_the_lease() -> None:
    w, vault, leases = parts()
    oauth = BlockingOAuth(w.clock)
    a = process(w, vault, leases, oauth)
    issued = await linked(w, a, oauth, vault)
    b = process(w, vault, leases, oauth)
    first = asyncio.ensure_future(a.tokens.refresh(USER, "spotify", within=LEEWAY))
    await oauth.entered.wait()
    second = asyncio.ensure_future(b.tokens.refresh(USER, "spotify", within=LEEWAY))
    await until(lambda: b.monotonic.seconds - 5000.0 >= 20)
    assert not second.done()
    oauth.answer.set()
    one, two = await first, await second
    assert one.tokens == two.tokens and one.refreshed and not two.refreshed
    assert oauth.presented == [issued.refresh_token]
    assert vault.puts == 1


async def test_a_wall_clock_far_ahead_does_not_take_over_early() -> None:
    w, vault, leases = parts()
    oauth = BlockingOAuth(w.clock)
    a = process(w, vault, leases, oauth)
    await linked(w, a, oauth, vault)
    b = process(w, vault, leases, oauth, skew=3 * 3600.0)
    first = asyncio.ensure_future(a.tokens.refresh(USER, "spotify", within=timedelta(hours=9)))
    await oauth.entered.wait()
    second = asyncio.ensure_future(b.tokens.refresh(USER, "spotify", within=timedelta(hours=9)))
    await until(lambda: b.monotonic.seconds - 5000.0 >= CLAIM_TIMEOUT.total_seconds() - 1)
    assert not second.done() and oauth.refresh_calls == 1
    oauth.answer.set()
    await first
    await second
    assert len(set(oauth.presented)) == len(oauth.presented)


@pytest.mark.parametrize("retry_safe", [False, True])
async def test_a_dead_holder_is_taken_over_after_the_timeout_on_the_waiters_clock(
    retry_safe: bool,
) -> None:
    w, vault, leases = parts()
    oauth = FakeOAuthClient(w.clock, retry_safe=retry_safe)
    a = process(w, vault, leases, oauth)
    issued = await linked(w, a, oauth, vault)
    # A holder that took the lease and died (its deadline is long past on any clock).
    assert await leases.acquire(
        USER, "spotify", claim_id="dead", fence=_fence(USER, issued), until=w.clock.now()
    )
    b = process(w, vault, leases, oauth)
    waiting = asyncio.ensure_future(b.tokens.refresh(USER, "spotify", within=timedelta(hours=1)))
    await until(lambda: b.monotonic.seconds - 5000.0 >= 20)
    assert not waiting.done() and oauth.refresh_calls == 0
    if retry_safe:
        outcome = await waiting
        assert outcome.refreshed and oauth.presented == [issued.refresh_token]
    else:
        # The dead holder may have presented the token: it is never presented again.
        with pytest.raises(ReLinkRequired, match="interrupted"):
            await waiting
        assert oauth.presented == []
        record = await vault.get(USER)
        assert record is not None and record.links["spotify"].needs_relink
    assert b.monotonic.seconds - 5000.0 >= CLAIM_TIMEOUT.total_seconds()
    assert await leases.holder(USER, "spotify") is None
    assert vault.puts == 1


async def test_a_lost_answer_marks_the_link_and_no_process_presents_the_token_again() -> None:
    w, vault, leases = parts()
    oauth = FakeOAuthClient(w.clock)
    a = process(w, vault, leases, oauth)
    issued = await linked(w, a, oauth, vault)
    oauth.lose_answers = 1
    with pytest.raises(ReLinkRequired, match="link the account again"):
        await a.tokens.get_valid_access_token(USER, "spotify")
    b = process(w, vault, leases, oauth)
    with pytest.raises(ReLinkRequired, match="answer was lost"):
        await b.tokens.get_valid_access_token(USER, "spotify")
    assert oauth.presented == [issued.refresh_token]
    assert vault.puts == 1


async def test_a_stale_read_never_presents_a_token_a_finished_refresh_spent() -> None:
    w, vault, leases = parts()
    oauth = FakeOAuthClient(w.clock)
    a = process(w, vault, leases, oauth)
    issued = await linked(w, a, oauth, vault)
    old = await vault.get(USER)
    fresh = await a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
    # B's reads lag behind (an eventually consistent store): it sees the old record.
    vault.stale = old
    b = process(w, vault, leases, oauth)
    waiting = asyncio.ensure_future(b.tokens.refresh(USER, "spotify", within=LEEWAY))
    await until(lambda: b.monotonic.seconds - 5000.0 >= 5)
    assert not waiting.done()
    assert oauth.presented == [issued.refresh_token]
    vault.stale = None  # the reads catch up
    outcome = await waiting
    assert not outcome.refreshed and outcome.tokens == fresh.tokens
    assert oauth.presented == [issued.refresh_token]


async def test_a_provider_outage_writes_nothing_and_leaves_the_token_usable() -> None:
    w, vault, leases = parts()
    oauth = FakeOAuthClient(w.clock)
    a = process(w, vault, leases, oauth)
    issued = await linked(w, a, oauth, vault)
    oauth.failures.append(unavailable())
    with pytest.raises(ProviderUnavailable):
        await a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
    assert vault.puts == 0 and await leases.holder(USER, "spotify") is None
    # The token was never spent: the next try presents it, and succeeds.
    outcome = await a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
    assert outcome.refreshed
    assert oauth.presented == [issued.refresh_token, issued.refresh_token]
    assert vault.puts == 1


async def test_a_stop_drains_the_refresh_in_flight_to_its_one_write() -> None:
    w, vault, leases = parts()
    oauth = BlockingOAuth(w.clock)
    a = process(w, vault, leases, oauth)
    await linked(w, a, oauth, vault)
    running = asyncio.ensure_future(a.tokens.refresh(USER, "spotify", within=timedelta(hours=1)))
    await oauth.entered.wait()
    a.tokens.stop_refreshing()
    drain = asyncio.ensure_future(a.tokens.drain(5.0))
    await asyncio.sleep(0)
    assert not drain.done() and await leases.holder(USER, "spotify") is not None
    oauth.answer.set()
    assert await drain == (1, 0)
    assert (await running).refreshed
    assert vault.puts == 1 and await leases.holder(USER, "spotify") is None


async def test_a_refresh_that_ends_after_a_relink_keeps_the_new_link() -> None:
    w, vault, leases = parts()
    oauth = BlockingOAuth(w.clock)
    a = process(w, vault, leases, oauth)
    await linked(w, a, oauth, vault)
    running = asyncio.ensure_future(a.tokens.refresh(USER, "spotify", within=timedelta(hours=1)))
    await oauth.entered.wait()
    relinked = oauth.issue()  # the user links again (a new grant) meanwhile
    await process(w, vault, leases, oauth).tokens.store_user_tokens(USER, relinked)
    oauth.answer.set()
    assert (await running).tokens.access_token == relinked.access_token
    record = await vault.get(USER)
    assert record is not None
    assert record.links["spotify"].tokens.refresh_token == relinked.refresh_token
    assert await leases.holder(USER, "spotify") is None


async def test_erasure_forgets_the_users_leases() -> None:
    w, vault, leases = parts()
    oauth = FakeOAuthClient(w.clock)
    a = process(w, vault, leases, oauth)
    issued = await linked(w, a, oauth, vault)
    await a.tokens.refresh(USER, "spotify", within=timedelta(hours=1))
    assert not await leases.acquire(
        USER, "spotify", claim_id="x", fence=_fence(USER, issued), until=w.clock.now()
    )
    await a.tokens.delete_user(USER)
    # The fence is gone with the user: nothing about them is left in the store.
    assert await leases.acquire(
        USER, "spotify", claim_id="x", fence=_fence(USER, issued), until=w.clock.now()
    )


def test_the_fence_names_the_token_without_containing_it() -> None:
    w = wire()
    issued = FakeOAuthClient(w.clock).issue()
    fence = _fence(USER, issued)
    assert issued.refresh_token is not None and issued.refresh_token not in fence
    assert len(fence) == 32 and fence == _fence(USER, issued)
    assert fence != _fence(USER + 1, issued)
    assert fence != _fence(USER, attrs.evolve(issued, refresh_token="other"))


async def test_a_claim_left_in_the_record_by_an_older_release_is_honoured() -> None:
    w, vault, leases = parts()
    oauth = FakeOAuthClient(w.clock)
    a = process(w, vault, leases, oauth)
    await linked(w, a, oauth, vault)
    record = await vault.get(USER)
    assert record is not None
    # An older release (claims in the record) was refreshing when it was replaced.
    left = record.with_link(
        attrs.evolve(record.links["spotify"], refresh_claim=("older", w.clock.now())),
        now=w.clock.now(),
    )
    await vault.put(USER, left, expected_version=record.version)
    waiting = asyncio.ensure_future(a.tokens.refresh(USER, "spotify", within=LEEWAY))
    await until(lambda: a.monotonic.seconds - 5000.0 >= 20)
    assert not waiting.done()
    with pytest.raises(ReLinkRequired, match="interrupted"):
        await waiting  # its holder may have presented the token
    assert oauth.presented == []
    stored = await vault.get(USER)
    assert stored is not None
    link = stored.links["spotify"]
    assert link.needs_relink and link.refresh_claim is None
    assert await leases.holder(USER, "spotify") is None
