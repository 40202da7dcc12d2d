"""The OAuthClient port over aiohttp: PKCE code flow, refresh, RFC 7009 revocation.

Transport security:

* TLS 1.2 at least (``min_tls="1.3"`` for TLS 1.3 only), certificate and
  hostname verification always on, the system's trust store (or ``cafile``,
  which replaces it, for a private CA or tests). The context is built by
  hand rather than by :func:`ssl.create_default_context` so that an
  ``SSLKEYLOGFILE`` in the environment cannot make the process write its
  TLS session keys to disk.
* Optional SHA-256 certificate pinning per provider. It is checked inside
  the TLS handshake, *after* the normal verification succeeded and before any
  request byte is sent; any one of a provider's pins is accepted. (aiohttp's
  own ``aiohttp.Fingerprint`` is not used: passed as ``ssl=``, it makes
  aiohttp connect with an *unverified* context, so a pin would replace
  certificate verification instead of adding to it, and it accepts one pin
  only.)
* Timeouts (total and connect) on every call; no redirects followed (a
  token request must not be replayed to another endpoint); responses larger
  than 64 KiB are refused.
* Transport failures are told apart by whether the request left: a trace
  hook on the client's own session notes when the request headers were
  sent. Before that (refused, DNS, connect timeout) the provider cannot
  have acted: :class:`ProviderUnavailable`, safe to retry. After it (read
  timeout, reset, truncated answer) the provider may have rotated the
  refresh token: :class:`RefreshOutcomeUnknown`. So may a 2xx answer to a
  refresh that cannot be used (malformed, too large): the same error. With a session given by
  the caller (no hook), only connect errors count as "not sent".

Errors never contain a token, a code, a verifier, a client secret or a
response body: they name the platform, the endpoint kind, the HTTP status and,
for OAuth errors, the RFC 6749 error code when it is a known one.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, NoReturn
from urllib.parse import quote, quote_plus, urlencode, urlsplit

import aiohttp

from timmybot_adapters.oauth.providers import OAuthProvider
from timmybot_adapters.oauth.session import (
    NOT_JSON,
    MinTLS,
    OwnedSession,
    PinnedSSLContext,
    is_header_token,
    json_object,
    load_json,
    make_ssl_context,
    malformed,
    not_configured,
)
from timmybot_core.domain.clock import Clock, SystemClock
from timmybot_core.domain.errors import (
    OAuthError,
    OAuthNotConfigured,
    ProviderUnavailable,
    RefreshOutcomeUnknown,
    ReLinkRequired,
)
from timmybot_core.domain.scopes import ScopeError, parse_scope
from timmybot_core.domain.tokens import OAuthTokens

__all__ = [
    "KNOWN_OAUTH_ERRORS",
    "MAX_RESPONSE_BYTES",
    "AiohttpOAuthClient",
    "MinTLS",
    "PinnedSSLContext",
    "make_ssl_context",
]

_log = logging.getLogger("timmybot.oauth")

EndpointKind = Literal["token", "revoke"]

#: OAuth error codes shown in messages (RFC 6749 4.1.2.1 and 5.2, RFC 7009 2.2.1);
#: any other code is shown as ``unknown_error``.
KNOWN_OAUTH_ERRORS: Final = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "unsupported_response_type",
        "server_error",
        "temporarily_unavailable",
        "unsupported_token_type",
    }
)
MAX_RESPONSE_BYTES: Final = 64 * 1024
# Ten years: beyond that an expiry is nonsense (and datetime arithmetic overflows).
_MAX_EXPIRES_IN: Final = 10 * 366 * 24 * 3600
_CODE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _form_encode(value: str) -> str:
    return quote_plus(value, safe="")


def _basic_auth(provider: OAuthProvider) -> str:
    # RFC 6749 2.3.1: form-encode both parts before Basic encoding.
    assert provider.client_secret is not None  # noqa: S101 - checked by the caller
    pair = f"{_form_encode(provider.client_id)}:{_form_encode(provider.client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _parse_scope_or_none(text: str) -> tuple[str, ...] | None:
    # Not raised from the handler: the malformed-answer error carries no context.
    try:
        return parse_scope(text)
    except ScopeError:
        return None


def _error_code(body: bytes) -> str:
    data = load_json(body)
    if data is NOT_JSON:
        return "unknown_error"
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) and code in KNOWN_OAUTH_ERRORS else "unknown_error"


class AiohttpOAuthClient(OwnedSession):
    """The :class:`~timmybot_core.ports.oauth.OAuthClient` port over aiohttp.

    ``providers`` are the configured platforms (names must be unique).
    ``timeout`` bounds every call (connect and total). ``min_tls`` is
    ``"1.2"`` (default) or ``"1.3"``. ``session`` is an aiohttp session to
    use (the caller keeps owning it); without one the client creates its own
    on first use and closes it in :meth:`close`. ``clock`` turns
    ``expires_in`` into ``expires_at``. ``cafile`` replaces the system trust
    store (a private CA, or tests).
    """

    USER_AGENT = "timmybot-oauth"
    CERTIFICATE_DETAIL = True

    def __init__(
        self,
        providers: Sequence[OAuthProvider],
        *,
        timeout: timedelta = timedelta(seconds=10),
        min_tls: MinTLS = "1.2",
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        cafile: str | os.PathLike[str] | None = None,
    ) -> None:
        self._providers = self._init_transport(
            providers,
            what="OAuth",
            named="OAuth providers",
            timeout=timeout,
            min_tls=min_tls,
            session=session,
            cafile=cafile,
        )
        self._clock: Clock = clock if clock is not None else SystemClock()

    def __repr__(self) -> str:
        return (
            f"AiohttpOAuthClient(platforms={self.platforms()!r}, "
            f"min_tls={self._min_tls!r}, timeout={self._timeout_seconds}s)"
        )

    # -- configuration -----------------------------------------------------

    def platforms(self) -> tuple[str, ...]:
        """Return the configured platforms, sorted."""
        return tuple(sorted(self._providers))

    def provider(self, platform: str) -> OAuthProvider:
        """Return ``platform``'s provider, or raise :class:`OAuthError`."""
        provider = self._providers.get(platform)
        if provider is None:
            not_configured(platform, "OAuth", OAuthNotConfigured)
        return provider

    def refresh_retry_safe(self, platform: str) -> bool:
        """Tell whether ``platform``'s preset allows presenting a refresh token again.

        False for a platform not configured here.
        """
        provider = self._providers.get(platform)
        return provider is not None and provider.refresh_retry_safe

    def ssl_context(self, platform: str) -> ssl.SSLContext:
        """Return the TLS context used for ``platform``'s endpoints."""
        self.provider(platform)
        return self._contexts[platform]

    # -- the port ----------------------------------------------------------

    def authorization_url(
        self, platform: str, *, state: str, code_challenge: str, redirect_uri: str
    ) -> str:
        """Return the provider's authorization URL (PKCE S256, ``state`` included)."""
        provider = self.provider(platform)
        if not state:
            raise ValueError("the authorization state cannot be empty")
        if not _CODE_CHALLENGE.match(code_challenge):
            raise ValueError("the code challenge must be a base64url SHA-256 (43 characters)")
        target = urlsplit(redirect_uri)
        if target.scheme not in ("https", "http") or not target.netloc or target.fragment:
            raise ValueError("the redirect URI must be an absolute http(s) URL without fragment")
        params: list[tuple[str, str]] = [
            ("response_type", "code"),
            ("client_id", provider.client_id),
            ("redirect_uri", redirect_uri),
        ]
        if provider.scopes:
            params.append(("scope", " ".join(provider.scopes)))
        params += [
            ("state", state),
            ("code_challenge", code_challenge),
            ("code_challenge_method", "S256"),
            *provider.extra_authorize_params,
        ]
        separator = "&" if urlsplit(provider.authorize_url).query else "?"
        return provider.authorize_url + separator + urlencode(params, quote_via=quote)

    async def exchange_code(
        self, platform: str, *, code: str, code_verifier: str, redirect_uri: str
    ) -> OAuthTokens:
        """Exchange an authorization code (with its PKCE verifier) for tokens."""
        provider = self.provider(platform)
        if not code or not code_verifier:
            raise OAuthError(
                f"{platform}: the code and its verifier are required", platform=platform
            )
        issued_at = self._clock.now()
        body = await self._post(
            provider,
            "token",
            provider.token_url,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
        )
        return self._parse_tokens(provider, body, issued_at=issued_at)

    async def refresh(self, platform: str, *, refresh_token: str) -> OAuthTokens:
        """Refresh tokens; ``refresh_token`` of the result is ``None`` when not rotated."""
        provider = self.provider(platform)
        if not refresh_token:
            raise OAuthError(f"{platform}: a refresh token is required", platform=platform)
        issued_at = self._clock.now()
        # A 2xx answer we cannot use still means the provider acted: it may
        # have rotated the refresh token, so presenting it again may be a
        # reuse. Such an answer is an unknown outcome, not a refusal.
        body = await self._post(
            provider,
            "token",
            provider.token_url,
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            unreadable=RefreshOutcomeUnknown,
        )
        try:
            return self._parse_tokens(provider, body, issued_at=issued_at)
        except OAuthError as error:
            raise RefreshOutcomeUnknown(
                f"{error}; the provider may have rotated the refresh token", platform=platform
            ) from None

    async def revoke(self, platform: str, *, token: str) -> bool:
        """Revoke ``token`` (RFC 7009); ``False`` if the provider has no revocation."""
        provider = self.provider(platform)
        if provider.revoke_url is None:
            return False
        if not token:
            raise OAuthError(f"{platform}: a token to revoke is required", platform=platform)
        await self._post(provider, "revoke", provider.revoke_url, {"token": token})
        return True

    # -- HTTP --------------------------------------------------------------

    async def _post(
        self,
        provider: OAuthProvider,
        kind: EndpointKind,
        url: str,
        form: dict[str, str],
        *,
        unreadable: type[OAuthError] = OAuthError,
    ) -> bytes:
        """POST ``form`` with client authentication; return the body of a 2xx answer.

        A 2xx body too large to read raises ``unreadable``.
        """
        name = provider.name
        headers = {"Accept": "application/json"}
        if provider.client_secret is None:
            form["client_id"] = provider.client_id
        elif provider.token_auth == "basic":  # noqa: S105 - a method name
            headers["Authorization"] = _basic_auth(provider)
        else:
            form["client_id"] = provider.client_id
            form["client_secret"] = provider.client_secret
        response, body = await self._send(
            "POST",
            url,
            provider,
            kind,
            limit=MAX_RESPONSE_BYTES,
            read_errors=True,
            unreadable=unreadable,
            data=form,
            headers=headers,
        )
        _log.debug("oauth platform=%s endpoint=%s status=%d", name, kind, response.status)
        self._raise_for_status(provider, kind, response.status, body)
        return body

    def _raise_transport(
        self, name: str, kind: str, error: BaseException, phase: Mapping[str, bool]
    ) -> NoReturn:
        """Raise "unavailable" if the request never left, "outcome unknown" if it did."""
        if phase["traced"]:
            left = phase["sent"]
        else:
            # No trace hook (a caller's session): only errors of the connect
            # phase prove the request did not leave.
            left = not isinstance(
                error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError
            )
        timed_out = isinstance(error, TimeoutError)
        if not left:
            what = (
                f"could not be reached within {self._timeout_seconds:g} s"
                if timed_out
                else f"could not be reached ({type(error).__name__})"
            )
            raise ProviderUnavailable(
                f"{name}: the {kind} endpoint {what}", platform=name
            ) from None
        what = (
            f"did not answer within {self._timeout_seconds:g} s"
            if timed_out
            else f"broke the connection before answering ({type(error).__name__})"
        )
        raise RefreshOutcomeUnknown(
            f"{name}: the {kind} request was sent but the endpoint {what}; "
            "the provider may have acted on it",
            platform=name,
        ) from None

    def _trace_configs(self) -> list[aiohttp.TraceConfig]:
        """Note, per request, when the request's headers left (see :meth:`_raise_transport`)."""

        def note(key: str) -> Callable[[object, Any, object], Awaitable[None]]:
            async def hook(_: object, context: Any, __: object) -> None:
                phase = context.trace_request_ctx
                if isinstance(phase, dict):
                    phase[key] = True

            return hook

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(note("traced"))
        trace.on_request_headers_sent.append(note("sent"))
        return [trace]

    @staticmethod
    def _raise_for_status(
        provider: OAuthProvider, kind: EndpointKind, status: int, body: bytes
    ) -> None:
        name = provider.name
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise OAuthError(
                f"{name}: the {kind} endpoint answered a redirect ({status}); not followed",
                platform=name,
            )
        if status >= 500 or status == 429:
            raise ProviderUnavailable(
                f"{name}: the {kind} endpoint is unavailable (HTTP {status})", platform=name
            )
        code = _error_code(body)
        if code == "invalid_client":
            # The bot's own client credentials, not the user's grant.
            raise OAuthNotConfigured(
                f"{name}: the provider refused this bot's client credentials (invalid_client); "
                "check the platform's client ID and client secret settings",
                platform=name,
            )
        if code == "invalid_grant":
            raise ReLinkRequired(
                f"{name}: the provider rejected the grant (invalid_grant); "
                "the account must be linked again",
                platform=name,
            )
        if code == "temporarily_unavailable":
            raise ProviderUnavailable(
                f"{name}: the {kind} endpoint is temporarily unavailable (HTTP {status})",
                platform=name,
            )
        raise OAuthError(
            f"{name}: the {kind} endpoint refused the request (HTTP {status}, {code})",
            platform=name,
        )

    # -- parsing -----------------------------------------------------------

    @staticmethod
    def _malformed(provider: OAuthProvider, problem: str) -> NoReturn:
        malformed(provider.name, "token", problem)

    @classmethod
    def _token(cls, provider: OAuthProvider, data: Mapping[str, Any], field: str) -> str:
        value = data.get(field)
        if not isinstance(value, str) or not value:
            cls._malformed(provider, f"{field} is missing or not a non-empty string")
        if not is_header_token(value):
            cls._malformed(provider, f"{field} has an invalid length or characters")
        return value

    @classmethod
    def _parse_tokens(
        cls, provider: OAuthProvider, body: bytes, *, issued_at: datetime
    ) -> OAuthTokens:
        data = json_object(body, provider.name, "token")
        access_token = cls._token(provider, data, "access_token")
        token_type = data.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            cls._malformed(provider, "token_type is not Bearer")
        expires_in = data.get("expires_in")
        if (
            not isinstance(expires_in, int)
            or isinstance(expires_in, bool)
            or not 0 < expires_in <= _MAX_EXPIRES_IN
        ):
            cls._malformed(provider, "expires_in is not a positive whole number of seconds")
        scope = data.get("scope")
        if scope is None:
            scopes: tuple[str, ...] = provider.scopes
        elif isinstance(scope, str):
            parsed = _parse_scope_or_none(scope)
            if parsed is None:
                cls._malformed(provider, "scope breaks RFC 6749's grammar or our size limits")
            scopes = parsed
        else:
            cls._malformed(provider, "scope is not a space-separated string")
        refresh_token: str | None = None
        if data.get("refresh_token") is not None:
            refresh_token = cls._token(provider, data, "refresh_token")
        return OAuthTokens(
            platform=provider.name,
            access_token=access_token,
            refresh_token=refresh_token,
            token_type="Bearer",  # noqa: S106 - a token type
            scopes=scopes,
            expires_at=issued_at + timedelta(seconds=expires_in),
        )
