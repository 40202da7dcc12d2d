"""OAuth providers as data: endpoints, client credentials, scopes, pins.

An :class:`OAuthProvider` is validated when it is built: endpoints must be
``https`` (plain ``http`` is accepted only on a loopback host, and only with
``allow_insecure_http=True``, for tests and the offline demo), the name is a
platform slug, and certificate pins are SHA-256 fingerprints. The client
secret never appears in ``repr``.

The presets follow the providers' public documentation:

* Spotify: https://developer.spotify.com/documentation/web-api/tutorials/code-pkce-flow
  and .../refreshing-tokens (no revocation endpoint; HTTP Basic client
  authentication; a PKCE public client sends ``client_id`` in the form).
  A refresh *may* return a new refresh token; the previous one is not
  documented to be revoked on reuse, so one immediate retry with the same
  token after a lost answer is allowed (``refresh_retry_safe=True``).
* Discord: https://discord.com/developers/docs/topics/oauth2 and
  https://discord.com/.well-known/oauth-authorization-server
  (``client_secret_basic``, revocation per RFC 7009, PKCE S256). Every
  refresh rotates the refresh token and the old one stops working, so a
  lost answer sends the link to "needs re-link" (``refresh_retry_safe=False``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Final, Literal
from urllib.parse import urlsplit

import attrs

from timmybot_core.domain.scopes import ScopeError, check_scopes
from timmybot_core.domain.tokens import valid_platform

__all__ = [
    "DISCORD_DEFAULT_SCOPES",
    "LOOPBACK_HOSTS",
    "RESERVED_AUTHORIZE_PARAMS",
    "SPOTIFY_DEFAULT_SCOPES",
    "OAuthProvider",
    "TokenAuth",
    "check_endpoint_url",
    "discord",
    "is_loopback_host",
    "normalize_pins",
    "spotify",
]

TokenAuth = Literal["basic", "body"]

#: Hosts on which ``allow_insecure_http=True`` may use plain ``http``.
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

#: Authorization parameters the client sets itself; ``extra_authorize_params``
#: cannot override them (an override could disable PKCE or move the redirect).
RESERVED_AUTHORIZE_PARAMS: Final = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
)

# user-read-private lets search use the account's market (market=from_token);
# nothing the bot does needs the e-mail address, so it is not asked for.
SPOTIFY_DEFAULT_SCOPES: Final = ("user-read-private",)
DISCORD_DEFAULT_SCOPES: Final = ("identify",)

_PIN = re.compile(r"^[0-9a-f]{64}$")
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def is_loopback_host(host: str) -> bool:
    """Tell whether ``host`` (as in a URL, IPv6 without brackets) is this machine's loopback."""
    name = host.lower().rstrip(".")
    if name in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(name) in (
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        )
    except ValueError:
        return False


def check_endpoint_url(
    owner: str, kind: str, url: object, *, allow_insecure_http: bool, query_allowed: bool = False
) -> None:
    """Raise ``ValueError`` naming ``owner`` and ``kind`` unless ``url`` is a fit endpoint.

    Absolute ``https`` with a host, no credentials, no fragment (and no query
    unless ``query_allowed``); plain ``http`` only on a loopback host and only
    with ``allow_insecure_http``.
    """
    if not isinstance(url, str):
        raise ValueError(f"{owner}: {kind} must be a string")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{owner}: {kind} must be an absolute https URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{owner}: {kind} must not carry credentials")
    if parts.fragment or (parts.query and not query_allowed):
        what = "a fragment" if query_allowed else "a query or fragment"
        raise ValueError(f"{owner}: {kind} must not have {what}")
    if parts.scheme == "http":
        if not allow_insecure_http:
            raise ValueError(
                f"{owner}: {kind} must use https (plain http is for loopback tests only)"
            )
        if not is_loopback_host(host):
            raise ValueError(
                f"{owner}: plain http is refused for {host!r}; "
                "only 127.0.0.1, localhost and ::1 may use it"
            )


def normalize_pins(values: Iterable[str]) -> frozenset[str]:
    """Return SHA-256 pins as lowercase hex without colons; raise ``ValueError`` if malformed."""
    if isinstance(values, str):
        values = (values,)
    pins = set()
    for value in values:
        pin = str(value).replace(":", "").strip().lower()
        if not _PIN.match(pin):
            raise ValueError("a certificate pin is a SHA-256 fingerprint: 64 hex digits")
        pins.add(pin)
    return frozenset(pins)


def _scope_tuple(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = values.split()
    scopes: list[str] = []
    for value in values:
        if not isinstance(value, str) or not _SCOPE.match(value):
            raise ValueError("a scope is a non-empty token without spaces, quotes or backslashes")
        if value not in scopes:
            scopes.append(value)
    try:
        check_scopes(scopes)  # RFC 6749's grammar, with our caps on length and count
    except ScopeError as error:
        raise ValueError(str(error)) from None
    return tuple(scopes)


def _extra_params(
    values: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    items = list(values.items()) if isinstance(values, Mapping) else list(values)
    params: list[tuple[str, str]] = []
    for name, value in items:
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise ValueError("an extra authorization parameter name must be a plain token")
        if name in RESERVED_AUTHORIZE_PARAMS:
            raise ValueError(f"the authorization parameter {name!r} is set by the client")
        if not isinstance(value, str):
            raise ValueError(f"the authorization parameter {name!r} must be a string")
        params.append((name, value))
    return tuple(sorted(params))


def _secret(value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError("a client secret is a non-empty string, or None for a public client")
    return value


def _client_id(value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
        raise ValueError("a client ID is a non-empty printable string of at most 256 characters")
    return value


@attrs.frozen(kw_only=True)
class OAuthProvider:
    """One OAuth 2.0 provider: endpoints, client credentials, scopes, certificate pins.

    ``token_auth`` chooses how the client authenticates at the token and
    revocation endpoints: ``"basic"`` (HTTP Basic, RFC 6749 2.3.1) or
    ``"body"`` (``client_id``/``client_secret`` in the form). A public client
    (``client_secret=None``) always sends only ``client_id`` in the form.

    ``pins`` holds SHA-256 fingerprints (hex; colons allowed) of the
    certificates the provider's endpoints may present; empty means no
    pinning. Pinning adds to certificate verification, it never replaces it.
    """

    name: str = attrs.field(converter=valid_platform)
    authorize_url: str
    token_url: str
    revoke_url: str | None = None
    client_id: str = attrs.field(converter=_client_id)
    client_secret: str | None = attrs.field(default=None, converter=_secret, repr=False)
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_scope_tuple)
    extra_authorize_params: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_extra_params
    )
    token_auth: TokenAuth = attrs.field(
        default="basic", validator=attrs.validators.in_(("basic", "body"))
    )
    pins: frozenset[str] = attrs.field(factory=frozenset, converter=normalize_pins)
    allow_insecure_http: bool = False
    #: Whether presenting the same refresh token again right after an unknown
    #: outcome (the request left, the answer was lost) is safe: true for
    #: providers that do not rotate refresh tokens or that accept the previous
    #: one for a grace period. False (the default) sends the link to "needs
    #: re-link" instead, where a second presentation could revoke the grant.
    refresh_retry_safe: bool = False

    def __attrs_post_init__(self) -> None:
        for kind, url in (
            ("authorize_url", self.authorize_url),
            ("token_url", self.token_url),
            ("revoke_url", self.revoke_url),
        ):
            if url is not None:
                check_endpoint_url(
                    self.name,
                    kind,
                    url,
                    allow_insecure_http=self.allow_insecure_http,
                    query_allowed=kind == "authorize_url",
                )

    @property
    def supports_revocation(self) -> bool:
        """Tell whether the provider has a revocation endpoint."""
        return self.revoke_url is not None


def spotify(
    client_id: str,
    client_secret: str | None,
    *,
    scopes: Iterable[str] = SPOTIFY_DEFAULT_SCOPES,
    pins: Iterable[str] = (),
) -> OAuthProvider:
    """Return Spotify's provider (authorization code with PKCE; no revocation endpoint).

    ``client_secret=None`` makes a PKCE public client.
    """
    return OAuthProvider(
        name="spotify",
        authorize_url="https://accounts.spotify.com/authorize",
        token_url="https://accounts.spotify.com/api/token",  # noqa: S106 - an endpoint
        revoke_url=None,
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        token_auth="basic",  # noqa: S106 - a method name
        pins=pins,
        refresh_retry_safe=True,
    )


def discord(
    client_id: str,
    client_secret: str | None,
    *,
    scopes: Iterable[str] = DISCORD_DEFAULT_SCOPES,
    pins: Iterable[str] = (),
) -> OAuthProvider:
    """Return Discord's provider (authorization code with PKCE, RFC 7009 revocation)."""
    return OAuthProvider(
        name="discord",
        authorize_url="https://discord.com/oauth2/authorize",
        token_url="https://discord.com/api/oauth2/token",  # noqa: S106 - an endpoint
        revoke_url="https://discord.com/api/oauth2/token/revoke",
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        token_auth="basic",  # noqa: S106 - a method name
        pins=pins,
        refresh_retry_safe=False,
    )
