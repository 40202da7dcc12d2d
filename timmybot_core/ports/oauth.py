"""The OAuth client port: authorization URL (PKCE), code exchange, refresh, revoke."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from timmybot_core.domain.tokens import OAuthTokens

__all__ = ["OAuthClient"]


@runtime_checkable
class OAuthClient(Protocol):
    """Talks to the OAuth providers of the platforms users can link.

    Errors are mapped: ``invalid_grant`` raises
    :class:`~timmybot_core.domain.errors.ReLinkRequired`; 5xx and 429 answers, and
    connection errors before the request left, raise
    :class:`~timmybot_core.domain.errors.ProviderUnavailable` (worth retrying); a
    failure after the request left (read timeout, reset, cancellation) raises its
    subclass :class:`~timmybot_core.domain.errors.RefreshOutcomeUnknown` (the
    provider may have acted); a platform not configured here, or the bot's own
    client credentials refused, raise
    :class:`~timmybot_core.domain.errors.OAuthNotConfigured`; anything else raises
    :class:`~timmybot_core.domain.errors.OAuthError` naming the platform. No message
    ever contains a token or a code.
    """

    def platforms(self) -> tuple[str, ...]:
        """Return the platforms this client is configured for."""
        ...

    def refresh_retry_safe(self, platform: str) -> bool:
        """Tell whether presenting a refresh token again after an unknown outcome is safe.

        True for providers that do not rotate refresh tokens or that accept
        the previous one for a grace period; false (the default for anything
        unknown) where a second presentation of a rotated token may revoke
        the whole grant.
        """
        ...

    def authorization_url(
        self, platform: str, *, state: str, code_challenge: str, redirect_uri: str
    ) -> str:
        """Return the provider's authorization URL (PKCE S256, ``state`` included)."""
        ...

    async def exchange_code(
        self, platform: str, *, code: str, code_verifier: str, redirect_uri: str
    ) -> OAuthTokens:
        """Exchange an authorization code for tokens."""
        ...

    async def refresh(self, platform: str, *, refresh_token: str) -> OAuthTokens:
        """Refresh tokens.

        The result's ``refresh_token`` is ``None`` when the provider did not
        rotate it (the old one stays valid).
        """
        ...

    async def revoke(self, platform: str, *, token: str) -> bool:
        """Revoke ``token`` at the provider; ``False`` if the provider has no revocation."""
        ...
