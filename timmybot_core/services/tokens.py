"""SecureTokenService: users' OAuth tokens, read through a cache, refreshed once.

Refresh is the delicate part. Providers rotate refresh tokens: each works
once, so presenting one twice (two shards refreshing the same user) logs
the user out for good. So:

- In one process, concurrent callers for one user and platform share one
  refresh (single flight).
- Across processes, a refresh first *claims* the link with a compare-and-set
  on the vault record (a claim ID). Only the claim's winner calls the
  provider; the others wait, re-read, and use the winner's tokens. With
  :class:`~timmybot_core.ports.refresh_leases.RefreshLeases` (the aws
  backend: a vault write is a Secrets Manager version), the claim is a
  lease beside the vault instead, and a refresh is one vault write. The
  lease keeps a *fence* (a digest of the refresh token presented), so a
  process whose read of the vault is stale never presents a token a
  finished refresh has already spent.
- A waiting process judges a claim expired only from its own monotonic
  observations: the same claim ID seen unchanged for ``claim_timeout``.
  Wall clocks of different hosts are never compared.
- An expired claim, or a failure after the request left (read timeout,
  reset, cancellation: :class:`RefreshOutcomeUnknown`), means the refresh
  token *may have been spent*. Where the provider's preset says a second
  presentation is safe, it is retried once at once; otherwise the link is
  marked "needs re-link" in the vault record, so no process presents that
  token again. Connect errors before the request left release the claim:
  the token is unspent and is retried later as usual.
- From the provider's answer to the durable vault write nothing else is
  awaited; the new tokens, rotated refresh token included, are stored
  before the access token is handed out.
- On stop, :meth:`SecureTokenService.stop_refreshing` starts no new refresh
  and :meth:`SecureTokenService.drain` waits for those in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

import attrs

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.errors import (
    NotLinked,
    OAuthError,
    OAuthNotConfigured,
    ProviderUnavailable,
    RefreshOutcomeUnknown,
    RefreshPaused,
    ReLinkRequired,
    StoreUnavailable,
    VersionConflict,
)
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink, UserTokens
from timmybot_core.ports.metrics import AuthFailureReason, SecurityMetrics
from timmybot_core.ports.oauth import OAuthClient
from timmybot_core.ports.refresh_leases import RefreshLeases
from timmybot_core.ports.vault import TokenVault
from timmybot_core.services.security_log import SecurityAuditLogger

__all__ = ["RefreshOutcome", "SecureTokenService", "TokenSettings"]

_log = logging.getLogger("timmybot.tokens")


@attrs.frozen(kw_only=True)
class TokenSettings:
    """Knobs of the token service.

    Attributes:
        refresh_leeway: refresh when the access token expires within this.
        cache_ttl: how long a record read from the vault is reused (every
            write and delete through this service invalidates it at once).
        cache_size: records kept at most in the cache.
        claim_timeout: how long another process must see the same refresh claim
            unchanged, on its own monotonic clock, before it takes over. It
            must exceed the OAuth timeout (twice, for presets that retry once)
            plus a vault write; start-up checks it.
        max_write_attempts: compare-and-set retries before giving up.
    """

    refresh_leeway: timedelta = timedelta(minutes=5)
    cache_ttl: timedelta = timedelta(seconds=60)
    cache_size: int = 10_000
    claim_timeout: timedelta = timedelta(seconds=30)
    max_write_attempts: int = 8


@attrs.frozen(kw_only=True)
class RefreshOutcome:
    """What a refresh did: ``refreshed`` (we refreshed) or ``current`` (no need)."""

    tokens: OAuthTokens
    refreshed: bool


Paused = Callable[[], Awaitable[bool]]


async def _never_paused() -> bool:
    return False


class SecureTokenService:
    """Stores, reads, refreshes and unlinks users' OAuth tokens."""

    def __init__(
        self,
        *,
        vault: TokenVault,
        oauth: OAuthClient,
        security_log: SecurityAuditLogger,
        metrics: SecurityMetrics,
        clock: Clock,
        settings: TokenSettings | None = None,
        refresh_paused: Paused = _never_paused,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        leases: RefreshLeases | None = None,
    ) -> None:
        self._vault = vault
        self._leases = leases
        self._oauth = oauth
        self._log = security_log
        self._metrics = metrics
        self._clock = clock
        self._settings = settings if settings is not None else TokenSettings()
        self._paused = refresh_paused
        self._sleep = sleep
        self._monotonic = monotonic
        self._stopping = False
        self._cache: OrderedDict[int, tuple[UserTokens | None, datetime]] = OrderedDict()
        self._inflight: dict[tuple[int, str], asyncio.Task[RefreshOutcome]] = {}

    @property
    def vault(self) -> TokenVault:
        """The vault behind the service."""
        return self._vault

    # -- reads -----------------------------------------------------------------

    async def get_user_tokens(
        self, user_id: int, *, force_fetch: bool = False
    ) -> UserTokens | None:
        """Return the user's record (``None``: never linked), through the cache.

        Raises ``VaultUnavailable`` when the vault cannot answer: an outage
        is never reported as "not linked".
        """
        now = self._clock.now()
        cached = self._cache.get(user_id)
        # A negative age is a wall clock set back since the read: the entry is
        # stale, or it would be served for as long as the clock went back.
        if (
            not force_fetch
            and cached is not None
            and timedelta(0) <= now - cached[1] < self._settings.cache_ttl
        ):
            self._cache.move_to_end(user_id)
            return cached[0]
        record = await self._vault.get(user_id)
        self._remember(user_id, record, now)
        return record

    def _remember(self, user_id: int, record: UserTokens | None, now: datetime) -> None:
        # "Never linked" is not cached: a link completed by another process
        # (the web server's) must show up at once.
        if record is None or self._settings.cache_ttl <= timedelta(0):
            self._cache.pop(user_id, None)
            return
        self._cache[user_id] = (record, now)
        self._cache.move_to_end(user_id)
        while len(self._cache) > self._settings.cache_size:
            self._cache.popitem(last=False)

    def invalidate(self, user_id: int) -> None:
        """Forget the cached record of ``user_id``."""
        self._cache.pop(user_id, None)

    async def get_valid_access_token(self, user_id: int, platform: str) -> str:
        """Return an access token for ``platform`` that is valid beyond the leeway.

        Refreshes it first when it expires within ``refresh_leeway``. Raises
        ``NotLinked``, ``ReLinkRequired``, ``ProviderUnavailable``,
        ``RefreshPaused`` (expired while refresh is paused) or
        ``VaultUnavailable``.
        """
        record = await self.get_user_tokens(user_id)
        link = record.link(platform) if record is not None else None
        if link is None:
            raise NotLinked(f"{platform} is not linked", platform=platform)
        if link.needs_relink:
            raise ReLinkRequired(_relink_message(platform, link), platform=platform)
        now = self._clock.now()
        if not link.tokens.expires_within(now, self._settings.refresh_leeway):
            return link.tokens.access_token
        try:
            outcome = await self.refresh(user_id, platform, within=self._settings.refresh_leeway)
        except (ProviderUnavailable, VersionConflict):
            # The provider is down, but the token still works for a while:
            # serve it rather than fail the user's command.
            if link.tokens.expires_at > self._clock.now():
                _log.warning("refresh of %s failed; serving the unexpired token", platform)
                return link.tokens.access_token
            raise
        return outcome.tokens.access_token

    # -- writes ------------------------------------------------------------------

    async def store_user_tokens(self, user_id: int, tokens: OAuthTokens) -> UserTokens:
        """Store ``tokens`` as the user's link to ``tokens.platform`` (replacing any)."""

        def change(record: UserTokens, now: datetime) -> UserTokens:
            current = record.link(tokens.platform)
            return record.with_link(
                PlatformLink(
                    tokens=tokens,
                    linked_at=current.linked_at if current else now,
                    refreshed_at=None,
                ),
                now=now,
            )

        return await self._update(user_id, change, create=True)

    async def mark_needs_relink(self, user_id: int, platform: str) -> None:
        """Flag ``platform``'s link as needing the user to link again."""

        def change(record: UserTokens, now: datetime) -> UserTokens:
            link = record.link(platform)
            if link is None:
                return record
            return record.with_link(
                attrs.evolve(link, needs_relink=True, refresh_claim=None), now=now
            )

        await self._update(user_id, change)

    async def unlink(self, user_id: int, platform: str) -> bool:
        """Revoke ``platform``'s tokens at the provider (if it can), then delete them.

        A failed revocation is logged and does not stop the deletion: the
        user asked for the link to go. Returns ``False`` if nothing was linked.
        """
        record = await self.get_user_tokens(user_id, force_fetch=True)
        link = record.link(platform) if record is not None else None
        if link is None:
            return False
        await self._revoke(link.tokens)

        def change(current: UserTokens, now: datetime) -> UserTokens:
            return current.without(platform, now=now)

        updated = await self._update(user_id, change)
        if not updated.links:
            await self._delete_empty(updated)
        return True

    async def withdraw(self, user_id: int, tokens: OAuthTokens) -> None:
        """Delete the link holding exactly ``tokens``, just stored, that must not stay.

        Nothing is revoked (the caller does that). A link of the platform
        that holds other tokens is left alone, and so are the other
        platforms; the record goes when this was its last link, checked
        against its version like an unlink. Nothing stored is no error.
        """

        def change(current: UserTokens, now: datetime) -> UserTokens:
            link = current.link(tokens.platform)
            if link is None or link.tokens != tokens:
                return current
            return current.without(tokens.platform, now=now)

        try:
            updated = await self._update(user_id, change)
        except NotLinked:
            return  # already erased
        if not updated.links:
            await self._delete_empty(updated)

    async def _delete_empty(self, record: UserTokens) -> None:
        """Delete ``record``, left with no link, unless a link was written since.

        The delete is checked against the version read: another process
        (the web server's) may link a platform from the emptied record
        between our write and the delete, and that link must stay. Given
        up after ``max_write_attempts`` conflicts: the unlink is done, and
        the clean-up removes an empty record later.
        """
        user_id = record.user_id
        current: UserTokens | None = record
        for _ in range(self._settings.max_write_attempts):
            if current is None or current.links:
                break  # deleted by someone else, or linked again: keep it
            try:
                await self._vault.delete(user_id, expected_version=current.version)
            except VersionConflict:
                current = await self._vault.get(user_id)
                continue
            if self._leases is not None:
                await self._leases.forget(user_id)
            break
        else:
            _log.warning("an emptied token record kept changing; left to the clean-up")
        self.invalidate(user_id)

    async def delete_user(
        self,
        user_id: int,
        *,
        unrevoked: list[str] | None = None,
        before_delete: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> list[str]:
        """Revoke every link of the user where possible and delete the record.

        Returns the platforms that were linked. Idempotent. The record goes
        even when a revocation fails (erasure comes first); the platforms
        whose revocation failed are appended to ``unrevoked``, and, when
        there are any, ``before_delete`` is awaited with the platforms
        linked so far right before each delete (so that a crash after the
        delete cannot lose the failure).
        """
        platforms: list[str] = []
        revoked: set[OAuthTokens] = set()
        try:
            record = await self._vault.get(user_id)
            attempts = max(self._settings.max_write_attempts, 1)
            for attempt in range(attempts):
                if record is None:
                    break
                for link in record.links.values():
                    if link.tokens in revoked:
                        continue
                    revoked.add(link.tokens)
                    platform = link.tokens.platform
                    if platform not in platforms:
                        platforms.append(platform)
                    failed = not await self._revoke(link.tokens)
                    if failed and unrevoked is not None and platform not in unrevoked:
                        unrevoked.append(platform)
                # Checked against the version whose tokens were just revoked:
                # tokens written meanwhile (a link completed, a refresh) are
                # revoked on the next turn rather than deleted unrevoked. The
                # last turn deletes whatever is there: erasure comes first.
                last = attempt == attempts - 1
                if unrevoked and before_delete is not None:
                    await before_delete(platforms)
                try:
                    await self._vault.delete(
                        user_id, expected_version=None if last else record.version
                    )
                except VersionConflict:
                    record = await self._vault.get(user_id)
                    continue
                break
        finally:
            # Even when the record is unreadable (the caller then deletes it
            # as it is): the leases name the user and fence their tokens.
            if self._leases is not None:
                await self._leases.forget(user_id)
        self.invalidate(user_id)
        return platforms

    async def _revoke(self, tokens: OAuthTokens) -> bool:
        revoked = True
        for token in (tokens.refresh_token, tokens.access_token):
            if not token:
                continue
            try:
                await self._oauth.revoke(tokens.platform, token=token)
            except ReLinkRequired:
                continue  # the provider no longer honours the grant: nothing left to revoke
            except OAuthError as error:
                _log.warning("revocation at %s failed: %s", tokens.platform, type(error).__name__)
                revoked = False
        return revoked

    async def _update(
        self,
        user_id: int,
        change: Callable[[UserTokens, datetime], UserTokens],
        *,
        create: bool = False,
    ) -> UserTokens:
        """Read, change and compare-and-set the record, retrying on conflicts."""
        for _ in range(self._settings.max_write_attempts):
            now = self._clock.now()
            record = await self._vault.get(user_id)
            if record is None:
                if not create:
                    raise NotLinked("nothing is linked", platform="any")
                base = UserTokens.new(user_id, now=now)
            else:
                base = record
            updated = change(base, now)
            try:
                version = await self._vault.put(
                    user_id, updated, expected_version=record.version if record else None
                )
            except VersionConflict:
                continue
            stored = attrs.evolve(updated, version=version)
            self._remember(user_id, stored, now)
            return stored
        self.invalidate(user_id)
        raise VersionConflict("the token record kept changing; try again")

    # -- refresh -------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop_refreshing` was called: no refresh starts any more."""
        return self._stopping

    @property
    def in_flight(self) -> int:
        """How many refreshes of this process are running now."""
        return len(self._inflight)

    def stop_refreshing(self) -> None:
        """Start no refresh from now on (the process is stopping).

        Callers get the current tokens while they are still valid, or
        ``RefreshPaused`` for expired ones; refreshes already running go on
        to their vault write (see :meth:`drain`).
        """
        self._stopping = True

    async def drain(self, budget: float) -> tuple[int, int]:
        """Wait up to ``budget`` seconds for the refreshes in flight; return (finished, left).

        Call :meth:`stop_refreshing` first. A refresh still running at the
        deadline is left to the process's end: its claim stays in the vault,
        so no other process presents its refresh token without the
        possibly-spent rule (see the module docs).
        """
        self._stopping = True
        tasks = set(self._inflight.values())
        if not tasks:
            return 0, 0
        done, pending = await asyncio.wait(tasks, timeout=max(budget, 0.0))
        return len(done), len(pending)

    async def refresh(self, user_id: int, platform: str, *, within: timedelta) -> RefreshOutcome:
        """Refresh ``platform``'s tokens if they expire within ``within`` (single flight)."""
        key = (user_id, platform)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._refresh(user_id, platform, within))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        # shield: one caller giving up (or a rotation run being cancelled)
        # must not cancel the refresh the others, and the vault, depend on.
        return await asyncio.shield(task)

    async def _current(
        self, user_id: int, platform: str, within: timedelta, now: datetime
    ) -> tuple[UserTokens, PlatformLink] | RefreshOutcome:
        """Return the record and link to refresh, or the outcome when none is due or allowed."""
        record = await self._vault.get(user_id)
        link = record.link(platform) if record is not None else None
        if record is None or link is None:
            self.invalidate(user_id)
            raise NotLinked(f"{platform} is not linked", platform=platform)
        if link.needs_relink:
            self._remember(user_id, record, now)
            raise ReLinkRequired(_relink_message(platform, link), platform=platform)
        if not link.tokens.expires_within(now, within):
            self._remember(user_id, record, now)
            return RefreshOutcome(tokens=link.tokens, refreshed=False)
        if self._stopping:
            return _unrefreshed(link, now, "stopped: the process is shutting down")
        return record, link

    async def _refresh(self, user_id: int, platform: str, within: timedelta) -> RefreshOutcome:
        leases = self._leases
        delay = 0.02
        timeout = self._settings.claim_timeout.total_seconds()
        # The claim seen (on the record, or with leases in a lease), and when
        # (on our monotonic clock) we first saw it: the only clock a claim's
        # expiry is judged on.
        observed: tuple[str, float] | None = None
        for _ in range(100_000):  # bounded; each turn sleeps or makes progress
            now = self._clock.now()
            current = await self._current(user_id, platform, within, now)
            if isinstance(current, RefreshOutcome):
                return current
            record, link = current
            # With leases, a claim left in the record by a release that kept
            # claims there is honoured like a lease (and cleared by this
            # refresh's write).
            legacy = link.refresh_claim[0] if link.refresh_claim is not None else None
            holder = legacy
            if holder is None and leases is not None:
                holder = await leases.holder(user_id, platform)
            if holder is not None:
                seen = self._monotonic()
                if observed is None or observed[0] != holder:
                    observed = (holder, seen)
                if seen - observed[1] < timeout:
                    # Another refresh is running (here or elsewhere): wait for
                    # its result, or for its claim to outlive the timeout.
                    await self._sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                # Unchanged for the whole timeout on our own clock: its holder
                # died or hung, possibly after presenting the refresh token.
            if await self._paused():
                return _unrefreshed(link, now, "is paused while an incident is handled")
            claim_id = str(uuid.uuid4())
            if leases is None:
                claim = (claim_id, now + self._settings.claim_timeout)
                claimed = record.with_link(attrs.evolve(link, refresh_claim=claim), now=now)
                try:
                    version = await self._vault.put(
                        user_id, claimed, expected_version=record.version
                    )
                except VersionConflict:
                    continue  # someone else changed the record: look again
                record = attrs.evolve(claimed, version=version)
            elif not await leases.acquire(
                user_id,
                platform,
                claim_id=claim_id,
                fence=_fence(user_id, link.tokens),
                until=now + self._settings.claim_timeout,
                replaces=holder if legacy is None else None,
            ):
                # Taken a moment ago, or our read shows a refresh token a
                # finished refresh has spent (a stale read): look again.
                await self._sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            return await self._refresh_claimed(
                record, link, claim_id, taken_over=holder is not None
            )
        raise ProviderUnavailable("token refresh did not settle", platform=platform)

    async def _refresh_claimed(
        self, record: UserTokens, link: PlatformLink, claim_id: str, *, taken_over: bool
    ) -> RefreshOutcome:
        user_id, platform = record.user_id, link.tokens.platform
        refresh_token = link.tokens.refresh_token
        retry_safe = self._oauth.refresh_retry_safe(platform)
        # One immediate retry with the same refresh token after an unknown
        # outcome, where the provider's preset says it is safe. Taking over an
        # expired claim is that retry already: its holder may have presented it.
        retries = 1 if retry_safe and not taken_over else 0
        if taken_over:
            _log.warning("a refresh claim on %s expired unchanged; its holder stopped", platform)
            if not retry_safe:
                await self._spent(record, platform, claim_id, _INTERRUPTED)
        fresh: OAuthTokens | None = None
        while fresh is None:
            try:
                if not refresh_token:
                    raise ReLinkRequired(f"{platform} gave no refresh token", platform=platform)
                fresh = await self._oauth.refresh(platform, refresh_token=refresh_token)
            except RefreshOutcomeUnknown:
                if retries > 0:
                    retries -= 1
                    _log.warning("refresh at %s: outcome unknown; retrying once", platform)
                    continue
                await self._spent(record, platform, claim_id, _UNKNOWN)
                raise  # unreachable: _spent raises ReLinkRequired
            except OAuthNotConfigured:
                # This process's configuration, not the user's grant: release
                # the claim (nothing was presented) and count no auth failure.
                await self._settle(record, platform, claim_id, lambda old: old, spent=False)
                raise
            except ReLinkRequired:
                await self._settle(
                    record, platform, claim_id, lambda old: attrs.evolve(old, needs_relink=True)
                )
                await self._auth_event(user_id, platform, AuthFailureReason.INVALID_GRANT)
                raise
            except ProviderUnavailable:
                # The provider answered with an error, or the request never
                # left: the refresh token is unspent and the claim released.
                await self._settle(record, platform, claim_id, lambda old: old, spent=False)
                await self._auth_event(user_id, platform, AuthFailureReason.PROVIDER_UNAVAILABLE)
                raise
            except OAuthError:
                await self._settle(record, platform, claim_id, lambda old: old, spent=False)
                await self._auth_event(user_id, platform, AuthFailureReason.OTHER)
                raise
            except Exception:
                # A bug or a hostile answer (a RecursionError from nested JSON):
                # whether the request left is unknown, so the claim is released
                # with the token marked spent unless the preset allows reuse.
                if retry_safe:
                    await self._settle(record, platform, claim_id, lambda old: old, spent=False)
                else:
                    await self._settle(
                        record,
                        platform,
                        claim_id,
                        lambda old: attrs.evolve(old, needs_relink=True, relink_reason=_FAILED),
                    )
                raise
        # From here to the durable write nothing else is awaited: no log
        # shipping, no audit record, no metric export. The remaining window
        # is the vault write itself.
        issued = fresh
        if fresh.refresh_token is None:
            fresh = attrs.evolve(fresh, refresh_token=refresh_token)
        now = self._clock.now()
        try:
            stored = await self._settle(
                record,
                platform,
                claim_id,
                lambda old: PlatformLink(
                    tokens=fresh,
                    linked_at=old.linked_at,
                    refreshed_at=now,
                    needs_relink=False,
                    refresh_claim=None,
                ),
                spent=fresh.refresh_token != refresh_token,
                refreshed=True,
            )
        except NotLinked:
            await self.revoke_unheld(issued)
            raise
        if stored.tokens != fresh:
            await self.revoke_unheld(issued, keep=stored.tokens)
        await self._auth_event(user_id, platform, None)
        # The stored tokens: a re-link during the refresh replaced ours.
        return RefreshOutcome(tokens=stored.tokens, refreshed=True)

    async def revoke_unheld(self, tokens: OAuthTokens, *, keep: OAuthTokens | None = None) -> None:
        """Revoke, best effort, tokens the provider issued that nothing keeps.

        A refresh whose result was discarded (the link was unlinked, or linked
        again, while the provider answered), or a link the vault could not
        store: the tokens would stay live there, unused by anyone. Tokens equal
        to those in ``keep`` (what the vault holds) are left alone. Both are
        revoked at once, so it costs one provider call's time; nothing raised
        here reaches the caller.
        """
        held = () if keep is None else (keep.refresh_token, keep.access_token)
        issued = [t for t in (tokens.refresh_token, tokens.access_token) if t and t not in held]
        outcomes = await asyncio.gather(
            *(self._oauth.revoke(tokens.platform, token=token) for token in issued),
            return_exceptions=True,
        )
        failed = [
            outcome
            for outcome in outcomes
            # ReLinkRequired: the provider no longer honours the grant; nothing to revoke.
            if isinstance(outcome, BaseException) and not isinstance(outcome, ReLinkRequired)
        ]
        if failed:
            _log.warning(
                "revocation of unused tokens at %s failed: %s",
                tokens.platform,
                type(failed[0]).__name__,
            )

    async def _spent(self, record: UserTokens, platform: str, claim_id: str, reason: str) -> None:
        """Record that the refresh token may be spent (needs re-link); raise ``ReLinkRequired``.

        The flag is written into the vault record, so that no process ever
        presents that refresh token again. If even this write fails, the
        claim stays in the record and means the same to whoever finds it.
        """
        await self._settle(
            record,
            platform,
            claim_id,
            lambda old: attrs.evolve(old, needs_relink=True, relink_reason=reason),
        )
        self._metrics.record_auth_failure(
            platform=platform, reason=AuthFailureReason.PROVIDER_UNAVAILABLE
        )
        _log.error("refresh at %s: %s", platform, reason)
        raise ReLinkRequired(f"{platform}: {reason}", platform=platform)

    async def _settle(
        self,
        record: UserTokens,
        platform: str,
        claim_id: str,
        change: Callable[[PlatformLink], PlatformLink],
        *,
        spent: bool = True,
        refreshed: bool = False,
    ) -> PlatformLink:
        """Write the refresh's result into the link we claimed, release the claim; return the link.

        Other fields of the record may have changed meanwhile (another
        platform linked): re-read and re-apply on conflict, as long as the
        claim is still ours. ``spent``: the refresh token presented is no
        longer good (it was rotated away, or the link needs re-linking);
        ``refreshed``: ``change`` stores new tokens.

        With the claim in a lease: at most one vault write, then the release.
        A result that changes nothing (the provider was unavailable) writes
        nothing. If the write fails, the lease is kept: whoever takes it over
        applies the possibly-spent rule, as with a claim left in the record.

        The link returned is the one left in the vault: newer tokens than the
        ones presented (a re-link) are kept as they are, whatever our result.
        """
        leases = self._leases
        user_id = record.user_id
        presented = link.tokens.refresh_token if (link := record.link(platform)) else None
        current: UserTokens | None = record
        for _ in range(self._settings.max_write_attempts):
            now = self._clock.now()
            link = current.link(platform) if current is not None else None
            if current is None or link is None:
                self.invalidate(user_id)
                await self._release(user_id, platform, claim_id, spent=True)
                raise NotLinked(f"{platform} was unlinked during the refresh", platform=platform)
            if link.tokens.refresh_token != presented:
                # Newer tokens landed since we claimed the link: the user linked
                # it again (a new grant, perhaps another account), or a holder
                # we took over finished. Our result, success or failure, is
                # about the token we presented and must not replace them.
                break
            if leases is None and (link.refresh_claim is None or link.refresh_claim[0] != claim_id):
                # Our claim was taken over. Our tokens are newer than anything
                # the taker can get with the spent refresh token, so they are
                # still written; the taker's attempt fails or was refused.
                _log.warning(
                    "a refresh claim on %s was taken over before the refresh ended", platform
                )
            updated_link = attrs.evolve(change(link), refresh_claim=None)
            if leases is not None and updated_link == link:
                break
            updated = current.with_link(updated_link, now=now)
            try:
                version = await self._vault.put(user_id, updated, expected_version=current.version)
            except VersionConflict:
                current = await self._vault.get(user_id)
                continue
            self._remember(user_id, attrs.evolve(updated, version=version), now)
            link = updated_link
            break
        else:
            self.invalidate(user_id)
            raise VersionConflict("could not store the refreshed tokens; the record kept changing")
        await self._release(user_id, platform, claim_id, spent=spent)
        return link

    async def _release(self, user_id: int, platform: str, claim_id: str, *, spent: bool) -> None:
        # Without leases the claim lives in the record, cleared by the write.
        leases = self._leases
        if leases is None:
            return
        try:
            released = await leases.release(user_id, platform, claim_id=claim_id, spent=spent)
        except StoreUnavailable as error:
            # The result is durable (or there was none); a lease left held is
            # taken over after the claim timeout, under the possibly-spent rule.
            _log.warning("refresh lease on %s not released: %s", platform, error)
            return
        if not released:
            _log.warning("a refresh lease on %s was taken over before the refresh ended", platform)

    async def _auth_event(
        self, user_id: int, platform: str, failure: AuthFailureReason | None
    ) -> None:
        """Count and log a refresh's outcome: a success when ``failure`` is ``None``."""
        if failure is not None:
            self._metrics.record_auth_failure(platform=platform, reason=failure)
        await self._log.authentication_attempt(
            user_id=user_id,
            platform=platform,
            success=failure is None,
            reason=f"refresh:{failure.value}" if failure else "refresh",
        )


_UNKNOWN: Final = (
    "the provider may have rotated the refresh token, but its answer was lost or unreadable "
    "(timeout, broken connection or malformed answer); the token is not presented again: "
    "link the account again"
)
_INTERRUPTED: Final = (
    "a refresh was interrupted after its request may have reached the provider; "
    "the token is not presented again: link the account again"
)


_FAILED: Final = (
    "a refresh failed unexpectedly after its request may have reached the provider; "
    "the token is not presented again: link the account again"
)


def _fence(user_id: int, tokens: OAuthTokens) -> str:
    """Name the refresh token in a lease without revealing it: a keyless digest.

    Refresh tokens are long random strings that a provider honours only in
    full, so the digest cannot be turned back into a usable token; the user
    and platform in the input keep equal tokens of two links apart.
    """
    material = f"timmybot-refresh-fence\0{user_id}\0{tokens.platform}\0{tokens.refresh_token or ''}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _unrefreshed(link: PlatformLink, now: datetime, why: str) -> RefreshOutcome:
    """Return the current tokens while no refresh may run; ``RefreshPaused`` once expired."""
    if link.tokens.expires_at <= now:
        raise RefreshPaused(f"token refresh {why}")
    return RefreshOutcome(tokens=link.tokens, refreshed=False)


def _relink_message(platform: str, link: PlatformLink) -> str:
    if link.relink_reason:
        return f"{platform} must be linked again: {link.relink_reason}"
    return f"{platform} must be linked again"
