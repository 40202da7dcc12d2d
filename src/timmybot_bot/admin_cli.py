"""``timmybot-admin``: the operator's command line over the bot's own services.

It reads the same settings as the bot (``TIMMYBOT_*`` variables and an
optional TOML file, ``--config``), builds the same services with
:func:`~timmybot_bot.bootstrap.bootstrap`, runs one command and exits::

    timmybot-admin audit query kind:admin since:7d --all
    timmybot-admin audit verify
    timmybot-admin user delete 123456789012345678
    timmybot-admin vault rekey --generate

Exit codes: 0 done; 1 the operation failed (verification found problems,
an erasure was incomplete, a store was unavailable); 2 a usage error (bad
arguments, a refused confirmation prompt without ``--yes``); 3 a
configuration error (a setting, a key file). Errors are one line on
standard error, never a traceback and never a secret. Results go to
standard output (``--json`` for JSON), progress bars to standard error
when it is a terminal.

Who acts: every command that changes something is recorded in the audit
trail with ``source="cli"``, as the Discord user given with ``--as ID``, or
else as user 0, the local operator (as in the offline console), with the
pseudonym of the operating-system account in the details so that local
operators can be told apart. See ``docs/operations.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import sys
import textwrap
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

import attrs

from timmybot_adapters.signing import Ed25519Signer
from timmybot_bot.audit_commands import AuditQueryError, parse_audit_query
from timmybot_bot.audit_keys import (
    KEYRING_FILE,
    SIGNING_KEY_FILE,
    audit_keys,
    load_keyring,
    rotate_audit_signing_key,
)
from timmybot_bot.bootstrap import Services, bootstrap, check_settings
from timmybot_bot.keys import key_id_for, load_or_create_key, parse_key
from timmybot_bot.progress import Progress
from timmybot_bot.settings import MAX_SNOWFLAKE, ConfigurationError, Settings
from timmybot_bot.vault_rekey import (
    CURRENT_FILE,
    STAGED_FILE,
    NewKeySource,
    RekeyError,
    RekeyOutcome,
    RekeyUsageError,
    plan_rekey,
    rekey_vault,
)
from timmybot_core import (
    AuditLog,
    AuditPage,
    AuditRecord,
    DataDeletionError,
    ErasureReport,
    Incident,
    PseudonymKind,
    Requester,
    Severity,
    SignedDigest,
    StoreUnavailable,
    Switch,
    SwitchState,
    TimmyBotError,
)
from timmybot_core.services.audit import record_as_json
from timmybot_core.services.audit_verify import VerificationReport, verify_log
from timmybot_core.text import strip_invisible

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

PROG: Final = "timmybot-admin"
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 3
LOCAL_OPERATOR: Final = 0
_MAX_PAGE: Final = 500

_log = logging.getLogger("timmybot.admin")


class UsageProblem(Exception):
    """The command line asks for something that cannot be done as written (exit 2)."""


class OperationFailed(Exception):
    """The operation ran and failed; the message says how (exit 1)."""


# -- output ------------------------------------------------------------------------


def _safe(text: object) -> str:
    """Return ``text`` fit for a terminal: no control, bidi or escape characters."""
    return strip_invisible(str(text))


@attrs.define(kw_only=True)
class Output:
    """Where a command writes: results to ``stdout``, progress and prompts to ``stderr``."""

    stdout: TextIO
    stderr: TextIO
    stdin: TextIO
    json: bool = False
    progress_enabled: bool | None = None

    def line(self, text: str = "") -> None:
        """Write one line of result text (already terminal-safe)."""
        self.stdout.write(text + "\n")

    def data(self, value: object) -> None:
        """Write ``value`` as a JSON document (ASCII only, so no terminal escapes)."""
        self.stdout.write(json.dumps(value, indent=2, ensure_ascii=True, sort_keys=False) + "\n")

    def note(self, text: str) -> None:
        """Write a remark for the person at the terminal (standard error)."""
        self.stderr.write(f"{PROG}: {text}\n")
        self.stderr.flush()

    def progress(self, label: str, *, total: int | None = None, unit: str = "") -> Progress:
        """Return a progress indicator on standard error (drawn only on a terminal)."""
        return Progress(
            label,
            stream=self.stderr,
            enabled=False if self.progress_enabled is False else None,
            total=total,
            unit=unit,
        )

    def confirm(self, question: str, *, expected: str, yes: bool) -> bool:
        """Ask on the terminal; ``True`` if the answer is ``expected`` (or ``yes`` was given).

        Without a terminal on standard input there is nobody to ask: that is a
        usage error, and ``--yes`` is the way to say it in a script.
        """
        if yes:
            return True
        if not _is_terminal(self.stdin):
            raise UsageProblem("standard input is not a terminal, so nobody can confirm; add --yes")
        self.stderr.write(question)
        self.stderr.flush()
        answer = self.stdin.readline()
        return answer.strip().lower() == expected.lower()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- context -----------------------------------------------------------------------


@attrs.define(kw_only=True)
class Context:
    """What a command runs with."""

    args: argparse.Namespace
    settings: Settings
    environ: Mapping[str, str]
    out: Output
    services: Services | None = None

    @property
    def svc(self) -> Services:
        """The services (every command but ``config check`` has them)."""
        if self.services is None:  # pragma: no cover - the dispatcher builds them first
            raise RuntimeError("this command runs without services")
        return self.services

    @property
    def operator(self) -> int:
        """The admin ID actions are recorded under: ``--as``, or 0 for the local operator."""
        chosen: int | None = getattr(self.args, "as_user", None)
        return LOCAL_OPERATOR if chosen is None else chosen

    async def record(
        self, action: str, resource: str, details: Mapping[str, object] | None = None
    ) -> bool:
        """Record an admin action in the audit trail; ``False`` (and a warning) if it could not."""
        services = self.svc
        try:
            os_user = getpass.getuser()
        except (OSError, KeyError):
            os_user = f"uid:{os.getuid()}"
        who = services.pseudonymizer.pseudonymize(PseudonymKind.ADMIN, f"os:{os_user}")
        try:
            await services.audit.record_admin_action(
                self.operator,
                action,
                resource,
                {**dict(details or {}), "os_user": who},
                source="cli",
            )
        except StoreUnavailable as error:
            self.out.note(
                f"warning: the action ran, but the audit trail could not record it ({error})"
            )
            return False
        return True


Handler = Callable[[Context], Awaitable[int]]


# -- argument types ----------------------------------------------------------------


def _snowflake(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or not 0 < int(value) <= MAX_SNOWFLAKE:
        raise argparse.ArgumentTypeError(
            f"must be a Discord ID (a positive integer up to 2**64-1), got {_safe(text)[:40]!r}"
        )
    return int(value)


def _severity(text: str) -> Severity:
    try:
        return Severity(text.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be one of P0, P1, P2, P3, got {_safe(text)[:10]!r}"
        ) from None


_DURATION: Final = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _duration(text: str) -> timedelta:
    value = text.strip().lower()
    match = _DURATION.match(value)
    if not value or match is None:
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 30m, 24h, 2d or 1h30m, got {_safe(text)[:20]!r}"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError("must be longer than zero")
    return duration


def _page_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= _MAX_PAGE:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to {_MAX_PAGE}")
    return int(text)


def _batch(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError("must be a number from 1 to 10000")
    return int(text)


# -- audit -------------------------------------------------------------------------


def _record_line(record: AuditRecord) -> str:
    parts = [
        f"{record.timestamp:%Y-%m-%d %H:%M:%S}",
        f"{record.kind.value:<8}",
        _safe(record.action) or "-",
    ]
    if record.actor:
        parts.append(f"by {_safe(record.actor)}")
    if record.subject:
        parts.append(f"about {_safe(record.subject)}")
    if record.resource:
        parts.append(f"on {_safe(record.resource)}")
    if record.source:
        parts.append(f"({_safe(record.source)})")
    if record.details:
        parts.append(json.dumps(record_as_json(record)["details"], ensure_ascii=True))
    return "  ".join(parts)


async def _audit_query(ctx: Context) -> int:
    services, out, args = ctx.svc, ctx.out, ctx.args
    try:
        query = parse_audit_query(list(args.filters), now=services.clock.now())
    except AuditQueryError as error:
        raise UsageProblem(str(error)) from None
    if args.limit is not None:
        query.limit = args.limit
    elif args.all:
        query.limit = _MAX_PAGE
    cursor = query.cursor
    shown = 0
    next_cursor: str | None = None
    if out.json:
        out.stdout.write('{"records": [')
    while True:
        try:
            page: AuditPage = await services.audit.get_audit_history(
                query.start,
                query.end,
                admin_id=query.admin_id,
                action=query.action,
                kind=query.kind,
                limit=query.limit,
                cursor=cursor,
            )
        except ValueError as error:
            # A malformed cursor: the only argument the store judges itself.
            raise UsageProblem(f"cursor: {error}") from None
        for record in page.records:
            if out.json:
                separator = "," if shown else ""
                out.stdout.write(
                    f"{separator}\n  {json.dumps(record_as_json(record), ensure_ascii=True)}"
                )
            else:
                if shown == 0:
                    out.line("Audit records, newest first (UTC):")
                out.line(_record_line(record))
            shown += 1
        next_cursor = page.next_cursor
        if not args.all or next_cursor is None:
            break
        cursor = next_cursor
    if out.json:
        out.stdout.write(f"\n], {json.dumps('next_cursor')}: {json.dumps(next_cursor)}}}\n")
    elif shown == 0:
        out.line("No audit records match.")
    elif next_cursor is not None:
        out.line(f"More records: add cursor:{next_cursor} (or --all for every page).")
    return EXIT_OK


class _ProgressLog:
    """An :class:`AuditLog` that reports verification's reading to a progress bar."""

    def __init__(self, log: AuditLog, progress: Progress) -> None:
        self._log = log
        self._progress = progress
        self._records = 0

    async def append(self, record: AuditRecord) -> None:
        await self._log.append(record)

    async def query(self, **filters: Any) -> AuditPage:
        return await self._log.query(**filters)

    async def chain(
        self, writer_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        records = await self._log.chain(writer_id, after=after, limit=limit)
        self._records += len(records)
        return records

    async def writers(self) -> list[str]:
        writers = await self._log.writers()
        self._progress.update(0, total=len(writers))
        return writers

    async def put_digest(self, digest: SignedDigest) -> None:
        await self._log.put_digest(digest)

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        # Verification reads a writer's records, then its digests: the
        # writer is done reading once these are in.
        digests = await self._log.digests(writer_id)
        self._progress.advance()
        return digests

    async def prune(self, records: list[AuditRecord]) -> int:
        return await self._log.prune(records)

    async def older_than(
        self, cutoff: datetime, *, limit: int = 500, after: tuple[datetime, str, int] | None = None
    ) -> list[AuditRecord]:
        return await self._log.older_than(cutoff, limit=limit, after=after)


def _verification_json(report: VerificationReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "writers": report.writers,
        "records_checked": report.records_checked,
        "digests_checked": report.digests_checked,
        "uncovered": report.uncovered,
        "problems": [
            {
                "kind": problem.kind.value,
                "writer_id": problem.writer_id,
                "sequence": problem.sequence,
                "digest_sequence": problem.digest_sequence,
                "at": problem.at.isoformat() if problem.at else None,
                "location": problem.location,
                "detail": problem.detail,
            }
            for problem in report.problems
        ],
    }


async def _audit_verify(ctx: Context) -> int:
    services, out, args = ctx.svc, ctx.out, ctx.args
    names = {word.partition(":")[0].lower() for word in args.filters}
    if names - {"since", "until"}:
        raise UsageProblem("audit verify takes since:<when> and until:<when> only")
    try:
        query = parse_audit_query(list(args.filters), now=services.clock.now())
    except AuditQueryError as error:
        raise UsageProblem(str(error)) from None
    start = query.start if "since" in names else None
    end = query.end if "until" in names else None
    # The same key ring the audit trail verifies with (bootstrap loaded it
    # from the same settings); reading it again has no side effect.
    _, ring = audit_keys(ctx.settings)
    with out.progress("verify", unit="writers") as progress:
        report = await verify_log(
            _ProgressLog(services.audit.log, progress),
            ring,
            start=start,
            end=end,
            now=services.clock.now(),
            retention=services.audit.settings.retention,
        )
    if out.json:
        out.data(_verification_json(report))
    else:
        out.line(_safe(report.summary()))
        for problem in report.problems:
            out.line(f"  x {_safe(problem)}")
    return EXIT_OK if report.ok else EXIT_FAILED


async def _audit_rotate_key(ctx: Context) -> int:
    old, new = rotate_audit_signing_key(ctx.settings)
    recorded = await ctx.record(
        "audit.rotate_key", "audit-signing-key", {"old_key_id": old, "new_key_id": new}
    )
    if ctx.out.json:
        ctx.out.data({"old_key_id": old, "new_key_id": new})
    else:
        ring = ctx.settings.data_dir / "keys" / KEYRING_FILE
        ctx.out.line(f"Audit signing key rotated: {old} -> {new}.")
        ctx.out.line(
            f"The old public key stays in {ring}, so digests signed before still verify. "
            "Restart every bot process: each signs with the key it loaded until then."
        )
    return EXIT_OK if recorded else EXIT_FAILED


# -- users -------------------------------------------------------------------------


def _user_resource(services: Services, user_id: int) -> str:
    return f"user:{services.pseudonymizer.pseudonymize(PseudonymKind.USER, user_id)}"


def _write_export(path: Path, document: Mapping[str, Any]) -> None:
    """Write an export (personal data) to a new file only its owner can read."""
    text = json.dumps(document, indent=2, ensure_ascii=True) + "\n"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageProblem(f"--output {path} exists; choose a new file name") from None
    except OSError as error:
        raise OperationFailed(f"cannot create --output {path} ({error.strerror})") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _export_lines(document: Mapping[str, Any]) -> list[str]:
    lines = [f"Data kept about user {_safe(document['user_id'])}:"]
    links = document["linked_platforms"]
    lines.append(f"Linked platforms: {len(links) or 'none'}")
    for link in links:
        state = "needs /link again" if link["needs_relink"] else "active"
        scopes = ", ".join(link["scopes"]) or "no scopes"
        lines.append(
            f"  {_safe(link['platform'])}: {state}, linked {_safe(link['linked_at'])}, "
            f"scopes: {_safe(scopes)}"
        )
    preferences = document["preferences"]
    lines.append(f"Preferences: {len(preferences) or 'none'}")
    for key, entry in preferences.items():
        value = json.dumps(entry["value"], ensure_ascii=True)
        lines.append(f"  {_safe(key)} = {value} (set {_safe(entry['updated_at'])})")
    events = document["events"]
    lines.append(f"Security and privacy events: {len(events)} (newest first)")
    for event in events[:10]:
        lines.append(
            f"  {_safe(event['timestamp'])}  {_safe(event['kind'])}  {_safe(event['action'])}"
        )
    if len(events) > 10:
        lines.append(f"  ... and {len(events) - 10} more (--json or --output show all)")
    return lines


async def _user_export(ctx: Context) -> int:
    services, out, args = ctx.svc, ctx.out, ctx.args
    if args.output is not None and (args.output.exists() or args.output.is_symlink()):
        # Checked first: a refused export must not be recorded as made.
        raise UsageProblem(f"--output {args.output} exists; choose a new file name")
    document = await services.retention.export_user_data(args.user_id, Requester.OWNER)
    if args.output is not None:
        _write_export(args.output, document)
    recorded = await ctx.record(
        "user.export",
        _user_resource(services, args.user_id),
        {"to": "file" if args.output is not None else "stdout"},
    )
    if out.json and args.output is None:
        out.data(document)
    elif out.json:
        out.data({"written_to": str(args.output)})
    else:
        for text in _export_lines(document):
            out.line(text)
        if args.output is not None:
            out.line(f"Written as JSON to {_safe(args.output)} (mode 0600).")
    return EXIT_OK if recorded else EXIT_FAILED


def _erasure_json(report: ErasureReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "requester": report.requester.value,
        "completed_at": report.completed_at.isoformat(),
        "deleted": report.deleted,
        "failed": list(report.failed),
        "audit_event_id": report.audit_event_id,
        "stores": [
            {"store": s.store, "ok": s.ok, "deleted": s.deleted, "detail": s.detail}
            for s in report.stores
        ],
    }


async def _user_delete(ctx: Context) -> int:
    services, out, args = ctx.svc, ctx.out, ctx.args
    user_id: int = args.user_id
    question = (
        f"Erase everything stored about user {user_id}: tokens (revoked at the platforms "
        "first), preferences and pending links? Audit records stay (they hold pseudonyms "
        f"only). This cannot be undone. Type the user ID to confirm: "
    )
    if not out.confirm(question, expected=str(user_id), yes=args.yes):
        out.note("cancelled: nothing was deleted")
        return EXIT_FAILED
    report: ErasureReport | None
    problem: str | None = None
    async with out.progress("erasing").spinning():
        try:
            report = await services.retention.delete_user_data(user_id, Requester.OWNER)
        except DataDeletionError as error:
            report, problem = error.report, str(error)
    recorded = await ctx.record(
        "user.delete",
        _user_resource(services, user_id),
        {
            "outcome": "complete" if problem is None else "incomplete",
            "deleted": report.deleted if report is not None else 0,
            "failed": list(report.failed) if report is not None else [],
        },
    )
    if out.json:
        out.data(_erasure_json(report) if report is not None else {"ok": False})
    else:
        if report is not None:
            for text in report.as_text().splitlines():
                out.line(_safe(text))
        if problem is None and report is not None:
            out.line(f"User {user_id}: {report.deleted} item(s) erased.")
    if problem is not None:
        raise OperationFailed(problem)
    return EXIT_OK if recorded else EXIT_FAILED


# -- guilds ------------------------------------------------------------------------


async def _guild_allow(ctx: Context) -> int:
    guild_id: int = ctx.args.guild_id
    added = await ctx.svc.access.allow_guild(guild_id, actor=ctx.operator)
    outcome = "is now allowed" if added else "was already allowed"
    recorded = await ctx.record("guild.allow", f"guild:{guild_id}", {"changed": added})
    _say(ctx, f"Guild {guild_id} {outcome}.", {"guild_id": str(guild_id), "changed": added})
    return EXIT_OK if recorded else EXIT_FAILED


async def _guild_remove(ctx: Context) -> int:
    guild_id: int = ctx.args.guild_id
    access = ctx.svc.access
    removed = await access.remove_guild(guild_id, actor=ctx.operator)
    recorded = await ctx.record("guild.remove", f"guild:{guild_id}", {"changed": removed})
    configured = guild_id in access.settings.allowed_guilds
    if configured:
        text = (
            f"Guild {guild_id} is allowed by configuration (TIMMYBOT_ALLOWED_GUILDS); "
            "remove it there."
        )
    else:
        text = f"Guild {guild_id} {'was removed from' if removed else 'was not on'} the allowlist."
    _say(
        ctx,
        text,
        {"guild_id": str(guild_id), "changed": removed, "allowed_by_configuration": configured},
    )
    if configured:
        return EXIT_FAILED
    return EXIT_OK if recorded else EXIT_FAILED


async def _guild_unban(ctx: Context) -> int:
    guild_id: int = ctx.args.guild_id
    lifted = await ctx.svc.access.unban(guild_id, actor=ctx.operator)
    recorded = await ctx.record("guild.unban", f"guild:{guild_id}", {"changed": lifted})
    _say(
        ctx,
        f"Guild {guild_id} {'is unbanned' if lifted else 'was not banned'}.",
        {"guild_id": str(guild_id), "changed": lifted},
    )
    return EXIT_OK if recorded else EXIT_FAILED


async def _guild_list(ctx: Context) -> int:
    access = ctx.svc.access
    allowed = await access.list_allowed_guilds()
    bans = await access.list_bans()
    configured = access.settings.allowed_guilds
    if ctx.out.json:
        ctx.out.data(
            {
                "allowed": [
                    {"guild_id": str(g), "by_configuration": g in configured} for g in allowed
                ],
                "bans": [
                    {
                        "guild_id": str(ban.guild_id),
                        "until": ban.until.isoformat(),
                        "placed_at": ban.placed_at.isoformat(),
                        "reason": ban.reason,
                    }
                    for ban in bans
                ],
            }
        )
        return EXIT_OK
    if not allowed:
        ctx.out.line("Allowed guilds: none")
    else:
        ctx.out.line("Allowed guilds:")
        for guild in allowed:
            note = " (by configuration)" if guild in configured else ""
            ctx.out.line(f"  {guild}{note}")
    if not bans:
        ctx.out.line("Banned guilds: none")
    else:
        ctx.out.line("Banned guilds:")
        for ban in bans:
            ctx.out.line(
                f"  {ban.guild_id} until {ban.until:%Y-%m-%d %H:%M} UTC: {_safe(ban.reason)}"
            )
    return EXIT_OK


def _say(ctx: Context, text: str, data: Mapping[str, object]) -> None:
    if ctx.out.json:
        ctx.out.data(dict(data))
    else:
        ctx.out.line(text)


# -- switches ----------------------------------------------------------------------


def _switch(text: str) -> Switch:
    name = text.strip().lower().replace("-", "_")
    name = {"killswitch": "kill_switch", "refresh": "refresh_paused"}.get(name, name)
    try:
        return Switch(name)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(s.value for s in Switch)}, got {_safe(text)[:30]!r}"
        ) from None


def _switch_json(state: SwitchState, now: datetime) -> dict[str, object]:
    return {
        "switch": state.switch.value,
        "active": state.active(now),
        "reason": state.reason,
        "changed_at": state.changed_at.isoformat() if state.changed_at else None,
        "expires_at": state.expires_at.isoformat() if state.expires_at else None,
    }


def _switch_line(state: SwitchState, now: datetime) -> str:
    if not state.active(now):
        return f"{state.switch.value}: off"
    since = f" since {state.changed_at:%Y-%m-%d %H:%M} UTC" if state.changed_at else ""
    until = f" until {state.expires_at:%Y-%m-%d %H:%M} UTC" if state.expires_at else ""
    why = f": {_safe(state.reason)}" if state.reason else ""
    return f"{state.switch.value}: ON{since}{until}{why}"


async def _switch_list(ctx: Context) -> int:
    access, now = ctx.svc.access, ctx.svc.clock.now()
    states = [await access.switch_state(switch) for switch in Switch]
    if ctx.out.json:
        ctx.out.data({"switches": [_switch_json(state, now) for state in states]})
    else:
        for state in states:
            ctx.out.line(_switch_line(state, now))
    return EXIT_OK


async def _switch_set(ctx: Context, *, on: bool) -> int:
    services, args = ctx.svc, ctx.args
    switch: Switch = args.switch
    reason = services.sanitizer.sanitize_string(args.reason or "") if on else None
    duration: timedelta | None = getattr(args, "duration", None) if on else None
    state = await services.access.set_switch(
        switch, on, reason=reason or None, actor=ctx.operator, duration=duration
    )
    recorded = await ctx.record(
        f"switch.{'on' if on else 'off'}",
        f"switch:{switch.value}",
        {"reason": reason, "for_seconds": duration.total_seconds() if duration else None},
    )
    now = services.clock.now()
    if ctx.out.json:
        ctx.out.data(_switch_json(state, now))
    else:
        ctx.out.line(_switch_line(state, now))
        ctx.out.line("Every bot process obeys it within a few seconds.")
    return EXIT_OK if recorded else EXIT_FAILED


async def _switch_on(ctx: Context) -> int:
    return await _switch_set(ctx, on=True)


async def _switch_off(ctx: Context) -> int:
    return await _switch_set(ctx, on=False)


# -- vault -------------------------------------------------------------------------


def _rekey_summary(ctx: Context, outcome: RekeyOutcome) -> list[str]:
    keys_dir = ctx.settings.data_dir / "keys"
    if outcome.old_key_id == outcome.new_key_id:
        lines = [
            f"Moved {outcome.records} token record(s) and {outcome.preferences} preference(s) "
            f"from retired keys to the current key {outcome.new_key_id}."
        ]
    else:
        lines = [
            f"Vault rekeyed from key {outcome.old_key_id} to {outcome.new_key_id}: "
            f"{outcome.records} of {outcome.total} token record(s) and {outcome.preferences} "
            "preference(s) re-encrypted."
        ]
    if outcome.damaged:
        lines.append(
            f"{len(outcome.damaged)} user(s) have a record that failed its integrity check and "
            "was left as it was; the new key is not in use yet. Erase each with "
            f"'{PROG} user delete <id>' (they must link again), then run '{PROG} vault rekey' "
            "again to finish:"
        )
        lines += [f"  {user}" for user in outcome.damaged]
        return lines
    if outcome.promoted:
        lines.append(
            f"The new key is in {keys_dir / CURRENT_FILE}. The old key is kept in "
            f"{outcome.retired_file} for backups made before now: delete it once no backup "
            "needs it."
        )
    elif outcome.env_managed and outcome.old_key_id != outcome.new_key_id:
        lines.append(
            f"Now set TIMMYBOT_VAULT_KEY to the new key (key ID {outcome.new_key_id}) for every "
            f"process. Keep the old key ({outcome.old_key_id}) for backups made before now."
        )
    lines.append("Start the bot processes again.")
    return lines


async def _vault_rekey(ctx: Context) -> int:
    settings, out, args = ctx.settings, ctx.out, ctx.args
    source = NewKeySource(file=args.new_key_file, env=args.new_key_env, generate=args.generate)
    try:
        plan = plan_rekey(settings, source, ctx.environ)
    except RekeyUsageError as error:
        raise UsageProblem(str(error)) from None
    except RekeyError as error:
        raise OperationFailed(str(error)) from None
    what = (
        f"move records off retired keys to {plan.new_key_id}"
        if plan.sweep
        else f"re-encrypt the vault from key {plan.old_key_id} to {plan.new_key_id}"
        + (" (finishing an interrupted rekey)" if plan.staged else "")
    )
    question = (
        f"This will {what}. Every process using {settings.data_dir} (bot, shards, console) "
        "must be stopped first. Continue? [y/N] "
    )
    if not out.confirm(question, expected="y", yes=args.yes):
        out.note("cancelled: nothing was changed")
        return EXIT_FAILED
    bars: dict[str, Progress] = {}

    def report(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[phase] = out.progress("rekey", total=total, unit=phase)
        bar.update(done, total=total)

    try:
        outcome = await rekey_vault(settings, plan, batch=args.batch, report=report)
    except RekeyUsageError as error:
        raise UsageProblem(str(error)) from None
    except (RekeyError, StoreUnavailable) as error:
        await ctx.record(
            "vault.rekey",
            "vault",
            {"old_key_id": plan.old_key_id, "new_key_id": plan.new_key_id, "outcome": "failed"},
        )
        raise OperationFailed(
            f"{error} (records re-encrypted so far stay done: run the same command again to finish)"
        ) from None
    finally:
        for bar in bars.values():
            bar.close()
    recorded = await ctx.record(
        "vault.rekey",
        "vault",
        {
            "old_key_id": outcome.old_key_id,
            "new_key_id": outcome.new_key_id,
            "records": outcome.records,
            "preferences": outcome.preferences,
            "promoted": outcome.promoted,
            "outcome": "complete" if outcome.ok else "incomplete",
            "damaged": len(outcome.damaged),
        },
    )
    if out.json:
        out.data(outcome.as_dict())
    else:
        for text in _rekey_summary(ctx, outcome):
            out.line(text)
    return EXIT_OK if outcome.ok and recorded else EXIT_FAILED


# -- rotation and incidents --------------------------------------------------------


async def _rotation_run(ctx: Context) -> int:
    services, out = ctx.svc, ctx.out
    within: timedelta = ctx.args.within
    async with out.progress("rotating tokens").spinning():
        report = await services.rotation.rotate_expiring(within)
    recorded = await ctx.record("rotation.run", "tokens", report.as_dict())
    if out.json:
        out.data(report.as_dict())
    elif report.paused:
        out.line("Token rotation is paused (incident isolation); nothing ran.")
    else:
        out.line(
            f"Token rotation: {report.users} user(s), {report.refreshed} refreshed, "
            f"{report.unchanged} unchanged, {report.needs_relink} need /link again, "
            f"{report.failed} failed."
        )
    if report.paused or report.failed:
        return EXIT_FAILED
    return EXIT_OK if recorded else EXIT_FAILED


async def _incident_declare(ctx: Context) -> int:
    services, out, args = ctx.svc, ctx.out, ctx.args
    try:
        incident = Incident(
            severity=args.severity,
            title=" ".join(args.title),
            description=args.description or "",
            declared_by=ctx.operator,
        )
    except ValueError as error:
        raise UsageProblem(str(error)) from None
    async with out.progress(f"{incident.severity.value} playbook").spinning():
        report = await services.incidents.handle(incident)
    recorded = await ctx.record(
        "incident.declare",
        "incidents",
        {
            "incident_id": report.incident_id,
            "severity": report.severity.value,
            "failed_steps": list(report.failed_steps),
        },
    )
    if out.json:
        out.data(
            {
                "ok": report.ok,
                "incident_id": report.incident_id,
                "severity": report.severity.value,
                "title": report.title,
                "declared_at": report.declared_at.isoformat(),
                "respond_by": report.respond_by.isoformat(),
                "steps": [step.as_dict() for step in report.steps],
            }
        )
    else:
        out.line(
            f"Incident {_safe(report.incident_id)} ({report.severity.value}, respond by "
            f"{report.respond_by:%Y-%m-%d %H:%M} UTC): {_safe(report.title)}"
        )
        for step in report.steps:
            out.line(f"  {'ok  ' if step.ok else 'FAIL'} {_safe(step.name)}: {_safe(step.detail)}")
    if not report.ok:
        return EXIT_FAILED
    return EXIT_OK if recorded else EXIT_FAILED


# -- configuration -----------------------------------------------------------------


def _key_ids(settings: Settings) -> dict[str, object]:
    """Return the IDs of the configured keys; reads key files that exist, creates none."""
    keys_dir = settings.data_dir / "keys"

    def from_file(name: str, purpose: str, prefix: str) -> str | None:
        path = keys_dir / name
        if not path.exists():
            return None
        return key_id_for(load_or_create_key(path, purpose=purpose), prefix)

    ids: dict[str, object] = {}
    if settings.backend == "memory":
        return {"note": "memory backend: keys are made per process"}
    if settings.vault_key is not None:
        ids["vault"] = key_id_for(parse_key("TIMMYBOT_VAULT_KEY", settings.vault_key), "v")
    else:
        ids["vault"] = from_file(CURRENT_FILE, "vault", "v") or "(created on first start)"
    staged = from_file(STAGED_FILE, "vault", "v")
    if staged is not None:
        ids["vault_staged"] = staged
    retired = sorted(
        key_id_for(load_or_create_key(path, purpose="vault"), "v")
        for path in keys_dir.glob("vault.retired-*.key")
    )
    if retired:
        ids["vault_retired"] = retired
    if settings.pseudonym_key is not None:
        ids["pseudonym"] = key_id_for(
            parse_key("TIMMYBOT_PSEUDONYM_KEY", settings.pseudonym_key), "p"
        )
    else:
        ids["pseudonym"] = (
            from_file("pseudonym.key", "pseudonym", "p") or "(created on first start)"
        )
    if settings.audit_signing_key is not None:
        seed = parse_key("TIMMYBOT_AUDIT_SIGNING_KEY", settings.audit_signing_key, exact=32)
        ids["audit_signing"] = Ed25519Signer(seed).key_id
    elif (keys_dir / SIGNING_KEY_FILE).exists():
        seed = load_or_create_key(keys_dir / SIGNING_KEY_FILE, purpose="audit-signing")
        ids["audit_signing"] = Ed25519Signer(seed[:32]).key_id
    else:
        ids["audit_signing"] = "(created on first start)"
    ids["audit_keyring"] = load_keyring(keys_dir / KEYRING_FILE).key_ids()
    return ids


async def _config_check(ctx: Context) -> int:
    settings, out = ctx.settings, ctx.out
    check_settings(settings)
    described = settings.describe()
    keys = _key_ids(settings)
    if out.json:
        out.data({"ok": True, "settings": described, "keys": keys})
        return EXIT_OK
    for name, value in described.items():
        out.line(f"{name} = {_safe(value)}")
    for name, key_id in keys.items():
        shown = ", ".join(key_id) if isinstance(key_id, list) else str(key_id)
        out.line(f"key {name} = {_safe(shown) or '(none)'}")
    if "vault_staged" in keys:
        out.line(f"note: a vault rekey is unfinished; run: {PROG} vault rekey")
    out.line("configuration OK")
    return EXIT_OK


# -- the command line --------------------------------------------------------------

_EXIT_CODES: Final = """\
exit codes:
  0  done
  1  the operation failed (verification found problems, an erasure was
     incomplete, a store was unavailable, the audit trail could not record it)
  2  usage error (bad arguments; a confirmation needed but no terminal: use --yes)
  3  configuration error (a setting, the config file, a key file)
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wrap descriptions to the terminal, but keep indented lines (lists, examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines: list[str] = []
        prose: list[str] = []

        def flush() -> None:
            if prose:
                lines.extend(
                    textwrap.wrap(
                        " ".join(prose),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                        break_on_hyphens=False,
                    )
                )
                prose.clear()

        for line in text.splitlines():
            if not line.strip():
                flush()
                lines.append("")
            elif line.startswith(" "):
                flush()
                lines.append(indent + line)
            else:
                prose.append(line.strip())
        flush()
        return "\n".join(lines)


def _common_options(*, leaf: bool) -> argparse.ArgumentParser:
    """Options every command takes, before or after its name.

    On the subcommands their defaults are suppressed, so that an option
    given before the command name is not reset by the subcommand's parser.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if leaf else value

    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        default=default(None),
        help="read settings from this TOML file too (environment variables override it; "
        "default: TIMMYBOT_CONFIG_FILE if set)",
    )
    group.add_argument(
        "--as",
        dest="as_user",
        type=_snowflake,
        metavar="ID",
        default=default(None),
        help="record changes in the audit trail as this Discord user ID "
        "(default: 0, the local operator)",
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="print results as JSON"
    )
    group.add_argument(
        "--no-progress",
        action="store_true",
        default=default(False),
        help="never draw progress bars (they are drawn only when standard error is a terminal)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="show the services' log lines (warnings and information) on standard error",
    )
    return parser


def _leaf(
    parent: Any,
    name: str,
    *,
    summary: str,
    description: str,
    handler: Handler,
    needs_services: bool = True,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(
        name,
        parents=[_common_options(leaf=True)],
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=_HelpFormatter,
    )
    parser.set_defaults(
        handler=handler, needs_services=needs_services, backends=None, other_backend=""
    )
    return parser


def _group(parent: Any, name: str, *, summary: str, description: str) -> Any:
    parser = parent.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=_HelpFormatter,
    )
    return parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)


_SWITCHES: Final = "kill_switch, refresh_paused or lockdown"


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``timmybot-admin`` and all its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Operate TimmyBot from a shell: query and verify the audit trail, export or erase "
            "a user's data, manage the guild allowlist, rekey the token vault, run token "
            "rotation, declare incidents and undo their switches, check the configuration. "
            "Settings come from the same TIMMYBOT_* environment variables (and --config "
            "file) as the bot; the "
            "commands use the bot's own services and stores. Changes are recorded in the "
            "audit trail (source 'cli')."
        ),
        epilog=_EXIT_CODES + "\nRun 'timmybot-admin COMMAND SUBCOMMAND --help' for details.",
        formatter_class=_HelpFormatter,
        parents=[_common_options(leaf=False)],
    )
    commands = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    audit = _group(
        commands,
        "audit",
        summary="query and verify the audit trail; rotate its signing key",
        description="Read the audit trail, check that nobody tampered with it, and rotate "
        "the key that signs its digests. See docs/audit.md.",
    )
    query = _leaf(
        audit,
        "query",
        summary="list audit records, newest first",
        description="List audit records, newest first, with the same name:value filters as "
        "'/admin audit query' on Discord:\n"
        "  kind:admin|security|privacy  action:<name>  admin:<discord id>\n"
        "  since:<7d|12h|30m|2w|2026-11-01>  until:<same>  limit:<1-25>  cursor:<from a page>",
        epilog="examples:\n"
        "  timmybot-admin audit query kind:admin since:7d\n"
        "  timmybot-admin audit query action:guild.allow --all --json",
        handler=_audit_query,
    )
    query.add_argument("filters", nargs="*", metavar="FILTER", help="name:value filters")
    query.add_argument(
        "--all", action="store_true", help="follow every page instead of printing one"
    )
    query.add_argument(
        "--limit",
        type=_page_size,
        metavar="N",
        help=f"records per page, 1 to {_MAX_PAGE} (default 10, or {_MAX_PAGE} with --all)",
    )
    verify = _leaf(
        audit,
        "verify",
        summary="check the hash chains and signed digests; exit 1 on any problem",
        description="Check every writer's hash chain and signed digests, and list every "
        "problem with its place (modified, missing, inserted or reordered records, bad "
        "signatures, unknown keys). Chains are always checked whole; since:/until: choose "
        "which problems are reported. Exit 1 if any problem is found.",
        epilog="example:\n  timmybot-admin audit verify since:30d --json",
        handler=_audit_verify,
    )
    verify.add_argument(
        "filters", nargs="*", metavar="FILTER", help="since:<when> and until:<when> only"
    )
    _leaf(
        audit,
        "rotate-key",
        summary="replace the audit signing key (old digests still verify)",
        description="Write a new Ed25519 signing key to keys/audit-signing.key and add its "
        "public key to keys/audit-keyring.json. The old public key stays in the ring, so "
        "digests signed before still verify; the old private key is gone. Restart the bot "
        "processes afterwards: each signs with the key it loaded. Not available when "
        "TIMMYBOT_AUDIT_SIGNING_KEY is set (set a new value there instead).",
        handler=_audit_rotate_key,
    )

    user = _group(
        commands,
        "user",
        summary="export or erase a user's data (GDPR)",
        description="Data-protection requests made on a user's behalf, as the owner. Both "
        "are recorded in the audit trail. See docs/privacy.md.",
    )
    export = _leaf(
        user,
        "export",
        summary="show or save everything stored about a user (never a token)",
        description="Export everything kept about a user: linked platforms with scopes and "
        "dates (never a token), preferences, and the security and privacy events about "
        "them. Prints a summary; --json prints the export document, --output writes it "
        "to a new file with mode 0600.",
        epilog="example:\n  timmybot-admin user export 123456789012345678 --output user.json",
        handler=_user_export,
    )
    export.add_argument("user_id", type=_snowflake, metavar="USER_ID", help="the Discord user ID")
    export.add_argument(
        "--output", type=Path, metavar="FILE", help="write the JSON export to this new file"
    )
    delete = _leaf(
        user,
        "delete",
        summary="erase a user's tokens, preferences and pending links",
        description="Erase everything stored about a user: tokens (revoked at the platform "
        "first where it supports it), preferences and pending links. Audit records stay: "
        "they hold pseudonyms only. Asks you to type the user ID unless --yes is given. "
        "Exit 1 if a store failed; running it again finishes the job.",
        handler=_user_delete,
    )
    delete.add_argument("user_id", type=_snowflake, metavar="USER_ID", help="the Discord user ID")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    guild = _group(
        commands,
        "guild",
        summary="manage the guild allowlist and bans",
        description="The guild allowlist and temporary bans, shared by every bot process. "
        "See docs/access-control.md.",
    )
    for name, summary, handler in (
        ("allow", "allowlist a guild (and lift any ban on it)", _guild_allow),
        ("remove", "remove a guild from the allowlist", _guild_remove),
        ("unban", "lift a guild's ban and forget its denied attempts", _guild_unban),
    ):
        leaf = _leaf(
            guild,
            name,
            summary=summary,
            description=summary[0].upper() + summary[1:] + ". Recorded in the audit trail.",
            handler=handler,
        )
        leaf.add_argument("guild_id", type=_snowflake, metavar="GUILD_ID", help="the guild ID")
    _leaf(
        guild,
        "list",
        summary="list allowed and banned guilds",
        description="List the allowed guilds (configured and allowlisted) and the active bans.",
        handler=_guild_list,
    )

    vault = _group(
        commands,
        "vault",
        summary="re-encrypt the token vault under a new key",
        description="Key management of the SQLite token vault. See docs/operations.md.",
    )
    rekey = _leaf(
        vault,
        "rekey",
        summary="move every token record and preference to a new vault key",
        description="Re-encrypt every token record and encrypted preference under a new key, "
        "in batches, with the old key kept until all are done. Stop every process using "
        "the data directory first. The new key comes from a file, an environment variable, "
        "or is generated; never from the command line.\n\n"
        "With the key file (the default), the new key is first staged in "
        "keys/vault.next.key, then the records move, then it replaces keys/vault.key and "
        "the old key is kept as keys/vault.retired-<id>.key. Interrupted, run "
        "'timmybot-admin vault rekey' (no key option) to finish. Without a key option and "
        "nothing staged, records still under retired keys are moved to the current key.\n\n"
        "With TIMMYBOT_VAULT_KEY set, give the new key with --new-key-env or "
        "--new-key-file, then set TIMMYBOT_VAULT_KEY to it.",
        epilog="examples:\n"
        "  timmybot-admin vault rekey --generate\n"
        "  timmybot-admin vault rekey --new-key-file /secure/new-vault.key\n"
        "  NEW_VAULT_KEY=... timmybot-admin vault rekey --new-key-env NEW_VAULT_KEY\n"
        "  timmybot-admin vault rekey            # finish an interrupted rekey",
        handler=_vault_rekey,
    )
    rekey.set_defaults(
        backends=("sqlite",),
        other_backend="vault rekey is for the sqlite backend's encrypted vault; with "
        "TIMMYBOT_BACKEND=aws the tokens are in AWS Secrets Manager, encrypted by KMS: "
        "rotate the KMS key instead (automatic key rotation), nothing needs re-encrypting",
    )
    rekey.add_argument(
        "--new-key-file",
        type=Path,
        metavar="PATH",
        help="read the new key from this file (32 bytes as hex or base64, or a TimmyBot key "
        "file; mode 0600); with --generate, write a new key to it",
    )
    rekey.add_argument(
        "--new-key-env",
        metavar="NAME",
        help="read the new key (hex or base64) from this environment variable",
    )
    rekey.add_argument(
        "--generate",
        action="store_true",
        help="generate a new random key (kept in keys/vault.next.key, or --new-key-file)",
    )
    rekey.add_argument(
        "--batch",
        type=_batch,
        default=100,
        metavar="N",
        help="records per transaction (default 100)",
    )
    rekey.add_argument(
        "--yes", action="store_true", help="do not ask whether the bot processes are stopped"
    )

    rotation = _group(
        commands,
        "rotation",
        summary="run the token rotation job now",
        description="The daily token rotation (02:00 UTC by default), on demand.",
    )
    run = _leaf(
        rotation,
        "run",
        summary="refresh every token that expires soon",
        description="Refresh every linked platform's token that expires within --within "
        "(24h by default), as the daily job does. Exit 1 if a refresh failed or rotation "
        "is paused.",
        handler=_rotation_run,
    )
    run.add_argument(
        "--within",
        type=_duration,
        default=timedelta(hours=24),
        metavar="DURATION",
        help="refresh tokens expiring within this long (default 24h; e.g. 90m, 2d)",
    )

    incident = _group(
        commands,
        "incident",
        summary="declare a security incident",
        description="Incident response by severity. See docs/incident-response.md.",
    )
    declare = _leaf(
        incident,
        "declare",
        summary="declare an incident and run its playbook",
        description="Declare an incident and run its severity's playbook: P0 turns on the "
        "kill switch, pauses token refresh, snapshots recent events and holds them from "
        "clean-up, and alerts; P1 alerts and locks down; P2 alerts; every severity is "
        "recorded. Exit 1 if a playbook step failed.",
        epilog="example:\n  timmybot-admin incident declare P1 'token leak suspected'",
        handler=_incident_declare,
    )
    declare.add_argument("severity", type=_severity, metavar="SEVERITY", help="P0, P1, P2 or P3")
    declare.add_argument("title", nargs="+", metavar="TITLE", help="what happened, in words")
    declare.add_argument("--description", metavar="TEXT", help="more detail")

    switch = _group(
        commands,
        "switch",
        summary="the kill switch, the token refresh pause and the lockdown",
        description="Process-wide switches every bot process obeys: kill_switch (only "
        "owners' commands run), refresh_paused (no token refresh; a P0 turns it on) and "
        "lockdown (the tighter attempt limit; a P1 turns it on). See "
        "docs/incident-response.md.",
    )
    _leaf(
        switch,
        "list",
        summary="show each switch and why it is on",
        description="Show whether each switch is on, since when, until when and why.",
        handler=_switch_list,
    )
    switch_on = _leaf(
        switch,
        "on",
        summary="turn a switch on for every bot process",
        description="Turn a switch on for every bot process sharing the store. Recorded in "
        "the audit trail.",
        epilog="example:\n  timmybot-admin switch on kill_switch --reason 'token leak'",
        handler=_switch_on,
    )
    switch_on.add_argument("switch", type=_switch, metavar="SWITCH", help=_SWITCHES)
    switch_on.add_argument("--reason", metavar="TEXT", help="why (shown to operators)")
    switch_on.add_argument(
        "--for",
        dest="duration",
        type=_duration,
        metavar="DURATION",
        help="turn it off by itself after this long (e.g. 6h); default: until turned off",
    )
    switch_off = _leaf(
        switch,
        "off",
        summary="turn a switch off (after an incident is dealt with)",
        description="Turn a switch off for every bot process, for example the kill switch "
        "and the refresh pause a P0 incident left on. Recorded in the audit trail.",
        epilog="example:\n  timmybot-admin switch off refresh_paused",
        handler=_switch_off,
    )
    switch_off.add_argument("switch", type=_switch, metavar="SWITCH", help=_SWITCHES)

    config = _group(
        commands,
        "config",
        summary="check the configuration",
        description="Settings and keys.",
    )
    _leaf(
        config,
        "check",
        summary="validate the settings and show them, secrets hidden",
        description="Validate the settings (environment and --config file) as the bot would "
        "at start-up, and print them with secrets replaced by whether they are set, and "
        "the IDs of the keys in use (compare the audit key ring's IDs with your off-machine "
        "copy). Creates nothing. Exit 3 on a configuration error.",
        handler=_config_check,
        needs_services=False,
    )
    return parser


# -- running -----------------------------------------------------------------------


class _OneLineFormatter(logging.Formatter):
    """Log lines without tracebacks: an exception shows as its type only."""

    def format(self, record: logging.LogRecord) -> str:
        saved = (record.exc_info, record.exc_text, record.stack_info)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            text = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        exc_info = saved[0]
        if exc_info and exc_info[0] is not None:
            text += f" ({exc_info[0].__name__})"
        return _safe(text.replace("\n", " "))


class _Logging:
    """Send the services' log lines to standard error for the length of one command."""

    def __init__(self, stream: TextIO, *, verbose: bool) -> None:
        self._handler = logging.StreamHandler(stream)
        self._handler.setFormatter(_OneLineFormatter(f"{PROG}: log: %(name)s: %(message)s"))
        # Quiet by default: results are printed, and what changed is in the
        # audit trail; errors still show (one line each, no traceback).
        self._level = logging.INFO if verbose else logging.ERROR
        self._previous = logging.NOTSET

    def __enter__(self) -> None:
        root = logging.getLogger()
        self._previous = root.level
        # The handler filters too: a logger below root may have a level of
        # its own that lets more through.
        self._handler.setLevel(self._level)
        root.addHandler(self._handler)
        root.setLevel(self._level)

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.setLevel(self._previous)


async def _dispatch(ctx: Context) -> int:
    handler: Handler = ctx.args.handler
    if not ctx.args.needs_services:
        return await handler(ctx)
    if ctx.settings.backend == "memory":
        raise ConfigurationError(
            "TIMMYBOT_BACKEND=memory keeps nothing between processes, so there is nothing "
            f"for {PROG} to act on; use the backend the bot runs on (sqlite or aws)"
        )
    backends: tuple[str, ...] | None = ctx.args.backends
    if backends is not None and ctx.settings.backend not in backends:
        raise OperationFailed(ctx.args.other_backend)
    # The CLI exports no metrics: what it does is in the audit trail.
    services = bootstrap(attrs.evolve(ctx.settings, metrics_exporter="none"))
    ctx.services = services
    try:
        try:
            await services.open()
        except StoreUnavailable as error:
            raise OperationFailed(
                f"cannot open the {ctx.settings.backend} stores: {error}"
            ) from None
        return await handler(ctx)
    finally:
        await services.aclose()


def _fail(stream: TextIO, kind: str, error: BaseException | str) -> None:
    text = _safe(str(error).replace("\n", " ")) or type(error).__name__
    stream.write(f"{PROG}: {kind}: {text[:600]}\n")
    stream.flush()


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run ``timmybot-admin`` with ``argv`` (default: the command line); return the exit code.

    ``environ`` replaces ``os.environ`` (tests). Standard streams are the
    ``sys`` ones at the time of the call.
    """
    env = dict(os.environ if environ is None else environ)
    stderr = sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error argparse has printed
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    out = Output(
        stdout=sys.stdout,
        stderr=stderr,
        stdin=sys.stdin,
        json=bool(args.json),
        progress_enabled=False if args.no_progress else None,
    )
    # The variable holding a new vault key is not a setting (and may carry
    # the TIMMYBOT_ prefix, which settings would refuse as unknown).
    hidden = getattr(args, "new_key_env", None)
    settings_env = {name: value for name, value in env.items() if name != hidden}
    with _Logging(stderr, verbose=bool(args.verbose)):
        try:
            settings = Settings.from_env(settings_env, config_file=args.config)
            ctx = Context(args=args, settings=settings, environ=env, out=out)
            return asyncio.run(_dispatch(ctx))
        except ConfigurationError as error:
            _fail(stderr, "configuration error", error)
            return EXIT_CONFIG
        except UsageProblem as error:
            _fail(stderr, "error", error)
            return EXIT_USAGE
        except (OperationFailed, TimmyBotError) as error:
            _fail(stderr, "error", error)
            return EXIT_FAILED
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, as other tools
            # do, and keep the interpreter from failing on its final flush.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return EXIT_FAILED
        except KeyboardInterrupt:
            _fail(stderr, "error", "interrupted; what was done so far stays done")
            return 130
        except Exception as error:  # noqa: BLE001 - one line, never a traceback or a secret
            _fail(stderr, "unexpected error", f"{type(error).__name__} (nothing more is shown)")
            return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
