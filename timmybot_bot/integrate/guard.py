"""The access guard as a lightbulb hook: every command checked, exemptions named as objects.

The command rate limit is a second hook, :func:`rate_limit_hook`, which a
host puts on the commands it wants limited; being a command's hook, it runs
after the client-wide guard, and not at all when the guard refused.

The hook runs at lightbulb's ``CHECKS`` step (the loader refuses a client
whose ``execution_step_order`` would skip it). It decides what to check by
the invoked command's *identity* (its class, and the groups above it), never
by its name: a host bot's own ``/whoami`` or ``/privacy`` is guarded whatever
TimmyBot's own commands of those names do. It fails closed: without
``ServerAccessControl`` in the client's dependency injection it cannot run,
and then no command does.
"""

from __future__ import annotations

from collections.abc import Iterable

import lightbulb

from timmybot_bot.app.failures import AccessDenied, RateLimited
from timmybot_core import RateLimiter, ServerAccessControl

__all__ = ["access_guard_for", "is_exempt", "rate_limit_hook"]


def _root_name(context: lightbulb.Context) -> str:
    # The root name, as the security log and the counts know commands.
    return context.command_data.qualified_name.split(" ", 1)[0]


def _guild(context: lightbulb.Context) -> int | None:
    return int(context.guild_id) if context.guild_id is not None else None


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
        decision = await access.check(_guild(context), int(context.user.id), _root_name(context))
        if not decision.allowed:
            raise AccessDenied(decision)

    return access_guard


def rate_limit_hook(*, spends_quota: bool = False) -> lightbulb.ExecutionHook:
    """Build the hook that rate-limits the commands it is put on (owners exempt).

    ``spends_quota``: the command calls a music provider, so the stricter
    per-command window and failure mode apply (TimmyBot's ``/search`` and
    ``/link``). A refusal raises :class:`RateLimited` (the first of an
    episode) or ``RateLimitedAgain`` (later ones, answered quietly).
    """

    @lightbulb.hook(
        lightbulb.ExecutionSteps.CHECKS,
        skip_when_failed=True,
        name="timmybot_rate_limit_quota" if spends_quota else "timmybot_rate_limit",
    )
    async def rate_limit(
        _: lightbulb.ExecutionPipeline,
        context: lightbulb.Context,
        limiter: RateLimiter = lightbulb.di.INJECTED,
        access: ServerAccessControl = lightbulb.di.INJECTED,
    ) -> None:
        """Count the invocation in the member's, the command's and the guild's windows."""
        user = int(context.user.id)
        if access.is_owner(user):
            return
        verdict = await limiter.check(
            user_id=user,
            guild_id=_guild(context),
            # The full path: a group's subcommands do not share one window
            # (a read-only one would use up a quota-spending one's).
            command=context.command_data.qualified_name,
            spends_quota=spends_quota,
        )
        RateLimited.raise_for(verdict)

    return rate_limit
