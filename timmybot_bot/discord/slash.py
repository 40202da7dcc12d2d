"""The slash commands: each builds its typed command from its options.

No option is joined into a command line and parsed again: ``query:"platform:
halo"`` searches for ``platform: halo``. Guild IDs are string options
(Discord's integers stop at 2**53, below today's snowflakes). Built at
start-up, so ``/link`` offers the configured platforms as choices.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import hikari
import lightbulb

from timmybot_bot.app import audit_query as aq
from timmybot_bot.app import commands as c
from timmybot_bot.app.failures import UsageError
from timmybot_bot.discord.runner import CommandRunner
from timmybot_core import Severity, Switch

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
_AUDIT_FILTERS = "name:value filters, as in the console (for example kind:security since:7d)"

#: Builds a command from the slash command's options and the time now.
Build = Callable[[Any, datetime], c.Command]


def _slash(
    name: str,
    description: str,
    build: Build,
    *,
    top_level: bool = False,
    **options: object,
) -> type[lightbulb.SlashCommand]:
    """Return a slash command class with ``options`` whose ``invoke`` runs ``build``'s command."""
    where = {"contexts": _CONTEXTS, "integration_types": _INSTALL} if top_level else {}

    @lightbulb.invoke
    async def invoke(
        self: Any, ctx: lightbulb.Context, runner: CommandRunner = lightbulb.di.INJECTED
    ) -> None:
        try:
            command = build(self, runner.clock.now())
        except UsageError as error:
            await runner.refuse(ctx, error)
        else:
            await runner.run(ctx, command)

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(options, invoke=invoke)

    keywords = {"name": name, "description": description, **where}
    made: type[lightbulb.SlashCommand] = types.new_class(
        name.title(), (lightbulb.SlashCommand,), keywords, body
    )
    return made


def _change_guild(kind: type[c.AllowGuild | c.RemoveGuild | c.UnbanGuild]) -> Build:
    return lambda options, now: kind(guild_id=aq.parse_guild_id(options.guild))


def _register(
    group: lightbulb.Group | lightbulb.SubGroup, *commands: type[lightbulb.SlashCommand]
) -> None:
    for command in commands:
        group.register(command)


def build_commands(
    platforms: Sequence[str],
) -> list[type[lightbulb.SlashCommand] | lightbulb.Group]:
    """Build the slash commands and groups to register with the lightbulb client.

    ``platforms`` are the music platforms offered as choices for ``/link``
    (free text when empty: the handler then explains that none is configured).
    """
    choices: hikari.UndefinedOr[list[lightbulb.Choice[str]]] = (
        [lightbulb.Choice(name, name) for name in platforms[:25]] if platforms else hikari.UNDEFINED
    )
    link = _slash(
        "link",
        "Link a music account (you get a private authorization link)",
        lambda o, now: c.LinkAccount(platform=o.platform),
        top_level=True,
        platform=lightbulb.string(
            "platform", "The music platform to link", choices=choices, max_length=40
        ),
    )
    linked = _slash(
        "linked", "Show the music accounts you linked", lambda o, now: c.ShowLinks(), top_level=True
    )
    unlink = _slash(
        "unlink",
        "Unlink a music account and delete its tokens",
        lambda o, now: c.UnlinkAccount(platform=o.platform),
        top_level=True,
        platform=lightbulb.string("platform", "The music platform to unlink", max_length=40),
    )
    search = _slash(
        "search",
        "Search your linked music platform",
        lambda o, now: c.SearchTracks(query=o.query, platform=o.platform.strip() or None),
        top_level=True,
        query=lightbulb.string("query", "What to search for", max_length=c.QUERY_LIMIT),
        platform=lightbulb.string(
            "platform",
            "The linked platform to search (default: your first)",
            default="",
            max_length=40,
        ),
    )

    privacy = lightbulb.Group(
        "privacy", "Your data held by TimmyBot", contexts=_CONTEXTS, integration_types=_INSTALL
    )
    _register(
        privacy,
        _slash("info", "What TimmyBot keeps about you, and why", lambda o, now: c.PrivacyInfo()),
        _slash(
            "export",
            "Get a copy of your data as a JSON file in a direct message",
            lambda o, now: c.ExportMyData(),
        ),
        _slash(
            "delete",
            "Delete your data (asks you to confirm first)",
            lambda o, now: c.RequestErasure(),
        ),
    )

    admin = lightbulb.Group(
        "admin",
        "TimmyBot owners and admin roles: allowlist, kill switch, audit, incidents",
        contexts=_CONTEXTS,
        integration_types=_INSTALL,
    )
    guild = admin.subgroup("guild", "The guild allowlist and bans")
    guild_commands: tuple[tuple[str, str, type[c.AllowGuild | c.RemoveGuild | c.UnbanGuild]], ...]
    guild_commands = (
        ("allow", "Allow a guild", c.AllowGuild),
        ("remove", "Remove a guild from the allowlist", c.RemoveGuild),
        ("unban", "Lift a guild's ban", c.UnbanGuild),
    )
    for verb, description, kind in guild_commands:
        guild.register(
            _slash(
                verb,
                description,
                _change_guild(kind),
                guild=lightbulb.string(
                    "guild",
                    f"The ID of the guild to {verb}",
                    min_length=1,
                    max_length=_SNOWFLAKE_DIGITS,
                ),
            )
        )
    guild.register(_slash("list", "List allowed and banned guilds", lambda o, now: c.ListGuilds()))

    kill = Switch.KILL_SWITCH
    _register(
        admin.subgroup("killswitch", "Stop every command for everyone but the owners"),
        _slash(
            "on",
            "Turn the kill switch on",
            lambda o, now: c.SwitchOn(switch=kill, reason=o.reason or None),
            reason=lightbulb.string("reason", "Why (shown to owners)", default="", max_length=200),
        ),
        _slash("off", "Turn the kill switch off", lambda o, now: c.SwitchOff(switch=kill)),
        _slash(
            "status",
            "Show whether the kill switch is on",
            lambda o, now: c.SwitchStatus(switch=kill),
        ),
    )

    _register(
        admin.subgroup("audit", "The admin audit trail"),
        _slash(
            "recent",
            "The latest admin actions",
            lambda o, now: aq.parse_recent(o.count, now=now),
            count=lightbulb.integer(
                "count",
                "How many records (default 10)",
                default=0,
                min_value=1,
                max_value=aq.MAX_SHOWN,
            ),
        ),
        _slash(
            "query",
            "Search the audit trail (same filters as the console)",
            lambda o, now: aq.parse_audit_query(o.filters.split(), now=now),
            filters=lightbulb.string("filters", _AUDIT_FILTERS, default="", max_length=300),
        ),
        _slash(
            "verify",
            "Check the audit trail for tampering",
            lambda o, now: aq.parse_verify(o.filters.split(), now=now),
            filters=lightbulb.string("filters", _AUDIT_FILTERS, default="", max_length=300),
        ),
    )

    admin.subgroup("incident", "Incident response").register(
        _slash(
            "declare",
            "Declare an incident (P0 to P3)",
            lambda o, now: c.DeclareIncident(severity=Severity(o.severity), title=o.title),
            severity=lightbulb.string(
                "severity",
                "P0 critical, P1 high, P2 medium, P3 low",
                choices=[lightbulb.Choice(level.value, level.value) for level in Severity],
            ),
            title=lightbulb.string("title", "What is happening", max_length=200),
        )
    )
    admin.subgroup("rotation", "OAuth token rotation").register(
        _slash("run", "Refresh expiring OAuth tokens now", lambda o, now: c.RunRotation())
    )
    return [link, linked, unlink, search, privacy, admin]
