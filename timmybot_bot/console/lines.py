"""The console's command lines: ``/search platform:demo halo`` into a typed command.

The offline console is a text interface, so its lines are parsed here, once,
into the same commands Discord builds from its typed options; then
:func:`~timmybot_bot.app.replies.chat` runs them. Discord never comes here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

import attrs

from timmybot_bot.app import audit_query as aq
from timmybot_bot.app import commands as c
from timmybot_bot.app.failures import UsageError
from timmybot_bot.app.replies import Reply, chat, failure_reply, refused
from timmybot_bot.app.search_results import split_platform_option
from timmybot_bot.runtime.bootstrap import Services
from timmybot_core import Severity, Switch

__all__ = ["COMMANDS", "ConsoleCommand", "parse_line", "run_command"]


@attrs.frozen(kw_only=True)
class ConsoleCommand:
    """A console command's name, usage and help text (who may run it is the bus's business)."""

    name: str
    usage: str
    summary: str


COMMANDS: Final = tuple(
    ConsoleCommand(name=name, usage=usage, summary=summary)
    for name, usage, summary in (
        ("search", "/search <query>",
         "search your linked music platform (platform:<name> first to pick one)"),
        ("playlist", "/playlist <name>", "check a playlist name and show the cleaned value"),
        ("link", "/link <platform>", "link a music account (prints an authorization URL)"),
        ("linked", "/linked", "show your linked accounts"),
        ("unlink", "/unlink <platform>", "unlink an account and delete its tokens"),
        ("whoami", "/whoami", "show the guild and user commands run as"),
        ("privacy", "/privacy info|export|delete",
         "what TimmyBot keeps about you; a JSON copy of it; or its deletion"),
        ("admin", "/admin guild allow|remove|unban <id>",
         "manage the allowlist and bans; also: guild list, killswitch on|off|status, "
         "incident declare <P0-P3> <title>, audit recent|query|verify, rotation run "
         "(owners and admin roles)"),
    )
)  # fmt: skip

_PRIVACY_USAGE: Final = "Usage: /privacy info | /privacy export | /privacy delete"
_ADMIN_USAGE: Final = (
    "Usage: /admin guild allow|remove|unban <id> | /admin guild list | "
    "/admin killswitch on [reason]|off|status | "
    "/admin incident declare <P0-P3> <title> | "
    "/admin audit recent [n] | /admin audit query [filters] | "
    "/admin audit verify [since:7d] | /admin rotation run"
)


_GUILD_COMMANDS: Final = {"allow": c.AllowGuild, "remove": c.RemoveGuild, "unban": c.UnbanGuild}


def _privacy(args: str, now: datetime) -> c.Command:
    match args.split():
        case ["info"] | []:
            return c.PrivacyInfo()
        case ["export"]:
            return c.ExportMyData()
        case ["delete"]:
            return c.RequestErasure()
        case _:
            raise UsageError(_PRIVACY_USAGE)


def _admin(args: str, now: datetime) -> c.Command:
    match args.split():
        case ["guild", verb, guild] if verb in _GUILD_COMMANDS:
            return _GUILD_COMMANDS[verb](guild_id=aq.parse_guild_id(guild))
        case ["guild", "list"]:
            return c.ListGuilds()
        case ["killswitch", "on", *reason]:
            return c.SwitchOn(switch=Switch.KILL_SWITCH, reason=" ".join(reason) or None)
        case ["killswitch", "off"]:
            return c.SwitchOff(switch=Switch.KILL_SWITCH)
        case ["killswitch", "status"] | ["killswitch"]:
            return c.SwitchStatus(switch=Switch.KILL_SWITCH)
        case ["incident", "declare", severity, *title] if title:
            if severity.upper() not in Severity.__members__:
                raise UsageError("Severity must be one of P0, P1, P2, P3.")
            return c.DeclareIncident(severity=Severity(severity.upper()), title=" ".join(title))
        case ["audit", "recent", *count]:
            return aq.parse_recent(count[0] if count else None, now=now)
        case ["audit", "query", *filters]:
            return aq.parse_audit_query(filters, now=now)
        case ["audit", "verify", *filters]:
            return aq.parse_verify(filters, now=now)
        case ["rotation", "run"]:
            return c.RunRotation()
        case _:
            raise UsageError(_ADMIN_USAGE)


def _search(args: str, now: datetime) -> c.Command:
    platform, query = split_platform_option(args)
    return c.SearchTracks(query=query, platform=platform)


_PARSERS: Final[dict[str, Callable[[str, datetime], c.Command]]] = {
    "search": _search,
    "playlist": lambda args, now: c.CheckPlaylistName(name=args),
    "whoami": lambda args, now: c.WhoAmI(),
    "link": lambda args, now: c.LinkAccount(platform=args),
    "linked": lambda args, now: c.ShowLinks(),
    "unlink": lambda args, now: c.UnlinkAccount(platform=args),
    "privacy": _privacy,
    "admin": _admin,
}


def parse_line(name: str, args: str, *, now: datetime) -> c.Command | None:
    """Return the command ``/name args`` asks for; ``None`` for an unknown name.

    Raises ``UsageError`` for a malformed line.
    """
    parse = _PARSERS.get(name)
    return None if parse is None else parse(args, now)


async def run_command(services: Services, invocation: c.Invocation, name: str, args: str) -> Reply:
    """Parse and run one console command; every failure becomes a short reply."""
    sanitizer = services.sanitizer
    try:
        command = parse_line(name, args, now=services.clock.now())
    except UsageError as error:
        if name == "admin":
            return await refused(services.bus, sanitizer, invocation, error)
        return failure_reply(error, sanitizer, where=f"/{name}")
    if command is None:
        shown = sanitizer.for_discord(name, limit=40)
        return Reply(text=f"Unknown command /{shown}. Type /help for the list.", ephemeral=True)
    return await chat(services.bus, sanitizer, invocation, command)
