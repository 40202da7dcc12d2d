"""The access guard hook and the error handler of the lightbulb client.

The guard hook (:func:`timmybot_bot.integrate.guard.access_guard_for`) runs
at lightbulb's ``CHECKS`` step, before every command: unless the command is
one of the exemptions its builder named (by identity: the command class or
group object, never its name, so a host bot's own command called
``privacy`` is guarded), it asks ``ServerAccessControl.check`` and fails the
execution pipeline with :class:`AccessDenied` when the answer is no, so the
command's ``invoke`` never runs. When it passes it leaves an
:class:`AccessApproval` in the command's dependency-injection container; the command then calls
``run_command(..., check_access=False)`` only if that approval is there, so
a command is guarded exactly once, and never zero times.

The error handler turns every failure of a command (a denial, a domain
error, a bug) into a short, friendly, ephemeral reply, and logs what is
unexpected by exception type and code location only: exception messages
from libraries can carry secrets (a hikari HTTP error quotes the interaction
webhook URL, whose path holds the interaction token).
"""

from __future__ import annotations

import logging
import traceback
from typing import Final

import attrs
import lightbulb

from timmybot_bot.commands import COMMANDS
from timmybot_bot.discord.replies import ReplySender, Responder
from timmybot_core import (
    AccessDecision,
    NotLinked,
    OAuthError,
    RefreshPaused,
    ReLinkRequired,
    StoreUnavailable,
    TimmyBotError,
)

__all__ = [
    "AccessApproval",
    "AccessDenied",
    "command_name",
    "describe_failure",
    "friendly_text",
    "is_guarded",
    "on_command_error",
    "reply_to_failure",
]

_log = logging.getLogger("timmybot.discord")


UNEXPECTED: Final = (
    "Something went wrong on TimmyBot's side. The operators can see it in the logs; "
    "please try again later."
)


@attrs.frozen(kw_only=True)
class AccessApproval:
    """The guard's pass for one command invocation (lives in its DI container)."""

    command: str


class AccessDenied(Exception):
    """The guard refused a command; ``decision.message`` says why."""

    def __init__(self, decision: AccessDecision) -> None:
        super().__init__(decision.reason.value)
        self.decision = decision


def is_guarded(name: str) -> bool:
    """Tell whether ``run_command`` would guard the command ``name``.

    Some commands are deliberately unguarded (``/privacy``: a user's rights
    do not depend on the allowlist). A name ``run_command`` does not know is
    guarded: the guard fails closed.
    """
    return next((command.guarded for command in COMMANDS if command.name == name), True)


def command_name(context: lightbulb.Context) -> str:
    """Return the name ``run_command`` knows the invoked command by (its root name)."""
    return context.command_data.qualified_name.split(" ", 1)[0]


def friendly_text(error: BaseException) -> str | None:
    """Return the reply for a known failure, or ``None`` for an unexpected one.

    The wording matches ``run_command``'s for the same errors, so a failure
    reads the same wherever it is caught.
    """
    if isinstance(error, AccessDenied):
        return f"Denied: {error.decision.message}"
    if isinstance(error, StoreUnavailable):
        return "A TimmyBot store is unavailable right now; try again soon."
    if isinstance(error, NotLinked):
        return f"Link your {error.platform} account first with /link."
    if isinstance(error, ReLinkRequired):
        return f"Your {error.platform} link has expired; link it again with /link."
    if isinstance(error, RefreshPaused):
        return "Music accounts are paused for maintenance; try later."
    if isinstance(error, OAuthError):
        return f"{error.platform} is not answering right now; try again soon."
    if isinstance(error, TimmyBotError):
        return "TimmyBot could not finish that right now; please try again soon."
    return None


def describe_failure(error: BaseException) -> str:
    """One log-safe line: the exception types of the chain and where each was raised.

    Messages are left out on purpose (see the module docstring); the code
    locations are enough to find the bug.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        where = ""
        if frames:
            last = frames[-1]
            where = f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
        code = getattr(current, "code", None)
        status = getattr(current, "status", None)
        extra = ""
        if isinstance(code, int) or isinstance(status, int):
            extra = f" (status {status}, code {code})"
        parts.append(f"{type(current).__name__}{extra}{where}")
        current = current.__cause__ or current.__context__
    return " <- ".join(parts)


async def reply_to_failure(
    sender: ReplySender, target: Responder, error: BaseException, *, where: str, edit: bool = False
) -> None:
    """Log ``error`` when unexpected and answer ``target`` with a short ephemeral text.

    ``edit`` (button presses) shows the text in place of the message the
    button was on, without its buttons.
    """
    text = friendly_text(error)
    if text is None:
        _log.error("%s failed: %s", where, describe_failure(error))
        text = UNEXPECTED
    elif isinstance(error, StoreUnavailable | OAuthError):
        _log.warning("%s failed: %s", where, describe_failure(error))
    try:
        if edit:
            await sender.respond(target, text, edit=True, components=[])
        else:
            await sender.respond(target, text, ephemeral=True)
    except Exception as failure:  # noqa: BLE001 - nothing is left to tell the user through
        _log.error("%s: the error reply could not be sent: %s", where, describe_failure(failure))


async def on_command_error(
    failure: lightbulb.exceptions.ExecutionPipelineFailedException,
    sender: ReplySender = lightbulb.di.INJECTED,
) -> bool:
    """Lightbulb error handler: every failed command gets a friendly ephemeral reply."""
    causes = failure.causes or [failure]
    # A denial explains itself best; otherwise the first cause is the one
    # that stopped the command.
    cause = next((c for c in causes if isinstance(c, AccessDenied)), causes[0])
    where = "/" + failure.context.command_data.qualified_name
    await reply_to_failure(sender, failure.context, cause, where=where)
    return True
