"""A real OAuth 2.0 provider on loopback, for tests and the offline console's demo.

:class:`DemoOAuthProvider` is a small aiohttp application that behaves like
the providers the bot links to:

* ``GET /authorize``: checks ``client_id``, the registered ``redirect_uri``,
  ``response_type=code``, PKCE (``S256`` only) and ``state``, then shows an
  approval page (every value HTML-escaped, a strict Content-Security-Policy,
  a single-use form token) or, with ``auto_approve=True``, redirects at once.
* ``POST /token``: ``authorization_code`` (client authentication, single-use
  codes that live 60 seconds, exact ``redirect_uri``, PKCE S256) and
  ``refresh_token`` with rotation: each refresh token works once; presenting
  a spent one answers ``invalid_grant`` and, by default, revokes its whole
  family, as real providers do on reuse.
* ``POST /revoke``: RFC 7009.
* ``GET /v1/search``: a Spotify-shaped track search (``q``, ``type=track``,
  ``limit``, ``offset``) over :attr:`DemoOAuthProvider.tracks`, for the
  access tokens it issued (``Authorization: Bearer``); other tokens get
  Spotify's 401. Tests can put hostile tracks in the catalog
  (:func:`hostile_tracks`) and script raw answers (429, 5xx, oversized,
  malformed, slow) through :attr:`DemoOAuthProvider.search_answers`.

Tests observe it (refresh calls, every refresh token presented, which are
valid, every secret it issued, for canary searches) and inject faults at run
time through :attr:`DemoOAuthProvider.faults`. Issued tokens carry
recognizable prefixes (``canary-at-``, ``canary-rt-``, ``canary-code-``) so a
test can search captured output for any of them.

It binds to loopback only, and never logs a secret.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hmac
import html
import random
import re
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeGuard, TypeVar
from urllib.parse import unquote_plus, urlencode, urlsplit

import attrs
from aiohttp import web

from timmybot_adapters.oauth import OAuthProvider, is_loopback_host
from timmybot_core.domain.clock import Clock, SystemClock
from timmybot_core.domain.snowflake import SnowflakeError, parse_whole_number
from timmybot_core.services.linking import pkce_challenge

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "CODE_PREFIX",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_SCOPES",
    "DEMO_TRACKS",
    "REFRESH_TOKEN_PREFIX",
    "DemoOAuthProvider",
    "Faults",
    "SearchAnswer",
    "demo_provider_config",
    "hostile_tracks",
    "spotify_track",
]

DEMO_CLIENT_ID: Final = "timmybot-demo"
#: The demo client's secret: known on purpose (loopback demo only), and
#: canary-prefixed so that a leak of it is found like a leak of a token.
DEMO_CLIENT_SECRET: Final = "canary-cs-demo-client-secret"  # noqa: S105
DEMO_SCOPES: Final = ("profile", "library-read")
#: Prefixes of what the demo provider issues, so tests can search output for them.
ACCESS_TOKEN_PREFIX: Final = "canary-at-"  # noqa: S105 - a prefix
REFRESH_TOKEN_PREFIX: Final = "canary-rt-"  # noqa: S105 - a prefix
CODE_PREFIX: Final = "canary-code-"

_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
_APPROVAL_LIFETIME: Final = timedelta(minutes=10)
_CODE_LIFETIME: Final = timedelta(seconds=60)
_MAX_STATE: Final = 1024

Countdown = int | Literal["always"]


@attrs.define
class Faults:
    """Faults injected at run time into the token and revocation endpoints.

    ``latency`` (seconds) delays every call *before* it is processed, give
    or take up to ``latency_jitter`` seconds (uniform, so the mean stays
    ``latency``); ``fail_with_500`` and ``drop_connection`` hit the next N
    calls, or every call with ``"always"``; ``invalid_grant_for`` answers
    ``invalid_grant`` to the refresh tokens listed (without spending them),
    or to all with ``"all"``.

    The faults of real providers under load come *after* the work:
    ``answer_delay`` rotates the refresh token first and sends the answer
    that many seconds later (a crash or stop in between loses the rotated
    token unless the client waits for it); ``answer_after_timeout`` does
    the same for the next N refreshes (or ``"always"``) but holds the answer
    until the client has given up (it never arrives in time), so the client
    sees a read timeout although the token was rotated.
    """

    latency: float = 0.0
    latency_jitter: float = 0.0
    fail_with_500: Countdown = 0
    drop_connection: Countdown = 0
    invalid_grant_for: set[str] | Literal["all"] = attrs.field(factory=set, repr=False)
    answer_delay: float = 0.0
    answer_after_timeout: Countdown = 0

    def reset(self) -> None:
        """Clear every fault."""
        fresh = Faults()
        for field in attrs.fields(Faults):
            setattr(self, field.name, getattr(fresh, field.name))

    def delay(self) -> float:
        """Return the delay before processing one call (latency with its jitter)."""
        if self.latency_jitter <= 0:
            return self.latency
        spread = random.uniform(-self.latency_jitter, self.latency_jitter)  # noqa: S311 - timing
        return max(0.0, self.latency + spread)

    def rejects(self, refresh_token: str) -> bool:
        """Tell whether ``refresh_token`` is to be answered ``invalid_grant``."""
        wanted = self.invalid_grant_for
        return wanted == "all" or (not isinstance(wanted, str) and refresh_token in wanted)

    def take(
        self, fault: Literal["fail_with_500", "drop_connection", "answer_after_timeout"]
    ) -> bool:
        """Consume one call of the countdown ``fault``; tell whether this call is hit."""
        countdown: Countdown = getattr(self, fault)
        if countdown == "always":
            return True
        if countdown > 0:
            setattr(self, fault, countdown - 1)
            return True
        return False


_TRACK_URL: Final = object()


def spotify_track(
    name: object,
    artists: object = ("Demo Artist",),
    *,
    album: object = "Demo Album",
    duration_ms: object = 200_000,
    image_url: object = "https://i.scdn.co/image/demo",
    url: object = _TRACK_URL,
    track_id: str = "demo",
) -> dict[str, Any]:
    """Return a track object shaped like Spotify's (the fields the bot reads, and a few more).

    Every value is taken as given, of any type, so tests can build odd and
    hostile records; ``artists`` given as a sequence of names becomes
    Spotify's list of artist objects. ``url`` defaults to
    ``https://open.spotify.com/track/<track_id>``.
    """
    artist_list: object = artists
    if isinstance(artists, list | tuple):
        artist_list = [
            {"name": artist, "type": "artist", "id": f"{track_id}-a{index}"}
            for index, artist in enumerate(artists)
        ]
    return {
        "type": "track",
        "id": track_id,
        "uri": f"spotify:track:{track_id}",
        "name": name,
        "artists": artist_list,
        "album": {
            "name": album,
            "images": [
                {"url": image_url, "width": size, "height": size} for size in (640, 300, 64)
            ],
        },
        "duration_ms": duration_ms,
        "explicit": False,
        "external_urls": {
            "spotify": f"https://open.spotify.com/track/{track_id}" if url is _TRACK_URL else url
        },
    }


#: The demo catalog: real song titles that stress the validators and the sanitizer.
DEMO_TRACKS: Final[tuple[dict[str, Any], ...]] = (
    spotify_track(
        "Drop It Like It's Hot",
        ("Snoop Dogg", "Pharrell Williams"),
        album="R&G (Rhythm & Gangsta): The Masterpiece",
        duration_ms=266_066,
        track_id="demo1",
    ),
    spotify_track(
        "Halo", ("Beyoncé",), album="I Am... Sasha Fierce", duration_ms=261_640, track_id="demo2"
    ),
    spotify_track(
        "Hoppípolla", ("Sigur Rós",), album="Takk...", duration_ms=268_000, track_id="demo3"
    ),
    spotify_track(
        "Union of the Snake",
        ("Duran Duran",),
        album="Seven and the Ragged Tiger",
        duration_ms=260_000,
        track_id="demo4",
    ),
    spotify_track(
        "Sweet Child O' Mine",
        ("Guns N' Roses",),
        album="Appetite for Destruction",
        duration_ms=356_066,
        track_id="demo5",
    ),
)


def hostile_tracks() -> list[dict[str, Any]]:
    """Return tracks whose every field attacks the display; all match the query "hostile".

    Mass and user mentions, markdown and masked links, bidi overrides and
    zero-width characters, ``javascript:``/``http``/private-address URLs,
    huge strings, and fields of the wrong type or missing altogether.
    """
    return [
        spotify_track(
            "@everyone **FREE NITRO** <@123456789012345678> <@&987654321098765432>",
            ("@here", "<#111111111111111111>", "</ban:222222222222222222>"),
            album="Hostile Takeover",
            image_url="javascript:alert(1)",
            url="http://open.spotify.com/track/plain-http",
            track_id="hostile1",
        ),
        spotify_track(
            "[click me](https://evil.example/steal) ||spoiler|| `code` ~~gone~~ __under__",
            ("> quoted\n# header", "\u202eevil\u202c"),
            album="Hostile Takeover",
            image_url="http://127.0.0.1:8080/internal.png",
            url="https://169.254.169.254/latest/meta-data/",
            track_id="hostile2",
        ),
        spotify_track(
            "Zero\u200bWidth\u200d\u2060 \u202eBidi\u202c\nNew line\r\nhttp://evil.example/x",
            ("Art\u200bist @\u200beveryone",),
            album="Hostile Takeover",
            duration_ms=-5,
            image_url="https://i.scdn.co/image/ok>@everyone",
            url="https://open.spotify.com/track/ok?<@123456789012345678>",
            track_id="hostile3",
        ),
        spotify_track(
            "Huge " + "A" * 100_000,
            ["B" * 10_000] * 15,
            album="Hostile Takeover",
            duration_ms=10**30,
            image_url="https://i.scdn.co/" + "c" * 5000,
            url="data:text/html,<script>alert(1)</script>",
            track_id="hostile4",
        ),
        {
            "name": 12345,
            "artists": "not a list",
            "album": {"name": "Hostile Takeover", "images": "nope"},
            "duration_ms": True,
            "external_urls": ["https://open.spotify.com/track/x"],
        },
        {"album": {"name": "Hostile Takeover", "images": [None, {"url": 5}]}, "artists": [None]},
    ]


@attrs.define
class SearchAnswer:
    """A scripted answer for ``GET /v1/search``, used once, after the token check.

    ``body=None`` with status 200 answers the real search (after ``delay``
    seconds); any other combination sends ``status``, ``headers`` and
    ``body`` as given. ``chunked`` sends the body without a Content-Length.
    """

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    chunked: bool = False


@attrs.define
class _Family:
    """Every token issued from one authorization (one code)."""

    scopes: tuple[str, ...]
    revoked: bool = False


@attrs.define
class _Code:
    family: _Family
    redirect_uri: str
    code_challenge: str
    issued_at: datetime
    used: bool = False


@attrs.define
class _Refresh:
    family: _Family
    spent: bool = False


@attrs.define
class _Access:
    family: _Family
    expires_at: datetime
    revoked: bool = False


_Grant = TypeVar("_Grant", _Refresh, _Access)


@attrs.define
class _Pending:
    """An authorization shown on the approval page, waiting for a decision."""

    csrf: str
    redirect_uri: str
    state: str
    code_challenge: str
    scopes: tuple[str, ...]
    expires_at: datetime


def _single_valued(params: Mapping[str, object]) -> dict[str, str] | None:
    """Return ``params`` as a dict; None if a name repeats (RFC 6749 3.1, 3.2) or holds a file."""
    # A multidict's items() and len() count every pair: a repeated name makes it longer.
    single = {name: value for name, value in params.items() if isinstance(value, str)}
    return single if len(single) == len(params) else None


def _json_error(error: str, status: int = 400, **headers: str) -> web.Response:
    headers["Cache-Control"] = "no-store"
    return web.json_response({"error": error}, status=status, headers=headers)


def _check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise ValueError("a redirect URI is an absolute http(s) URL without fragment")
    return uri


class DemoOAuthProvider:
    """An OAuth 2.0 provider (authorization code + PKCE, rotating refresh, RFC 7009).

    ``client_secret=None`` registers a public client (``client_id`` only).
    ``redirect_uris`` must match exactly. ``rotate_refresh_tokens`` and
    ``revoke_family_on_reuse`` can be changed at run time, as can
    :attr:`faults`. ``clock`` decides code and token expiry.
    """

    def __init__(
        self,
        *,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str | None = DEMO_CLIENT_SECRET,
        redirect_uris: Iterable[str] = (),
        scopes: Iterable[str] = DEMO_SCOPES,
        auto_approve: bool = False,
        rotate_refresh_tokens: bool = True,
        revoke_family_on_reuse: bool = True,
        clock: Clock | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes: tuple[str, ...] = tuple(scopes)
        self.auto_approve = auto_approve
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.revoke_family_on_reuse = revoke_family_on_reuse
        #: The lifetime of the access tokens issued, in seconds.
        self.expires_in = 3600
        self.faults = Faults()
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._redirect_uris: set[str] = {_check_redirect_uri(uri) for uri in redirect_uris}
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._access: dict[str, _Access] = {}
        self._pending: dict[str, _Pending] = {}
        self._presented: list[str] = []
        self._answered: dict[str, float] = {}
        self._revoked_via_endpoint: list[str] = []
        #: The catalog ``/v1/search`` answers from: Spotify-shaped track objects.
        self.tracks: list[dict[str, Any]] = copy.deepcopy(list(DEMO_TRACKS))
        #: Scripted answers for the next searches, first in first out.
        self.search_answers: list[SearchAnswer] = []
        #: The query parameters of every search received (never the token).
        self.search_requests: list[dict[str, str]] = []
        #: Counters of calls received (faulted calls included).
        self.token_calls = 0
        self.refresh_calls = 0
        self.code_exchanges = 0
        self.revoke_calls = 0
        self.search_calls = 0
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    def __repr__(self) -> str:
        return (
            f"DemoOAuthProvider(base_url={self._base_url!r}, client_id={self.client_id!r}, "
            f"auto_approve={self.auto_approve}, rotate_refresh_tokens={self.rotate_refresh_tokens})"
        )

    # -- lifecycle ---------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Serve on ``host:port`` (``port=0`` picks a free port); return :attr:`base_url`.

        ``ssl_context`` serves HTTPS (for certificate and pinning tests).
        """
        if self._runner is not None:
            raise RuntimeError("the demo provider is already running")
        if not is_loopback_host(host):
            raise ValueError("the demo provider binds to loopback only (127.0.0.1, localhost, ::1)")
        runner = web.AppRunner(
            self._app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.25
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_port = runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        url_host = f"[{host}]" if ":" in host else host
        self._runner = runner
        self._base_url = f"{scheme}://{url_host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The URL the provider serves on (``http://127.0.0.1:PORT``)."""
        if self._base_url is None:
            raise RuntimeError("the demo provider has not been started")
        return self._base_url

    def oauth_provider(self, name: str = "demo") -> OAuthProvider:
        """Return the client-side configuration that matches this running provider."""
        return demo_provider_config(
            self.base_url,
            name=name,
            client_id=self.client_id,
            client_secret=self.client_secret,
            scopes=self.scopes,
            # Reuse is harmless only when refresh tokens do not rotate.
            refresh_retry_safe=not self.rotate_refresh_tokens,
        )

    # -- observability -----------------------------------------------------

    @property
    def presented_refresh_tokens(self) -> tuple[str, ...]:
        """Every refresh token presented to ``/token``, in order (faulted calls included)."""
        return tuple(self._presented)

    @property
    def presented_twice(self) -> frozenset[str]:
        """The refresh tokens presented more than once."""
        return frozenset(token for token, n in Counter(self._presented).items() if n > 1)

    def answered_at(self, refresh_token: str) -> float | None:
        """When (``time.monotonic()``) the successful answer to ``refresh_token`` was sent."""
        return self._answered.get(refresh_token)

    @property
    def issued_access_tokens(self) -> tuple[str, ...]:
        """Every access token issued."""
        return tuple(self._access)

    @property
    def issued_refresh_tokens(self) -> tuple[str, ...]:
        """Every refresh token issued."""
        return tuple(self._refresh)

    @property
    def issued_codes(self) -> tuple[str, ...]:
        """Every authorization code issued."""
        return tuple(self._codes)

    @property
    def revoked_tokens(self) -> tuple[str, ...]:
        """Tokens received at ``/revoke``, in order."""
        return tuple(self._revoked_via_endpoint)

    def issued_secrets(self) -> tuple[str, ...]:
        """Every secret this provider knows: tokens, codes and the client secret."""
        client = (self.client_secret,) if self.client_secret else ()
        return (*self._access, *self._refresh, *self._codes, *client)

    def is_valid_refresh_token(self, token: str) -> bool:
        """Tell whether ``token`` would be accepted by a refresh now."""
        record = self._refresh.get(token)
        return self._live(record) and not record.spent

    def is_valid_access_token(self, token: str) -> bool:
        """Tell whether ``token`` is an unexpired, unrevoked access token."""
        record = self._access.get(token)
        return self._live(record) and not record.revoked and self._clock.now() < record.expires_at

    def _live(self, record: _Grant | None) -> TypeGuard[_Grant]:
        """Tell whether ``record`` exists and its family is not revoked."""
        # A refresh token is revoked only with its family (RFC 7009 2.1), an access token alone too.
        return record is not None and not record.family.revoked

    # -- the application ---------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/authorize/approve", self._approve)
        app.router.add_post("/token", self._token)
        app.router.add_post("/revoke", self._revoke)
        app.router.add_get("/v1/search", self._search)
        return app

    # -- authorization endpoint -------------------------------------------

    def _page(
        self, title: str, body: str, *, status: int = 200, form_origin: str | None = None
    ) -> web.Response:
        form_action = "'self'" + (f" {form_origin}" if form_origin else "")
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
        )
        headers = {
            # The form posts to us, and our redirect goes to the client's origin.
            "Content-Security-Policy": (
                f"default-src 'none'; form-action {form_action}; "
                "frame-ancestors 'none'; base-uri 'none'"
            ),
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        return web.Response(text=page, status=status, content_type="text/html", headers=headers)

    def _error_page(self, message: str) -> web.Response:
        return self._page(
            "Authorization failed",
            f"<h1>Authorization failed</h1><p>{html.escape(message)}</p>",
            status=400,
        )

    @staticmethod
    def _redirect(uri: str, params: dict[str, str]) -> web.Response:
        location = uri + ("&" if urlsplit(uri).query else "?") + urlencode(params)
        headers = {
            "Location": location,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        }
        return web.Response(status=302, headers=headers)

    async def _authorize(self, request: web.Request) -> web.Response:
        query = _single_valued(request.query)
        if query is None:
            return self._error_page("A parameter was given more than once.")
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        if client_id != self.client_id:
            return self._error_page("Unknown client.")
        if redirect_uri not in self._redirect_uris:
            # Never redirect to an unregistered URI: answer here.
            return self._error_page("The redirect URI is not registered for this client.")
        state = query.get("state", "")
        if not state or len(state) > _MAX_STATE:
            return self._redirect(redirect_uri, {"error": "invalid_request"})
        if query.get("response_type") != "code":
            return self._redirect(
                redirect_uri, {"error": "unsupported_response_type", "state": state}
            )
        challenge = query.get("code_challenge", "")
        if query.get("code_challenge_method") != "S256" or not _CHALLENGE.match(challenge):
            return self._redirect(redirect_uri, {"error": "invalid_request", "state": state})
        requested = tuple(query["scope"].split()) if "scope" in query else self.scopes
        if not requested or not set(requested) <= set(self.scopes):
            return self._redirect(redirect_uri, {"error": "invalid_scope", "state": state})
        now = self._clock.now()
        pending = _Pending(
            csrf=secrets.token_urlsafe(24),
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=challenge,
            scopes=requested,
            expires_at=now + _APPROVAL_LIFETIME,
        )
        if self.auto_approve:
            return self._redirect(redirect_uri, {"code": self._issue_code(pending), "state": state})
        self._pending = {k: v for k, v in self._pending.items() if v.expires_at > now}
        request_id = secrets.token_urlsafe(24)
        self._pending[request_id] = pending
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(redirect_uri))
        body = (
            "<h1>Demo OAuth provider</h1>"
            f"<p>The application <strong>{html.escape(client_id)}</strong> asks to access "
            f"your demo account: <em>{html.escape(' '.join(requested))}</em>.</p>"
            f"<p>After your answer you go back to <code>{html.escape(redirect_uri)}</code>.</p>"
            '<form method="post" action="/authorize/approve">'
            f'<input type="hidden" name="request" value="{html.escape(request_id)}">'
            f'<input type="hidden" name="csrf" value="{html.escape(pending.csrf)}">'
            '<button type="submit" name="decision" value="approve">Approve</button> '
            '<button type="submit" name="decision" value="deny">Deny</button>'
            "</form>"
        )
        return self._page(
            "Authorize access",
            body,
            form_origin=origin if _ORIGIN.match(origin) else None,
        )

    async def _approve(self, request: web.Request) -> web.Response:
        form = await request.post()
        request_id = form.get("request")
        csrf = form.get("csrf")
        if not isinstance(request_id, str) or not isinstance(csrf, str):
            return self._error_page("The approval form is incomplete.")
        pending = self._pending.pop(request_id, None)  # single use
        if pending is None or not hmac.compare_digest(pending.csrf, csrf):
            return self._error_page("This approval is unknown or was already used.")
        if pending.expires_at <= self._clock.now():
            return self._error_page("This approval has expired; start again.")
        if form.get("decision") != "approve":
            return self._redirect(
                pending.redirect_uri, {"error": "access_denied", "state": pending.state}
            )
        code = self._issue_code(pending)
        return self._redirect(pending.redirect_uri, {"code": code, "state": pending.state})

    def _issue_code(self, approved: _Pending) -> str:
        code = CODE_PREFIX + secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            family=_Family(scopes=approved.scopes),
            redirect_uri=approved.redirect_uri,
            code_challenge=approved.code_challenge,
            issued_at=self._clock.now(),
        )
        return code

    # -- token and revocation endpoints -----------------------------------

    async def _refused(self, request: web.Request, form: dict[str, str]) -> web.Response | None:
        """Apply the injected faults, then authenticate the client; the answer if refused."""
        delay = self.faults.delay()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.faults.take("drop_connection"):
            transport = request.transport
            if transport is not None:
                transport.abort()
            # The connection is gone: handler cancellation ends this handler.
            await asyncio.sleep(3600)
        if self.faults.take("fail_with_500"):
            return _json_error("server_error", status=500)
        if self._authenticate(request, form):
            return None
        tried_basic = "Authorization" in request.headers
        challenge = {"WWW-Authenticate": 'Basic realm="demo"'} if tried_basic else {}
        return _json_error("invalid_client", status=401, **challenge)

    def _authenticate(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization")
        body_id = form.get("client_id")
        if header is not None:
            if "client_secret" in form or not header.startswith("Basic "):
                return False  # RFC 6749 2.3: one authentication method per request
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
            except ValueError:
                return False
            raw_id, sep, raw_secret = decoded.partition(":")
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
            if not sep or (body_id is not None and body_id != client_id):
                return False
        else:
            client_id, secret = body_id or "", form.get("client_secret", "")
        if not hmac.compare_digest(client_id.encode(), self.client_id.encode()):
            return False
        if self.client_secret is None:
            return not secret
        return hmac.compare_digest(secret.encode(), self.client_secret.encode())

    @staticmethod
    async def _form(request: web.Request) -> dict[str, str] | None:
        if request.content_type != "application/x-www-form-urlencoded":
            return None
        return _single_valued(await request.post())

    async def _token(self, request: web.Request) -> web.Response:
        self.token_calls += 1
        form = await self._form(request)
        if form is None:
            return _json_error("invalid_request")
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            self.refresh_calls += 1
            if "refresh_token" in form:
                self._presented.append(form["refresh_token"])
        elif grant_type == "authorization_code":
            self.code_exchanges += 1
        refused = await self._refused(request, form)
        if refused is not None:
            return refused
        if grant_type == "authorization_code":
            return self._code_grant(form)
        if grant_type == "refresh_token":
            return await self._answer_refresh(request, form)
        return _json_error("unsupported_grant_type")

    async def _answer_refresh(self, request: web.Request, form: dict[str, str]) -> web.Response:
        """Process the refresh now (rotating the token), then answer, maybe late."""
        response = self._refresh_grant(form)
        if response.status != 200:
            return response
        if self.faults.take("answer_after_timeout"):
            # Rotated, and the answer never comes in time: the client gives
            # up and disconnects, which cancels this handler.
            await asyncio.sleep(3600)
        if self.faults.answer_delay > 0:
            await asyncio.sleep(self.faults.answer_delay)
        await response.prepare(request)
        await response.write_eof()
        self._answered[form["refresh_token"]] = time.monotonic()
        return response

    def _code_grant(self, form: dict[str, str]) -> web.Response:
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code or not verifier or "redirect_uri" not in form:
            return _json_error("invalid_request")
        grant = self._codes.get(code)
        if grant is None:
            return _json_error("invalid_grant")
        if grant.used:
            # RFC 6749 4.1.2: a replayed code revokes what it granted.
            grant.family.revoked = True
            return _json_error("invalid_grant")
        grant.used = True  # spent by any attempt, so a verifier cannot be guessed
        if self._clock.now() - grant.issued_at > _CODE_LIFETIME:
            return _json_error("invalid_grant")
        # One client is registered: the authenticated client is the one the code was issued to.
        if form["redirect_uri"] != grant.redirect_uri:
            return _json_error("invalid_grant")
        if not _VERIFIER.match(verifier) or not hmac.compare_digest(
            pkce_challenge(verifier), grant.code_challenge
        ):
            return _json_error("invalid_grant")
        return self._tokens(grant.family, grant.family.scopes, rotate=True)

    def _refresh_grant(self, form: dict[str, str]) -> web.Response:
        token = form.get("refresh_token")
        if not token:
            return _json_error("invalid_request")
        if self.faults.rejects(token):
            return _json_error("invalid_grant")
        record = self._refresh.get(token)
        if not self._live(record):
            return _json_error("invalid_grant")
        if record.spent:
            if self.revoke_family_on_reuse:
                record.family.revoked = True
            return _json_error("invalid_grant")
        scopes = record.family.scopes
        if "scope" in form:
            scopes = tuple(form["scope"].split())
            if not scopes or not set(scopes) <= set(record.family.scopes):
                return _json_error("invalid_scope")
        if self.rotate_refresh_tokens:
            record.spent = True
        return self._tokens(record.family, scopes, rotate=self.rotate_refresh_tokens)

    def _tokens(self, family: _Family, scopes: tuple[str, ...], *, rotate: bool) -> web.Response:
        now = self._clock.now()
        access = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._access[access] = _Access(
            family=family, expires_at=now + timedelta(seconds=self.expires_in)
        )
        payload: dict[str, object] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(scopes),
        }
        if rotate:
            refresh = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
            self._refresh[refresh] = _Refresh(family=family)
            payload["refresh_token"] = refresh
        return web.json_response(
            payload, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    async def _revoke(self, request: web.Request) -> web.Response:
        self.revoke_calls += 1
        form = await self._form(request)
        if form is None:
            return _json_error("invalid_request")
        refused = await self._refused(request, form)
        if refused is not None:
            return refused
        token = form.get("token")
        if not token:
            return _json_error("invalid_request")
        self._revoked_via_endpoint.append(token)
        refresh = self._refresh.get(token)
        if refresh is not None:
            # RFC 7009 2.1: revoking a refresh token revokes its grant's access tokens.
            refresh.family.revoked = True
        access = self._access.get(token)
        if access is not None:
            access.revoked = True
        # Unknown tokens are answered 200 as well (RFC 7009 2.2).
        return web.Response(status=200, headers={"Cache-Control": "no-store"})

    # -- the Spotify-shaped Web API ---------------------------------------

    async def _search(self, request: web.Request) -> web.StreamResponse:
        self.search_calls += 1
        self.search_requests.append(dict(request.query))
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if not self.is_valid_access_token(token):
            record = self._access.get(token)
            expired = record is not None and self._clock.now() >= record.expires_at
            return _api_error(
                401,
                "The access token expired" if expired else "Invalid access token",
                **{"WWW-Authenticate": 'Bearer realm="demo", error="invalid_token"'},
            )
        if self.search_answers:
            answer = self.search_answers.pop(0)
            if answer.delay > 0:
                await asyncio.sleep(answer.delay)
            if answer.body is not None or answer.status != 200:
                return await _scripted(request, answer)
        return self._search_results(request)

    def _search_results(self, request: web.Request) -> web.Response:
        query = request.query
        text = query.get("q", "").strip()
        if not text:
            return _api_error(400, "No search query")
        if "track" not in query.get("type", "").split(","):
            return _api_error(400, "Bad search type field")
        numbers: dict[str, int] = {}
        for name, default, maximum in (("limit", "20", 50), ("offset", "0", 1000)):
            try:
                numbers[name] = parse_whole_number(query.get(name, default), maximum=maximum)
            except SnowflakeError:
                return _api_error(400, f"Invalid {name}")
        count, start = numbers["limit"], numbers["offset"]
        words = text.casefold().split()
        found = [track for track in self.tracks if _matches(track, words)]
        payload = {
            "tracks": {
                "href": str(request.url),
                "items": found[start : start + count],
                "limit": count,
                "next": None,
                "offset": start,
                "previous": None,
                "total": len(found),
            }
        }
        return web.json_response(payload)


def _api_error(status: int, message: str, **headers: str) -> web.Response:
    """Answer like Spotify's Web API: ``{"error": {"status": ..., "message": ...}}``."""
    error = {"status": status, "message": message}
    return web.json_response({"error": error}, status=status, headers=headers)


async def _scripted(request: web.Request, answer: SearchAnswer) -> web.StreamResponse:
    body = answer.body if answer.body is not None else b""
    headers = {"Content-Type": "application/json", **answer.headers}
    if not answer.chunked:
        return web.Response(status=answer.status, body=body, headers=headers)
    response = web.StreamResponse(status=answer.status, headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(body), 16384):
        await response.write(body[start : start + 16384])
    await response.write_eof()
    return response


def _matches(track: object, words: list[str]) -> bool:
    """Tell whether every query word occurs in the track's name, artists or album."""
    if not isinstance(track, dict):
        return False
    parts: list[object] = [track.get("name")]
    album = track.get("album")
    if isinstance(album, dict):
        parts.append(album.get("name"))
    artists = track.get("artists")
    if isinstance(artists, list):
        parts += [a.get("name") for a in artists if isinstance(a, dict)]
    haystack = " ".join(part for part in parts if isinstance(part, str)).casefold()
    return all(word in haystack for word in words)


def demo_provider_config(
    base_url: str,
    redirect_uri: str | None = None,
    *,
    name: str = "demo",
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str | None = DEMO_CLIENT_SECRET,
    scopes: Iterable[str] = DEMO_SCOPES,
    refresh_retry_safe: bool = False,
) -> OAuthProvider:
    """Return the :class:`OAuthProvider` for a demo provider serving at ``base_url``.

    ``refresh_retry_safe`` is false by default: the demo provider rotates
    refresh tokens and revokes the grant when a spent one comes back.

    Plain ``http`` is allowed because the demo provider serves on loopback
    only (any other host is refused by :class:`OAuthProvider`). The
    ``redirect_uri``, when given, is checked to be an absolute URL: it must
    also be one of the :class:`DemoOAuthProvider`'s ``redirect_uris``.
    """
    if redirect_uri is not None:
        _check_redirect_uri(redirect_uri)
    base = base_url.rstrip("/")
    return OAuthProvider(
        name=name,
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        revoke_url=f"{base}/revoke",
        client_id=client_id,
        client_secret=client_secret,
        scopes=tuple(scopes),
        token_auth="basic",  # noqa: S106 - a method name
        allow_insecure_http=True,
        refresh_retry_safe=refresh_retry_safe,
    )
