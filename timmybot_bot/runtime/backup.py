"""``timmybot-admin backup DEST``: a consistent copy of the data directory.

The database is copied with SQLite's online backup API, page by page under
SQLite's own locking, so the copy is a consistent snapshot even while bots
write (a file copy of a database in WAL mode can miss or tear what is in
the WAL). The key files, the key ring and the identity file are copied
with their modes (0600, the ring 0644), into ``DEST/keys`` (0700). DEST
must not exist yet, so a backup never overwrites one. The copy is written
in a hidden sibling directory (0700) and renamed to DEST only once it is
whole: a backup interrupted at any point, SIGKILL included, never leaves a
half copy under DEST's name (only, after a SIGKILL, the hidden
``.DEST.partial-*`` directory, which can be deleted).

The copy is itself a data directory: point ``TIMMYBOT_DATA_DIR`` at it and
``timmybot-admin doctor`` checks it. It holds the keys that decrypt the
tokens: keep it as private as the original (see docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import stat
from pathlib import Path

import attrs

from timmybot_bot.cli.commands import EXIT_OK, Context, OperationFailed, UsageProblem
from timmybot_bot.runtime import data_dir
from timmybot_bot.runtime.keys import IDENTITY_FILE
from timmybot_bot.runtime.settings import Settings

__all__ = ["BackupResult", "backup", "make_backup"]


@attrs.frozen(kw_only=True)
class BackupResult:
    """What a backup wrote."""

    destination: Path
    database_pages: int
    files: tuple[str, ...]


def _copy_database(source: Path, target: Path) -> int:
    descriptor = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(descriptor)
    with (
        contextlib.closing(sqlite3.connect(source, timeout=10)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
        # A self-contained file: no WAL beside the copy.
        dst.execute("PRAGMA journal_mode = DELETE")
        pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
    os.chmod(target, 0o600)
    return pages


def _key_files(keys: Path) -> list[Path]:
    if not keys.is_dir():
        return []
    wanted = [*sorted(keys.glob("*.key")), keys / "audit-keyring.json", keys / IDENTITY_FILE]
    return [path for path in wanted if path.is_file()]


def make_backup(settings: Settings, destination: Path) -> BackupResult:
    """Copy ``settings``' database and keys to the new directory ``destination``.

    Raises:
        UsageProblem: ``destination`` exists, or the backend has no local database.
        OperationFailed: the copy failed (the partial copy is removed).

    """
    if settings.backend != "sqlite":
        raise UsageProblem(
            "backup copies the sqlite backend's data directory; with TIMMYBOT_BACKEND="
            f"{settings.backend}, back up the stores with their own tools"
        )
    source = data_dir.database_path(settings)
    if not source.is_file() or source.stat().st_size == 0:
        raise OperationFailed(f"there is no database to back up at {source}")
    if destination.exists():
        raise UsageProblem(f"{destination} exists: a backup goes to a new directory")
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Written under another name and renamed when whole: a half copy (the
    # database without its keys, say) must never sit where a backup is expected.
    partial = destination.with_name(f".{destination.name}.partial-{secrets.token_hex(4)}")
    partial.mkdir(mode=0o700)
    try:
        os.chmod(partial, 0o700)
        pages = _copy_database(source, partial / data_dir.DATABASE_FILE)
        keys = partial / "keys"
        keys.mkdir(mode=0o700)
        os.chmod(keys, 0o700)
        copied = [data_dir.DATABASE_FILE]
        for path in _key_files(settings.data_dir / "keys"):
            target = keys / path.name
            shutil.copyfile(path, target)
            os.chmod(target, stat.S_IMODE(path.stat().st_mode))
            copied.append(f"keys/{path.name}")
        # Fails if DEST appeared meanwhile with anything in it: never overwritten.
        os.rename(partial, destination)
    except (OSError, sqlite3.Error) as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise OperationFailed(
            f"the backup failed ({type(error).__name__}); nothing was kept"
        ) from None
    except BaseException:
        # Ctrl-C: the half copy goes too.
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupResult(destination=destination, database_pages=pages, files=tuple(copied))


async def backup(ctx: Context) -> int:
    """``backup DEST``: write the copy; print what went where."""
    result = make_backup(ctx.settings, Path(ctx.args.destination))
    if ctx.out.json:
        ctx.out.data({**attrs.asdict(result), "destination": str(result.destination)})
    else:
        ctx.out.line(f"Backup written to {result.destination} ({result.database_pages} pages):")
        for name in result.files:
            ctx.out.line(f"  {name}")
        ctx.out.line(
            "It holds the keys that decrypt the tokens: keep it private. Check it with "
            f"TIMMYBOT_DATA_DIR={result.destination} timmybot-admin doctor"
        )
    return EXIT_OK
