"""Composition of the Discord side: the hikari gateway bot and the lightbulb client."""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import attrs
import hikari
import lightbulb

from timmybot_bot.app.failures import describe
from timmybot_bot.discord.errors import on_command_error
from timmybot_bot.discord.replies import ReplySender
from timmybot_bot.discord.runner import CommandRunner
from timmybot_bot.discord.slash import build_commands
from timmybot_bot.runtime.bootstrap import Services
from timmybot_bot.runtime.settings import ConfigurationError

__all__ = [
    "CommandClientFailed",
    "DiscordBot",
    "Lifecycle",
    "build_discord_bot",
    "build_lightbulb_client",
]

_log = logging.getLogger("timmybot.discord")

Lifecycle = Callable[[], Awaitable[None]]
"""A start-up or shutdown step of the runtime (start the web server, stop the scheduler)."""

# Slash commands arrive whatever the intents; nothing else is listened to.
INTENTS: typing.Final = hikari.Intents.NONE


class CommandClientFailed(Exception):
    """The lightbulb client could not start (Discord refused the slash commands' sync).

    The message names the cause by its exception types and code locations
    only: a hikari HTTP error's own message quotes the request URL.
    """


def build_lightbulb_client(
    app: lightbulb.client.GatewayClientAppT,
    services: Services,
    *,
    sync_commands: bool = True,
    defer_after: float = 2.0,
    confirm_timeout: timedelta = timedelta(minutes=5),
) -> tuple[lightbulb.GatewayEnabledClient, CommandRunner]:
    """Build the lightbulb client for ``app``: commands, error handler, what they are injected.

    :func:`build_discord_bot` calls this; tests call it with a bot whose REST
    calls they record. ``sync_commands`` says whether this process registers
    the slash commands with Discord at start-up.
    """
    client = lightbulb.client_from_app(app, sync_commands=sync_commands)
    sender = ReplySender(services.sanitizer)
    runner = CommandRunner(
        bus=services.bus,
        sanitizer=services.sanitizer,
        clock=services.clock,
        sender=sender,
        defer_after=defer_after,
        confirm_timeout=confirm_timeout,
    )
    # What the commands and the error handler are injected with, under its
    # type; the registry freezes when the first command runs.
    registry = client.di.registry_for(lightbulb.di.Contexts.DEFAULT)
    registry.register_value(CommandRunner, runner)
    registry.register_value(ReplySender, sender)
    for command in build_commands(services.links.platforms()):
        client.register(command)
    client.error_handler(on_command_error)
    return client, runner


@attrs.define(kw_only=True, eq=False, repr=False)
class DiscordBot:
    """The bot on Discord: a hikari ``GatewayBot`` driven by a lightbulb client.

    Build it with :func:`build_discord_bot`, then ``await run()``.
    """

    app: hikari.GatewayBot
    client: lightbulb.GatewayEnabledClient
    _runner: CommandRunner
    _shard_ids: Sequence[int] | None
    _shard_count: int | None
    _on_starting: Lifecycle | None = None
    _on_stopping: Lifecycle | None = None
    _startup_failure: Exception | None = attrs.field(default=None, init=False)
    _client_failed: bool = attrs.field(default=False, init=False)
    _closing: asyncio.Future[None] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self.app.subscribe(hikari.StartingEvent, self._starting)
        self.app.subscribe(hikari.StartedEvent, self._started)
        self.app.subscribe(hikari.StoppingEvent, self._stopping)

    async def run(self) -> None:
        """Connect this process's shards and serve until the bot is closed.

        Returns once :meth:`close` was called (or every shard stopped). If
        the task running it is cancelled, the bot is closed first, so the
        ``on_stopping`` step always runs once ``on_starting`` did.

        Raises:
            ConfigurationError: Discord refused the token.
            CommandClientFailed: the lightbulb client could not start
                (registering the commands); the bot is closed then.
            Exception: whatever ``on_starting`` raised; the bot is closed then.
        """
        try:
            await self.app.start(
                shard_ids=self._shard_ids,
                shard_count=self._shard_count,
                check_for_updates=False,
            )
        except hikari.UnauthorizedError:
            await self.close()
            raise ConfigurationError(
                "DISCORD_TOKEN was refused by Discord (401 Unauthorized): check the bot token"
            ) from None
        except BaseException:
            await self.close()
            raise
        try:
            if self._startup_failure is None:
                await self.app.join()
            failure = self._startup_failure
            if failure is not None:
                if self._client_failed:
                    raise CommandClientFailed(
                        f"the command client could not start: {describe(failure)}"
                    ) from failure
                raise failure
        finally:
            await self.close()

    async def close(self) -> None:
        """Disconnect; :meth:`run` then returns. Safe to call more than once, concurrently too."""
        # One close for all callers: a SIGTERM's close and run()'s own final
        # close overlap, and hikari's close() of a bot already closing joins
        # shards that are gone (ComponentStateConflictError).
        if self._closing is None or (self._closing.done() and self.app.is_alive):
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        await self._runner.confirmations.close()
        if self.app.is_alive:
            await self.app.close()

    async def _starting(self, _: hikari.StartingEvent) -> None:
        if self._on_starting is None:
            return
        try:
            await self._on_starting()
        except Exception as error:  # noqa: BLE001 - re-raised by run()
            # hikari would only log a listener's failure; run() raises it
            # once start() returns, and closes the bot.
            self._startup_failure = error

    async def _started(self, _: hikari.StartedEvent) -> None:
        try:
            await self.client.start()
        except Exception as error:  # noqa: BLE001 - re-raised by run()
            # Without its client the bot would stay online and ignore every
            # command; stop instead, and let run() raise why.
            _log.error("the command client could not start: %s", describe(error))
            self._startup_failure = error
            self._client_failed = True
            await self.close()

    async def _stopping(self, _: hikari.StoppingEvent) -> None:
        try:
            await self.client.stop()
        finally:
            if self._on_stopping is not None:
                await self._on_stopping()


def build_discord_bot(
    services: Services,
    *,
    on_starting: Lifecycle | None = None,
    on_stopping: Lifecycle | None = None,
    defer_after: float = 2.0,
    confirm_timeout: timedelta = timedelta(minutes=5),
) -> DiscordBot:
    """Build the Discord bot over ``services``; nothing connects until ``run()``.

    ``on_starting`` runs on hikari's ``StartingEvent`` (before the shards
    connect) and ``on_stopping`` on its ``StoppingEvent``; the lightbulb
    client starts on ``StartedEvent`` (registering the slash commands with
    Discord, from the process that runs shard 0 only) and stops with the bot.

    ``defer_after`` is how long a command may take before its reply is
    deferred (Discord allows three seconds for the first answer);
    ``confirm_timeout`` how long a confirmation button stays valid (at most
    15 minutes, the life of an interaction token).

    Raises:
        ConfigurationError: no ``DISCORD_TOKEN``, or one that is not shaped
            like a bot token (the message never contains the token).
    """
    settings = services.settings
    token = settings.discord_token
    if not token:
        raise ConfigurationError("DISCORD_TOKEN is not set: the Discord bot needs its bot token")
    rest_url = settings.test_discord_api_url
    if rest_url is not None:
        _log.warning(
            "TIMMYBOT_TEST_DISCORD_API_URL is set: talking to the Discord stand-in at %s "
            "(tests only), not to Discord",
            rest_url,
        )
    try:
        app = hikari.GatewayBot(
            token,
            rest_url=rest_url,
            intents=INTENTS,
            banner=None,
            # Logging belongs to the runtime; hikari must not configure it.
            logs=None,
            suppress_optimization_warning=True,
            auto_chunk_members=False,
            cache_settings=hikari.impl.CacheSettings(components=hikari.api.CacheComponents.NONE),
        )
    except ValueError:
        raise ConfigurationError(
            "DISCORD_TOKEN is not shaped like a Discord bot token (three dot-separated parts)"
        ) from None
    shard_ids = settings.shard_ids
    # Every process would otherwise compare and overwrite the same command
    # list at start-up; the one running shard 0 speaks for all.
    sync = shard_ids is None or 0 in shard_ids
    client, runner = build_lightbulb_client(
        app,
        services,
        sync_commands=sync,
        defer_after=defer_after,
        confirm_timeout=confirm_timeout,
    )
    return DiscordBot(
        app=app,
        client=client,
        runner=runner,
        shard_ids=shard_ids,
        shard_count=settings.shard_count,
        on_starting=on_starting,
        on_stopping=on_stopping,
    )
