"""Juke: a tiny hikari-lightbulb bot with TimmyBot's guard, token vault and audit trail.

Run it with a bot token and TimmyBot's settings (TIMMYBOT_* variables, see
docs/configuration.md), for example::

    DISCORD_TOKEN=... TIMMYBOT_ALLOWED_GUILDS=123456789012345678 python examples/guarded_bot.py

Every command is guarded (allowlist, counted attempts, bans, kill switch)
except /ping, which this bot exempts explicitly, by its class: a command is
never exempt because of what it is called. /whoami, which reads the vault,
is also rate-limited (TimmyBot's TIMMYBOT_RATE_LIMIT_* settings).
"""

from __future__ import annotations

import sys

import hikari
import lightbulb

from timmybot_bot.integrate import (
    ConfigurationError,
    Integration,
    ReplySender,
    Settings,
    compose,
    rate_limit_hook,
)
from timmybot_core import AuditTrailService, SecureTokenService, TimmyBotError

try:
    settings = Settings.from_env()
    if not settings.discord_token:
        # Checked before compose(), so that a start without it creates nothing.
        raise ConfigurationError("DISCORD_TOKEN is not set: Juke needs its bot token")
    # The guard, the vault and its token service, the audit trail: nothing else.
    security = compose(settings, guard=True, vault=True, audit=True)
except ConfigurationError as error:
    # One line naming the setting or the key file, and TimmyBot's status for it.
    print(f"juke: configuration error: {error}", file=sys.stderr)
    sys.exit(2)

bot = hikari.GatewayBot(
    settings.discord_token,
    intents=hikari.Intents.NONE,
    # None: Discord itself (tests point it at a stand-in on 127.0.0.1).
    rest_url=settings.test_discord_api_url,
)
client = lightbulb.client_from_app(bot)


class Ping(lightbulb.SlashCommand, name="ping", description="Is Juke awake?"):
    """Answer pong, wherever it is asked (exempt from the guard)."""

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, sender: ReplySender = lightbulb.di.INJECTED
    ) -> None:
        """Reply through TimmyBot's sender: mentions disabled, text escaped."""
        await sender.respond(ctx, "pong")


class Whoami(
    lightbulb.SlashCommand,
    name="whoami",
    description="What Juke keeps about you",
    # After the guard: at most so many per member, per guild, shared by every shard.
    hooks=[rate_limit_hook()],
):
    """Juke's own /whoami: named like a TimmyBot command, guarded and rate-limited."""

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        sender: ReplySender = lightbulb.di.INJECTED,
        tokens: SecureTokenService = lightbulb.di.INJECTED,
        audit: AuditTrailService = lightbulb.di.INJECTED,
    ) -> None:
        """Read the vault, write the audit trail, answer privately."""
        record = await tokens.get_user_tokens(int(ctx.user.id))
        linked = ", ".join(sorted(record.links)) if record else "nothing"
        await audit.record_admin_action(int(ctx.user.id), "juke.whoami", "juke", source="juke")
        await sender.respond(ctx, f"Juke keeps your links to: {linked}.", ephemeral=True)


client.register(Ping)
client.register(Whoami)
# Ping is exempt because this bot says so; Whoami is guarded like every other command.
integration = Integration(security, exempt=[Ping], bot_name="Juke")


# hikari logs what a listener raises and starts all the same: the client, started
# without the guard, would run the commands unguarded. A failed start stops instead.
startup_failure: list[Exception] = []


@bot.listen(hikari.StartingEvent)
async def starting(_: hikari.StartingEvent) -> None:
    """Open the stores, then put the guard on every command (before the client starts)."""
    try:
        await security.open()
        await integration.install(client)
    except Exception as error:  # noqa: BLE001 - reported once the bot has stopped
        startup_failure.append(error)


@bot.listen(hikari.StartedEvent)
async def started(_: hikari.StartedEvent) -> None:
    """Start the client (it syncs the commands with Discord), unless the start failed."""
    if not startup_failure:
        await client.start()
    else:
        await bot.close()


@bot.listen(hikari.StoppingEvent)
async def stopping(_: hikari.StoppingEvent) -> None:
    """Stop the client; close the stores (the audit trail signs its last digest)."""
    await client.stop()
    await security.aclose()


if __name__ == "__main__":
    try:
        bot.run(check_for_updates=False)
    except hikari.ComponentStateConflictError:
        # started() closed the bot, which leaves run() nothing to join.
        if not startup_failure:
            raise
    if startup_failure:
        failure = startup_failure[0]
        if not isinstance(failure, TimmyBotError):
            raise failure  # a bug rather than a refusal: its traceback says where
        # TimmyBot's errors are written to be shown, and hold no secret.
        sys.exit(f"juke: could not start: {failure}")
