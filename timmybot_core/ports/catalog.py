"""The music catalog port: search a linked platform's catalog with the user's token.

What comes back is *provider text*: titles, artist names and URLs written by
whoever uploaded the track. The adapter only checks its shape (types,
lengths, counts); it is not safe to show until it has passed through
:class:`~timmybot_core.safety.sanitizer.ResponseSanitizer` at the display boundary
(:meth:`CatalogTrack.track_info` hands it over in the sanitizer's type).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Final, Protocol, runtime_checkable

import attrs

from timmybot_core.domain.tokens import valid_platform
from timmybot_core.safety.sanitizer import TrackInfo

__all__ = ["DEFAULT_SEARCH_LIMIT", "MAX_SEARCH_LIMIT", "CatalogTrack", "MusicCatalog"]

#: How many results a search returns unless asked otherwise.
DEFAULT_SEARCH_LIMIT: Final = 5
#: The most results one search may ask for (a Discord message shows a handful;
#: a small page also keeps the provider's answer small).
MAX_SEARCH_LIMIT: Final = 10


def _artists(values: Iterable[str]) -> tuple[str, ...]:
    # One artist given as a bare string must not become one artist per letter.
    return (values,) if isinstance(values, str) else tuple(values)


@attrs.frozen(kw_only=True)
class CatalogTrack:
    """One track found in a platform's catalog (unsanitized provider text).

    ``artists`` may be empty and ``title`` may be empty: providers send
    such records, and the display shows a placeholder. ``duration`` and the
    URLs are ``None`` when the provider sent nothing usable.
    """

    platform: str = attrs.field(converter=valid_platform)
    title: str
    artists: tuple[str, ...] = attrs.field(default=(), converter=_artists)
    album: str | None = None
    duration: timedelta | None = None
    thumbnail_url: str | None = None
    url: str | None = None

    @property
    def artist(self) -> str:
        """The artists as one line, in the provider's order."""
        return ", ".join(self.artists)

    def track_info(self) -> TrackInfo:
        """Return the track as the sanitizer's :class:`TrackInfo` (still unsanitized)."""
        return TrackInfo(
            title=self.title, artist=self.artist, thumbnail_url=self.thumbnail_url, url=self.url
        )


@runtime_checkable
class MusicCatalog(Protocol):
    """Searches the catalogs of the platforms users link, with the user's own token.

    Errors are mapped like the OAuth client's: the platform refusing the
    access token (HTTP 401) raises
    :class:`~timmybot_core.domain.errors.ReLinkRequired`; a rate limit (HTTP 429)
    raises :class:`~timmybot_core.domain.errors.ProviderRateLimited` with the
    provider's ``Retry-After``; 5xx answers, timeouts and connection errors
    raise :class:`~timmybot_core.domain.errors.ProviderUnavailable`; anything else
    (a malformed or oversized answer, another 4xx, an unconfigured
    platform) raises :class:`~timmybot_core.domain.errors.OAuthError` naming the
    platform. No message ever contains the access token or the query.
    """

    def platforms(self) -> tuple[str, ...]:
        """Return the platforms whose catalog this adapter can search, in order of preference."""
        ...

    async def search(
        self, platform: str, query: str, *, access_token: str, limit: int = DEFAULT_SEARCH_LIMIT
    ) -> tuple[CatalogTrack, ...]:
        """Return at most ``limit`` (1 to :data:`MAX_SEARCH_LIMIT`) tracks matching ``query``.

        Raises ``ValueError`` for an empty query or a limit out of range.
        """
        ...
