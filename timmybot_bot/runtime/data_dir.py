"""The data directory knows it has been used: its identity, its modes, its locks.

On the first start of an empty directory everything is created in this
order: the database with the directory's ID in it, the key files, the
audit key ring, and last ``keys/data-identity.json`` holding the same ID.
The identity file is the commit point: once it exists, the directory has
been used, and on every later start

* a missing vault, pseudonym or audit signing key file, or a missing key
  ring, is refused (a new key would orphan what the old one protects);
* a database that is missing, empty (0 bytes) or carries another ID (or
  none) is refused (it was replaced, emptied or restored from elsewhere);
* the database, the key ring and the directories must not be writable by
  anyone but the owner (the key files and the key directory not even
  readable), as a stranger could otherwise swap what verification trusts.

Each refusal is one :class:`~timmybot_bot.settings.ConfigurationError`
naming the file and pointing to the recovery section of docs/operations.md.

A start interrupted before the identity file was written is finished by the
next start, as long as the database holds no data yet. A data directory of
an earlier release (data, keys, no identity) is adopted: given an ID, once
every key file it needs is there.

Bot processes hold a shared lock on ``run.lock`` for their lifetime (the
kernel drops it when a process dies, SIGKILL included), so ``vault rekey``
and ``doctor`` can tell whether a bot is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from timmybot_bot.runtime.audit_keys import (
    KEYRING_FILE,
    SIGNING_KEY_FILE,
    audit_keys,
    check_keyring,
)
from timmybot_bot.runtime.keys import (
    IDENTITY_FILE,
    RECOVERY,
    load_or_create_key,
    not_written,
    write_private_file,
)
from timmybot_bot.runtime.settings import ConfigurationError, Settings

if TYPE_CHECKING:
    from timmybot_adapters.sqlite.database import DatabaseShape

__all__ = [
    "DATABASE_FILE",
    "ModeRule",
    "bot_running",
    "check",
    "database_path",
    "identity_path",
    "mode_problems",
    "prepare",
    "read_identity_file",
    "required_key_files",
    "run_lock",
]

DATABASE_FILE = "timmybot.db"
_INIT_LOCK = ".init.lock"
_RUN_LOCK = "run.lock"


def database_path(settings: Settings) -> Path:
    """Return the sqlite backend's database file."""
    return settings.data_dir / DATABASE_FILE


def identity_path(settings: Settings) -> Path:
    """Return the identity file beside the keys."""
    return settings.data_dir / "keys" / IDENTITY_FILE


def required_key_files(settings: Settings) -> list[Path]:
    """Return the key files (and key ring) a used directory must have.

    A key given in the environment has no file; the ring always has one.
    """
    keys = settings.data_dir / "keys"
    files: list[Path] = []
    if settings.pseudonym_key is None:
        files.append(keys / "pseudonym.key")
    if settings.backend == "sqlite" and settings.vault_key is None:
        files.append(keys / "vault.key")
    if settings.audit_signing_key is None:
        files.append(keys / SIGNING_KEY_FILE)
    files.append(keys / KEYRING_FILE)
    return files


# -- modes ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ModeRule:
    """A path and the permission bits it must not have."""

    path: Path
    forbidden: int
    what: str
    fix: int

    def problem(self) -> str | None:
        """Return the problem as one line, or ``None`` if the path is absent or fine."""
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
        except (FileNotFoundError, NotADirectoryError):
            # Absent, or under something that is not a directory (a ``keys``
            # file): that something is checked, and reported, on its own.
            return None
        if not mode & self.forbidden:
            return None
        kind = "readable or writable" if self.forbidden & 0o044 else "writable"
        return (
            f"{self.what} {self.path} is {kind} by other users (mode {mode:04o}); "
            f"run: chmod {self.fix:o} {self.path}"
        )


def _mode_rules(settings: Settings) -> list[ModeRule]:
    data, keys = settings.data_dir, settings.data_dir / "keys"
    rules = [
        # An existing data directory may be readable (0755 is kept); nobody
        # else may put or replace files in it.
        ModeRule(path=data, forbidden=0o022, what="data directory", fix=0o700),
        ModeRule(path=keys, forbidden=0o077, what="key directory", fix=0o700),
        ModeRule(path=data / "spool", forbidden=0o022, what="spool directory", fix=0o700),
        ModeRule(path=keys / KEYRING_FILE, forbidden=0o022, what="audit key ring", fix=0o644),
    ]
    if settings.backend == "sqlite":
        db = database_path(settings)
        # Created 0600; a wider read mode is the operator's choice, but
        # nobody else may change what the bot reads back.
        rules.append(ModeRule(path=db, forbidden=0o022, what="database", fix=0o600))
        for suffix in ("-wal", "-shm"):
            side = db.with_name(db.name + suffix)
            rules.append(ModeRule(path=side, forbidden=0o022, what="database file", fix=0o600))
    for key_file in sorted(keys.glob("*.key")) if keys.is_dir() else []:
        rules.append(ModeRule(path=key_file, forbidden=0o077, what="key file", fix=0o600))
    return rules


def mode_problems(settings: Settings) -> list[str]:
    """Return one line per file or directory whose mode is too open (none: all fine)."""
    if settings.backend == "memory":
        return []
    return [problem for rule in _mode_rules(settings) if (problem := rule.problem()) is not None]


# -- identity ------------------------------------------------------------------------


def read_identity_file(path: Path) -> str | None:
    """Return the ID in the identity file, ``None`` if there is none; refuse a damaged one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigurationError(
            f"identity file {path} is unreadable ({type(error).__name__}): {RECOVERY}"
        ) from None
    try:
        document = json.loads(text)
        identity = str(uuid.UUID(str(document["id"])))
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(
            f"identity file {path} is damaged; restore it from a backup: {RECOVERY}"
        ) from None
    return identity


def _write_identity_file(path: Path, identity: str) -> None:
    document = {"v": 1, "id": identity, "created": datetime.now(UTC).isoformat()}
    write_private_file(path, json.dumps(document))


@attrs.frozen(kw_only=True)
class _Assessment:
    identity: str | None
    """The directory's ID if it has one (in the identity file or the database)."""
    initialized: bool
    """The identity file exists and everything matches: nothing to create."""


def _database_shape(settings: Settings) -> DatabaseShape | None:
    """Return what the database file holds; ``None`` if it is not a database at all.

    A database that cannot be read just now (busy, an I/O error) is refused:
    taking it for "not a database" would skip every identity check.
    """
    from timmybot_adapters.sqlite import database

    path = database_path(settings)
    try:
        return database.inspect_database(path)
    except sqlite3.DatabaseError as error:
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary result code
        if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            return None
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        raise ConfigurationError(
            f"database {path} cannot be read ({name}), so this data directory cannot be "
            "checked; try again, or see what holds it (timmybot-admin doctor)"
        ) from None


def _assess(settings: Settings) -> _Assessment:
    """Decide whether the directory is new, half set up, or used; refuse what does not match."""
    if problems := mode_problems(settings):
        raise ConfigurationError(problems[0])
    id_path = identity_path(settings)
    identity = read_identity_file(id_path)
    missing = [path for path in required_key_files(settings) if not path.exists()]
    sqlite = settings.backend == "sqlite"
    shape = _database_shape(settings) if sqlite else None
    empty = shape is not None and shape.exists and shape.size == 0
    db = database_path(settings)
    if identity is not None:
        if missing:
            raise ConfigurationError(
                f"{'audit key ring' if missing[0].name == KEYRING_FILE else 'key file'} "
                f"{missing[0]} is missing, but this data directory has been used ({id_path}); "
                f"restore it from a backup: {RECOVERY}"
            )
        if shape is not None:  # sqlite, and a readable database (or none)
            if not shape.exists or empty:
                state = "missing" if not shape.exists else "empty (0 bytes)"
                raise ConfigurationError(
                    f"database {db} is {state}, but the keys beside it belong to a used data "
                    f"directory ({id_path}); restore the database from a backup: {RECOVERY}"
                )
            if shape.identity != identity:
                other = "carries no identity" if shape.identity is None else "is another one's"
                raise ConfigurationError(
                    f"database {db} does not belong to this data directory ({other}; the keys "
                    f"say {identity}): it was replaced; restore the matching one: {RECOVERY}"
                )
        check_keyring(settings)
        return _Assessment(identity=identity, initialized=True)
    if not sqlite:
        return _Assessment(identity=None, initialized=False)
    if shape is None:
        # Not a database (or badly damaged): nothing is set up beside it;
        # opening the stores reports it, doctor says more.
        return _Assessment(identity=None, initialized=True)
    if shape.identity is not None or shape.has_data:
        # A first start interrupted after the database step, or a directory
        # from an earlier release: its keys must all be there if it holds data.
        if shape.has_data and missing:
            raise ConfigurationError(
                f"key file {missing[0]} is missing, but the database {db} holds data; restore "
                f"the key from a backup (a new key would orphan the data): {RECOVERY}"
            )
        return _Assessment(identity=shape.identity, initialized=False)
    present = [path for path in required_key_files(settings) if path.exists()]
    if present and empty:
        # A directory of an earlier release (no identity yet) whose database
        # was emptied. (One without a database file at all cannot be told
        # from keys made before a first database; it is set up anew.)
        raise ConfigurationError(
            f"database {db} is empty (0 bytes), but key files exist ({present[0]}): the data "
            f"they protected is gone; restore the database from a backup: {RECOVERY}"
        )
    return _Assessment(identity=None, initialized=False)


def check(settings: Settings) -> None:
    """Refuse a used directory whose parts do not match; create nothing (``--check-config``)."""
    if settings.backend == "memory":
        return
    _assess(settings)


@contextlib.contextmanager
def _locked(path: Path, operation: int, flags: int = os.O_RDWR | os.O_CREAT) -> Iterator[int]:
    try:
        descriptor = os.open(path, flags, 0o600)
    except OSError as error:
        # A lock that cannot be taken leaves unknown who else uses the
        # directory: refuse, naming the file, rather than go on unlocked.
        raise ConfigurationError(
            f"lock file {path} cannot be opened ({type(error).__name__}); it must be a file "
            f"this user can write: {RECOVERY}"
        ) from None
    try:
        fcntl.flock(descriptor, operation)
        yield descriptor
    finally:
        os.close(descriptor)


def prepare(settings: Settings) -> str | None:
    """Check the directory and, on its first start, create everything; return its ID.

    Several processes starting together serialize here (a lock file), so
    they all end up with one database, one set of keys and one ID.

    Raises:
        ConfigurationError: a refusal (see the module docstring).

    """
    if settings.backend == "memory":
        return None
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(settings.data_dir / _INIT_LOCK, fcntl.LOCK_EX):
        assessment = _assess(settings)
        if assessment.initialized:
            return assessment.identity
        identity = assessment.identity or str(uuid.uuid4())
        if settings.backend == "sqlite":
            from timmybot_adapters.sqlite.database import write_identity

            try:
                identity = write_identity(database_path(settings), identity)
            except sqlite3.Error as error:
                raise ConfigurationError(
                    f"database {database_path(settings)} cannot be set up "
                    f"({type(error).__name__}): {RECOVERY}"
                ) from None
        for path in required_key_files(settings):
            if path.suffix == ".key":  # each named for its purpose: vault.key, ...
                load_or_create_key(path, purpose=path.stem)
        audit_keys(settings)  # the key ring, which must know the signing key
        # Last: from now on the directory counts as used.
        try:
            _write_identity_file(identity_path(settings), identity)
        except OSError as error:
            raise not_written("identity file", identity_path(settings), error) from None
        return identity


# -- the running-process lock ----------------------------------------------------------


def run_lock(settings: Settings) -> contextlib.AbstractContextManager[int]:
    """Return the shared lock on ``run.lock`` a bot process holds while it runs.

    Any number of bot processes share it; leaving the context gives it back.
    """
    return _locked(settings.data_dir / _RUN_LOCK, fcntl.LOCK_SH)


def bot_running(settings: Settings) -> bool:
    """Tell whether a live bot process holds the run lock of ``settings``' data directory."""
    path = settings.data_dir / _RUN_LOCK
    if not path.exists():
        return False
    try:
        # Taken only if no bot shares it; closing the file gives it back.
        # Read-only: probing needs no write access to the lock file.
        with _locked(path, fcntl.LOCK_EX | fcntl.LOCK_NB, os.O_RDONLY):
            return False
    except BlockingIOError:
        return True
