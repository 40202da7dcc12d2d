"""Specification of SecureTokenService: cache, single-flight refresh, claims, unlink."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import attrs
import pytest

from tests.unit.conftest import START, USER, Wired, wire
from tests.unit.fake_oauth import CANARY_AT, CANARY_RT, FakeOAuthClient, unavailable
from timmybot_adapters.memory import MemoryTokenVault
from timmybot_core.domain.errors import (
    NotLinked,
    ProviderUnavailable,
    RefreshPaused,
    ReLinkRequired,
    VaultUnavailable,
)
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink, UserTokens
from timmybot_core.services.tokens import SecureTokenService, TokenSettings


class CountingVault(MemoryTokenVault):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.puts = 0

    async def get(self, user_id: int) -> UserTokens | None:
        self.gets += 1
        return await super().get(user_id)

    async def put(self, user_id: int, record: UserTokens, *, expected_version: str | None) -> str:
        self.puts += 1
        return await super().put(user_id, record, expected_version=expected_version)


class RacingVault(CountingVault):
    """A vault where another process writes right before each of our first deletes."""

    def __init__(self) -> None:
        super().__init__()
        self.before_delete: list[Callable[[], Awaitable[None]]] = []

    async def delete(self, user_id: int, *, expected_version: str | None = None) -> bool:
        if self.before_delete:
            await self.before_delete.pop(0)()
        return await super().delete(user_id, expected_version=expected_version)


@attrs.define
class Monotonic:
    """A process's monotonic clock: advances only when the process sleeps."""

    seconds: float = 1000.0

    def __call__(self) -> float:
        return self.seconds

    async def sleep(self, delay: float) -> None:
        self.seconds += delay
        await asyncio.sleep(0)


@attrs.define
class Kit:
    w: Wired
    vault: RacingVault
    oauth: FakeOAuthClient
    tokens: SecureTokenService
    paused: list[bool]
    monotonic: Monotonic


def kit(*, retry_safe: bool = False, **settings: object) -> Kit:
    w = wire()
    vault = RacingVault()
    oauth = FakeOAuthClient(w.clock, retry_safe=retry_safe)
    paused = [False]
    monotonic = Monotonic()

    async def is_paused() -> bool:
        return paused[0]

    tokens = SecureTokenService(
        vault=vault,
        oauth=oauth,
        security_log=w.security_log,
        metrics=w.metrics,
        clock=w.clock,
        settings=TokenSettings(**settings),  # type: ignore[arg-type]
        refresh_paused=is_paused,
        sleep=monotonic.sleep,
        monotonic=monotonic,
    )
    return Kit(w=w, vault=vault, oauth=oauth, tokens=tokens, paused=paused, monotonic=monotonic)


async def linked(k: Kit, platform: str = "spotify") -> OAuthTokens:
    tokens = k.oauth.issue(platform)
    await k.tokens.store_user_tokens(USER, tokens)
    return tokens


class TestStorageAndCache:
    async def test_never_linked_is_none_and_not_linked(self) -> None:
        k = kit()
        assert await k.tokens.get_user_tokens(USER) is None
        with pytest.raises(NotLinked):
            await k.tokens.get_valid_access_token(USER, "spotify")

    async def test_stored_tokens_are_read_back(self) -> None:
        k = kit()
        tokens = await linked(k)
        record = await k.tokens.get_user_tokens(USER)
        assert record is not None
        link = record.link("spotify")
        assert link is not None
        assert link.tokens == tokens
        assert link.linked_at == START

    async def test_reads_are_cached_and_writes_invalidate(self) -> None:
        k = kit()
        await linked(k)
        gets = k.vault.gets
        for _ in range(100):
            await k.tokens.get_valid_access_token(USER, "spotify")
        assert k.vault.gets == gets  # the write left the fresh record in the cache
        k.w.clock.advance(timedelta(seconds=61))
        await k.tokens.get_valid_access_token(USER, "spotify")
        assert k.vault.gets == gets + 1

    async def test_a_wall_clock_set_back_does_not_keep_a_cached_record(self) -> None:
        k = kit()
        await linked(k)
        await k.tokens.get_valid_access_token(USER, "spotify")  # cached now
        # Another process marks the link for re-linking; then this host's
        # clock is stepped back an hour (NTP, a VM resumed). The cached record
        # must still be dropped within cache_ttl, not an hour and more later.
        record = await k.vault.get(USER)
        assert record is not None
        link = attrs.evolve(record.links["spotify"], needs_relink=True)
        await k.vault.put(USER, record.with_link(link, now=START), expected_version=record.version)
        k.w.clock.set(START - timedelta(hours=1))
        with pytest.raises(ReLinkRequired):
            await k.tokens.get_valid_access_token(USER, "spotify")

    async def test_an_outage_is_never_not_linked(self) -> None:
        k = kit()

        async def down(user_id: int) -> None:
            raise VaultUnavailable("vault: database is locked")

        k.vault.get = down  # type: ignore[assignment, method-assign]
        with pytest.raises(VaultUnavailable):
            await k.tokens.get_valid_access_token(USER, "spotify")

    def test_tokens_never_show_in_repr_or_str(self) -> None:
        tokens = FakeOAuthClient(wire().clock).issue()
        for text in (repr(tokens), str(tokens)):
            assert CANARY_AT not in text and CANARY_RT not in text
            assert "redacted" in text


class TestRefresh:
    async def test_a_fresh_token_is_returned_without_refreshing(self) -> None:
        k = kit()
        tokens = await linked(k)
        assert await k.tokens.get_valid_access_token(USER, "spotify") == tokens.access_token
        assert k.oauth.refresh_calls == 0

    async def test_a_token_within_the_leeway_is_refreshed_and_stored_first(self) -> None:
        k = kit()
        old = await linked(k)
        k.w.clock.advance(timedelta(minutes=56))
        access = await k.tokens.get_valid_access_token(USER, "spotify")
        assert access != old.access_token
        stored = await k.vault.get(USER)
        assert stored is not None
        link = stored.link("spotify")
        assert link is not None
        assert link.tokens.access_token == access
        assert link.tokens.refresh_token in k.oauth.valid_refresh
        assert link.refresh_claim is None
        assert link.refreshed_at == k.w.clock.now()

    async def test_200_concurrent_callers_cause_one_refresh(self) -> None:
        k = kit()
        k.oauth.latency = 0.01
        await linked(k)
        k.w.clock.advance(timedelta(minutes=58))
        results = await asyncio.gather(
            *(k.tokens.get_valid_access_token(USER, "spotify") for _ in range(200))
        )
        assert k.oauth.refresh_calls == 1
        assert len(set(results)) == 1

    async def test_a_provider_that_does_not_rotate_keeps_the_refresh_token(self) -> None:
        k = kit()
        k.oauth.rotate = False
        old = await linked(k)
        k.w.clock.advance(timedelta(minutes=58))
        await k.tokens.get_valid_access_token(USER, "spotify")
        stored = await k.vault.get(USER)
        assert stored is not None
        assert stored.links["spotify"].tokens.refresh_token == old.refresh_token

    async def test_invalid_grant_marks_the_link_for_relinking(self) -> None:
        k = kit()
        old = await linked(k)
        k.oauth.valid_refresh.discard(old.refresh_token or "")
        k.w.clock.advance(timedelta(minutes=58))
        with pytest.raises(ReLinkRequired):
            await k.tokens.get_valid_access_token(USER, "spotify")
        with pytest.raises(ReLinkRequired):
            await k.tokens.get_valid_access_token(USER, "spotify")
        assert k.oauth.refresh_calls == 1  # never retried forever
        snapshot = k.w.metrics.snapshot()
        assert snapshot.auth_failures == {("spotify", "invalid_grant"): 1}

    async def test_a_provider_outage_serves_the_unexpired_token_and_releases_the_claim(
        self,
    ) -> None:
        k = kit()
        old = await linked(k)
        k.w.clock.advance(timedelta(minutes=58))
        k.oauth.failures.append(unavailable())
        assert await k.tokens.get_valid_access_token(USER, "spotify") == old.access_token
        stored = await k.vault.get(USER)
        assert stored is not None
        assert stored.links["spotify"].refresh_claim is None
        await k.tokens.get_valid_access_token(USER, "spotify")
        assert k.oauth.refresh_calls == 2

    async def test_a_provider_outage_with_an_expired_token_is_an_error(self) -> None:
        k = kit()
        await linked(k)
        k.w.clock.advance(timedelta(minutes=61))
        k.oauth.failures.append(unavailable())
        with pytest.raises(ProviderUnavailable):
            await k.tokens.get_valid_access_token(USER, "spotify")

    async def test_never_linked_is_not_cached(self) -> None:
        k = kit()
        assert await k.tokens.get_user_tokens(USER) is None
        # Another process (the web server's) completes a link meanwhile:
        await k.vault.put(
            USER,
            UserTokens.new(USER, now=START).with_link(
                PlatformLink(tokens=k.oauth.issue(), linked_at=START), now=START
            ),
            expected_version=None,
        )
        assert await k.tokens.get_user_tokens(USER) is not None

    async def test_another_process_refresh_is_waited_for_and_reused(self) -> None:
        k = kit()
        old = await linked(k)
        k.w.clock.advance(timedelta(minutes=58))
        record = await k.vault.get(USER)
        assert record is not None
        link = record.links["spotify"]
        # "Another process" claims the link...
        claimed = record.with_link(
            attrs.evolve(link, refresh_claim=("other", k.w.clock.now() + timedelta(seconds=30))),
            now=k.w.clock.now(),
        )
        version = await k.vault.put(USER, claimed, expected_version=record.version)
        winner = k.oauth.issue()

        async def other_process_finishes() -> None:
            for _ in range(3):  # while the waiter polls a few times
                await asyncio.sleep(0)
            done = claimed.with_link(
                PlatformLink(tokens=winner, linked_at=link.linked_at), now=k.w.clock.now()
            )
            await k.vault.put(USER, done, expected_version=version)

        finisher = asyncio.create_task(other_process_finishes())
        k.tokens.invalidate(USER)
        access = await k.tokens.get_valid_access_token(USER, "spotify")
        await finisher
        assert access == winner.access_token
        assert k.oauth.refresh_calls == 0
        assert old.refresh_token not in k.oauth.presented

    async def test_a_dead_claim_expires_and_is_taken_over(self) -> None:
        # A provider whose preset allows a second presentation: the taker
        # presents the token (the one retry the dead holder may have used).
        k = kit(retry_safe=True)
        await linked(k)
        k.w.clock.advance(timedelta(minutes=58))
        record = await k.vault.get(USER)
        assert record is not None
        stale = record.with_link(
            attrs.evolve(
                record.links["spotify"],
                refresh_claim=("dead", k.w.clock.now() - timedelta(seconds=1)),
            ),
            now=k.w.clock.now(),
        )
        await k.vault.put(USER, stale, expected_version=record.version)
        k.tokens.invalidate(USER)
        await k.tokens.get_valid_access_token(USER, "spotify")
        assert k.oauth.refresh_calls == 1

    async def test_paused_refresh_keeps_serving_unexpired_tokens(self) -> None:
        k = kit()
        old = await linked(k)
        k.paused[0] = True
        k.w.clock.advance(timedelta(minutes=58))
        assert await k.tokens.get_valid_access_token(USER, "spotify") == old.access_token
        k.w.clock.advance(timedelta(minutes=3))
        with pytest.raises(RefreshPaused):
            await k.tokens.get_valid_access_token(USER, "spotify")
        assert k.oauth.refresh_calls == 0

    async def test_refresh_is_an_authentication_event(self) -> None:
        k = kit()
        await linked(k)
        k.w.clock.advance(timedelta(minutes=58))
        await k.tokens.get_valid_access_token(USER, "spotify")
        (event,) = [
            e for e in k.w.security_log.recent() if e.type.value == "AUTHENTICATION_ATTEMPT"
        ]
        assert event.details["success"] is True
        assert event.user == k.w.pseudonymizer.user(USER)


class TestUnlink:
    async def test_revokes_then_deletes(self) -> None:
        k = kit()
        tokens = await linked(k)
        assert await k.tokens.unlink(USER, "spotify")
        assert set(k.oauth.revoked) == {tokens.access_token, tokens.refresh_token}
        assert await k.vault.get(USER) is None  # the last link took the record with it
        assert await k.tokens.get_user_tokens(USER) is None
        assert not await k.tokens.unlink(USER, "spotify")

    async def test_keeps_other_platforms(self) -> None:
        k = kit()
        k.oauth._platforms = ("spotify", "discord")
        await linked(k, "spotify")
        await linked(k, "discord")
        await k.tokens.unlink(USER, "spotify")
        record = await k.vault.get(USER)
        assert record is not None
        assert set(record.links) == {"discord"}

    async def test_a_failed_revocation_does_not_stop_the_unlink(self) -> None:
        k = kit()
        await linked(k)

        async def broken(platform: str, *, token: str) -> bool:
            raise unavailable(platform)

        k.oauth.revoke = broken  # type: ignore[method-assign]
        assert await k.tokens.unlink(USER, "spotify")
        assert await k.vault.get(USER) is None

    async def test_a_link_completed_between_the_unlink_and_its_delete_stays(self) -> None:
        k = kit()
        await linked(k)
        # Another process (the web server's) links a platform from the record
        # the unlink just emptied, before the unlink deletes it.
        other = SecureTokenService(
            vault=k.vault,
            oauth=k.oauth,
            security_log=k.w.security_log,
            metrics=k.w.metrics,
            clock=k.w.clock,
        )
        relinked = k.oauth.issue()

        async def link_elsewhere() -> None:
            await other.store_user_tokens(USER, relinked)

        k.vault.before_delete.append(link_elsewhere)
        assert await k.tokens.unlink(USER, "spotify")
        record = await k.vault.get(USER)
        assert record is not None
        assert record.links["spotify"].tokens == relinked
        assert relinked.access_token not in k.oauth.revoked
        stored = await k.tokens.get_user_tokens(USER)
        assert stored is not None and stored.links["spotify"].tokens == relinked

    async def test_an_emptied_record_changed_meanwhile_is_still_deleted(self) -> None:
        k = kit()
        await linked(k)

        async def touch() -> None:
            # Another write that leaves the record empty (a newer version).
            record = await k.vault.get(USER)
            assert record is not None and not record.links
            await k.vault.put(USER, record, expected_version=record.version)

        k.vault.before_delete.append(touch)
        assert await k.tokens.unlink(USER, "spotify")
        assert await k.vault.get(USER) is None

    async def test_erasure_revokes_a_link_completed_before_its_delete_and_deletes_it(
        self,
    ) -> None:
        k = kit()
        k.oauth._platforms = ("spotify", "discord")
        first = await linked(k)
        late = k.oauth.issue("discord")

        async def link_elsewhere() -> None:
            record = await k.vault.get(USER)
            assert record is not None
            link = PlatformLink(tokens=late, linked_at=k.w.clock.now())
            updated = record.with_link(link, now=k.w.clock.now())
            await k.vault.put(USER, updated, expected_version=record.version)

        k.vault.before_delete.append(link_elsewhere)
        unrevoked: list[str] = []
        platforms = await k.tokens.delete_user(USER, unrevoked=unrevoked)
        assert platforms == ["spotify", "discord"]
        assert await k.vault.get(USER) is None
        # Nothing was deleted unrevoked, and nothing revoked twice.
        expected = [first.refresh_token, first.access_token, late.refresh_token, late.access_token]
        assert k.oauth.revoked == expected
        assert unrevoked == []

    async def test_erasure_deletes_whatever_is_there_when_the_record_keeps_changing(
        self,
    ) -> None:
        k = kit(max_write_attempts=3)
        await linked(k)

        async def touch() -> None:
            record = await k.vault.get(USER)
            assert record is not None
            await k.vault.put(USER, record, expected_version=record.version)

        k.vault.before_delete.extend([touch, touch, touch, touch])
        assert await k.tokens.delete_user(USER) == ["spotify"]
        assert await k.vault.get(USER) is None
