"""How ``/search`` shows catalog results: every provider string made safe for Discord.

Titles, artist names and URLs come from the music platform, which takes them
from whoever uploaded the track, so they are treated like user input:

* text goes through ``ResponseSanitizer.sanitize_string`` (one line, no
  control, bidi or zero-width characters, no ``<``/``>``, bounded), then has
  its URL schemes defanged (a title must not become a clickable link), then
  ``ResponseSanitizer.for_discord`` (mentions neutralized, markdown escaped,
  cut to a field limit);
* URLs go through ``ResponseSanitizer.validate_url`` (``https`` only unless
  http is allowed, public hosts only), then every character that could end
  Discord's ``<...>`` link or start a mention is percent-encoded; a URL that
  fails, or is too long to be worth the space, is left out.

The whole reply stays within Discord's 2000-character message limit: results
that do not fit are dropped, never cut in half.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Final
from urllib.parse import quote

from timmybot_core import CatalogTrack, DiscordLimits, ResponseSanitizer

__all__ = [
    "format_duration",
    "render_results",
    "safe_link",
    "safe_text",
    "split_platform_option",
]

# The optional leading ``platform:<name>`` of the console's ``/search``.
_PLATFORM_PREFIX = re.compile(r"^\s*platform:(\S+)", re.IGNORECASE)
# "scheme://": after a scheme, ':' becomes U+2236 RATIO, which no client
# parses as a URL, so "http://evil" in a title stays text.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?=//)")
_RATIO: Final = "\u2236"
# RFC 3986 reserved and unreserved characters, minus '@' (it could start a
# mention), plus '%' (existing escapes stay as they are). Everything else,
# '<', '>', '|', '`', '"', spaces and non-ASCII included, is percent-encoded.
_URL_SAFE: Final = ":/?#[]!$&'()*+,;=-._~%"
_MAX_LINK: Final = 200
_TITLE_LIMIT: Final = 100
_ARTIST_LIMIT: Final = 100
_QUERY_LIMIT: Final = 100


def split_platform_option(args: str) -> tuple[str | None, str]:
    """Split the console's ``"platform:spotify halo"`` into ``("spotify", "halo")``.

    Only a leading ``platform:`` with a name right after the colon counts, so
    a query that merely contains the word, or ``"platform: halo"``, is
    searched as typed. The platform is lower-cased. (Discord has a typed
    option for the platform and never comes here.)
    """
    match = _PLATFORM_PREFIX.match(args)
    if match is None:
        return None, args
    return match.group(1).lower(), args[match.end() :]


def safe_text(sanitizer: ResponseSanitizer, text: str, *, limit: int) -> str:
    """Return provider text as one safe line of at most ``limit`` characters (maybe empty)."""
    line = sanitizer.sanitize_string(text)
    return sanitizer.for_discord(_SCHEME.sub(r"\1" + _RATIO, line), limit=limit)


def safe_link(sanitizer: ResponseSanitizer, url: object) -> str | None:
    """Return a URL fit to show inside ``<...>``, or ``None`` if it is unsafe or too long."""
    checked = sanitizer.validate_url(url)
    if checked is None:
        return None
    encoded = quote(checked, safe=_URL_SAFE)
    return encoded if len(encoded) <= _MAX_LINK else None


def format_duration(duration: timedelta | None) -> str | None:
    """Return ``3:41`` or ``1:02:03``; ``None`` for no duration."""
    if duration is None:
        return None
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _result(sanitizer: ResponseSanitizer, number: int, track: CatalogTrack) -> str:
    info = sanitizer.sanitize_track_info(track.track_info())
    title = safe_text(sanitizer, info.title, limit=_TITLE_LIMIT) or "Unknown title"
    artist = safe_text(sanitizer, info.artist, limit=_ARTIST_LIMIT) or "Unknown artist"
    line = f"{number}. **{title}** by {artist}"
    duration = format_duration(track.duration)
    if duration is not None:
        line += f" ({duration})"
    links = [
        f"{label}: <{url}>"
        for label, raw in (("listen", info.url), ("cover", info.thumbnail_url))
        if (url := safe_link(sanitizer, raw)) is not None
    ]
    if links:
        line += "\n   " + " · ".join(links)
    return line


def render_results(
    sanitizer: ResponseSanitizer,
    *,
    platform: str,
    query: str,
    tracks: Sequence[CatalogTrack],
    footer: str | None = None,
    limit: int = DiscordLimits.MESSAGE,
) -> str:
    """Return the ``/search`` reply: a header, one entry per track, an optional footer.

    ``platform`` and ``footer`` are the bot's own text; ``query`` and every
    field of ``tracks`` are treated as untrusted. The reply is at most
    ``limit`` characters: tracks that do not fit are left out.
    """
    shown_query = safe_text(sanitizer, query, limit=_QUERY_LIMIT)
    shown_platform = safe_text(sanitizer, platform, limit=40)
    tail = f"\n{footer}" if footer else ""
    if not tracks:
        return f'No tracks found on {shown_platform} for "{shown_query}".' + tail
    reply = f'Top results on {shown_platform} for "{shown_query}":'
    for number, track in enumerate(tracks, start=1):
        entry = "\n" + _result(sanitizer, number, track)
        if len(reply) + len(entry) + len(tail) > limit:
            break
        reply += entry
    reply += tail
    # Unreachable with the field limits above; a last guard all the same.
    return reply if len(reply) <= limit else sanitizer.for_discord(reply, limit=limit)
