"""The MusicCatalog port over Spotify's Web API (``GET /v1/search``), with aiohttp.

It lives in the ``oauth`` family because it shares that family's transport:
the same TLS context (:func:`~timmybot_adapters.oauth.client.make_ssl_context`:
TLS 1.2+, verification always on, optional SHA-256 pins), the same
timeouts, no redirects, no cookies, and the same rule that an error names
the platform and the HTTP status but never a token, a query or a body.

What the provider sends is untrusted. The parser checks the *shape* of the
answer and never crashes on missing or odd fields: a result that is not an
object is skipped, a field of the wrong type counts as absent, strings are
cut to a bounded length, lists to a bounded count, and the whole body may
not exceed :data:`MAX_SEARCH_RESPONSE_BYTES`. It does *not* make the text
safe to show: that is the display's job, with
:class:`~timmybot_core.safety.sanitizer.ResponseSanitizer`.

Rate limits: an HTTP 429 raises
:class:`~timmybot_core.domain.errors.ProviderRateLimited` with the provider's
``Retry-After``, and every search on that platform fails fast, without a
request, until that time has passed. Spotify's limit counts per
application, so one user's burst must not make everyone's searches hammer
the API.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import attrs

from timmybot_adapters.oauth.providers import (
    OAuthProvider,
    check_endpoint_url,
    is_loopback_host,
    normalize_pins,
)
from timmybot_adapters.oauth.session import (
    MinTLS,
    OwnedSession,
    is_header_token,
    json_object,
    malformed,
    not_configured,
)
from timmybot_core.domain.clock import Clock, SystemClock
from timmybot_core.domain.errors import (
    OAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
    ReLinkRequired,
)
from timmybot_core.domain.tokens import valid_platform
from timmybot_core.ports.catalog import DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT, CatalogTrack
from timmybot_core.safety.urls import MAX_URL_LENGTH

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "MAX_QUERY_LENGTH",
    "MAX_RETRY_AFTER",
    "MAX_SEARCH_RESPONSE_BYTES",
    "SPOTIFY_API_BASE",
    "CatalogApi",
    "SpotifyWebApiCatalog",
    "catalog_api_for",
    "spotify_api",
]

_log = logging.getLogger("timmybot.catalog")

SPOTIFY_API_BASE: Final = "https://api.spotify.com"
_SPOTIFY_ACCOUNTS_HOST: Final = "accounts.spotify.com"
#: A page of ten tracks is about 40 KiB with Spotify's ``available_markets``
#: lists; this leaves room for long titles and refuses anything absurd.
MAX_SEARCH_RESPONSE_BYTES: Final = 512 * 1024
#: Longer queries are refused before any request (the validator allows 200).
MAX_QUERY_LENGTH: Final = 500
#: Used when a 429 carries no usable ``Retry-After``.
DEFAULT_RETRY_AFTER: Final = timedelta(seconds=5)
#: A longer ``Retry-After`` is cut to this, so a wrong header cannot stop search for days.
MAX_RETRY_AFTER: Final = timedelta(hours=1)

# Per-field bounds on provider text: the display cuts far shorter, these only
# keep a hostile answer from filling memory with one track.
_MAX_TEXT: Final = 1000
_MAX_ARTISTS: Final = 10
_MAX_IMAGES: Final = 20
_MAX_DURATION_MS: Final = 24 * 3600 * 1000
# Smallest image width worth showing as a thumbnail (Spotify sends 640, 300, 64).
_THUMBNAIL_WIDTH: Final = 160
_MARKET = re.compile(r"^(?:[A-Z]{2}|from_token)$")
# Any number of digits is a delay in seconds (RFC 9110 10.2.3): one too long
# to convert is longer than MAX_RETRY_AFTER, not unreadable.
_DELTA_SECONDS = re.compile(r"^[0-9]+$")
_MAX_DELTA_DIGITS: Final = 10
# Not printable to str.isprintable(), yet ordinary text in a query: private
# use (U+F8FF, the Apple logo) and code points this interpreter's Unicode
# database does not know yet (emoji newer than it, such as U+1FAE8). The
# validator lets them through; refusing them here answered "one line of at
# most 500 characters" to a one-word query.
_TEXT_UNKNOWN_TO_PYTHON: Final = frozenset({"Co", "Cn"})


def _one_printable_line(query: str) -> bool:
    """Whether ``query`` has no control, format, separator or surrogate character."""
    if query.isprintable():
        return True
    return all(
        char.isprintable() or unicodedata.category(char) in _TEXT_UNKNOWN_TO_PYTHON
        for char in query
    )


def _market(value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or not _MARKET.match(value)):
        raise ValueError("a market is an ISO 3166-1 alpha-2 code (such as 'DE') or 'from_token'")
    return value


@attrs.frozen(kw_only=True)
class CatalogApi:
    """Where one platform's Spotify-shaped Web API lives, and how to reach it.

    ``api_base_url`` is the origin the ``/v1/...`` paths hang off
    (``https://api.spotify.com``). It must be ``https``; plain ``http`` is
    accepted only on a loopback host with ``allow_insecure_http=True`` (the
    demo provider in tests and the offline console). ``pins`` are SHA-256
    certificate fingerprints, as for :class:`OAuthProvider`, and are checked
    in addition to normal certificate verification. ``market`` is sent with
    every search when set (``"from_token"``: the user's own country).
    """

    name: str = attrs.field(converter=valid_platform)
    api_base_url: str
    pins: frozenset[str] = attrs.field(factory=frozenset, converter=normalize_pins)
    allow_insecure_http: bool = False
    market: str | None = attrs.field(default=None, converter=_market)

    def __attrs_post_init__(self) -> None:
        check_endpoint_url(
            self.name,
            "api_base_url",
            self.api_base_url,
            allow_insecure_http=self.allow_insecure_http,
        )

    @property
    def search_url(self) -> str:
        """The search endpoint: ``{api_base_url}/v1/search``."""
        return self.api_base_url.rstrip("/") + "/v1/search"


def spotify_api(*, pins: Iterable[str] = (), market: str | None = "from_token") -> CatalogApi:
    """Return Spotify's Web API (``https://api.spotify.com``).

    ``market="from_token"`` limits results to what the user can play in
    their own country (it needs the ``user-read-private`` scope, which the
    Spotify OAuth preset asks for).
    """
    return CatalogApi(name="spotify", api_base_url=SPOTIFY_API_BASE, pins=pins, market=market)


def catalog_api_for(provider: OAuthProvider) -> CatalogApi | None:
    """Return the catalog API that goes with an OAuth provider, or ``None`` if it has none.

    * Spotify's accounts service (``accounts.spotify.com``): Spotify's Web
      API. Its pins are not copied: ``api.spotify.com`` presents a
      different certificate than the accounts service.
    * A loopback test provider (plain ``http`` on 127.0.0.1 with
      ``allow_insecure_http``, like the demo provider): it serves its
      Spotify-shaped API at the origin of its token endpoint.
    * Anything else (Discord, for instance): no catalog.
    """
    token_url = urlsplit(provider.token_url)
    host = (token_url.hostname or "").lower()
    if provider.name == "spotify" and host == _SPOTIFY_ACCOUNTS_HOST:
        return spotify_api()
    if provider.allow_insecure_http and token_url.scheme == "http" and is_loopback_host(host):
        return CatalogApi(
            name=provider.name,
            api_base_url=f"{token_url.scheme}://{token_url.netloc}",
            allow_insecure_http=True,
        )
    return None


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value[:_MAX_TEXT]


def _url(value: object) -> str | None:
    # Only bounded here; whether it is safe to show is the sanitizer's call.
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        return None
    return value


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _artists(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    names: list[str] = []
    for artist in value[:_MAX_ARTISTS]:
        name = _text(artist.get("name")) if isinstance(artist, dict) else None
        if name:
            names.append(name)
    return tuple(names)


def _thumbnail(album: Mapping[str, Any]) -> str | None:
    images = album.get("images")
    if not isinstance(images, list):
        return None
    candidates: list[tuple[str, int | None]] = []
    for image in images[:_MAX_IMAGES]:
        if not isinstance(image, dict):
            continue
        url = _url(image.get("url"))
        if url is not None:
            candidates.append((url, _whole_number(image.get("width"))))
    if not candidates:
        return None
    # The smallest image that still looks good as a thumbnail; failing
    # that, the provider's first (Spotify lists the widest first).
    sized = [(width, url) for url, width in candidates if width and width >= _THUMBNAIL_WIDTH]
    return min(sized)[1] if sized else candidates[0][0]


def _duration(value: object) -> timedelta | None:
    milliseconds = _whole_number(value)
    if milliseconds is None or not 0 < milliseconds <= _MAX_DURATION_MS:
        return None
    return timedelta(milliseconds=milliseconds)


class SpotifyWebApiCatalog(OwnedSession):
    """The :class:`~timmybot_core.ports.catalog.MusicCatalog` port over Spotify's Web API.

    ``apis`` are the platforms that speak it (names must be unique; their
    order is the order of preference). ``timeout`` bounds every call
    (connect and total). ``min_tls`` and ``cafile`` are as for the OAuth
    client. ``session`` is an aiohttp session to use (the caller keeps
    owning it); without one the catalog creates its own on first use and
    closes it in :meth:`close`. ``clock`` times the rate-limit back-off.
    """

    USER_AGENT = "timmybot-catalog"

    def __init__(
        self,
        apis: Sequence[CatalogApi],
        *,
        timeout: timedelta = timedelta(seconds=5),
        min_tls: MinTLS = "1.2",
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        cafile: str | os.PathLike[str] | None = None,
    ) -> None:
        self._apis = self._init_transport(
            apis,
            what="catalog",
            named="catalog APIs",
            timeout=timeout,
            min_tls=min_tls,
            session=session,
            cafile=cafile,
        )
        self._clock: Clock = clock if clock is not None else SystemClock()
        # Per platform: until when searches fail fast, and the wait the 429 asked for.
        self._blocked_until: dict[str, tuple[datetime, timedelta]] = {}

    def __repr__(self) -> str:
        return (
            f"SpotifyWebApiCatalog(platforms={self.platforms()!r}, "
            f"min_tls={self._min_tls!r}, timeout={self._timeout_seconds:g}s)"
        )

    # -- configuration -----------------------------------------------------

    def platforms(self) -> tuple[str, ...]:
        """Return the configured platforms, in order of preference."""
        return tuple(self._apis)

    def api(self, platform: str) -> CatalogApi:
        """Return ``platform``'s API, or raise :class:`OAuthError` if it has none."""
        api = self._apis.get(platform)
        if api is None:
            not_configured(platform, "search", OAuthError)
        return api

    def rate_limited_for(self, platform: str) -> timedelta:
        """Return how long searches on ``platform`` still wait for a 429 (zero if not)."""
        blocked = self._blocked_until.get(platform)
        if blocked is None:
            return timedelta(0)
        until, wait = blocked
        now = self._clock.now()
        left = until - now
        if left > wait:
            # More left than the provider asked for: the wall clock was set
            # back since the 429. Wait what it asked from now, not for as
            # long as the clock went back (a day's step blocked search a day).
            self._blocked_until[platform] = (now + wait, wait)
            return wait
        return max(timedelta(0), left)

    # -- the port ----------------------------------------------------------

    async def search(
        self,
        platform: str,
        query: str,
        *,
        access_token: str,
        limit: int = DEFAULT_SEARCH_LIMIT,
    ) -> tuple[CatalogTrack, ...]:
        """Return at most ``limit`` tracks matching ``query`` (``GET /v1/search?type=track``)."""
        api = self.api(platform)
        if not isinstance(query, str) or not query.strip():
            raise ValueError("the search query cannot be empty")
        if len(query) > MAX_QUERY_LENGTH or not _one_printable_line(query):
            raise ValueError(
                f"the search query must be one line of at most {MAX_QUERY_LENGTH} characters"
            )
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_SEARCH_LIMIT
        ):
            raise ValueError(
                f"the search limit must be a whole number from 1 to {MAX_SEARCH_LIMIT}"
            )
        if not is_header_token(access_token):
            raise OAuthError(
                f"{api.name}: the access token is empty or has invalid characters",
                platform=api.name,
            )
        wait = self.rate_limited_for(api.name)
        if wait > timedelta(0):
            raise ProviderRateLimited(
                f"{api.name}: search is rate limited for {_seconds(wait)} more seconds",
                platform=api.name,
                retry_after=wait,
            )
        params = {"q": query, "type": "track", "limit": str(limit)}
        if api.market is not None:
            params["market"] = api.market
        response, body = await self._send(
            "GET",
            api.search_url,
            api,
            "search",
            limit=MAX_SEARCH_RESPONSE_BYTES,
            read_errors=False,
            params=params,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        _log.debug("catalog platform=%s status=%d", api.name, response.status)
        self._raise_for_status(api, response.status, response.headers.get("Retry-After"))
        tracks = self._parse(api, body, limit)
        _log.debug("catalog platform=%s results=%d", api.name, len(tracks))
        return tracks

    # -- HTTP --------------------------------------------------------------

    def _raise_for_status(self, api: CatalogApi, status: int, retry_after: str | None) -> None:
        name = api.name
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise OAuthError(
                f"{name}: the search endpoint answered a redirect ({status}); not followed",
                platform=name,
            )
        if status == 401:
            raise ReLinkRequired(
                f"{name}: the search endpoint refused the access token (HTTP 401)",
                platform=name,
            )
        if status == 429:
            wait = self._retry_after(retry_after)
            self._blocked_until[name] = (self._clock.now() + wait, wait)
            _log.warning("catalog platform=%s rate limited for %d s", name, _seconds(wait))
            raise ProviderRateLimited(
                f"{name}: the search endpoint is rate limiting us (HTTP 429); "
                f"retry in {_seconds(wait)} seconds",
                platform=name,
                retry_after=wait,
            )
        if status >= 500:
            raise ProviderUnavailable(
                f"{name}: the search endpoint is unavailable (HTTP {status})", platform=name
            )
        raise OAuthError(
            f"{name}: the search endpoint refused the request (HTTP {status})", platform=name
        )

    def _retry_after(self, header: str | None) -> timedelta:
        """Read ``Retry-After`` (seconds or an HTTP date), bounded to 1 s .. MAX_RETRY_AFTER."""
        wait: timedelta | None = None
        value = (header or "").strip()
        if _DELTA_SECONDS.match(value):
            digits = value.lstrip("0")
            wait = (
                timedelta(seconds=int(digits or "0"))
                if len(digits) <= _MAX_DELTA_DIGITS
                else MAX_RETRY_AFTER
            )
        elif value:
            try:
                moment = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                moment = None
            if moment is not None and moment.tzinfo is not None:
                wait = moment - self._clock.now()
        if wait is None:
            return DEFAULT_RETRY_AFTER
        return min(max(wait, timedelta(seconds=1)), MAX_RETRY_AFTER)

    # -- parsing -----------------------------------------------------------

    @classmethod
    def _parse(cls, api: CatalogApi, body: bytes, limit: int) -> tuple[CatalogTrack, ...]:
        page = json_object(body, api.name, "search").get("tracks")
        if not isinstance(page, dict):
            malformed(api.name, "search", "no tracks object")
        items = page.get("items")
        if not isinstance(items, list):
            malformed(api.name, "search", "tracks.items is not a list")
        tracks: list[CatalogTrack] = []
        for item in items:
            if len(tracks) >= limit:
                break
            # Spotify sends null items now and then; anything that is not
            # an object is skipped rather than failing the whole search.
            if isinstance(item, dict):
                tracks.append(cls._track(api, item))
        return tuple(tracks)

    @staticmethod
    def _track(api: CatalogApi, item: Mapping[str, Any]) -> CatalogTrack:
        album = item.get("album")
        album = album if isinstance(album, dict) else {}
        links = item.get("external_urls")
        links = links if isinstance(links, dict) else {}
        return CatalogTrack(
            platform=api.name,
            title=_text(item.get("name")) or "",
            artists=_artists(item.get("artists")),
            album=_text(album.get("name")),
            duration=_duration(item.get("duration_ms")),
            thumbnail_url=_thumbnail(album),
            url=_url(links.get("spotify")),
        )


def _seconds(wait: timedelta) -> int:
    # Rounded up: "retry in 0 seconds" would invite an immediate retry.
    return max(1, -int(-wait.total_seconds() // 1))
