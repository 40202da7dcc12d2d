"""The chat replies: how Discord and the offline console show a command's result.

:func:`chat` runs one command through the bus and returns the :class:`Reply`
both front-ends show, failures included (through the failure table). A
reply's text is always safe to send to Discord: every user-derived part has
passed through ``ResponseSanitizer.for_discord``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

import attrs

from timmybot_bot.app.audit_query import render_page, render_verification
from timmybot_bot.app.commands import Command, Invocation, ListGuilds, QueryAudit
from timmybot_bot.app.failures import UNEXPECTED, UsageError, describe, failure_for
from timmybot_bot.app.fitting import fit_lines
from timmybot_bot.app.handlers import access, incidents, music, privacy, tokens
from timmybot_bot.app.messagebus import MessageBus
from timmybot_bot.app.search_results import render_results
from timmybot_core import (
    AuditPage,
    DiscordLimits,
    IncidentReport,
    ResponseSanitizer,
    RotationReport,
    Switch,
    SwitchState,
)
from timmybot_core.services.audit_verify import VerificationReport

__all__ = [
    "EXPORT_FILENAME",
    "Attachment",
    "Confirmation",
    "Reply",
    "chat",
    "failure_reply",
    "guild_changed_text",
    "incident_lines",
    "refused",
    "reply_for",
    "rotation_text",
]

_log = logging.getLogger("timmybot.commands")

EXPORT_FILENAME: Final = "timmybot-data.json"
_NOT_RECORDED: Final = "\n(Warning: the audit trail could not record this.)"


@attrs.frozen(kw_only=True)
class Attachment:
    """A file sent with a reply (``/privacy export``'s JSON)."""

    filename: str
    content: bytes = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class Confirmation:
    """A destructive step that waits for the caller to confirm.

    Discord shows ``prompt`` with a button labelled ``label``; the console
    asks on the terminal. ``action`` runs only once the same caller confirms
    (through the bus, so the guard is asked again then).
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
    holds a step that runs only after the caller confirms it; ``quiet``
    replies (a repeated rate-limit refusal) are not shown if it can be helped.
    """

    text: str
    ephemeral: bool = False
    direct: bool = False
    attachment: Attachment | None = None
    confirmation: Confirmation | None = None
    quiet: bool = False


def _private(text: str) -> Reply:
    return Reply(text=text, ephemeral=True)


def _recorded(text: str, recorded: bool) -> Reply:
    # The action happened; saying so is better than a reply that hides it.
    return Reply(text=text if recorded else text + _NOT_RECORDED)


@functools.singledispatch
def reply_for(result: object, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    """Return the chat reply for a handler's ``result``."""
    raise TypeError(f"no chat reply for {type(result).__name__}")  # pragma: no cover


@reply_for.register
def _(result: music.Judged, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    if result.value is None:  # rejected: the validator named the problem
        return _private(f"{result.label} rejected: {result.error}")
    shown = sanitizer.for_discord(result.value, limit=result.limit)
    return _private(f"{result.label} accepted: {shown}")


@reply_for.register
def _(result: music.Searched, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    others = ", ".join(result.others)
    footer = f"Add platform:<name> to search {others} instead." if others else None
    text = render_results(
        sanitizer, platform=result.platform, query=result.query, tracks=result.tracks, footer=footer
    )
    return _private(text)


@reply_for.register
def _(result: music.NeedsLink, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    return _private(
        "Link a music account first with /link <platform> "
        f"(one of: {', '.join(result.available)}), then search again."
    )


@reply_for.register
def _(result: music.RateLimited, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    return _private(
        f"{result.platform} is receiving too many searches; try again in {result.seconds} seconds."
    )


@reply_for.register
def _(result: music.Identity, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    where = f"guild {result.guild_id}" if result.guild_id else "a direct message"
    if result.trusted_operator:
        return _private(
            f"You are the local operator in {where}: the access guard does not apply. "
            "Start the console with --guild and --user to act as someone else."
        )
    owner = " (owner)" if result.owner else ""
    return _private(f"You are user {result.user_id}{owner} in {where}.")


@reply_for.register
def _(result: music.LinkStarted, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    # The URL is ours (provider, client ID, state), not user text; angle
    # brackets keep Discord from unfurling it.
    return _private(
        f"Open this link within {result.minutes} minutes to link your {result.platform} "
        f"account:\n<{result.url}>"
    )


@reply_for.register
def _(result: music.Links, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    if not result.links:
        return _private("You have not linked any account. Use /link <platform>.")
    lines = ["Linked accounts:"]
    for name, entry in result.links:
        state = "needs /link again" if entry.needs_relink else "active"
        scopes = ", ".join(entry.tokens.scopes) or "no scopes"
        lines.append(f"• {name}: {state}, linked {entry.linked_at:%Y-%m-%d}, scopes: {scopes}")
    return _private(sanitizer.for_discord("\n".join(lines)))


@reply_for.register
def _(result: music.Unlinked, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    shown = sanitizer.for_discord(result.platform, limit=40)
    if not result.removed:
        return _private(f"You have no {shown} account linked.")
    return _private(f"Your {shown} account is unlinked and its tokens deleted.")


@reply_for.register
def _(result: privacy.PrivacyStatement, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    return _private(sanitizer.for_discord(result.text))


@reply_for.register
def _(result: privacy.Export, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    content = json.dumps(result.document, ensure_ascii=False, indent=2).encode("utf-8")
    return Reply(
        text=f"Here is a copy of the data TimmyBot keeps about you ({EXPORT_FILENAME}). "
        "It never contains your tokens.",
        ephemeral=True,
        direct=True,
        attachment=Attachment(filename=EXPORT_FILENAME, content=content),
    )


@reply_for.register
def _(result: privacy.Erasure, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    if result.problem is not None:
        if result.report is None or result.report.retry_helps:
            advice = "Run /privacy delete again to finish."
        else:
            advice = (
                "Everything is deleted here, but a platform did not confirm the "
                "revocation: remove TimmyBot's access in that platform's account settings."
            )
        lines = [f"Your data was only partly deleted: {', '.join(result.failed)} failed. {advice}"]
        if result.report is not None:
            lines.append(result.report.as_text())
        return _private(sanitizer.for_discord("\n".join(lines)))
    report_text = result.report.as_text() if result.report is not None else ""
    return _private(
        sanitizer.for_discord(
            "Your data is deleted.\n"
            + report_text
            + "\nAudit records about you are kept under a pseudonym only (see /privacy info)."
        )
    )


def guild_changed_text(result: access.GuildChanged, command: Command) -> str:
    """Return what an allowlist change did, in words (every front-end says it so)."""
    guild, verb = result.guild_id, type(command).action
    if verb == "guild.allow":
        return f"Guild {guild} {'is now allowed' if result.changed else 'was already allowed'}."
    if verb == "guild.unban":
        return f"Guild {guild} {'is unbanned' if result.changed else 'was not banned'}."
    if result.configured:
        return (
            f"Guild {guild} is allowed by configuration (TIMMYBOT_ALLOWED_GUILDS); remove it there."
        )
    outcome = "was removed from the allowlist" if result.changed else "was not on the allowlist"
    return f"Guild {guild} {outcome}."


@reply_for.register
def _(result: access.GuildChanged, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    return _recorded(guild_changed_text(result, command), result.recorded)


@reply_for.register
def _(result: access.Guilds, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    # Each part has its budget, so neither is what the sender's cut drops.
    bans = fit_lines(
        [],
        [f"Banned: {ban.guild_id} until {ban.until:%Y-%m-%d %H:%M} UTC" for ban in result.bans],
        more=lambda n: f"… and {n} more ban(s) (timmybot-admin guild list shows all)",
        limit=DiscordLimits.MESSAGE // 2,
    )
    ids = [str(guild) for guild in result.allowed]
    allowed = "Allowed guilds: " + (", ".join(ids) or "none")
    room = DiscordLimits.MESSAGE - len(bans) - 1
    if len(allowed) > room:
        # The suffix is at most this long (the count has at most 20 digits).
        suffix = " … and {} more (timmybot-admin guild list shows all)"
        budget = room - len("Allowed guilds: ") - len(suffix.format(10**20))
        kept = 0
        used = 0
        while kept < len(ids) and used + len(ids[kept]) + 2 * (kept > 0) <= budget:
            used += len(ids[kept]) + 2 * (kept > 0)
            kept += 1
        allowed = "Allowed guilds: " + ", ".join(ids[:kept]) + suffix.format(len(ids) - kept)
    return Reply(text="\n".join(part for part in (allowed, bans) if part))


def _switch_line(state: SwitchState, sanitizer: ResponseSanitizer, now: datetime) -> str:
    name = "Kill switch" if state.switch is Switch.KILL_SWITCH else state.switch.value
    if not state.active(now):
        return f"{name} is off."
    why = sanitizer.for_discord(state.reason or "", limit=200)
    # The port leaves the time optional (a DynamoDB item may lack it), as
    # timmybot-admin's line does.
    since = f" since {state.changed_at:%Y-%m-%d %H:%M} UTC" if state.changed_at else ""
    return f"{name} is ON{since}: {why}"


@reply_for.register
def _(result: access.SwitchChanged, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    state = result.state
    if state.switch is Switch.KILL_SWITCH:
        text = (
            "Kill switch ON: only owners can run commands."
            if state.active(result.now)
            else "Kill switch OFF: commands are back."
        )
    else:
        text = f"{state.switch.value}: {'ON' if state.active(result.now) else 'off'}."
    return _recorded(text, result.recorded)


@reply_for.register
def _(result: access.Switches, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    # Private: the reason is for owners and admins (the option says so), not
    # for everyone who can read the channel the status was asked in.
    lines = [_switch_line(state, sanitizer, result.now) for state in result.states]
    return Reply(text="\n".join(lines), ephemeral=True)


def incident_lines(report: IncidentReport, clean: Callable[[str], str]) -> list[str]:
    """Return a playbook's report as lines; ``clean`` makes the title and step details safe."""
    lines = [
        f"Incident {report.incident_id} ({report.severity.value}, respond by "
        f"{report.respond_by:%Y-%m-%d %H:%M} UTC): " + clean(report.title)
    ]
    lines += [
        f"  {'ok  ' if step.ok else 'FAIL'} {step.name}: " + clean(step.detail)
        for step in report.steps
    ]
    return lines


@reply_for.register
def _(result: incidents.IncidentDeclared, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    lines = incident_lines(result.report, lambda text: sanitizer.for_discord(text, limit=200))
    return _recorded("\n".join(lines), result.recorded)


@reply_for.register
def _(result: AuditPage, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    title = "Audit records"
    if isinstance(command, QueryAudit) and command.recent:
        title = "Recent audit records"
    return Reply(text=render_page(sanitizer, result, title=title))


@reply_for.register
def _(result: VerificationReport, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    problems = [str(problem) for problem in result.problems]
    return Reply(text=render_verification(sanitizer, result.summary(), problems))


def rotation_text(report: RotationReport) -> str:
    """Return what a rotation run did, in words (every front-end says it so)."""
    if report.paused and not report.users:
        return "Token rotation is paused (incident isolation); nothing ran."
    counts = (
        f"Token rotation: {report.users} user(s), {report.refreshed} refreshed, "
        f"{report.unchanged} unchanged, {report.needs_relink} need /link again, "
        f"{report.failed} failed."
    )
    if report.paused:  # an incident paused refresh while the run went on
        return counts + " Refresh was paused during the run; the rest were left unchanged."
    return counts


@reply_for.register
def _(result: tokens.Rotated, sanitizer: ResponseSanitizer, command: Command) -> Reply:
    return _recorded(rotation_text(result.report), result.recorded)


def failure_reply(error: BaseException, sanitizer: ResponseSanitizer, *, where: str) -> Reply:
    """Return the reply for a failure, from the failure table; log what needs logging."""
    failure = failure_for(error)
    if failure.log_level is not None:
        _log.log(failure.log_level, "%s failed: %s", where, describe(error))
    text = failure.message(error)
    if failure.quotes_error:
        text = sanitizer.for_discord(text, limit=300)
    return Reply(text=text, ephemeral=True, quiet=failure.quiet)


async def refused(
    bus: MessageBus, sanitizer: ResponseSanitizer, invocation: Invocation, error: UsageError
) -> Reply:
    """Answer an admin command line no command could be built from.

    Only admin commands' options can be malformed (IDs, filters): the caller
    is checked as for an admin command first, so only admins see the usage.
    """
    try:
        await bus.guard(ListGuilds(), invocation)
    except Exception as refusal:  # noqa: BLE001 - the failure table knows it
        return failure_reply(refusal, sanitizer, where="/admin")
    return failure_reply(error, sanitizer, where="/admin")


async def chat(
    bus: MessageBus, sanitizer: ResponseSanitizer, invocation: Invocation, command: Command
) -> Reply:
    """Run ``command`` for ``invocation``; every failure becomes a short reply."""
    where = f"/{type(command).guard_name}"
    try:
        result: Any = await bus.handle(command, invocation)
    except Exception as error:  # noqa: BLE001 - the failure table knows every kind
        return failure_reply(error, sanitizer, where=where)
    if isinstance(result, privacy.ConfirmErasure):
        then = result.then
        return Reply(
            text="This deletes your linked accounts (their tokens are revoked first), your "
            "preferences and your pending links. It cannot be undone.",
            ephemeral=True,
            confirmation=Confirmation(
                prompt="Delete all your TimmyBot data?",
                label="Delete my data",
                action=lambda: chat(bus, sanitizer, invocation, then),
            ),
        )
    try:
        return reply_for(result, sanitizer, command)
    except Exception as error:  # noqa: BLE001 - a rendering bug must not end the console
        # The handler ran; only its reply failed. Never the failure table's
        # row for the error: a ValueError's text here is no usage message.
        _log.error("%s: its reply could not be rendered: %s", where, describe(error))
        return Reply(text=UNEXPECTED, ephemeral=True)
