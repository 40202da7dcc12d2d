"""The one place that sends anything to Discord.

Every response, follow-up, edit and direct message of the Discord layer goes
through :class:`ReplySender`, which sends it with user, role and everyone
mentions disabled. Text produced by :func:`timmybot_bot.app.handlers.run_command`
is already safe (every user-derived part went through
``ResponseSanitizer.for_discord``); text the Discord layer writes itself
(notes, error messages, confirmation prompts) passes through
``for_discord`` here. Both are cut to Discord's message limit.

``run_command`` text is deliberately not escaped a second time: it carries
links such as ``/link``'s authorization URL, which markdown escaping would
break (an underscore in ``client_id`` would gain a backslash).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypedDict, TypeVar

import hikari
import lightbulb
from lightbulb.components import MenuContext

from timmybot_bot.app.replies import Attachment
from timmybot_core import DiscordLimits, ResponseSanitizer

__all__ = ["ReplySender", "Responder", "SafeText", "in_time"]

T = TypeVar("T")

_log = logging.getLogger("timmybot.discord")

Responder = lightbulb.Context | MenuContext
"""Something an interaction reply can be sent through: a command or a button press."""

_ELLIPSIS: Final = "…"


class _Mentions(TypedDict):
    user_mentions: bool
    role_mentions: bool
    mentions_everyone: bool


#: Sent with every message: nothing the bot writes may ping anyone.
_SILENT: Final = _Mentions(user_mentions=False, role_mentions=False, mentions_everyone=False)


class SafeText(str):
    """Text already safe to send: a ``run_command`` reply, or text this module escaped."""

    __slots__ = ()


def _fit(text: str) -> str:
    if len(text) <= DiscordLimits.MESSAGE:
        return text
    cut = text[: DiscordLimits.MESSAGE - len(_ELLIPSIS)]
    # Never leave a lone escaping backslash at the cut: it would escape the
    # ellipsis and read oddly.
    if cut.endswith("\\") and not cut.endswith("\\\\"):
        cut = cut[:-1]
    return cut + _ELLIPSIS


class ReplySender:
    """Sends replies, notes and direct messages with every mention disabled."""

    def __init__(self, sanitizer: ResponseSanitizer) -> None:
        self.sanitizer = sanitizer

    def safe(self, text: str) -> SafeText:
        """Return Discord-layer ``text`` escaped with ``for_discord`` (idempotent)."""
        if isinstance(text, SafeText):
            return text
        return SafeText(self.sanitizer.for_discord(text))

    def content(self, text: str) -> str:
        """Return what a message sent with ``text`` holds: escaped, then cut to fit.

        Every way this sender sends text goes through here, so a subclass
        that changes the words (a host bot's name) changes them everywhere.
        """
        return _fit(self.safe(text))

    def trusted(self, text: str) -> SafeText:
        """Mark ``run_command``'s reply text as safe (it was sanitized at its source)."""
        return SafeText(text)

    async def respond(
        self,
        target: Responder,
        text: str,
        *,
        ephemeral: bool = False,
        components: Sequence[hikari.api.ComponentBuilder] | None = None,
        edit: bool = False,
    ) -> hikari.Snowflakeish:
        """Answer an interaction (or follow up, once it was answered or deferred).

        ``edit`` (button presses only) replaces the message the button is on,
        which keeps its own visibility (``ephemeral`` is ignored then).
        ``components=None`` leaves a message's buttons as they are when
        editing; pass ``[]`` to remove them.
        """
        content = self.content(text)
        built: hikari.UndefinedOr[Sequence[hikari.api.ComponentBuilder]] = (
            hikari.UNDEFINED if components is None else components
        )
        if isinstance(target, MenuContext):
            return await target.respond(
                content, ephemeral=ephemeral and not edit, edit=edit, components=built, **_SILENT
            )
        return await target.respond(content, ephemeral=ephemeral, components=built, **_SILENT)

    async def defer(
        self, target: Responder, *, ephemeral: bool = False, edit: bool = False
    ) -> None:
        """Acknowledge an interaction now and answer it later (no-op once answered).

        Sent here rather than by lightbulb's ``defer`` so that this response,
        too, carries the disabled mentions. ``edit`` (button presses only)
        means the answer will replace the message the button is on.
        """
        if target.initial_response_sent.is_set():
            return
        flags = hikari.MessageFlag.EPHEMERAL if ephemeral and not edit else hikari.MessageFlag.NONE
        if edit and isinstance(target, MenuContext):
            await target.interaction.create_initial_response(
                hikari.ResponseType.DEFERRED_MESSAGE_UPDATE, flags=flags, **_SILENT
            )
        else:
            await target.interaction.create_initial_response(
                hikari.ResponseType.DEFERRED_MESSAGE_CREATE, flags=flags, **_SILENT
            )
        target.initial_response_sent.set()

    async def edit(
        self,
        target: lightbulb.Context,
        response_id: hikari.Snowflakeish,
        text: str,
        *,
        components: Sequence[hikari.api.ComponentBuilder] = (),
    ) -> None:
        """Replace a response sent earlier for ``target`` (buttons removed by default)."""
        await target.edit_response(
            response_id, self.content(text), components=list(components), **_SILENT
        )

    async def direct(
        self, user: hikari.PartialUser, text: str, attachment: Attachment | None = None
    ) -> bool:
        """Send ``text`` (and the file) to ``user`` in a direct message.

        Return ``False`` when Discord refuses because the user does not
        accept direct messages from the bot; other failures raise.
        """
        file: hikari.UndefinedOr[hikari.Bytes] = hikari.UNDEFINED
        if attachment is not None:
            file = hikari.Bytes(attachment.content, attachment.filename)
        try:
            await user.send(self.content(text), attachment=file, **_SILENT)
        except hikari.ForbiddenError as error:
            # 50007 is "Cannot send messages to this user" (DMs closed, bot
            # blocked, no shared server); any 403 here means the same to the user.
            _log.info("direct message refused by Discord (code %s)", error.code)
            return False
        return True


async def in_time(
    work: Awaitable[T], *, defer_after: float, defer: Callable[[], Awaitable[None]]
) -> T:
    """Await ``work``; if it is not done within ``defer_after`` seconds, ``defer`` first.

    Discord drops an interaction that gets no response within three seconds.
    A quick command answers directly (so its reply can still choose to be
    ephemeral or not); a slow one is deferred and answered by a follow-up.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=defer_after)
    if not done:
        try:
            await defer()
        except BaseException:
            # The work goes on (half-cancelling a command is worse); make sure
            # its outcome is observed.
            task.add_done_callback(_observe)
            raise
    return await task


def _observe(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("a command finished after its reply failed: %s", type(task.exception()).__name__)
