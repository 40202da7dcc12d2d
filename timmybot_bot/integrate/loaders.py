"""TimmyBot's guard, error handler and reply sender for any hikari-lightbulb 3 bot.

:class:`Integration` holds what the host bot composed (:func:`compose`) and
gives it two loaders:

* :meth:`Integration.loader` (or ``await integration.install(client)``):
  the access guard as a client-wide hook, so it runs before **every**
  command of the client, the host's own included, and fails closed; the
  error handler that answers a denial (and, by default, any failure) with a
  short private reply; the reply sender with mentions disabled; and the
  composed services in lightbulb's dependency injection, so the host's
  commands can ask for ``SecureTokenService``, ``AuditTrailService``... (and
  the ``RateLimiter`` that :func:`~timmybot_bot.integrate.rate_limit_hook`
  uses on the host commands it is put on). A
  command is exempt from the guard only if the host names it in
  ``exempt=`` (its class, or a ``lightbulb.Group``), never by its name.
* :meth:`Integration.commands_loader`: TimmyBot's own slash commands
  (``/search``, ``/link``, ``/privacy``, ``/admin``, ...), optional. They
  need the whole of TimmyBot (:func:`~timmybot_bot.runtime.bootstrap.bootstrap`)
  and guard themselves through its bus, so the hook exempts them as objects.

Our messages name the bot ``bot_name`` (default ``TimmyBot``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import lightbulb

from timmybot_bot.app.failures import AccessDenied, RateLimited
from timmybot_bot.discord.errors import reply_to_failure
from timmybot_bot.discord.replies import ReplySender, SafeText
from timmybot_bot.integrate.composition import Security
from timmybot_bot.integrate.guard import access_guard_for
from timmybot_core import (
    AuditTrailService,
    DataRetentionService,
    RateLimiter,
    ResponseSanitizer,
    SecureTokenService,
    SecurityAuditLogger,
    ServerAccessControl,
    TokenVault,
)

if TYPE_CHECKING:
    from timmybot_bot.runtime.bootstrap import Services

__all__ = ["BrandedReplySender", "Integration"]

PRODUCT_NAME = "TimmyBot"
_BOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,31}$")


class BrandedReplySender(ReplySender):
    """The reply sender, with TimmyBot's name in our messages replaced by the host's.

    Every way out is branded: responses, edits (an expired confirmation)
    and direct messages (``/privacy export``).
    """

    def __init__(self, sanitizer: ResponseSanitizer, *, bot_name: str = PRODUCT_NAME) -> None:
        super().__init__(sanitizer)
        # fullmatch: ``$`` in match() would also accept a name ending in a newline.
        if not _BOT_NAME.fullmatch(bot_name):
            raise ValueError(
                "bot_name must be 1 to 32 letters, digits, spaces, '_', '.' or '-', "
                f"starting with a letter or digit (got {bot_name[:40]!r})"
            )
        self.bot_name = bot_name

    def brand(self, text: str) -> str:
        """Return ``text`` with the product name replaced by ``bot_name`` (safe text stays safe)."""
        if self.bot_name == PRODUCT_NAME:
            return text
        branded = text.replace(PRODUCT_NAME, self.bot_name)
        # bot_name holds no markdown or mention syntax, so escaped text stays escaped.
        return SafeText(branded) if isinstance(text, SafeText) else branded

    def content(self, text: str) -> str:
        """Return the message text as :meth:`ReplySender.content` does, in the host's name."""
        return super().content(self.brand(text))


class _GuardFirst(lightbulb.loaders.Loadable):
    """Puts the guard hook first among the client's hooks."""

    def __init__(self, hook: lightbulb.ExecutionHook) -> None:
        self._hook = hook

    async def load(self, client: lightbulb.Client) -> None:
        # The guard is a CHECKS hook, and lightbulb runs only the steps of the
        # client's execution_step_order, in that order: without CHECKS before
        # INVOKE every command would run unguarded, silently. Fail closed.
        order = list(client.execution_step_order)
        checks, invoke = lightbulb.ExecutionSteps.CHECKS, lightbulb.ExecutionSteps.INVOKE
        if checks not in order or (invoke in order and order.index(invoke) < order.index(checks)):
            raise ValueError(
                "the client's execution_step_order must run ExecutionSteps.CHECKS before "
                "ExecutionSteps.INVOKE: TimmyBot's guard runs at CHECKS, and without it "
                "every command would run unguarded"
            )
        if self._hook not in client.hooks:
            # Client-wide hooks run before every command's own hooks.
            client.hooks = [self._hook, *client.hooks]

    async def unload(self, client: lightbulb.Client) -> None:
        client.hooks = [h for h in client.hooks if h is not self._hook]


class _Register(lightbulb.loaders.Loadable):
    """Puts ``values`` into the client's dependency injection, by type."""

    def __init__(self, values: dict[type[Any], object]) -> None:
        self._values = values

    async def load(self, client: lightbulb.Client) -> None:
        registry = client.di.registry_for(lightbulb.di.Contexts.DEFAULT)
        for kind, value in self._values.items():
            registry.register_value(kind, value)

    async def unload(self, client: lightbulb.Client) -> None:
        return None


class Integration:
    """TimmyBot's security in a host hikari-lightbulb bot.

    Args:
        security: what :func:`~timmybot_bot.integrate.composition` built; it must
            hold the guard (``compose(settings, guard=True, ...)``).
        exempt: command classes, or ``lightbulb.Group``/``SubGroup`` objects,
            that the guard lets through unchecked. Named by the host, by
            object: a command is never exempt because of its name.
        bot_name: how our messages name the bot.
        reply_to_errors: answer every failed command with our short private
            reply (``True``), or only the guard's denials and the rate
            limit's refusals, leaving other failures to the host's own
            error handlers (``False``): a rate-limit store failing closed
            included, as a ``StoreUnavailable`` cause.

    Raises:
        ValueError: ``security`` has no guard, or ``bot_name`` is not a
            plain name.
    """

    def __init__(
        self,
        security: Security,
        *,
        exempt: Iterable[object] = (),
        bot_name: str = PRODUCT_NAME,
        reply_to_errors: bool = True,
    ) -> None:
        if security.access is None or security.limiter is None:
            raise ValueError("the integration needs the guard: compose(settings, guard=True, ...)")
        self.security = security
        self.sender = BrandedReplySender(security.sanitizer, bot_name=bot_name)
        # A list the guard reads on every invocation: commands_loader() adds
        # TimmyBot's own exemptions to it.
        self._exempt: list[object] = list(exempt)
        self.guard_hook = access_guard_for(self._exempt)
        self._reply_to_errors = reply_to_errors

    @property
    def exempt(self) -> tuple[object, ...]:
        """The objects the guard lets through, as named so far."""
        return tuple(self._exempt)

    def dependencies(self) -> dict[type[Any], object]:
        """Return what the loader puts into lightbulb's dependency injection, by type."""
        security = self.security
        # The parts compose() was not asked for are None, and left out.
        values: dict[type[Any], object | None] = {
            Security: security,
            ReplySender: self.sender,
            BrandedReplySender: self.sender,
            ResponseSanitizer: security.sanitizer,
            SecurityAuditLogger: security.security_log,
            ServerAccessControl: security.access,
            RateLimiter: security.limiter,
            TokenVault: security.vault,
            SecureTokenService: security.tokens,
            AuditTrailService: security.audit,
            DataRetentionService: security.privacy,
        }
        return {kind: value for kind, value in values.items() if value is not None}

    def loader(self) -> lightbulb.Loader:
        """Return the guard on every command, the error handler and the services, as a Loader."""
        loader = lightbulb.Loader()
        loader.add(_GuardFirst(self.guard_hook))
        loader.add(_Register(self.dependencies()))
        # lightbulb's own loadable: idempotent, and unload removes the very
        # handler it added (a bound method fetched again is another object).
        loader.error_handler(self.on_command_error)
        return loader

    async def install(self, client: lightbulb.Client) -> None:
        """Add :meth:`loader` to ``client`` (before ``client.start()``; errors propagate).

        Prefer this to ``client.load_extensions``, which logs a failing
        extension and goes on without it.

        Raises:
            ValueError: the client's ``execution_step_order`` does not run
                ``CHECKS`` (where the guard runs) before ``INVOKE``.
        """
        await self.loader().add_to_client(client)

    async def on_command_error(
        self, failure: lightbulb.exceptions.ExecutionPipelineFailedException
    ) -> bool:
        """Answer a denial or a rate limit (with ``reply_to_errors``: any failure) privately."""
        causes = failure.causes or [failure]
        denial = next(
            (cause for cause in causes if isinstance(cause, AccessDenied | RateLimited)), None
        )
        if denial is None and not self._reply_to_errors:
            return False
        where = "/" + failure.context.command_data.qualified_name
        await reply_to_failure(self.sender, failure.context, denial or causes[0], where=where)
        return True

    def commands_loader(self, services: Services) -> lightbulb.Loader:
        """Return TimmyBot's own slash commands over ``services`` (from ``bootstrap()``).

        Optional. They guard themselves: each runs through TimmyBot's bus,
        which asks the same guard (and the admin check) for the commands
        that need it, so the hook exempts them as objects, and never by
        name: a host command called like one of them is still checked.
        """
        # Imported here: they are part of the whole TimmyBot, not of the guard.
        from timmybot_bot.discord.runner import CommandRunner
        from timmybot_bot.discord.slash import build_commands

        commands = build_commands(services.links.platforms())
        self._exempt.extend(commands)
        runner = CommandRunner(
            bus=services.bus, sanitizer=services.sanitizer, clock=services.clock, sender=self.sender
        )
        loader = lightbulb.Loader()
        loader.add(_Register({CommandRunner: runner, ReplySender: self.sender}))
        for command in commands:
            loader.command(command)
        return loader
