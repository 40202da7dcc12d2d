"""The commands of ``timmybot-admin``: one async function per subcommand.

Each takes a :class:`Context` (the parsed arguments, the settings, the
services and where to write) and returns the exit code; what cannot be done
raises :class:`UsageProblem` (exit 2), :class:`OperationFailed` (exit 1) or
:class:`~timmybot_bot.runtime.settings.ConfigurationError` (exit 3), which
:func:`timmybot_bot.cli.main.main` turns into one line on standard error.
Text that came from a store goes through :func:`safe_text` before it reaches
a terminal. The parser and the process around them are in
:mod:`timmybot_bot.cli.main`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO, cast

import attrs

from timmybot_adapters.signing import Ed25519Signer
from timmybot_bot.app import commands as c
from timmybot_bot.app.audit_query import parse_audit_query
from timmybot_bot.app.failures import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OperationFailed,
)
from timmybot_bot.app.failures import UsageError as UsageProblem
from timmybot_bot.app.handlers import access, audit, incidents, privacy, tokens
from timmybot_bot.app.replies import guild_changed_text, incident_lines, rotation_text
from timmybot_bot.cli.progress import Progress, is_terminal
from timmybot_bot.runtime.audit_keys import KEYRING_FILE, SIGNING_KEY_FILE, load_keyring
from timmybot_bot.runtime.bootstrap import Services, check_settings
from timmybot_bot.runtime.keys import key_id_for, load_or_create_key, parse_key
from timmybot_bot.runtime.settings import Settings
from timmybot_bot.runtime.vault_rekey import (
    CURRENT_FILE,
    STAGED_FILE,
    NewKeySource,
    RekeyError,
    RekeyOutcome,
    RekeyUsageError,
    plan_rekey,
    refuse_while_running,
)
from timmybot_core import (
    AuditLog,
    AuditPage,
    AuditRecord,
    ErasureReport,
    SignedDigest,
    SwitchState,
    TimmyBotError,
)
from timmybot_core.domain.errors import DomainValueError
from timmybot_core.safety.text import strip_invisible
from timmybot_core.services.audit import record_as_json
from timmybot_core.services.audit_verify import VerificationReport

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOCAL_OPERATOR",
    "MAX_PAGE",
    "PROG",
    "Context",
    "Handler",
    "OperationFailed",
    "Output",
    "UsageProblem",
    "audit_query",
    "audit_rotate_key",
    "audit_verify",
    "config_check",
    "guild_allow",
    "guild_list",
    "guild_remove",
    "guild_unban",
    "incident_declare",
    "rotation_run",
    "safe_text",
    "switch_list",
    "switch_off",
    "switch_on",
    "user_delete",
    "user_export",
    "vault_rekey",
]

PROG: Final = "timmybot-admin"
LOCAL_OPERATOR: Final = 0
MAX_PAGE: Final = 500


# -- output ------------------------------------------------------------------------


def safe_text(text: object) -> str:
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
        """Write one line of result text, made terminal-safe here.

        Cleaned again although most callers clean what came from a store: a
        line may also name a path of the settings (``TIMMYBOT_DATA_DIR``) or
        the command line, or quote SQLite (``doctor``), which could carry an
        escape sequence. Cleaning is idempotent.
        """
        self.stdout.write(safe_text(text) + "\n")

    def data(self, value: object) -> None:
        """Write ``value`` as a JSON document (ASCII only, so no terminal escapes)."""
        self.stdout.write(json.dumps(value, indent=2, ensure_ascii=True, sort_keys=False) + "\n")

    def result(self, data: object, lines: Iterable[str]) -> None:
        """Write a result: ``data`` as JSON with ``--json``, else ``lines`` (terminal-safe)."""
        if self.json:
            self.data(data)
        else:
            for text in lines:
                self.line(text)

    def note(self, text: str) -> None:
        """Write a remark for the person at the terminal (standard error)."""
        self.stderr.write(f"{PROG}: {safe_text(text)}\n")
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
        if not is_terminal(self.stdin):
            raise UsageProblem("standard input is not a terminal, so nobody can confirm; add --yes")
        self.stderr.write(safe_text(question))  # it may name the data directory
        self.stderr.flush()
        answer = self.stdin.readline()
        return answer.strip().lower() == expected.lower()


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

    @property
    def invocation(self) -> c.Invocation:
        """Who runs the commands: the operator at this machine's terminal."""
        return c.Invocation(
            user_id=self.operator, source="cli", trusted_operator=True, at_terminal=True
        )

    async def run(self, command: c.Command) -> Any:
        """Run ``command`` through the application layer's bus."""
        return await self.svc.bus.handle(command, self.invocation)

    def unrecorded(self, recorded: bool) -> bool:
        """Say on standard error when the audit trail could not record an action."""
        if not recorded:
            self.out.note("warning: the action ran, but the audit trail could not record it")
        return recorded


Handler = Callable[[Context], Awaitable[int]]


# -- audit -------------------------------------------------------------------------


def _record_line(record: AuditRecord) -> str:
    parts = [
        f"{record.timestamp:%Y-%m-%d %H:%M:%S}",
        f"{record.kind.value:<8}",
        safe_text(record.action) or "-",
    ]
    if record.actor:
        parts.append(f"by {safe_text(record.actor)}")
    if record.subject:
        parts.append(f"about {safe_text(record.subject)}")
    if record.resource:
        parts.append(f"on {safe_text(record.resource)}")
    if record.source:
        parts.append(f"({safe_text(record.source)})")
    if record.details:
        parts.append(json.dumps(record_as_json(record)["details"], ensure_ascii=True))
    return "  ".join(parts)


def _records_end(next_cursor: str | None, *, error: str | None = None) -> str:
    """Return the end of ``audit query --json``'s document; ``error`` if it stopped early."""
    end = f"\n], {json.dumps('next_cursor')}: {json.dumps(next_cursor)}"
    if error is not None:
        end += f", {json.dumps('error')}: {json.dumps(error, ensure_ascii=True)}"
    return end + "}\n"


def _stopped_by(error: BaseException) -> str:
    """Say why a query stopped, as the one-line error does: never an unexpected message."""
    if isinstance(error, UsageProblem | OperationFailed | TimmyBotError):
        return safe_text(str(error).replace("\n", " "))[:600]
    if isinstance(error, KeyboardInterrupt | asyncio.CancelledError):
        return "interrupted"
    return f"{type(error).__name__} (nothing more is shown)"


async def audit_query(ctx: Context) -> int:
    """``audit query``: records matching the filters, newest first; ``--all`` follows every page."""
    out, args = ctx.out, ctx.args
    query = parse_audit_query(list(args.filters), now=ctx.svc.clock.now())
    if args.limit is not None:
        query = attrs.evolve(query, limit=args.limit)
    elif args.all:
        query = attrs.evolve(query, limit=MAX_PAGE)
    cursor = query.cursor
    shown = 0
    next_cursor: str | None = None
    opened = False
    while True:
        try:
            page: AuditPage = await ctx.run(attrs.evolve(query, cursor=cursor))
        except BaseException as error:
            if opened:
                # A later page failed (or Ctrl-C): close the document, so that
                # whoever reads standard output (jq) still gets JSON, with the
                # cursor to resume from and why it stopped (the exit status still
                # says it failed).
                with contextlib.suppress(OSError, ValueError):
                    out.stdout.write(_records_end(cursor, error=_stopped_by(error)))
            if isinstance(error, DomainValueError):
                # A malformed cursor: the only argument the store judges itself.
                raise UsageProblem(f"cursor: {error}") from None
            raise
        if out.json and not opened:
            # Opened once the first page is in: a refused query prints no half document.
            out.stdout.write('{"records": [')
            opened = True
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
        out.stdout.write(_records_end(next_cursor))
    elif shown == 0:
        out.line("No audit records match.")
    elif next_cursor is not None:
        out.line(f"More records: add cursor:{next_cursor} (or --all for every page).")
    return EXIT_OK


class _ProgressLog:
    """An :class:`AuditLog` that reports verification's reading to a progress bar.

    Verification reads the writers, then each writer's records and digests: a
    writer is done once its digests are in. Everything else is the log's own.
    """

    def __init__(self, log: AuditLog, progress: Progress) -> None:
        self._log = log
        self._progress = progress

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    async def writers(self) -> list[str]:
        writers = await self._log.writers()
        self._progress.update(0, total=len(writers))
        return writers

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        digests = await self._log.digests(writer_id)
        self._progress.advance()
        return digests


def _verification_json(report: VerificationReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "writers": report.writers,
        "records_checked": report.records_checked,
        "digests_checked": report.digests_checked,
        "uncovered": report.uncovered,
        "sealed_writers": report.sealed_writers,
        "open_writers": report.open_writers,
        "anchor": report.anchor,
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


async def audit_verify(ctx: Context) -> int:
    """``audit verify``: check every chain and digest; exit 1 if a problem is found."""
    out, args = ctx.out, ctx.args
    names = {word.partition(":")[0].lower() for word in args.filters}
    if names - {"since", "until"}:
        raise UsageProblem("audit verify takes since:<when> and until:<when> only")
    query = parse_audit_query(list(args.filters), now=ctx.svc.clock.now())
    start = query.start if "since" in names else None
    end = query.end if "until" in names else None
    with out.progress("verify", unit="writers") as progress:
        report: VerificationReport = await ctx.run(
            c.VerifyAudit(
                start=start,
                end=end,
                observe=lambda log: cast(AuditLog, _ProgressLog(log, progress)),
            )
        )
    problems = [f"  x {safe_text(problem)}" for problem in report.problems]
    out.result(_verification_json(report), [safe_text(report.summary()), *problems])
    return EXIT_OK if report.ok else EXIT_FAILED


async def audit_rotate_key(ctx: Context) -> int:
    """``audit rotate-key``: a new signing key; the old public key stays in the ring."""
    rotated: audit.KeyRotated = await ctx.run(c.RotateAuditKey())
    old, new, recorded = rotated.old_key_id, rotated.new_key_id, ctx.unrecorded(rotated.recorded)
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
    lines = [f"Data kept about user {safe_text(document['user_id'])}:"]
    links = document["linked_platforms"]
    lines.append(f"Linked platforms: {len(links) or 'none'}")
    for link in links:
        state = "needs /link again" if link["needs_relink"] else "active"
        scopes = ", ".join(link["scopes"]) or "no scopes"
        lines.append(
            f"  {safe_text(link['platform'])}: {state}, linked {safe_text(link['linked_at'])}, "
            f"scopes: {safe_text(scopes)}"
        )
    preferences = document["preferences"]
    lines.append(f"Preferences: {len(preferences) or 'none'}")
    for key, entry in preferences.items():
        value = json.dumps(entry["value"], ensure_ascii=True)
        lines.append(f"  {safe_text(key)} = {value} (set {safe_text(entry['updated_at'])})")
    events = document["events"]
    lines.append(f"Security and privacy events: {len(events)} (newest first)")
    for event in events[:10]:
        when, kind, action = (safe_text(event[k]) for k in ("timestamp", "kind", "action"))
        lines.append(f"  {when}  {kind}  {action}")
    if len(events) > 10:
        lines.append(f"  ... and {len(events) - 10} more (--json or --output show all)")
    return lines


async def user_export(ctx: Context) -> int:
    """``user export``: everything kept about a user (never a token), as owner."""
    out, args = ctx.out, ctx.args
    if args.output is not None and (args.output.exists() or args.output.is_symlink()):
        # Checked first: a refused export must not be recorded as made.
        raise UsageProblem(f"--output {args.output} exists; choose a new file name")
    export: privacy.Export = await ctx.run(
        c.ExportUserData(user_id=args.user_id, to_file=args.output is not None)
    )
    document, recorded = export.document, ctx.unrecorded(export.recorded)
    if args.output is not None:
        _write_export(args.output, document)
    if out.json and args.output is None:
        out.data(document)
    elif out.json:
        out.data({"written_to": str(args.output)})
    else:
        for text in _export_lines(document):
            out.line(text)
        if args.output is not None:
            out.line(f"Written as JSON to {safe_text(args.output)} (mode 0600).")
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


async def user_delete(ctx: Context) -> int:
    """``user delete``: erase a user's data after confirmation; exit 1 if a store failed."""
    out, args = ctx.out, ctx.args
    user_id: int = args.user_id
    question = (
        f"Erase everything stored about user {user_id}: tokens (revoked at the platforms "
        "first), preferences and pending links? Audit records stay (they hold pseudonyms "
        f"only). This cannot be undone. Type the user ID to confirm: "
    )
    if not out.confirm(question, expected=str(user_id), yes=args.yes):
        out.note("cancelled: nothing was deleted")
        return EXIT_FAILED
    async with out.progress("erasing").spinning():
        erasure: privacy.Erasure = await ctx.run(c.EraseUserData(user_id=user_id))
    report, problem, recorded = erasure.report, erasure.problem, ctx.unrecorded(erasure.recorded)
    if out.json:
        out.data(_erasure_json(report) if report is not None else {"ok": False})
    else:
        if report is not None:
            for text in report.as_text().splitlines():
                out.line(safe_text(text))
        if problem is None and report is not None:
            out.line(f"User {user_id}: {report.deleted} item(s) erased.")
    if problem is not None:
        raise OperationFailed(problem)
    return EXIT_OK if recorded else EXIT_FAILED


# -- guilds ------------------------------------------------------------------------


def _guild_change(kind: type[c.AllowGuild | c.RemoveGuild | c.UnbanGuild]) -> Handler:
    """Return the handler of ``guild allow``, ``remove`` or ``unban``, in the chat's words.

    Exit 1 if the audit trail could not record it, or if configuration allows
    the guild that ``remove`` was asked to take off.
    """

    async def change(ctx: Context) -> int:
        command = kind(guild_id=ctx.args.guild_id)
        done: access.GuildChanged = await ctx.run(command)
        data: dict[str, object] = {"guild_id": str(done.guild_id), "changed": done.changed}
        if isinstance(command, c.RemoveGuild):
            data["allowed_by_configuration"] = done.configured
        ctx.out.result(data, [guild_changed_text(done, command)])
        recorded = ctx.unrecorded(done.recorded)
        return EXIT_OK if recorded and not done.configured else EXIT_FAILED

    return change


guild_allow: Final = _guild_change(c.AllowGuild)
guild_remove: Final = _guild_change(c.RemoveGuild)
guild_unban: Final = _guild_change(c.UnbanGuild)


async def guild_list(ctx: Context) -> int:
    """``guild list``: the allowed guilds and the active bans."""
    guilds: access.Guilds = await ctx.run(c.ListGuilds())
    allowed, bans, configured = guilds.allowed, guilds.bans, guilds.configured
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
                f"  {ban.guild_id} until {ban.until:%Y-%m-%d %H:%M} UTC: {safe_text(ban.reason)}"
            )
    return EXIT_OK


# -- switches ----------------------------------------------------------------------


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
    why = f": {safe_text(state.reason)}" if state.reason else ""
    return f"{state.switch.value}: ON{since}{until}{why}"


async def switch_list(ctx: Context) -> int:
    """``switch list``: each process-wide switch and why it is on."""
    switches: access.Switches = await ctx.run(c.ListSwitches())
    states, now = switches.states, switches.now
    ctx.out.result(
        {"switches": [_switch_json(state, now) for state in states]},
        [_switch_line(state, now) for state in states],
    )
    return EXIT_OK


async def _switch_set(ctx: Context, command: c.SwitchOn | c.SwitchOff) -> int:
    changed: access.SwitchChanged = await ctx.run(command)
    if ctx.out.json:
        ctx.out.data(_switch_json(changed.state, changed.now))
    else:
        ctx.out.line(_switch_line(changed.state, changed.now))
        ctx.out.line("Every bot process obeys it within a few seconds.")
    return EXIT_OK if ctx.unrecorded(changed.recorded) else EXIT_FAILED


async def switch_on(ctx: Context) -> int:
    """``switch on``: turn a switch on for every process, optionally for a while."""
    args = ctx.args
    return await _switch_set(
        ctx, c.SwitchOn(switch=args.switch, reason=args.reason, duration=args.duration)
    )


async def switch_off(ctx: Context) -> int:
    """``switch off``: turn a switch off for every process."""
    return await _switch_set(ctx, c.SwitchOff(switch=ctx.args.switch))


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


async def vault_rekey(ctx: Context) -> int:
    """``vault rekey``: move the vault to a new key (:mod:`timmybot_bot.runtime.vault_rekey`)."""
    settings, out, args = ctx.settings, ctx.out, ctx.args
    source = NewKeySource(file=args.new_key_file, env=args.new_key_env, generate=args.generate)
    try:
        refuse_while_running(settings, force=bool(getattr(args, "force", False)))
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
        rekeyed: tokens.Rekeyed = await ctx.run(
            c.RekeyVault(plan=plan, batch=args.batch, report=report)
        )
    finally:
        for bar in bars.values():
            bar.close()
    outcome, recorded = rekeyed.outcome, ctx.unrecorded(rekeyed.recorded)
    out.result(outcome.as_dict(), _rekey_summary(ctx, outcome))
    return EXIT_OK if outcome.ok and recorded else EXIT_FAILED


# -- rotation and incidents --------------------------------------------------------


async def rotation_run(ctx: Context) -> int:
    """``rotation run``: refresh expiring tokens now; exit 1 if one failed or it is paused."""
    out = ctx.out
    within: timedelta = ctx.args.within
    async with out.progress("rotating tokens").spinning():
        rotated: tokens.Rotated = await ctx.run(c.RunRotation(within=within))
    report, recorded = rotated.report, ctx.unrecorded(rotated.recorded)
    if out.json:
        out.data(report.as_dict())
    else:
        out.line(rotation_text(report))
        if report.misconfigured and not report.paused:
            out.line(
                f"Configuration problem: {report.misconfigured} link(s) are to a platform this "
                "process has no usable OAuth client for (check its client ID and secret)."
            )
    if report.paused or report.failed or report.misconfigured:
        return EXIT_FAILED
    return EXIT_OK if recorded else EXIT_FAILED


async def incident_declare(ctx: Context) -> int:
    """``incident declare``: run a severity's playbook; exit 1 if a step failed."""
    out, args = ctx.out, ctx.args
    title = " ".join(args.title)
    async with out.progress(f"{args.severity.value} playbook").spinning():
        try:
            declared: incidents.IncidentDeclared = await ctx.run(
                c.DeclareIncident(
                    severity=args.severity, title=title, description=args.description or ""
                )
            )
        except DomainValueError as error:
            raise UsageProblem(str(error)) from None
    report, recorded = declared.report, ctx.unrecorded(declared.recorded)
    out.result(
        {
            "ok": report.ok,
            "incident_id": report.incident_id,
            "severity": report.severity.value,
            "title": report.title,
            "declared_at": report.declared_at.isoformat(),
            "respond_by": report.respond_by.isoformat(),
            "steps": [step.as_dict() for step in report.steps],
        },
        incident_lines(report, safe_text),
    )
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

    def key_id(value: str | None, setting: str, name: str, purpose: str, prefix: str) -> str:
        """Return the ID of the key a setting holds, else of its key file."""
        if value is not None:
            return key_id_for(parse_key(setting, value), prefix)
        return from_file(name, purpose, prefix) or "(created on first start)"

    if settings.backend == "memory":
        return {"note": "memory backend: keys are made per process"}
    ids: dict[str, object] = {
        "vault": key_id(settings.vault_key, "TIMMYBOT_VAULT_KEY", CURRENT_FILE, "vault", "v")
    }
    staged = from_file(STAGED_FILE, "vault", "v")
    if staged is not None:
        ids["vault_staged"] = staged
    retired = sorted(
        key_id_for(load_or_create_key(path, purpose="vault"), "v")
        for path in keys_dir.glob("vault.retired-*.key")
    )
    if retired:
        ids["vault_retired"] = retired
    ids["pseudonym"] = key_id(
        settings.pseudonym_key, "TIMMYBOT_PSEUDONYM_KEY", "pseudonym.key", "pseudonym", "p"
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


async def config_check(ctx: Context) -> int:
    """``config check``: validate and show the settings and key IDs; creates nothing."""
    settings, out = ctx.settings, ctx.out
    check_settings(settings)
    described = settings.describe()
    keys = _key_ids(settings)
    if out.json:
        out.data({"ok": True, "settings": described, "keys": keys})
        return EXIT_OK
    for name, value in described.items():
        out.line(f"{name} = {safe_text(value)}")
    for name, key_id in keys.items():
        shown = ", ".join(key_id) if isinstance(key_id, list) else str(key_id)
        out.line(f"key {name} = {safe_text(shown) or '(none)'}")
    if "vault_staged" in keys:
        out.line(f"note: a vault rekey is unfinished; run: {PROG} vault rekey")
    out.line("configuration OK")
    return EXIT_OK
