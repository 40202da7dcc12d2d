"""The error handler of the lightbulb client: every failure gets a short private reply.

The access guard is not here: the application layer's bus runs it before
every command (see :mod:`timmybot_bot.app.messagebus`). What escapes a
command here (a failed send, a bug in the Discord layer) is answered from
the one failure table, :mod:`timmybot_bot.app.failures`, and logged by
exception type and code location only: exception messages from libraries
can carry secrets (a hikari HTTP error quotes the interaction webhook URL,
whose path holds the interaction token).
"""

from __future__ import annotations

import logging

import lightbulb

from timmybot_bot.app.failures import UNEXPECTED, describe, failure_for
from timmybot_bot.app.replies import failure_reply
from timmybot_bot.discord.replies import ReplySender, Responder

__all__ = ["UNEXPECTED", "on_command_error", "reply_to_failure"]

_log = logging.getLogger("timmybot.discord")


async def reply_to_failure(
    sender: ReplySender, target: Responder, error: BaseException, *, where: str, edit: bool = False
) -> None:
    """Log ``error`` when the table says so and answer ``target`` with a short private text.

    A quiet failure (a repeated rate-limit refusal) sends nothing unless the
    interaction was deferred already.

    ``edit`` (button presses) shows the text in place of the message the
    button was on, without its buttons. Outside the bus, a row that quotes
    the error would quote a library (a malformed interaction): such a
    failure reads as unexpected.
    """
    failure = failure_for(error)
    if failure.quiet and not target.initial_response_sent.is_set():
        return  # a repeated rate-limit refusal: the member was told once already
    if failure.quotes_error:
        _log.error("%s failed: %s", where, describe(error))
        text = UNEXPECTED
    else:
        text = failure_reply(error, sender.sanitizer, where=where).text
    try:
        if edit:
            await sender.respond(target, text, edit=True, components=[])
        else:
            await sender.respond(target, text, ephemeral=True)
    except Exception as failure_to_send:  # noqa: BLE001 - nothing is left to tell the user through
        _log.error("%s: the error reply could not be sent: %s", where, describe(failure_to_send))


async def on_command_error(
    failure: lightbulb.exceptions.ExecutionPipelineFailedException,
    sender: ReplySender = lightbulb.di.INJECTED,
) -> bool:
    """Lightbulb error handler: every failed command gets a friendly ephemeral reply."""
    cause = (failure.causes or [failure])[0]
    where = "/" + failure.context.command_data.qualified_name
    await reply_to_failure(sender, failure.context, cause, where=where)
    return True
