"""AccountLinkService: OAuth account linking with a bound, single-use state and PKCE.

``begin`` creates a state of 256 random bits bound to the user and the
platform, valid for 10 minutes, and a PKCE S256 verifier; only a SHA-256
hash of the state is stored. ``complete`` consumes the state atomically (a
replay finds it spent), checks it belongs to the expected platform and user,
exchanges the code with the verifier and stores the tokens. Any refusal
stores nothing and says why.

Only failures tied to a real pending link count as authentication failures
(metric, ``AUTHENTICATION_ATTEMPT`` event, and so the ``AuthFailures``
alarm): a state that belongs to someone else, a code the provider refuses,
a provider failing during the exchange. A malformed, unknown, expired or
replayed state, or a missing code, is what anyone can send to a public
callback: it is counted by the :class:`RefusalLedger` (one record per
reason and window) and raises nothing. A platform this process has no
provider for is a configuration problem, logged as one. A vault that cannot
store the tokens the provider issued is our failure, not the user's: a
``STORE_UNAVAILABLE`` event (``store=token_vault``), no authentication
failure, and the issued tokens are revoked so that no grant is left that
nothing holds.

A link started before a data deletion request of its user cannot complete
after it: once the tokens are stored, ``complete`` reads the erasure barrier
the request wrote first (see :mod:`timmybot_core.ports.link_states`); a
barrier not older than the link withdraws the tokens, revokes them, and
refuses with reason ``erased``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta

import attrs

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.errors import (
    LinkError,
    OAuthError,
    OAuthNotConfigured,
    ReLinkRequired,
    StoreUnavailable,
    VersionConflict,
)
from timmybot_core.domain.events import SecurityEventType
from timmybot_core.domain.tokens import OAuthTokens
from timmybot_core.ports.link_states import (
    ERASURE_BARRIER_TTL,
    LinkState,
    LinkStateStore,
    TakeOutcome,
)
from timmybot_core.ports.metrics import AuthFailureReason, SecurityMetrics
from timmybot_core.ports.oauth import OAuthClient
from timmybot_core.services.refusals import RefusalLedger
from timmybot_core.services.security_log import SecurityAuditLogger
from timmybot_core.services.tokens import SecureTokenService

__all__ = ["AccountLinkService", "LinkResult", "LinkStart", "mask_user_id", "pkce_challenge"]

STATE_TTL = timedelta(minutes=10)
_log = logging.getLogger("timmybot.linking")
_STATE_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def pkce_challenge(verifier: str) -> str:
    """Return the S256 code challenge of ``verifier`` (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _hash_state(state: str) -> str:
    return hashlib.sha256(b"timmybot/link-state/v1\x00" + state.encode("ascii")).hexdigest()


@attrs.frozen(kw_only=True)
class LinkStart:
    """Where to send the user to approve the link, and until when it works."""

    url: str = attrs.field(repr=False)  # holds the state: as good as a password for 10 minutes
    platform: str
    expires_at: datetime


@attrs.frozen(kw_only=True)
class LinkResult:
    """A completed link."""

    user_id: int
    platform: str
    scopes: tuple[str, ...]

    @property
    def masked_user(self) -> str:
        """The Discord user ID with all but at most its last four digits hidden, for pages."""
        return mask_user_id(self.user_id)


def mask_user_id(user_id: int) -> str:
    """Return ``user_id`` as ``•••…1234``: enough to recognise one's own, not to reuse.

    At most the last four digits are shown, and never more than half of
    them: a short ID (a test account, a stand-in) is not shown whole.
    """
    text = str(user_id)
    shown = min(4, len(text) // 2)
    return "•" * (len(text) - shown) + text[len(text) - shown :]


_REFUSALS = {
    TakeOutcome.UNKNOWN: ("unknown", "This link request is unknown. Start again with /link."),
    TakeOutcome.USED: ("replayed", "This link request was already used. Start again with /link."),
    TakeOutcome.EXPIRED: ("expired", "This link request expired. Start again with /link."),
}


class AccountLinkService:
    """Links users' music-platform accounts through OAuth (authorization code + PKCE)."""

    def __init__(
        self,
        *,
        oauth: OAuthClient,
        states: LinkStateStore,
        tokens: SecureTokenService,
        security_log: SecurityAuditLogger,
        metrics: SecurityMetrics,
        clock: Clock,
        redirect_uri: str,
        state_ttl: timedelta = STATE_TTL,
        refusals: RefusalLedger | None = None,
    ) -> None:
        self._oauth = oauth
        self._states = states
        self._tokens = tokens
        self._log = security_log
        self._metrics = metrics
        self._clock = clock
        self._redirect_uri = redirect_uri
        # A link checks the erasure barrier after its exchange: the barrier
        # must outlive the longest a state lives, with room for the exchange.
        if not timedelta(0) < state_ttl <= ERASURE_BARRIER_TTL / 2:
            raise ValueError(
                f"state_ttl must be positive and at most {ERASURE_BARRIER_TTL / 2} "
                f"(got {state_ttl})"
            )
        self._ttl = state_ttl
        self._refusals = (
            refusals
            if refusals is not None
            else RefusalLedger(security_log=security_log, clock=clock)
        )

    @property
    def refusals(self) -> RefusalLedger:
        """Where unauthenticated refusals are counted (flush it on shutdown)."""
        return self._refusals

    def platforms(self) -> tuple[str, ...]:
        """Return the platforms users can link."""
        return self._oauth.platforms()

    async def begin(self, user_id: int, platform: str) -> LinkStart:
        """Start linking ``platform`` for ``user_id``; return the authorization URL."""
        if platform not in self._oauth.platforms():
            known = ", ".join(self._oauth.platforms()) or "none"
            raise LinkError(
                f"Unknown platform {platform!r}; available: {known}.", reason="platform"
            )
        now = self._clock.now()
        state = secrets.token_urlsafe(32)  # 256 bits
        verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43..128
        await self._states.add(
            LinkState(
                state_hash=_hash_state(state),
                user_id=user_id,
                platform=platform,
                code_verifier=verifier,
                created_at=now,
                expires_at=now + self._ttl,
            )
        )
        url = self._oauth.authorization_url(
            platform,
            state=state,
            code_challenge=pkce_challenge(verifier),
            redirect_uri=self._redirect_uri,
        )
        return LinkStart(url=url, platform=platform, expires_at=now + self._ttl)

    async def complete(
        self,
        state: str,
        code: str,
        *,
        platform: str | None = None,
        user_id: int | None = None,
    ) -> LinkResult:
        """Finish a link from the provider's callback.

        ``platform`` and ``user_id``, when the caller knows them, must match
        what the state was issued for ("foreign" otherwise). Raises
        :class:`LinkError` with a ``reason`` of ``unknown``, ``replayed``,
        ``expired``, ``foreign``, ``rejected`` or ``erased`` (the user's data
        was erased after the link began); nothing is stored then.
        """
        now = self._clock.now()
        if not isinstance(state, str) or not _STATE_SHAPE.fullmatch(state):
            await self._unauthenticated("malformed_state")
            raise LinkError(_REFUSALS[TakeOutcome.UNKNOWN][1], reason="unknown")
        if not isinstance(code, str) or not code or len(code) > 2048:
            await self._unauthenticated("missing_code")
            raise LinkError(
                "The provider sent no usable code. Start again with /link.", reason="code"
            )
        state_hash = _hash_state(state)
        taken = await self._states.take(state_hash, now=now)
        if taken.state is None or taken.outcome is not TakeOutcome.TAKEN:
            reason, message = _REFUSALS.get(taken.outcome, _REFUSALS[TakeOutcome.UNKNOWN])
            await self._unauthenticated(reason)
            raise LinkError(message, reason=reason)
        pending = taken.state
        # The store found it by hash; compare again in constant time so no
        # store's lookup behaviour can leak how close a guess was.
        same_state = hmac.compare_digest(pending.state_hash, state_hash)
        foreign = (platform is not None and platform != pending.platform) or (
            user_id is not None and user_id != pending.user_id
        )
        if not same_state or foreign:
            await self._refused(pending.user_id, "foreign", pending.platform)
            raise LinkError(
                "This link request belongs to someone else. Start again with /link.",
                reason="foreign",
            )
        try:
            tokens = await self._oauth.exchange_code(
                pending.platform,
                code=code,
                code_verifier=pending.code_verifier,
                redirect_uri=self._redirect_uri,
            )
        except ReLinkRequired:
            await self._refused(pending.user_id, "rejected", pending.platform)
            raise LinkError(
                f"{pending.platform} refused the authorization. Start again with /link.",
                reason="rejected",
            ) from None
        except OAuthNotConfigured:
            # Our configuration, not the user's doing: no authentication failure.
            _log.error(
                "link completion: %s is not usable from this process (configuration)",
                pending.platform,
            )
            raise
        except OAuthError:
            await self._refused(pending.user_id, "provider_error", pending.platform)
            raise
        try:
            await self._tokens.store_user_tokens(pending.user_id, tokens)
        except (StoreUnavailable, VersionConflict) as error:
            await self._not_stored(pending, tokens, error)
            raise
        await self._check_not_erased(pending, tokens)
        await self._log.authentication_attempt(
            user_id=pending.user_id, platform=pending.platform, success=True, reason="link"
        )
        return LinkResult(user_id=pending.user_id, platform=pending.platform, scopes=tokens.scopes)

    async def _check_not_erased(self, pending: LinkState, tokens: OAuthTokens) -> None:
        """Withdraw the tokens just stored if the user's data was erased since the link began.

        The erasure writes its barrier before it touches any store, and the
        tokens are stored before the barrier is read here: with stores that
        answer in order, either the erasure's vault step finds the tokens,
        or this read finds the barrier. A tie counts as erased (safe side).
        A barrier that cannot be read is treated as there: a link must never
        outlive an erasure it could not rule out.
        """
        try:
            erased_at = await self._states.erasure_barrier(pending.user_id, now=self._clock.now())
        except StoreUnavailable as error:
            await self._withdraw(pending, tokens)
            await self._not_stored(pending, tokens, error, store="link_states")
            raise
        if erased_at is None or erased_at < pending.created_at:
            return
        _log.warning(
            "link completion: a data deletion request came after this %s link began; "
            "withdrawing its tokens",
            pending.platform,
        )
        await self._withdraw(pending, tokens)
        await self._tokens.revoke_unheld(tokens)
        await self._refusals.refuse(source="oauth_callback", reason="erased")
        raise LinkError(
            "This link was cancelled by a data deletion request made after it began; "
            "nothing was saved. Start again with /link to link the account again.",
            reason="erased",
        )

    async def _withdraw(self, pending: LinkState, tokens: OAuthTokens) -> None:
        # A vault failing here leaves the record (its tokens are revoked next);
        # the error goes on, so the user is told the link was not saved.
        try:
            await self._tokens.withdraw(pending.user_id, tokens)
        except (StoreUnavailable, VersionConflict) as error:
            _log.error(
                "link completion: the %s tokens of a cancelled link could not be deleted (%s)",
                pending.platform,
                type(error).__name__,
            )
            await self._tokens.revoke_unheld(tokens)
            raise

    async def _not_stored(
        self,
        pending: LinkState,
        tokens: OAuthTokens,
        error: Exception,
        *,
        store: str = "token_vault",
    ) -> None:
        """Record tokens the vault could not store, and revoke them (best effort).

        Our failure, not the user's: a ``STORE_UNAVAILABLE`` event and no
        authentication failure (no metric, no ``AuthFailures`` alarm). The
        state is spent, so the user starts again with /link; until then the
        provider would keep a grant that nothing holds.
        """
        _log.error(
            "link completion: the tokens from %s could not be stored (%s); revoking them",
            pending.platform,
            type(error).__name__,  # the class only: a store's message may name files
        )
        await self._log.record(
            SecurityEventType.STORE_UNAVAILABLE,
            user_id=pending.user_id,
            details={"command": "link", "store": store, "platform": pending.platform},
            level=logging.ERROR,
        )
        await self._tokens.revoke_unheld(tokens)

    async def _unauthenticated(self, reason: str) -> None:
        # The platform the caller named is not trusted here: it came with
        # the request. The state is unknown, so nothing else is either.
        await self._refusals.refuse(source="oauth_callback", reason=reason)

    async def _refused(self, user_id: int | None, reason: str, platform: str | None) -> None:
        metric_reason = {
            "rejected": AuthFailureReason.INVALID_GRANT,
            "provider_error": AuthFailureReason.PROVIDER_UNAVAILABLE,
        }.get(reason, AuthFailureReason.INVALID_STATE)
        self._metrics.record_auth_failure(platform=platform or "unknown", reason=metric_reason)
        await self._log.authentication_attempt(
            user_id=user_id,
            platform=platform or "unknown",
            success=False,
            reason=f"link:{reason}",
        )
