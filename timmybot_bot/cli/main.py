"""``timmybot-admin``: the operator's command line over the bot's own services.

It reads the same settings as the bot (``TIMMYBOT_*`` variables and an
optional TOML file, ``--config``), builds the same services with
:func:`~timmybot_bot.runtime.bootstrap.bootstrap`, runs one command and exits::

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
import logging
import os
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TextIO

import attrs

from timmybot_bot.app.audit_query import parse_guild_id
from timmybot_bot.app.failures import failure_for
from timmybot_bot.cli import commands
from timmybot_bot.cli.commands import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    MAX_PAGE,
    PROG,
    Context,
    Handler,
    OperationFailed,
    Output,
    UsageProblem,
    safe_text,
)
from timmybot_bot.runtime.bootstrap import bootstrap
from timmybot_bot.runtime.settings import ConfigurationError, Settings
from timmybot_core import Severity, StoreUnavailable, Switch, TimmyBotError
from timmybot_core.domain.snowflake import SnowflakeError, parse_snowflake, parse_whole_number

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

# -- argument types ----------------------------------------------------------------


def _snowflake(text: str) -> int:
    try:
        return parse_snowflake(text.strip())
    except SnowflakeError:
        raise argparse.ArgumentTypeError(
            "must be a Discord ID (the digits 0-9, no leading zero, up to 2**64-1), "
            f"got {safe_text(text)[:40]!r}"
        ) from None


def _guild_id(text: str) -> int:
    # The one guild-ID parser (and message) of every front-end.
    try:
        return parse_guild_id(text)
    except UsageProblem as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _severity(text: str) -> Severity:
    try:
        return Severity(text.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be one of P0, P1, P2, P3, got {safe_text(text)[:10]!r}"
        ) from None


_DURATION: Final = re.compile(
    r"(?:([0-9]{1,9})d)?(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m)?(?:([0-9]{1,9})s)?", re.ASCII
)


def _duration(text: str) -> timedelta:
    value = text.strip().lower()
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 30m, 24h, 2d or 1h30m, got {safe_text(text)[:20]!r}"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError("must be longer than zero")
    return duration


def _count_up_to(maximum: int) -> Callable[[str], int]:
    """Return the argument type of a whole number from 1 to ``maximum``."""

    def count(text: str) -> int:
        try:
            return parse_whole_number(text, minimum=1, maximum=maximum)
        except SnowflakeError:
            raise argparse.ArgumentTypeError(f"must be a number from 1 to {maximum}") from None

    return count


def _switch(text: str) -> Switch:
    name = text.strip().lower().replace("-", "_")
    name = {"killswitch": "kill_switch", "refresh": "refresh_paused"}.get(name, name)
    try:
        return Switch(name)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(s.value for s in Switch)}, got {safe_text(text)[:30]!r}"
        ) from None


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
    parser = argparse.ArgumentParser(
        add_help=False, argument_default=argparse.SUPPRESS if leaf else None
    )
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="read settings from this TOML file too (environment variables override it; "
        "default: TIMMYBOT_CONFIG_FILE if set)",
    )
    group.add_argument(
        "--as",
        dest="as_user",
        type=_snowflake,
        metavar="ID",
        help="record changes in the audit trail as this Discord user ID "
        "(default: 0, the local operator)",
    )
    group.add_argument("--json", action="store_true", help="print results as JSON")
    group.add_argument(
        "--no-progress",
        action="store_true",
        help="never draw progress bars (they are drawn only when standard error is a terminal)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
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
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    audit = _group(
        groups,
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
        handler=commands.audit_query,
    )
    query.add_argument("filters", nargs="*", metavar="FILTER", help="name:value filters")
    query.add_argument(
        "--all", action="store_true", help="follow every page instead of printing one"
    )
    query.add_argument(
        "--limit",
        type=_count_up_to(MAX_PAGE),
        metavar="N",
        help=f"records per page, 1 to {MAX_PAGE} (default 10, or {MAX_PAGE} with --all)",
    )
    verify = _leaf(
        audit,
        "verify",
        summary="check the hash chains and signed digests; exit 1 on any problem",
        description="Check every writer's hash chain and signed digests, and list every "
        "problem with its place (modified, missing, inserted or reordered records, bad "
        "signatures, unknown keys). Chains are always checked whole; since:/until: narrow "
        "the report to their range, but tampering is reported wherever it lies. Exit 1 if "
        "any problem is found.",
        epilog="example:\n  timmybot-admin audit verify since:30d --json",
        handler=commands.audit_verify,
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
        handler=commands.audit_rotate_key,
    )

    user = _group(
        groups,
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
        handler=commands.user_export,
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
        handler=commands.user_delete,
    )
    delete.add_argument("user_id", type=_snowflake, metavar="USER_ID", help="the Discord user ID")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    guild = _group(
        groups,
        "guild",
        summary="manage the guild allowlist and bans",
        description="The guild allowlist and temporary bans, shared by every bot process. "
        "See docs/access-control.md.",
    )
    for name, summary, handler in (
        ("allow", "allowlist a guild (and lift any ban on it)", commands.guild_allow),
        ("remove", "remove a guild from the allowlist", commands.guild_remove),
        ("unban", "lift a guild's ban and forget its denied attempts", commands.guild_unban),
    ):
        leaf = _leaf(
            guild,
            name,
            summary=summary,
            description=summary[0].upper() + summary[1:] + ". Recorded in the audit trail.",
            handler=handler,
        )
        leaf.add_argument("guild_id", type=_guild_id, metavar="GUILD_ID", help="the guild ID")
    _leaf(
        guild,
        "list",
        summary="list allowed and banned guilds",
        description="List the allowed guilds (configured and allowlisted) and the active bans.",
        handler=commands.guild_list,
    )

    vault = _group(
        groups,
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
        handler=commands.vault_rekey,
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
    # A key from a variable is neither generated nor read from a file: say so
    # (exit 2) instead of reading the variable and ignoring the other option
    # (plan_rekey refuses --new-key-file with it, which --generate may take).
    one_key = rekey.add_mutually_exclusive_group()
    one_key.add_argument(
        "--new-key-env",
        metavar="NAME",
        help="read the new key (hex or base64) from this environment variable",
    )
    one_key.add_argument(
        "--generate",
        action="store_true",
        help="generate a new random key (kept in keys/vault.next.key, or --new-key-file)",
    )
    rekey.add_argument(
        "--batch",
        type=_count_up_to(10_000),
        default=100,
        metavar="N",
        help="records per transaction (default 100)",
    )
    rekey.add_argument(
        "--yes", action="store_true", help="do not ask whether the bot processes are stopped"
    )
    rekey.add_argument(
        "--force",
        action="store_true",
        help="rekey although a live bot process seems to use the data directory",
    )

    rotation = _group(
        groups,
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
        handler=commands.rotation_run,
    )
    run.add_argument(
        "--within",
        type=_duration,
        default=timedelta(hours=24),
        metavar="DURATION",
        help="refresh tokens expiring within this long (default 24h; e.g. 90m, 2d)",
    )

    incident = _group(
        groups,
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
        handler=commands.incident_declare,
    )
    declare.add_argument("severity", type=_severity, metavar="SEVERITY", help="P0, P1, P2 or P3")
    declare.add_argument("title", nargs="+", metavar="TITLE", help="what happened, in words")
    declare.add_argument("--description", metavar="TEXT", help="more detail")

    switch = _group(
        groups,
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
        handler=commands.switch_list,
    )
    switch_on = _leaf(
        switch,
        "on",
        summary="turn a switch on for every bot process",
        description="Turn a switch on for every bot process sharing the store. Recorded in "
        "the audit trail.",
        epilog="example:\n  timmybot-admin switch on kill_switch --reason 'token leak'",
        handler=commands.switch_on,
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
        handler=commands.switch_off,
    )
    switch_off.add_argument("switch", type=_switch, metavar="SWITCH", help=_SWITCHES)

    _register_state_commands(groups)

    config = _group(
        groups,
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
        handler=commands.config_check,
        needs_services=False,
    )
    return parser


def _register_state_commands(groups: Any) -> None:
    """``doctor`` and ``backup`` (their logic is in runtime/doctor.py and runtime/backup.py)."""
    from timmybot_bot.runtime.backup import backup
    from timmybot_bot.runtime.doctor import doctor

    _leaf(
        groups,
        "doctor",
        summary="check the data directory: integrity, keys, modes, processes, audit",
        description="Check that the data directory is whole, one line per check: the "
        "identity tying the database, keys and key ring together; file and directory "
        "modes; SQLite's integrity_check; every vault record and preference decrypts with "
        "a configured key; whether a bot runs and who holds the job leases; the audit "
        "log verifies (a dead writer left unsealed shows here). Starts no bot and runs "
        "on a directory the bot refuses. Exit 1 if a check fails. See the recovery "
        "section of docs/operations.md.",
        handler=doctor,
        needs_services=False,
    )
    copy = _leaf(
        groups,
        "backup",
        summary="copy the database (online backup) and the keys to a new directory",
        description="Write a consistent copy of the database (SQLite's online backup API, "
        "safe while bots run) and of the key files, key ring and identity file with "
        "their modes, to DEST, a new directory (0700). The copy is a data directory: "
        "check it with TIMMYBOT_DATA_DIR=DEST timmybot-admin doctor. It holds the keys: "
        "keep it private. See docs/operations.md (backup and restore).",
        handler=backup,
        needs_services=False,
    )
    copy.add_argument("destination", type=Path, metavar="DEST", help="a new directory")


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
        return safe_text(text.replace("\n", " "))


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
    text = safe_text(str(error).replace("\n", " ")) or type(error).__name__
    stream.write(f"{PROG}: {kind}: {text[:600]}\n")
    stream.flush()


def _parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` as ``parse_args`` does, with FILTER words before and after options.

    argparse fills a ``nargs='*'`` positional from its first run of words
    only, so ``audit query action:x --all cursor:ABC`` would leave
    ``cursor:ABC`` unrecognized; ``parse_intermixed_args`` refuses
    subparsers. Words left over by a command that takes filters are added
    to them in order (the filter parser judges them, as it does the others);
    anything else left over, or any option, is the usual usage error.
    """
    args, extras = parser.parse_known_args(argv)
    filters = getattr(args, "filters", None)
    if extras and isinstance(filters, list) and not any(e.startswith("-") for e in extras):
        filters.extend(extras)
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run ``timmybot-admin`` with ``argv`` (default: the command line); return the exit code.

    ``environ`` replaces ``os.environ`` (tests). Standard streams are the
    ``sys`` ones at the time of the call.
    """
    env = dict(os.environ if environ is None else environ)
    stderr = sys.stderr
    try:
        args = _parse_args(build_parser(), argv)
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
        except (UsageProblem, OperationFailed, TimmyBotError) as error:
            _fail(stderr, "error", error)
            return failure_for(error).exit_code
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
