"""The message bus: the guard, the admin check, the rate limit, then the command's handler.

``await bus.handle(command, invocation)`` raises
:class:`~timmybot_bot.app.failures.AccessDenied`,
:class:`~timmybot_bot.app.failures.NotAdmin` or
:class:`~timmybot_bot.app.failures.RateLimited` before a refused handler runs.
The rate limit comes after the guard, so a stranger's refused commands
never use up a member's or a guild's window.
Handlers receive the services their keyword parameters name, bound once at
start-up, as in cosmicpython's ``bootstrap.inject_dependencies``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from timmybot_bot.app.commands import Command, Invocation
from timmybot_bot.app.failures import AccessDenied, NotAdmin, RateLimited
from timmybot_bot.app.handlers import HANDLERS
from timmybot_core import RateLimiter, SecurityAuditLogger, SecurityMetrics, ServerAccessControl

__all__ = ["MessageBus", "inject_dependencies"]

Handler = Callable[[Command, Invocation], Any]


def inject_dependencies(handler: Callable[..., Any], dependencies: Mapping[str, object]) -> Handler:
    """Bind ``handler``'s keyword parameters to the dependencies of the same names.

    Raises ``TypeError`` at start-up for a parameter no dependency provides.
    """
    wanted = [
        name
        for name, parameter in inspect.signature(handler).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    missing = [name for name in wanted if name not in dependencies]
    if missing:
        raise TypeError(
            f"{handler.__qualname__} needs {', '.join(missing)}, which nothing provides"
        )
    return functools.partial(handler, **{name: dependencies[name] for name in wanted})


class MessageBus:
    """Runs commands: guard, admin check, rate limit, handler.

    Args:
        access: the access guard and the owner list.
        limiter: the command rate limits (owners and the local operator are exempt).
        security_log, metrics: where a refused admin command is reported.
        admin_role_ids: roles whose members may run admin commands in their guild.
        dependencies: what handlers may ask for, by parameter name.
    """

    def __init__(
        self,
        *,
        access: ServerAccessControl,
        limiter: RateLimiter,
        security_log: SecurityAuditLogger,
        metrics: SecurityMetrics,
        admin_role_ids: frozenset[int],
        dependencies: Mapping[str, object],
    ) -> None:
        self._access = access
        self._limiter = limiter
        self._security_log = security_log
        self._metrics = metrics
        self._admin_roles = admin_role_ids
        self._handlers = {
            kind: inject_dependencies(handler, dependencies) for kind, handler in HANDLERS.items()
        }

    def is_admin(self, invocation: Invocation) -> bool:
        """Tell whether the caller may run admin commands.

        Owners may, and so may members holding one of the configured admin
        roles (``TIMMYBOT_ADMIN_ROLE_IDS``), but only inside a guild: a role
        means nothing in a direct message. The local operator always may.
        """
        if invocation.trusted_operator or self._access.is_owner(invocation.user_id):
            return True
        return invocation.guild_id is not None and not self._admin_roles.isdisjoint(
            invocation.role_ids
        )

    async def guard(self, command: Command, invocation: Invocation) -> None:
        """Raise ``AccessDenied`` or ``NotAdmin`` if ``command`` may not run for the caller."""
        if type(command).guarded and not invocation.trusted_operator:
            decision = await self._access.check(
                invocation.guild_id, invocation.user_id, type(command).guard_name
            )
            if not decision.allowed:
                raise AccessDenied(decision)
        if type(command).admin_only and not self.is_admin(invocation):
            self._metrics.record_unauthorized_access()
            await self._security_log.unauthorized_access(
                guild_id=invocation.guild_id,
                user_id=invocation.user_id,
                command=type(command).guard_name,
                reason="not_owner",
            )
            raise NotAdmin(type(command).guard_name)

    async def limit(self, command: Command, invocation: Invocation) -> None:
        """Raise ``RateLimited`` if the caller has run commands too often (owners never have)."""
        if invocation.trusted_operator or self._access.is_owner(invocation.user_id):
            return
        verdict = await self._limiter.check(
            user_id=invocation.user_id,
            guild_id=invocation.guild_id,
            command=type(command).guard_name,
            spends_quota=type(command).spends_quota,
        )
        RateLimited.raise_for(verdict)

    async def handle(self, command: Command, invocation: Invocation) -> Any:
        """Guard and rate-limit ``command``, then run its handler and return its result."""
        await self.guard(command, invocation)
        await self.limit(command, invocation)
        return await self._handlers[type(command)](command, invocation)
