"""Confirmation buttons for destructive commands (``/privacy delete``).

A reply that carries a :class:`~timmybot_bot.app.handlers.Confirmation` is sent
with two buttons, confirm and cancel, built as a lightbulb
:class:`~lightbulb.components.Menu` attached to the client. The rules:

- Only the user who ran the command can answer. Custom IDs are random
  (128 bits) and are never trusted alone: the presser's user ID is compared
  with the invoker's on every press, so a copied or forged ID does nothing.
- The action runs at most once: the first accepted press claims the
  confirmation before anything is awaited, so a double click or two
  concurrent presses cannot run it twice.
- A confirmation expires after ``timeout`` (checked with the services'
  clock on every press, and by a timer that removes the buttons). Pending
  confirmations live in this process's memory; after a restart their
  buttons answer nothing.
- The confirmed action runs its command through the application layer's
  bus, so for a guarded command the access guard is asked again: a kill
  switch or ban placed in between stops it. (``/privacy`` is not guarded: a
  user's rights do not depend on it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import attrs
import hikari
import lightbulb
from lightbulb.components import Menu, MenuContext, MenuHandle

from timmybot_bot.app.failures import describe
from timmybot_bot.app.replies import Confirmation, Reply
from timmybot_bot.discord.errors import reply_to_failure
from timmybot_bot.discord.replies import ReplySender, SafeText, in_time
from timmybot_core import Clock

__all__ = ["Confirmations"]

_log = logging.getLogger("timmybot.discord")

Deliver = Callable[[MenuContext, Reply], Awaitable[None]]
_LABEL_LIMIT = 80  # Discord's limit for a button label
CUSTOM_ID_PREFIX = "timmybot:"
_LISTEN_GRACE = 60.0  # seconds the buttons keep answering "expired" after expiry


@attrs.define(kw_only=True, eq=False)
class _Pending:
    """One confirmation waiting for its user."""

    owner_id: int
    command: str
    confirmation: Confirmation
    expires_at: datetime
    claimed: bool = False
    expired: bool = False
    handle: MenuHandle | None = None
    timer: asyncio.Task[None] | None = None

    def finish(self) -> None:
        """Stop listening for presses and forget the timer."""
        if self.handle is not None:
            self.handle.stop_interacting()
        if self.timer is not None and self.timer is not asyncio.current_task():
            self.timer.cancel()


class _ConfirmMenu(Menu):
    """The two buttons; every press goes through :meth:`Confirmations._admit` first."""

    def __init__(self, owner: Confirmations, pending: _Pending) -> None:
        self._owner = owner
        self._pending = pending
        token = secrets.token_urlsafe(16)
        label = owner.sender.safe(pending.confirmation.label)[:_LABEL_LIMIT] or "Confirm"
        self.confirm = self.add_interactive_button(
            hikari.ButtonStyle.DANGER,
            lambda ctx: owner._confirmed(ctx, pending),
            custom_id=f"{CUSTOM_ID_PREFIX}confirm:{token}",
            label=label,
        )
        self.cancel = self.add_interactive_button(
            hikari.ButtonStyle.SECONDARY,
            lambda ctx: owner._cancelled(ctx, pending),
            custom_id=f"{CUSTOM_ID_PREFIX}cancel:{token}",
            label="Cancel",
        )

    async def predicate(self, ctx: MenuContext) -> bool:
        """Admit only the invoker's first press of a live confirmation."""
        try:
            return await self._owner._admit(ctx, self._pending)
        except Exception as error:  # noqa: BLE001 - hikari would log it with its message
            # A failed answer (Discord unreachable) must not reach hikari's
            # event manager, whose log line would quote the request URL and
            # with it the interaction token.
            _log.error("a confirmation press failed: %s", describe(error))
            return False


@attrs.define(kw_only=True, eq=False, repr=False)
class Confirmations:
    """Sends confirmation prompts and runs their actions when confirmed."""

    sender: ReplySender
    _clock: Clock
    _timeout: timedelta
    _defer_after: float
    _deliver: Deliver
    _pending: set[_Pending] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        if self._timeout <= timedelta(0):
            raise ValueError(f"the confirmation timeout must be positive (got {self._timeout})")

    async def ask(
        self,
        context: lightbulb.Context,
        reply: Reply,
        confirmation: Confirmation,
    ) -> None:
        """Show ``reply`` with confirm and cancel buttons for ``context``'s user."""
        pending = _Pending(
            owner_id=int(context.user.id),
            command=context.command_data.qualified_name,
            confirmation=confirmation,
            expires_at=self._clock.now() + self._timeout,
        )
        menu = _ConfirmMenu(self, pending)
        text = self.sender.trusted(reply.text)
        prompt = self.sender.safe(confirmation.prompt)
        if prompt and prompt not in text:
            text = SafeText(f"{text}\n{prompt}" if text else prompt)
        # Listen before the buttons exist, so that no press can come first.
        # lightbulb ends the listener after its timeout (a little after ours,
        # which edits the buttons away) even if nobody ever answers.
        listen = self._timeout.total_seconds() + 2 * _LISTEN_GRACE
        pending.handle = menu.attach_persistent(context.client, timeout=listen)
        await asyncio.sleep(0)  # the listener registers itself in its first step
        self._pending.add(pending)
        try:
            response_id = await self.sender.respond(
                context, text, ephemeral=reply.ephemeral, components=menu
            )
        except BaseException:
            self._forget(pending)
            raise
        pending.timer = context.client.safe_create_task(
            self._expire_later(pending, context, response_id)
        )

    async def close(self) -> None:
        """Stop every pending confirmation (the bot is stopping)."""
        for pending in list(self._pending):
            pending.claimed = True
            self._forget(pending)

    def _forget(self, pending: _Pending) -> None:
        pending.finish()
        self._pending.discard(pending)

    def _expired_text(self, pending: _Pending) -> str:
        return (
            f"This confirmation expired; nothing was changed. Run /{pending.command} again "
            "if you still want to."
        )

    async def _admit(self, ctx: MenuContext, pending: _Pending) -> bool:
        if int(ctx.user.id) != pending.owner_id:
            await self.sender.respond(
                ctx,
                f"Only the person who ran /{pending.command} can answer this.",
                ephemeral=True,
            )
            return False
        if pending.claimed:
            text = self._expired_text(pending) if pending.expired else "This was already answered."
            await self.sender.respond(ctx, text, ephemeral=True)
            return False
        if self._clock.now() >= pending.expires_at:
            # The timer removes the buttons too, and forgets this one later.
            pending.claimed = pending.expired = True
            await self.sender.respond(ctx, self._expired_text(pending), edit=True, components=[])
            return False
        # Claimed before any await: a second press can no longer get through.
        # The menu keeps listening until the answer is shown, so that a
        # second press meanwhile is told why nothing happens.
        pending.claimed = True
        if pending.timer is not None:
            pending.timer.cancel()
        return True

    async def _confirmed(self, ctx: MenuContext, pending: _Pending) -> None:
        where = f"/{pending.command} (confirmed)"
        try:
            # The action runs its command through the bus, which asks the
            # guard again: a kill switch or ban placed in between stops it.
            result = await in_time(
                pending.confirmation.action(),
                defer_after=self._defer_after,
                defer=lambda: self.sender.defer(ctx, edit=True),
            )
            await self._deliver(ctx, result)
        except Exception as error:  # noqa: BLE001 - every failure gets a friendly reply
            await reply_to_failure(self.sender, ctx, error, where=where, edit=True)
        finally:
            self._forget(pending)

    async def _cancelled(self, ctx: MenuContext, pending: _Pending) -> None:
        try:
            await self.sender.respond(
                ctx, "Cancelled; nothing was changed.", edit=True, components=[]
            )
        except Exception as error:  # noqa: BLE001 - logged without secrets
            await reply_to_failure(self.sender, ctx, error, where=f"/{pending.command} (cancel)")
        finally:
            self._forget(pending)

    async def _expire_later(
        self, pending: _Pending, context: lightbulb.Context, response_id: hikari.Snowflakeish
    ) -> None:
        await asyncio.sleep(self._timeout.total_seconds())
        if not pending.claimed:
            pending.claimed = pending.expired = True
            with contextlib.suppress(hikari.HTTPError):
                # The interaction token outlives the timeout (15 minutes); if
                # Discord refuses anyway, the stale buttons say "expired".
                await self.sender.edit(context, response_id, self._expired_text(pending))
        # A press on buttons still shown somewhere is told they expired.
        await asyncio.sleep(_LISTEN_GRACE)
        self._forget(pending)
