"""An in-memory OAuth provider behind the OAuthClient port, for service specs.

It is a real implementation of the rules that matter: codes are single use
and bound to a PKCE challenge, refresh tokens rotate and work once, and a
spent or unknown refresh token is ``invalid_grant``.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

from timmybot_core import Clock
from timmybot_core.domain.errors import (
    OAuthNotConfigured,
    ProviderUnavailable,
    RefreshOutcomeUnknown,
    ReLinkRequired,
)
from timmybot_core.domain.tokens import OAuthTokens
from timmybot_core.services.linking import pkce_challenge

CANARY_AT = "canary-at-"
CANARY_RT = "canary-rt-"


class FakeOAuthClient:
    def __init__(
        self,
        clock: Clock,
        *,
        platforms: tuple[str, ...] = ("spotify",),
        lifetime: timedelta = timedelta(hours=1),
        rotate: bool = True,
        latency: float = 0.0,
        retry_safe: bool = False,
    ) -> None:
        self.clock = clock
        self._platforms = platforms
        self.lifetime = lifetime
        self.rotate = rotate
        self.latency = latency
        self.refresh_calls = 0
        self.presented: list[str] = []
        self.valid_refresh: set[str] = set()
        self.revoked: list[str] = []
        self.issued: list[str] = []
        self.failures: list[BaseException] = []
        #: Refreshes that rotate, then lose their answer (RefreshOutcomeUnknown).
        self.lose_answers = 0
        self.retry_safe = retry_safe
        #: When set, each refresh waits for it after being received (a slow answer).
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self._codes: dict[str, tuple[str, str]] = {}

    def platforms(self) -> tuple[str, ...]:
        return self._platforms

    def refresh_retry_safe(self, platform: str) -> bool:
        return self.retry_safe and platform in self._platforms

    def authorization_url(
        self, platform: str, *, state: str, code_challenge: str, redirect_uri: str
    ) -> str:
        query = urlencode(
            {
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "redirect_uri": redirect_uri,
                "platform": platform,
            }
        )
        return f"https://auth.example/authorize?{query}"

    def approve(self, url: str) -> tuple[str, str]:
        """The user clicks Approve: return (state, code) as the callback would get them."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        code = secrets.token_urlsafe(16)
        self._codes[code] = (query["code_challenge"], query["platform"])
        return query["state"], code

    def issue(self, platform: str = "spotify") -> OAuthTokens:
        access = CANARY_AT + secrets.token_hex(8)
        refresh = CANARY_RT + secrets.token_hex(8)
        self.valid_refresh.add(refresh)
        self.issued += [access, refresh]
        return OAuthTokens(
            platform=platform,
            access_token=access,
            refresh_token=refresh,
            scopes=("user-read-private",),
            expires_at=self.clock.now() + self.lifetime,
        )

    async def exchange_code(
        self, platform: str, *, code: str, code_verifier: str, redirect_uri: str
    ) -> OAuthTokens:
        bound = self._codes.pop(code, None)
        if bound is None or bound[0] != pkce_challenge(code_verifier) or bound[1] != platform:
            raise ReLinkRequired("invalid_grant", platform=platform)
        return self.issue(platform)

    async def refresh(self, platform: str, *, refresh_token: str) -> OAuthTokens:
        self.refresh_calls += 1
        self.presented.append(refresh_token)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.latency:
            await asyncio.sleep(self.latency)
        if platform not in self._platforms:
            raise OAuthNotConfigured(f"OAuth is not configured for {platform!r}", platform=platform)
        if self.failures:
            raise self.failures.pop(0)
        if refresh_token not in self.valid_refresh:
            raise ReLinkRequired("invalid_grant", platform=platform)
        fresh = self.issue(platform)
        if not self.rotate:
            self.valid_refresh.discard(fresh.refresh_token or "")
            if self.lose_answers:
                self.lose_answers -= 1
                raise RefreshOutcomeUnknown("read timeout", platform=platform)
            return OAuthTokens(
                platform=platform,
                access_token=fresh.access_token,
                refresh_token=None,
                scopes=fresh.scopes,
                expires_at=fresh.expires_at,
            )
        self.valid_refresh.discard(refresh_token)
        if self.lose_answers:
            # The provider rotated; its answer never arrives.
            self.lose_answers -= 1
            raise RefreshOutcomeUnknown("read timeout", platform=platform)
        return fresh

    async def revoke(self, platform: str, *, token: str) -> bool:
        self.revoked.append(token)
        self.valid_refresh.discard(token)
        return True


def unavailable(platform: str = "spotify") -> ProviderUnavailable:
    return ProviderUnavailable("HTTP 503", platform=platform)
