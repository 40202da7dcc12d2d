"""The bot's commands as plain async functions over :class:`Services`.

Discord (through lightbulb) and the offline console both call these, so a
command behaves, and replies, the same way in both. A reply's text is
always safe to send to Discord: every user-derived part has passed through
``ResponseSanitizer.for_discord``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import attrs

from timmybot_bot.bootstrap import Services

__all__ = ["COMMANDS", "Command", "Reply", "playlist", "search"]


@attrs.frozen(kw_only=True)
class Reply:
    """What a command answers: the text, and whether only the caller sees it."""

    text: str
    ephemeral: bool = False


async def search(services: Services, query: str) -> Reply:
    """``/search <query>``: validate a music search and show the decision."""
    result = services.validator.validate_search_query(query)
    if not result.ok:
        return Reply(text=f"Search rejected: {result.error}", ephemeral=True)
    shown = services.sanitizer.for_discord(result.value, limit=300)
    return Reply(text=f"Search accepted: {shown}", ephemeral=True)


async def playlist(services: Services, name: str) -> Reply:
    """``/playlist <name>``: validate a playlist name and show the decision."""
    result = services.validator.validate_playlist_name(name)
    if not result.ok:
        return Reply(text=f"Playlist name rejected: {result.error}", ephemeral=True)
    shown = services.sanitizer.for_discord(result.value, limit=200)
    return Reply(text=f"Playlist name accepted: {shown}", ephemeral=True)


@attrs.frozen(kw_only=True)
class Command:
    """A command's name, usage line, help text and handler."""

    name: str
    usage: str
    summary: str
    handler: Callable[[Services, str], Awaitable[Reply]]


COMMANDS: Final[tuple[Command, ...]] = (
    Command(
        name="search",
        usage="/search <query>",
        summary="check a music search query and show the cleaned value",
        handler=search,
    ),
    Command(
        name="playlist",
        usage="/playlist <name>",
        summary="check a playlist name and show the cleaned value",
        handler=playlist,
    ),
)
