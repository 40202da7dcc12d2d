"""From a slash command's typed command to the bus and back to Discord.

Every slash command's ``invoke`` builds its command from its typed options
and calls :meth:`CommandRunner.run`, which runs it with
:func:`~timmybot_bot.app.replies.chat` (the guard, the admin check, the
handler, the failure table) and sends the reply: Discord and the console run
the same code and get the same reply.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import hikari
import lightbulb
from lightbulb.components import MenuContext

from timmybot_bot.app.commands import Command, Invocation
from timmybot_bot.app.failures import UsageError
from timmybot_bot.app.messagebus import MessageBus
from timmybot_bot.app.replies import Reply, chat, refused
from timmybot_bot.discord.confirm import Confirmations
from timmybot_bot.discord.replies import ReplySender, Responder, in_time
from timmybot_core import Clock, ResponseSanitizer

__all__ = ["CommandRunner", "invocation_for"]


def invocation_for(target: Responder) -> Invocation:
    """Who runs the command, where, and with which roles.

    The guild's ``@everyone`` role (whose ID is the guild's) is left out:
    every member holds it, so it must never count as an admin role.
    """
    guild_id = target.guild_id
    roles: frozenset[int] = frozenset()
    if guild_id is not None and target.member is not None:
        roles = frozenset(int(role) for role in target.member.role_ids if role != guild_id)
    return Invocation(
        user_id=int(target.user.id),
        guild_id=int(guild_id) if guild_id is not None else None,
        role_ids=roles,
    )


@attrs.define(kw_only=True, eq=False, repr=False)
class CommandRunner:
    """Runs a slash command's command through the bus and sends the reply."""

    _bus: MessageBus
    _sanitizer: ResponseSanitizer
    clock: Clock
    _sender: ReplySender
    _defer_after: float = 2.0
    _confirm_timeout: timedelta = timedelta(minutes=5)
    confirmations: Confirmations = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not 0 <= self._defer_after < 3:
            raise ValueError(
                "defer_after must be at least 0 and under Discord's 3 seconds "
                f"(got {self._defer_after})"
            )
        if self._confirm_timeout > timedelta(minutes=15):
            raise ValueError(
                "confirm_timeout must not exceed 15 minutes, the life of an interaction token "
                f"(got {self._confirm_timeout})"
            )
        self.confirmations = Confirmations(
            sender=self._sender,
            clock=self.clock,
            timeout=self._confirm_timeout,
            defer_after=self._defer_after,
            deliver=self._deliver_confirmed,
        )

    async def run(self, context: lightbulb.Context, command: Command) -> None:
        """Run ``command`` for the context's user and answer the interaction."""
        reply = await in_time(
            chat(self._bus, self._sanitizer, invocation_for(context), command),
            defer_after=self._defer_after,
            # Deferred replies are private: the reply's own choice is not
            # known yet, and private is the safe side.
            defer=lambda: self._sender.defer(context, ephemeral=True),
        )
        await self.deliver(context, reply)

    async def refuse(self, context: lightbulb.Context, error: UsageError) -> None:
        """Answer options no command could be built from (a malformed guild ID, filters)."""
        await self.deliver(
            context, await refused(self._bus, self._sanitizer, invocation_for(context), error)
        )

    async def deliver(self, context: lightbulb.Context, reply: Reply) -> None:
        """Send ``reply``: in the channel, as a direct message, or with buttons.

        A quiet reply (a rate-limit refusal the member was already told
        about) sends nothing, unless the interaction was deferred: then it
        must be closed with the text.
        """
        if reply.quiet and not context.initial_response_sent.is_set():
            return
        if reply.confirmation is not None:
            await self.confirmations.ask(context, reply, reply.confirmation)
            return
        if reply.direct:
            note = await self._direct(context.user, reply, context.command_data.qualified_name)
            await self._sender.respond(context, note, ephemeral=True)
            return
        await self._sender.respond(
            context, self._sender.trusted(reply.text), ephemeral=reply.ephemeral
        )

    async def _deliver_confirmed(self, context: MenuContext, reply: Reply) -> None:
        # The result replaces the prompt (and its buttons).
        if reply.direct:
            text = await self._direct(context.user, reply, "")
        else:
            text = self._sender.trusted(reply.text)
        await self._sender.respond(context, text, edit=True, components=[])

    async def _direct(self, user: hikari.User, reply: Reply, command: str) -> str:
        sent = await self._sender.direct(user, self._sender.trusted(reply.text), reply.attachment)
        if sent:
            return "Sent to you in a direct message."
        again = f" and run /{command} again" if command else ""
        return (
            "I could not send you a direct message. Allow direct messages from this "
            f"server's members (Privacy Settings){again}."
        )
