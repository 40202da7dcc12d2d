"""The bot's commands as plain async functions over :class:`Services`.

Discord (through lightbulb) and the offline console both call
:func:`run_command`, so a command is guarded, behaves and replies the same
way in both. A reply's text is always safe to send to Discord: every
user-derived part has passed through ``ResponseSanitizer.for_discord``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Final

import attrs

from timmybot_bot.audit_commands import (
    AuditQuery,
    AuditQueryError,
    parse_audit_query,
    render_page,
    render_verification,
)
from timmybot_bot.bootstrap import Services
from timmybot_bot.search import render_results, split_platform_option
from timmybot_core import (
    Incident,
    LinkError,
    NotLinked,
    OAuthError,
    ProviderRateLimited,
    RefreshPaused,
    ReLinkRequired,
    Severity,
    StoreUnavailable,
    Switch,
    ValidationResult,
)
from timmybot_core.domain.classification import privacy_info_text
from timmybot_core.domain.errors import DataDeletionError
from timmybot_core.domain.snowflake import SnowflakeError, is_snowflake_text, parse_snowflake
from timmybot_core.services.retention import Requester

__all__ = [
    "COMMANDS",
    "Attachment",
    "Command",
    "Confirmation",
    "Invocation",
    "Reply",
    "is_admin",
    "run_command",
]

_log = logging.getLogger("timmybot.commands")


def _id_set(values: Iterable[int]) -> frozenset[int]:
    return frozenset(values)


@attrs.frozen(kw_only=True)
class Invocation:
    """Who runs a command, and where.

    ``guild_id`` is ``None`` in a direct message. ``source`` says where the
    command came from (``discord``, ``console``) for the audit trail. ``trusted_operator`` marks
    the person at the offline console's terminal with no identity chosen:
    they run the bot's machine, so the guard does not apply to them.
    """

    user_id: int
    guild_id: int | None = None
    role_ids: frozenset[int] = attrs.field(factory=frozenset, converter=_id_set)
    source: str = "discord"
    trusted_operator: bool = False


@attrs.frozen(kw_only=True)
class Attachment:
    """A file sent with a reply (``/privacy export``'s JSON)."""

    filename: str
    content: bytes = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class Confirmation:
    """A destructive step that waits for the caller to confirm.

    Discord shows ``prompt`` with a button labelled ``label``; the console
    asks on the terminal. ``action`` runs only once the same caller confirms.
    """

    prompt: str
    label: str
    action: Callable[[], Awaitable[Reply]] = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class Reply:
    """What a command answers.

    ``text`` is always safe to send; ``ephemeral`` means only the caller sees
    it; ``direct`` asks for a direct message to the caller (with the
    ``attachment``, if any) instead of a reply in the channel; ``confirmation``
    holds a step that runs only after the caller confirms it.
    """

    text: str
    ephemeral: bool = False
    direct: bool = False
    attachment: Attachment | None = None
    confirmation: Confirmation | None = None


Handler = Callable[[Services, Invocation, str], Awaitable[Reply]]


@attrs.frozen(kw_only=True)
class Command:
    """A command's name, usage, help text and handler."""

    name: str
    usage: str
    summary: str
    handler: Handler
    guarded: bool = True
    admin_only: bool = False


class UsageError(Exception):
    """A command line is malformed; the message says how to write it."""


def is_admin(services: Services, invocation: Invocation) -> bool:
    """Tell whether the caller may run admin commands.

    Owners may, and so may members holding one of the configured admin
    roles (``TIMMYBOT_ADMIN_ROLE_IDS``), but only inside a guild: a role
    means nothing in a direct message. The local operator always may.
    """
    if invocation.trusted_operator or services.access.is_owner(invocation.user_id):
        return True
    admin_roles = services.settings.admin_role_ids
    return invocation.guild_id is not None and not admin_roles.isdisjoint(invocation.role_ids)


# -- user commands ---------------------------------------------------------------


async def _judged(
    services: Services,
    invocation: Invocation,
    result: ValidationResult,
    *,
    field: str,
    label: str,
    limit: int,
) -> Reply:
    """Reply with a validation's decision; a rejection is a security event."""
    if not result.ok:
        await services.security_log.validation_rejected(
            guild_id=invocation.guild_id,
            user_id=invocation.user_id,
            field=field,
            problem=result.error or "",
        )
        return Reply(text=f"{label} rejected: {result.error}", ephemeral=True)
    shown = services.sanitizer.for_discord(result.value, limit=limit)
    return Reply(text=f"{label} accepted: {shown}", ephemeral=True)


# A refresh "within" this long refreshes any token: used once, when the
# platform refused an access token we believed valid (revoked early, or the
# clocks disagree about its expiry).
_FORCE_REFRESH: Final = timedelta(days=365 * 20)


async def search(services: Services, invocation: Invocation, args: str) -> Reply:
    """``/search [platform:<name>] <query>``: the top tracks on the caller's linked platform.

    The query is validated first (a rejection is a security event). Without
    ``platform:``, the first of the caller's linked platforms that has a
    catalog is searched. Every title, artist and URL in the reply is
    sanitized by :func:`timmybot_bot.search.render_results`.
    """
    requested, text = split_platform_option(args)
    result = services.validator.validate_search_query(text)
    if not result.ok or result.value is None:
        return await _judged(
            services, invocation, result, field="search", label="Search", limit=300
        )
    available = services.catalog.platforms()
    if not available:
        raise UsageError(
            "Search needs a music platform, and none is configured. The operator sets "
            "TIMMYBOT_SPOTIFY_CLIENT_ID (or starts the console with --demo-provider)."
        )
    if requested is not None and requested not in available:
        raise UsageError(f"Usage: /search platform:<name> <query>, one of: {', '.join(available)}.")
    user_id = invocation.user_id
    record = await services.tokens.get_user_tokens(user_id)
    linked = [name for name in available if record is not None and record.link(name)]
    platform = requested or (linked[0] if linked else None)
    if platform is None:
        return Reply(
            text="Link a music account first with /link <platform> "
            f"(one of: {', '.join(available)}), then search again.",
            ephemeral=True,
        )
    query = result.value
    try:
        token = await services.tokens.get_valid_access_token(user_id, platform)
        try:
            tracks = await services.catalog.search(platform, query, access_token=token)
        except ReLinkRequired:
            outcome = await services.tokens.refresh(user_id, platform, within=_FORCE_REFRESH)
            tracks = await services.catalog.search(
                platform, query, access_token=outcome.tokens.access_token
            )
    except ProviderRateLimited as error:
        seconds = max(1, math.ceil(error.retry_after.total_seconds()))
        return Reply(
            text=f"{platform} is receiving too many searches; try again in {seconds} seconds.",
            ephemeral=True,
        )
    others = [name for name in linked if name != platform]
    footer = f"Add platform:<name> to search {', '.join(others)} instead." if others else None
    return Reply(
        text=render_results(
            services.sanitizer, platform=platform, query=query, tracks=tracks, footer=footer
        ),
        ephemeral=True,
    )


async def playlist(services: Services, invocation: Invocation, name: str) -> Reply:
    """``/playlist <name>``: validate a playlist name and show the decision."""
    result = services.validator.validate_playlist_name(name)
    return await _judged(
        services, invocation, result, field="playlist", label="Playlist name", limit=200
    )


async def whoami(services: Services, invocation: Invocation, _: str) -> Reply:
    """``/whoami``: the identity commands run as, and whether the guard lets it through."""
    where = f"guild {invocation.guild_id}" if invocation.guild_id else "a direct message"
    if invocation.trusted_operator:
        return Reply(
            text=f"You are the local operator in {where}: the access guard does not apply. "
            "Start the console with --guild and --user to act as someone else.",
            ephemeral=True,
        )
    owner = " (owner)" if services.access.is_owner(invocation.user_id) else ""
    return Reply(text=f"You are user {invocation.user_id}{owner} in {where}.", ephemeral=True)


def _platform(services: Services, text: str) -> str:
    platform = text.strip().lower()
    available = services.links.platforms()
    if not available:
        raise UsageError(
            "No music platform is configured for linking. The operator sets "
            "TIMMYBOT_SPOTIFY_CLIENT_ID (or starts the console with --demo-provider)."
        )
    if platform not in available:
        raise UsageError(f"Usage: /link <platform>, one of: {', '.join(available)}.")
    return platform


async def link(services: Services, invocation: Invocation, args: str) -> Reply:
    """``/link <platform>``: an authorization URL, for the caller's eyes only."""
    platform = _platform(services, args)
    start = await services.links.begin(invocation.user_id, platform)
    seconds = (start.expires_at - services.clock.now()).total_seconds()
    minutes = max(1, round(seconds / 60))
    # The URL is ours (provider, client ID, state), not user text; angle
    # brackets keep Discord from unfurling it.
    return Reply(
        text=f"Open this link within {minutes} minutes to link your {platform} account:\n"
        f"<{start.url}>",
        ephemeral=True,
    )


async def linked(services: Services, invocation: Invocation, _: str) -> Reply:
    """``/linked``: the platforms the caller linked (never a token)."""
    record = await services.tokens.get_user_tokens(invocation.user_id)
    if record is None or not record.links:
        return Reply(text="You have not linked any account. Use /link <platform>.", ephemeral=True)
    lines = ["Linked accounts:"]
    for name, entry in record.links.items():
        state = "needs /link again" if entry.needs_relink else "active"
        scopes = ", ".join(entry.tokens.scopes) or "no scopes"
        lines.append(f"• {name}: {state}, linked {entry.linked_at:%Y-%m-%d}, scopes: {scopes}")
    return Reply(text=services.sanitizer.for_discord("\n".join(lines)), ephemeral=True)


async def unlink(services: Services, invocation: Invocation, args: str) -> Reply:
    """``/unlink <platform>``: revoke at the provider where possible and delete the tokens."""
    platform = args.strip().lower()
    if not platform:
        raise UsageError("Usage: /unlink <platform>.")
    removed = await services.tokens.unlink(invocation.user_id, platform)
    shown = services.sanitizer.for_discord(platform, limit=40)
    if not removed:
        return Reply(text=f"You have no {shown} account linked.", ephemeral=True)
    return Reply(text=f"Your {shown} account is unlinked and its tokens deleted.", ephemeral=True)


# -- privacy commands --------------------------------------------------------------

EXPORT_FILENAME: Final = "timmybot-data.json"
_PRIVACY_USAGE: Final = "Usage: /privacy info | /privacy export | /privacy delete"


async def privacy(services: Services, invocation: Invocation, args: str) -> Reply:
    """``/privacy info|export|delete``: what is kept about you, a copy of it, or its erasure.

    Not guarded: a user's rights do not depend on the guild allowlist, and
    each subcommand only ever touches the caller's own data.
    """
    match args.split():
        case ["info"] | []:
            return _privacy_info(services)
        case ["export"]:
            return await _privacy_export(services, invocation)
        case ["delete"]:
            return _privacy_delete(services, invocation)
        case _:
            raise UsageError(_PRIVACY_USAGE)


def _privacy_info(services: Services) -> Reply:
    text = privacy_info_text(audit_retention=services.retention.settings.audit_retention)
    return Reply(text=services.sanitizer.for_discord(text), ephemeral=True)


async def _privacy_export(services: Services, invocation: Invocation) -> Reply:
    data = await services.retention.export_user_data(invocation.user_id, Requester.USER)
    content = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    return Reply(
        text=f"Here is a copy of the data TimmyBot keeps about you ({EXPORT_FILENAME}). "
        "It never contains your tokens.",
        ephemeral=True,
        direct=True,
        attachment=Attachment(filename=EXPORT_FILENAME, content=content),
    )


def _privacy_delete(services: Services, invocation: Invocation) -> Reply:
    user_id = invocation.user_id

    async def erase() -> Reply:
        sanitize = services.sanitizer.for_discord
        try:
            report = await services.retention.delete_user_data(user_id, Requester.USER)
        except DataDeletionError as error:
            if error.report is None or error.report.retry_helps:
                advice = "Run /privacy delete again to finish."
            else:
                advice = (
                    "Everything is deleted here, but a platform did not confirm the "
                    "revocation: remove TimmyBot's access in that platform's account settings."
                )
            lines = [
                f"Your data was only partly deleted: {', '.join(error.failed)} failed. {advice}"
            ]
            if error.report is not None:
                lines.append(error.report.as_text())
            return Reply(text=sanitize("\n".join(lines)), ephemeral=True)
        return Reply(
            text=sanitize(
                "Your data is deleted.\n"
                + report.as_text()
                + "\nAudit records about you are kept under a pseudonym only (see /privacy info)."
            ),
            ephemeral=True,
        )

    return Reply(
        text="This deletes your linked accounts (their tokens are revoked first), your "
        "preferences and your pending links. It cannot be undone.",
        ephemeral=True,
        confirmation=Confirmation(
            prompt="Delete all your TimmyBot data?", label="Delete my data", action=erase
        ),
    )


# -- admin commands ----------------------------------------------------------------


def _snowflake(text: str, what: str) -> int:
    try:
        return parse_snowflake(text.strip())
    except SnowflakeError:
        raise UsageError(
            f"{what} must be a Discord ID (the digits 0-9, no leading zero, up to 2**64 - 1)."
        ) from None


async def admin(services: Services, invocation: Invocation, args: str) -> Reply:
    """``/admin ...``: allowlist, bans, kill switch, incidents, audit, rotation (admins only).

    Every admin command that ran (not one refused for its usage) is recorded
    in the audit trail with what it did.
    """
    words = args.split()
    reply = await _admin(services, invocation, words)
    action, resource, arguments = _audit_entry(words)
    try:
        await services.audit.record_admin_action(
            invocation.user_id,
            action,
            resource,
            {"arguments": arguments, "outcome": reply.text[:300]},
            source=invocation.source,
        )
    except StoreUnavailable:
        # The action happened; saying so is better than a reply that hides it.
        _log.exception("/admin %s ran but could not be recorded in the audit trail", action)
        return attrs.evolve(
            reply, text=reply.text + "\n(Warning: the audit trail could not record this.)"
        )
    return reply


def _audit_entry(words: list[str]) -> tuple[str, str, str]:
    """Return the audit action, resource and remaining arguments of an admin command line."""
    path = [word.lower() for word in words[:2] if word.isalpha()]
    rest = words[len(path) :]
    action = ".".join(path) or "admin"
    group = path[0] if path else ""
    if group == "guild" and rest and is_snowflake_text(rest[0]):
        # Written from the parsed integer: the resource is what was acted on.
        return action, f"guild:{parse_snowflake(rest[0])}", " ".join(rest[1:])
    resources = {
        "killswitch": "switch:kill_switch",
        "incident": "incidents",
        "audit": "audit-log",
        "rotation": "tokens",
        "guild": "allowlist",
    }
    return action, resources.get(group, "admin"), " ".join(rest)


async def _admin(services: Services, invocation: Invocation, words: list[str]) -> Reply:
    actor = invocation.user_id
    access = services.access
    match words:
        case ["guild", "allow", guild]:
            guild_id = _snowflake(guild, "The guild")
            added = await access.allow_guild(guild_id, actor=actor)
            outcome = "is now allowed" if added else "was already allowed"
            return Reply(text=f"Guild {guild_id} {outcome}.")
        case ["guild", "remove", guild]:
            guild_id = _snowflake(guild, "The guild")
            removed = await access.remove_guild(guild_id, actor=actor)
            if guild_id in access.settings.allowed_guilds:
                return Reply(
                    text=f"Guild {guild_id} is allowed by configuration "
                    "(TIMMYBOT_ALLOWED_GUILDS); remove it there."
                )
            outcome = "was removed from the allowlist" if removed else "was not on the allowlist"
            return Reply(text=f"Guild {guild_id} {outcome}.")
        case ["guild", "unban", guild]:
            guild_id = _snowflake(guild, "The guild")
            lifted = await access.unban(guild_id, actor=actor)
            return Reply(text=f"Guild {guild_id} {'is unbanned' if lifted else 'was not banned'}.")
        case ["guild", "list"]:
            allowed = await access.list_allowed_guilds()
            bans = await access.list_bans()
            lines = ["Allowed guilds: " + (", ".join(map(str, allowed)) or "none")]
            lines += [
                f"Banned: {ban.guild_id} until {ban.until:%Y-%m-%d %H:%M} UTC" for ban in bans
            ]
            return Reply(text="\n".join(lines))
        case ["killswitch", "on", *reason]:
            text = services.sanitizer.sanitize_string(" ".join(reason)) or "no reason given"
            await access.set_switch(Switch.KILL_SWITCH, True, reason=text, actor=actor)
            return Reply(text="Kill switch ON: only owners can run commands.")
        case ["killswitch", "off"]:
            await access.set_switch(Switch.KILL_SWITCH, False, reason=None, actor=actor)
            return Reply(text="Kill switch OFF: commands are back.")
        case ["killswitch", "status"] | ["killswitch"]:
            state = await access.switch_state(Switch.KILL_SWITCH)
            if not state.active(services.clock.now()):
                return Reply(text="Kill switch is off.")
            why = services.sanitizer.for_discord(state.reason or "", limit=200)
            return Reply(
                text=f"Kill switch is ON since {state.changed_at:%Y-%m-%d %H:%M} UTC: {why}"
            )
        case ["incident", "declare", severity, *title] if title:
            if severity.upper() not in Severity.__members__:
                raise UsageError("Severity must be one of P0, P1, P2, P3.")
            report = await services.incidents.handle(
                Incident(severity=severity.upper(), title=" ".join(title), declared_by=actor)
            )
            lines = [
                f"Incident {report.incident_id} ({report.severity.value}, respond by "
                f"{report.respond_by:%Y-%m-%d %H:%M} UTC): "
                + services.sanitizer.for_discord(report.title, limit=200)
            ]
            lines += [
                f"  {'ok  ' if step.ok else 'FAIL'} {step.name}: "
                + services.sanitizer.for_discord(step.detail, limit=200)
                for step in report.steps
            ]
            return Reply(text="\n".join(lines))
        case ["audit", "recent", *count]:
            query = _audit_query(services, [f"limit:{count[0]}"] if count else [])
            page = await query.page(services)
            return Reply(text=render_page(services, page, title="Recent audit records"))
        case ["audit", "query", *filters]:
            page = await _audit_query(services, filters).page(services)
            return Reply(text=render_page(services, page, title="Audit records"))
        case ["audit", "verify", *filters]:
            query = _audit_query(services, filters)
            verified = await services.audit.verify(query.start, query.end)
            return Reply(
                text=render_verification(
                    services, verified.summary(), [str(p) for p in verified.problems]
                )
            )
        case ["rotation", "run"]:
            rotated = await services.rotation.rotate_expiring()
            if rotated.paused:
                return Reply(text="Token rotation is paused (incident isolation); nothing ran.")
            return Reply(
                text=f"Token rotation: {rotated.users} user(s), {rotated.refreshed} refreshed, "
                f"{rotated.unchanged} unchanged, {rotated.needs_relink} need /link again, "
                f"{rotated.failed} failed."
            )
        case _:
            raise UsageError(
                "Usage: /admin guild allow|remove|unban <id> | /admin guild list | "
                "/admin killswitch on [reason]|off|status | "
                "/admin incident declare <P0-P3> <title> | "
                "/admin audit recent [n] | /admin audit query [filters] | "
                "/admin audit verify [since:7d] | /admin rotation run"
            )


def _audit_query(services: Services, filters: list[str]) -> AuditQuery:
    try:
        return parse_audit_query(filters, now=services.clock.now())
    except AuditQueryError as error:
        raise UsageError(str(error)) from None


COMMANDS: Final[tuple[Command, ...]] = (
    Command(
        name="search",
        usage="/search <query>",
        summary="search your linked music platform (platform:<name> first to pick one)",
        handler=search,
    ),
    Command(
        name="playlist",
        usage="/playlist <name>",
        summary="check a playlist name and show the cleaned value",
        handler=playlist,
    ),
    Command(
        name="link",
        usage="/link <platform>",
        summary="link a music account (prints an authorization URL)",
        handler=link,
    ),
    Command(
        name="linked",
        usage="/linked",
        summary="show your linked accounts",
        handler=linked,
    ),
    Command(
        name="unlink",
        usage="/unlink <platform>",
        summary="unlink an account and delete its tokens",
        handler=unlink,
    ),
    Command(
        name="whoami",
        usage="/whoami",
        summary="show the guild and user commands run as",
        handler=whoami,
        guarded=False,
    ),
    Command(
        name="privacy",
        usage="/privacy info|export|delete",
        summary="what TimmyBot keeps about you; a JSON copy of it; or its deletion",
        handler=privacy,
        guarded=False,
    ),
    Command(
        name="admin",
        usage="/admin guild allow|remove|unban <id>",
        summary="manage the allowlist and bans; also: guild list, killswitch on|off|status, "
        "incident declare <P0-P3> <title>, audit recent|query|verify, rotation run "
        "(owners and admin roles)",
        handler=admin,
        admin_only=True,
    ),
)
_BY_NAME: Final = {command.name: command for command in COMMANDS}


async def run_command(
    services: Services,
    invocation: Invocation,
    name: str,
    args: str,
    *,
    check_access: bool = True,
) -> Reply:
    """Guard and run one command; every failure becomes a short reply, never an exception.

    ``check_access=False`` skips the access guard: only for a caller that
    has just run ``ServerAccessControl.check`` for this same invocation (the
    Discord layer's guard hook), so that the command is not guarded twice.
    The admin check still applies.
    """
    command = _BY_NAME.get(name)
    if command is None:
        shown = services.sanitizer.for_discord(name, limit=40)
        return Reply(text=f"Unknown command /{shown}. Type /help for the list.", ephemeral=True)
    if check_access and command.guarded and not invocation.trusted_operator:
        decision = await services.access.check(invocation.guild_id, invocation.user_id, name)
        if not decision.allowed:
            return Reply(text=f"Denied: {decision.message}", ephemeral=True)
    if command.admin_only and not is_admin(services, invocation):
        services.metrics.record_unauthorized_access()
        await services.security_log.unauthorized_access(
            guild_id=invocation.guild_id,
            user_id=invocation.user_id,
            command=name,
            reason="not_owner",
        )
        return Reply(text=f"Only TimmyBot owners and admins can use /{name}.", ephemeral=True)
    try:
        return await command.handler(services, invocation, args)
    except UsageError as error:
        return Reply(text=str(error), ephemeral=True)
    except ValueError as error:
        # From domain constructors (an incident with an empty title): our own
        # message, escaped anyway since it may quote a value.
        return Reply(text=services.sanitizer.for_discord(str(error), limit=300), ephemeral=True)
    except NotLinked as error:
        return Reply(text=f"Link your {error.platform} account first with /link.", ephemeral=True)
    except ReLinkRequired as error:
        return Reply(
            text=f"Your {error.platform} link has expired; link it again with /link.",
            ephemeral=True,
        )
    except LinkError as error:
        return Reply(text=str(error), ephemeral=True)
    except RefreshPaused:
        return Reply(text="Music accounts are paused for maintenance; try later.", ephemeral=True)
    except OAuthError as error:
        _log.warning("/%s: %s failed: %s", name, error.platform, type(error).__name__)
        return Reply(
            text=f"{error.platform} is not answering right now; try again soon.", ephemeral=True
        )
    except StoreUnavailable:
        _log.exception("/%s failed: a store is unavailable", name)
        return Reply(
            text="A TimmyBot store is unavailable right now; try again soon.", ephemeral=True
        )
