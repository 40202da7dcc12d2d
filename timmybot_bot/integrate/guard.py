"""The access guard as a lightbulb hook: every command checked, exemptions named as objects.

The hook runs at lightbulb's ``CHECKS`` step. It decides what to check by
the invoked command's *identity* (its class, and the groups above it), never
by its name: a host bot's own ``/whoami`` or ``/privacy`` is guarded whatever
TimmyBot's own commands of those names do. It fails closed: without
``ServerAccessControl`` in the client's dependency injection it cannot run,
and then no command does.
"""

from __future__ import annotations

from collections.abc import Iterable

import lightbulb

from timmybot_bot.app.failures import AccessDenied
from timmybot_core import ServerAccessControl

__all__ = ["access_guard_for", "is_exempt"]


def _invoked(context: lightbulb.Context) -> list[object]:
    """Return the invoked command's class, then each group above it (innermost first)."""
    chain: list[object] = [type(context.command)]
    parent: object | None = context.command_data.parent
    while parent is not None:
        chain.append(parent)
        parent = getattr(parent, "parent", None)
    return chain


def is_exempt(context: lightbulb.Context, exempt: Iterable[object]) -> bool:
    """Tell whether the invoked command, or a group it belongs to, is one of ``exempt``.

    By identity, never by name: a host bot's own ``/privacy`` or ``/whoami``
    is not TimmyBot's, whatever it is called.
    """
    chain = _invoked(context)
    return any(item is target for item in exempt for target in chain)


def access_guard_for(exempt: Iterable[object] = ()) -> lightbulb.ExecutionHook:
    """Build the guard hook: every command is checked, except the objects in ``exempt``.

    ``exempt`` holds command classes, or ``lightbulb.Group``/``SubGroup``
    objects (exempting every command in them), named explicitly by whoever
    builds the client; it is read on every invocation, so a collection that
    grows later (a loader adding its own exemptions) is honoured. The guard
    fails closed: a command it does not know is checked.
    """

    @lightbulb.hook(
        lightbulb.ExecutionSteps.CHECKS, skip_when_failed=True, name="timmybot_access_guard"
    )
    async def access_guard(
        _: lightbulb.ExecutionPipeline,
        context: lightbulb.Context,
        access: ServerAccessControl = lightbulb.di.INJECTED,
    ) -> None:
        """Run ``ServerAccessControl.check``; raise :class:`AccessDenied` to stop the command."""
        if is_exempt(context, exempt):
            return
        # The root name, as the security log and the counts know commands.
        name = context.command_data.qualified_name.split(" ", 1)[0]
        guild = int(context.guild_id) if context.guild_id is not None else None
        decision = await access.check(guild, int(context.user.id), name)
        if not decision.allowed:
            raise AccessDenied(decision)

    return access_guard
