"""``timmybot-admin doctor``: is this data directory whole? One line per check.

Checks, each independent of the others (a damaged part does not hide the
rest, and nothing here needs the bot's services to start):

* ``identity``: the database, the key files and the key ring belong
  together (what start-up refuses otherwise; see :mod:`timmybot_bot.runtime.data_dir`);
* ``modes``: the database, key ring, keys and directories are not open to
  other users;
* ``integrity``: SQLite's ``PRAGMA integrity_check``;
* ``vault`` and ``preferences``: every record decrypts with a configured key;
* ``processes``: whether a bot holds the run lock, and each job lease's
  holder (alive, gone, on another host);
* ``audit``: the audit log verifies (chains, signatures, coverage: a dead
  writer left unsealed shows here).

Exit 0 when every check passes, 1 otherwise. ``--json`` prints
``{"ok": <every check passed>, "checks": [{"name", "ok", "detail"}, ...]}``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import attrs

from timmybot_adapters.sqlite import VaultKeys
from timmybot_bot.cli.commands import EXIT_FAILED, EXIT_OK, Context
from timmybot_bot.runtime import data_dir, liveness
from timmybot_bot.runtime.settings import ConfigurationError, Settings
from timmybot_bot.runtime.vault_rekey import CURRENT_FILE, current_vault_key, running_vault_keys
from timmybot_core.domain.errors import TimmyBotError

__all__ = ["Check", "doctor", "run_checks", "vault_keys"]


@attrs.frozen(kw_only=True)
class Check:
    """One check's name, verdict and one-line detail."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """Return the check as the line the command prints."""
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def vault_keys(settings: Settings) -> VaultKeys:
    """Return the keys the bot would read the vault with; create none."""
    current = current_vault_key(settings)
    if current is None:
        raise ConfigurationError(f"key file {settings.data_dir / 'keys' / CURRENT_FILE} is missing")
    return running_vault_keys(settings, current)


def _identity(settings: Settings) -> Check:
    try:
        data_dir.check(settings)
    except ConfigurationError as error:
        return Check(name="identity", ok=False, detail=str(error))
    identity = data_dir.read_identity_file(data_dir.identity_path(settings))
    if identity is None:
        return Check(name="identity", ok=True, detail="not set up yet (the first start does)")
    return Check(name="identity", ok=True, detail=f"database, keys and key ring match ({identity})")


def _modes(settings: Settings) -> Check:
    problems = data_dir.mode_problems(settings)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return Check(name="modes", ok=False, detail=problems[0] + more)
    return Check(name="modes", ok=True, detail="nothing is open to other users")


def _integrity(settings: Settings) -> Check:
    path = data_dir.database_path(settings)
    if not path.exists():
        return Check(name="integrity", ok=True, detail=f"no database yet ({path})")
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as connection:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as error:
        code = getattr(error, "sqlite_errorname", None) or type(error).__name__
        return Check(name="integrity", ok=False, detail=f"{path} cannot be read ({code})")
    found = [str(row[0]) for row in rows]
    if found == ["ok"]:
        return Check(name="integrity", ok=True, detail=f"{path}: integrity_check ok")
    return Check(
        name="integrity",
        ok=False,
        detail=f"{path}: {len(found)} problem(s), first: {found[0][:200]}",
    )


_STORES: Final = ("vault", "preferences")


async def _records(settings: Settings) -> list[Check]:
    """Decrypt every vault record and every user's preferences with the configured keys."""
    from timmybot_adapters.sqlite import SqliteDatabase, SqliteTokenVault, SqliteUserDataStore

    path = data_dir.database_path(settings)
    if not path.exists() or path.stat().st_size == 0:
        return [Check(name=name, ok=True, detail="no database") for name in _STORES]
    try:
        keys = vault_keys(settings)
    except ConfigurationError as error:
        detail = f"no key to read them with: {error}"
        return [Check(name=name, ok=False, detail=detail) for name in _STORES]
    async with SqliteDatabase(path) as db:
        vault = SqliteTokenVault(db, keys)
        prefs = SqliteUserDataStore(db, keys=keys)
        return [
            await _decrypts("vault", vault.user_ids, vault.get, (TimmyBotError,)),
            await _decrypts(
                "preferences", prefs.user_ids, prefs.get_preferences, (TimmyBotError, ValueError)
            ),
        ]


async def _decrypts(
    name: str,
    ids: Callable[[], AsyncIterator[int]],
    read: Callable[[int], Awaitable[object]],
    errors: tuple[type[Exception], ...],
) -> Check:
    """Read every user's entry; a failure in ``errors`` counts the entry as not decrypting."""
    seen, bad = 0, []
    try:
        async for user_id in ids():
            seen += 1
            try:
                await read(user_id)
            except errors as error:
                bad.append(type(error).__name__)
    except TimmyBotError as error:
        return Check(name=name, ok=False, detail=f"cannot be read ({error})")
    if bad:
        return Check(
            name=name,
            ok=False,
            detail=f"{len(bad)} of {seen} record(s) do not decrypt with a configured key "
            f"({bad[0]}): see the recovery section of docs/operations.md",
        )
    return Check(name=name, ok=True, detail=f"{seen} record(s), each decrypts")


def _processes(settings: Settings) -> Check:
    now = datetime.now(UTC)
    try:
        running = data_dir.bot_running(settings)
    except ConfigurationError as error:
        return Check(name="processes", ok=False, detail=str(error))
    parts = ["a bot process is running" if running else "no bot running"]
    try:
        parts += [lease.describe(now) for lease in liveness.job_leases(settings)]
    except sqlite3.Error as error:
        detail = f"leases unreadable ({type(error).__name__})"
        return Check(name="processes", ok=False, detail=detail)
    return Check(name="processes", ok=True, detail="; ".join(parts))


async def _audit(settings: Settings) -> Check:
    from timmybot_adapters.sqlite import SqliteAuditLog, SqliteDatabase
    from timmybot_bot.runtime.audit_keys import KEYRING_FILE, load_keyring
    from timmybot_core.services.audit_verify import verify_log

    path = data_dir.database_path(settings)
    if not path.exists() or path.stat().st_size == 0:
        return Check(name="audit", ok=True, detail="no database")
    try:
        ring = load_keyring(settings.data_dir / "keys" / KEYRING_FILE)
    except ConfigurationError as error:
        return Check(name="audit", ok=False, detail=str(error))
    now = datetime.now(UTC)
    try:
        async with SqliteDatabase(path) as db:
            report = await verify_log(
                SqliteAuditLog(db),
                ring,
                now=now,
                retention=settings.audit_retention,
                digest_interval=settings.audit_digest_interval,
            )
    except TimmyBotError as error:
        return Check(name="audit", ok=False, detail=f"cannot be read ({error})")
    detail = report.summary()
    if report.problems:
        detail += f"; first: {report.problems[0]}"
    return Check(name="audit", ok=report.ok, detail=detail)


async def run_checks(settings: Settings) -> list[Check]:
    """Run every check that applies to ``settings``' backend."""
    checks = [_identity(settings), _modes(settings)]
    if settings.backend == "sqlite":
        checks.append(_integrity(settings))
        checks += await _records(settings)
        checks.append(_processes(settings))
        checks.append(await _audit(settings))
    else:
        checks.append(_processes(settings))
    return checks


async def doctor(ctx: Context) -> int:
    """``doctor``: run every check; print one line each; exit 1 if any failed."""
    checks = await run_checks(ctx.settings)
    ok = all(check.ok for check in checks)
    if ctx.out.json:
        ctx.out.data({"ok": ok, "checks": [attrs.asdict(check) for check in checks]})
    else:
        for check in checks:
            ctx.out.line(check.line())
    return EXIT_OK if ok else EXIT_FAILED
