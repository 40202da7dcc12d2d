"""Sanitization of what the bot shows back: track metadata and Discord messages.

Text from music APIs and from users ends up in Discord messages, where HTML
stripping protects nothing: the dangers are mass mentions, markdown that
disguises links, bidi overrides that reverse what a reader sees, and
messages over Discord's length limits (which Discord rejects outright).
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from timmybot_core.safety.text import collapse_whitespace, limit_combining_marks, strip_invisible

__all__ = ["DiscordLimits", "ResponseSanitizer", "TrackInfo"]

ELLIPSIS: Final = "…"


class DiscordLimits:
    """Discord's documented length limits, in characters."""

    MESSAGE: Final = 2000
    EMBED_TITLE: Final = 256
    EMBED_DESCRIPTION: Final = 4096
    EMBED_FIELD_NAME: Final = 256
    EMBED_FIELD_VALUE: Final = 1024
    EMBED_FOOTER: Final = 2048
    EMBED_AUTHOR_NAME: Final = 256


@attrs.frozen(kw_only=True)
class TrackInfo:
    """What the bot shows about a track."""

    title: str
    artist: str
    thumbnail_url: str | None = None
    url: str | None = None


# Markdown that matters anywhere in a line: emphasis, strike, spoilers, code,
# masked links. The backslash is in the set so that user backslashes cannot
# un-escape what follows them.
_INLINE_MARKDOWN = frozenset("\\*_~|`[]")
# Markdown that only matters at the start of a line: quotes, headers,
# subtext ("-# ") and lists.
_LINE_START_MARKDOWN = frozenset(">#-+")
# "@everyone"/"@here" anywhere (Discord matches them inside words too), and
# the first character of "<@user>", "<@!user>", "<@&role>", "<#channel>",
# "</command:id>".
_MENTION_AT = re.compile(r"@(?=everyone|here)|(?<=<)[@#/]", re.IGNORECASE)
# Visible look-alikes that Discord never parses as mention syntax.
_NEUTRAL = {"@": "\uff20", "#": "\uff03", "/": "\u2215"}


def _escape_markdown(text: str) -> list[str]:
    """Split ``text`` into tokens with markdown escaped.

    A token is either one plain character or a two-character escape pair
    (backslash + markdown character). A pair already present in the input is
    kept as it is, which makes the escaping idempotent; returning tokens lets
    truncation avoid cutting a pair in half.
    """
    tokens: list[str] = []
    at_line_start = True
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        special = char in _INLINE_MARKDOWN or (at_line_start and char in _LINE_START_MARKDOWN)
        if char == "\\" and index + 1 < length:
            following = text[index + 1]
            if following in _INLINE_MARKDOWN or (
                at_line_start and following in _LINE_START_MARKDOWN
            ):
                tokens.append(char + following)
                index += 2
                at_line_start = False
                continue
        tokens.append("\\" + char if special else char)
        if char == "\n":
            at_line_start = True
        elif char != " ":
            at_line_start = False
        index += 1
    return tokens


class ResponseSanitizer:
    """Makes text safe to show: plain strings, track metadata, URLs, Discord messages.

    Every method accepts arbitrary text (lone surrogates included) and never
    raises on it; outputs always encode as UTF-8. Text means ``str``: ``None``
    or any other object is a programming error and raises ``TypeError`` naming
    its type, rather than silently becoming ``""`` (an empty reply hides the bug,
    and ``str()`` of an arbitrary object could show what was never meant to be
    shown).
    """

    __slots__ = ("_allow_http", "_max_string_length")

    def __init__(self, *, allow_http: bool = False, max_string_length: int = 200) -> None:
        if max_string_length < 1:
            raise ValueError(f"max_string_length must be at least 1 (got {max_string_length})")
        self._allow_http = allow_http
        self._max_string_length = max_string_length

    def sanitize_string(self, text: str) -> str:
        """Return ``text`` as one clean line of at most ``max_string_length`` characters.

        Control and format characters (bidi, zero-width) and ``<``/``>`` are
        removed and whitespace collapsed; letters of every script,
        apostrophes, quotes and ampersands stay ("Don't Stop Me Now"). A
        longer text is cut and ends with an ellipsis.

        Raises:
            TypeError: ``text`` is not a ``str`` (``None`` included).

        """
        raw = _require_text("sanitize_string", text)
        visible = limit_combining_marks(strip_invisible(raw))
        cleaned = collapse_whitespace(visible.replace("<", "").replace(">", ""))
        limit = self._max_string_length
        if len(cleaned) <= limit:
            return cleaned
        return cleaned[: limit - 1].rstrip() + ELLIPSIS

    def validate_url(self, url: object) -> str | None:
        """Return the URL if it is ``https`` with a public host, else ``None``.

        See :func:`timmybot_core.safety.urls.safe_url` for the exact rules; plain
        ``http`` is accepted only when the sanitizer was built with
        ``allow_http=True``.
        """
        # Imported here: the URL rules (and ipaddress) cost import time that a
        # bot which only escapes messages should not pay.
        from timmybot_core.safety.urls import safe_url

        return safe_url(url, allow_http=self._allow_http)

    def sanitize_track_info(self, track: TrackInfo) -> TrackInfo:
        """Return a copy of ``track`` with clean text and only safe URLs.

        An empty title or artist becomes a placeholder, because Discord
        rejects embeds with empty fields.
        """
        return TrackInfo(
            title=self.sanitize_string(track.title) or "Unknown title",
            artist=self.sanitize_string(track.artist) or "Unknown artist",
            thumbnail_url=self.validate_url(track.thumbnail_url),
            url=self.validate_url(track.url),
        )

    def for_discord(self, text: str, limit: int = DiscordLimits.MESSAGE) -> str:
        """Return ``text`` safe to put in a Discord message of at most ``limit`` characters.

        Mentions (``@everyone``, ``@here``, ``<@user>``, ``<@&role>``,
        ``<#channel>``, ``</command:id>``) are neutralized with visible
        look-alike characters, Discord markdown is escaped, control, bidi and
        zero-width characters are removed (line breaks stay), and the result
        is cut to ``limit`` characters with an ellipsis. Idempotent.

        Raises:
            TypeError: ``text`` is not a ``str`` (``None`` included).
            ValueError: ``limit`` is below 1.

        """
        raw = _require_text("for_discord", text)
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        visible = limit_combining_marks(strip_invisible(raw, keep_newlines=True))
        cleaned = _MENTION_AT.sub(lambda match: _NEUTRAL[match.group()], visible)
        tokens = _escape_markdown(cleaned)
        total = sum(len(token) for token in tokens)
        if total <= limit:
            return "".join(tokens)
        kept: list[str] = []
        budget = limit - len(ELLIPSIS)
        for token in tokens:
            if len(token) > budget:
                break
            kept.append(token)
            budget -= len(token)
        while kept and kept[-1].isspace():
            kept.pop()  # "word …" reads as a cut; "word…" is what we mean
        return "".join(kept) + ELLIPSIS


def _require_text(method: str, text: object) -> str:
    # Only the type's name goes into the message: the value may be anything,
    # a secret included.
    if not isinstance(text, str):
        raise TypeError(
            f"ResponseSanitizer.{method} takes a str, got {type(text).__name__}"
            " (pass text; there is no default for None)"
        )
    return text
