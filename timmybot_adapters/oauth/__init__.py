"""The OAuth adapter: providers as data and an aiohttp client for the OAuthClient port."""

from __future__ import annotations

from timmybot_adapters.oauth.client import (
    KNOWN_OAUTH_ERRORS,
    MAX_RESPONSE_BYTES,
    AiohttpOAuthClient,
    MinTLS,
    PinnedSSLContext,
    make_ssl_context,
)
from timmybot_adapters.oauth.providers import (
    DISCORD_DEFAULT_SCOPES,
    LOOPBACK_HOSTS,
    SPOTIFY_DEFAULT_SCOPES,
    OAuthProvider,
    TokenAuth,
    discord,
    is_loopback_host,
    spotify,
)

__all__ = [
    "DISCORD_DEFAULT_SCOPES",
    "KNOWN_OAUTH_ERRORS",
    "LOOPBACK_HOSTS",
    "MAX_RESPONSE_BYTES",
    "SPOTIFY_DEFAULT_SCOPES",
    "AiohttpOAuthClient",
    "MinTLS",
    "OAuthProvider",
    "PinnedSSLContext",
    "TokenAuth",
    "discord",
    "is_loopback_host",
    "make_ssl_context",
    "spotify",
]
