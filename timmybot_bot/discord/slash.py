"""The slash commands: each one forwards to ``run_command`` with a console command line.

A slash command's options are joined into the argument line the offline
console would take, fixed words first and user values last, so a value can
never turn into a different subcommand::

    /link platform:spotify              -> ("link", "spotify")
    /search query:halo platform:demo    -> ("search", "platform:demo halo")
    /admin guild allow guild:123        -> ("admin", "guild allow 123")
    /admin incident declare P1 title:x  -> ("admin", "incident declare P1 x")

Guild IDs are string options: Discord's integer options stop at 2**53,
below today's snowflakes. ``run_command`` validates every value.

The commands are built by :func:`build_commands` at start-up, so that
``/link`` can offer the platforms actually configured as choices.
"""

from __future__ import annotations

from collections.abc import Sequence

import hikari
import lightbulb

from timmybot_bot.discord.guard import AccessApproval
from timmybot_bot.discord.runner import CommandRunner

__all__ = ["build_commands"]

# Commands work in servers and in direct messages with the bot (where the
# access guard decides: denied unless TIMMYBOT_ALLOW_DMS, owners always pass).
_CONTEXTS: Sequence[hikari.ApplicationContextType] = (
    hikari.ApplicationContextType.GUILD,
    hikari.ApplicationContextType.BOT_DM,
)
_INSTALL: Sequence[hikari.ApplicationIntegrationType] = (
    hikari.ApplicationIntegrationType.GUILD_INSTALL,
)
_SNOWFLAKE_DIGITS = 20  # 2**64 - 1 has 20 digits
_SEVERITIES = ("P0", "P1", "P2", "P3")
_AUDIT_FILTERS = "name:value filters, as in the console (for example kind:security since:7d)"


def _joined(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _fixed(
    name: str, description: str, command: str, line: str, *, top_level: bool = False
) -> type[lightbulb.SlashCommand]:
    """Return a slash command without options: it always runs the same command line."""
    where = {"contexts": _CONTEXTS, "integration_types": _INSTALL} if top_level else {}

    class Fixed(lightbulb.SlashCommand, name=name, description=description, **where):
        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            await runner.run(ctx, command, line, approval)

    return Fixed


def build_commands(
    platforms: Sequence[str],
) -> list[type[lightbulb.SlashCommand] | lightbulb.Group]:
    """Build the slash commands and groups to register with the lightbulb client.

    ``platforms`` are the music platforms offered as choices for ``/link``
    (free text when empty: ``run_command`` then explains that none is
    configured).
    """
    platform_choices: hikari.UndefinedOr[list[lightbulb.Choice[str]]] = (
        [lightbulb.Choice(name, name) for name in platforms[:25]] if platforms else hikari.UNDEFINED
    )

    class Link(
        lightbulb.SlashCommand,
        name="link",
        description="Link a music account (you get a private authorization link)",
        contexts=_CONTEXTS,
        integration_types=_INSTALL,
    ):
        platform = lightbulb.string(
            "platform", "The music platform to link", choices=platform_choices, max_length=40
        )

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            await runner.run(ctx, "link", self.platform, approval)

    linked = _fixed("linked", "Show the music accounts you linked", "linked", "", top_level=True)

    class Unlink(
        lightbulb.SlashCommand,
        name="unlink",
        description="Unlink a music account and delete its tokens",
        contexts=_CONTEXTS,
        integration_types=_INSTALL,
    ):
        platform = lightbulb.string("platform", "The music platform to unlink", max_length=40)

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            await runner.run(ctx, "unlink", self.platform, approval)

    class Search(
        lightbulb.SlashCommand,
        name="search",
        description="Search your linked music platform",
        contexts=_CONTEXTS,
        integration_types=_INSTALL,
    ):
        query = lightbulb.string("query", "What to search for", max_length=500)
        platform = lightbulb.string(
            "platform",
            "The linked platform to search (default: your first)",
            default="",
            max_length=40,
        )

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            prefix = f"platform:{self.platform.strip()}" if self.platform.strip() else ""
            await runner.run(ctx, "search", _joined(prefix, self.query), approval)

    privacy = lightbulb.Group(
        "privacy",
        "Your data held by TimmyBot",
        contexts=_CONTEXTS,
        integration_types=_INSTALL,
    )

    privacy.register(_fixed("info", "What TimmyBot keeps about you, and why", "privacy", "info"))

    privacy.register(
        _fixed(
            "export",
            "Get a copy of your data as a JSON file in a direct message",
            "privacy",
            "export",
        )
    )

    privacy.register(
        _fixed("delete", "Delete your data (asks you to confirm first)", "privacy", "delete")
    )

    admin = lightbulb.Group(
        "admin",
        "TimmyBot owners and admin roles: allowlist, kill switch, audit, incidents",
        contexts=_CONTEXTS,
        integration_types=_INSTALL,
    )
    guild = admin.subgroup("guild", "The guild allowlist and bans")
    killswitch = admin.subgroup("killswitch", "Stop every command for everyone but the owners")
    audit = admin.subgroup("audit", "The admin audit trail")
    incident = admin.subgroup("incident", "Incident response")
    rotation = admin.subgroup("rotation", "OAuth token rotation")

    def guild_option(verb: str) -> str:
        return lightbulb.string(
            "guild", f"The ID of the guild to {verb}", min_length=1, max_length=_SNOWFLAKE_DIGITS
        )

    @guild.register
    class GuildAllow(lightbulb.SlashCommand, name="allow", description="Allow a guild"):
        guild = guild_option("allow")

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            await runner.run(ctx, "admin", _joined("guild allow", self.guild), approval)

    @guild.register
    class GuildRemove(
        lightbulb.SlashCommand, name="remove", description="Remove a guild from the allowlist"
    ):
        guild = guild_option("remove")

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            await runner.run(ctx, "admin", _joined("guild remove", self.guild), approval)

    @guild.register
    class GuildUnban(lightbulb.SlashCommand, name="unban", description="Lift a guild's ban"):
        guild = guild_option("unban")

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            await runner.run(ctx, "admin", _joined("guild unban", self.guild), approval)

    guild.register(_fixed("list", "List allowed and banned guilds", "admin", "guild list"))

    @killswitch.register
    class KillSwitchOn(lightbulb.SlashCommand, name="on", description="Turn the kill switch on"):
        reason = lightbulb.string("reason", "Why (shown to owners)", default="", max_length=200)

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            await runner.run(ctx, "admin", _joined("killswitch on", self.reason), approval)

    killswitch.register(_fixed("off", "Turn the kill switch off", "admin", "killswitch off"))

    killswitch.register(
        _fixed("status", "Show whether the kill switch is on", "admin", "killswitch status")
    )

    @audit.register
    class AuditRecent(
        lightbulb.SlashCommand, name="recent", description="The latest admin actions"
    ):
        count = lightbulb.integer(
            "count", "How many records (default 10)", default=0, min_value=1, max_value=100
        )

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            count = str(self.count) if self.count else ""
            await runner.run(ctx, "admin", _joined("audit recent", count), approval)

    @audit.register
    class AuditQuery(
        lightbulb.SlashCommand,
        name="query",
        description="Search the audit trail (same filters as the console)",
    ):
        filters = lightbulb.string("filters", _AUDIT_FILTERS, default="", max_length=300)

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            await runner.run(ctx, "admin", _joined("audit query", self.filters), approval)

    @audit.register
    class AuditVerify(
        lightbulb.SlashCommand, name="verify", description="Check the audit trail for tampering"
    ):
        filters = lightbulb.string("filters", _AUDIT_FILTERS, default="", max_length=300)

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            await runner.run(ctx, "admin", _joined("audit verify", self.filters), approval)

    @incident.register
    class IncidentDeclare(
        lightbulb.SlashCommand, name="declare", description="Declare an incident (P0 to P3)"
    ):
        severity = lightbulb.string(
            "severity",
            "P0 critical, P1 high, P2 medium, P3 low",
            choices=[lightbulb.Choice(level, level) for level in _SEVERITIES],
        )
        title = lightbulb.string("title", "What is happening", max_length=200)

        @lightbulb.invoke
        async def invoke(
            self,
            ctx: lightbulb.Context,
            runner: CommandRunner = lightbulb.di.INJECTED,
            approval: AccessApproval | None = lightbulb.di.INJECTED,
        ) -> None:
            line = _joined("incident declare", self.severity, self.title)
            await runner.run(ctx, "admin", line, approval)

    rotation.register(_fixed("run", "Refresh expiring OAuth tokens now", "admin", "rotation run"))

    return [Link, linked, Unlink, Search, privacy, admin]
