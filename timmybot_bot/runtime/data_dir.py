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
* a vault or pseudonym key file holding another key than the one the
  identity file records is refused (another directory's key reads fine, but
  would leave every vault record unreadable or change every pseudonym);
  ``vault rekey`` records the key it promotes (:func:`record_vault_key`);
* the database, the key ring and the directories must not be writable by
  anyone but the owner (the key files and the key directory not even
  readable), as a stranger could otherwise swap what verification trusts;
  and each must be owned by the user running the process (or by root):
  whoever owns a file may change its mode, and then the file, at any time.

Each refusal is one :class:`~timmybot_bot.settings.ConfigurationError`
naming the file and pointing to the recovery section of docs/operations.md.

A start interrupted before the identity file was written is finished by the
next start, as long as the database holds no data yet. A data directory of
an earlier release (data, keys, no identity) is adopted: given an ID, once
every key file it needs is there. An identity file of an earlier release
(an ID, no key IDs) is given the key IDs of the files there on the next
start.

Bot processes hold a shared lock on ``run.lock`` for their lifetime (the
kernel drops it when a process dies, SIGKILL included), so ``vault rekey``
and ``doctor`` can tell whether a bot is running; a ``vault rekey`` holds
``.rekey.lock`` while it runs, so two never change the keys at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import stat
import uuid
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
    key_id_for,
    load_or_create_key,
    not_written,
    write_private_file,
)
from timmybot_bot.runtime.locks import RUN_LOCK, keys_lock, locked, rekey_lock, run_lock
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
    "keys_lock",
    "mode_problems",
    "prepare",
    "read_identity_file",
    "record_vault_key",
    "recorded_vault_rekey",
    "rekey_lock",
    "required_key_files",
    "run_lock",
    "unreadable_database",
]

DATABASE_FILE = "timmybot.db"


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
    """A path, the permission bits it must not have, and who may own it."""

    path: Path
    forbidden: int
    what: str
    fix: int

    def problem(self) -> str | None:
        """Return the problem as one line, or ``None`` if the path is absent or fine."""
        try:
            status = self.path.stat()
        except (FileNotFoundError, NotADirectoryError):
            # Absent, or under something that is not a directory (a ``keys``
            # file): that something is checked, and reported, on its own.
            return None
        mode = stat.S_IMODE(status.st_mode)
        user = os.geteuid()
        # Owned by this user, or by root (who can change any file anyway,
        # so trusting it adds nobody). Anyone else who owns it can chmod it
        # and rewrite it whenever they like, whatever its mode says now; and
        # root running on another user's files would trust that user.
        if status.st_uid not in (user, 0):
            return (
                f"{self.what} {self.path} is owned by another user (uid {status.st_uid}), "
                f"not by the user running this (uid {user}); run this as its owner, "
                f"or: chown {user} {self.path}"
            )
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


#: The identity file's field for the key IDs of the key files, by file name.
_KEYS_FIELD = "keys"
#: The vault key ID a ``vault rekey`` is moving to (staged, or promoted just now).
_REKEY_FIELD = "vault_rekey_to"


def _read_identity_document(path: Path) -> dict[str, object] | None:
    """Return the identity file's document, ``None`` if there is none; refuse a damaged one."""
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
        document["id"] = str(uuid.UUID(str(document["id"])))
        keys = document.get(_KEYS_FIELD, {})
        rekey_to = document.get(_REKEY_FIELD)
        if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
            raise TypeError(_KEYS_FIELD)
        if rekey_to is not None and not isinstance(rekey_to, str):
            raise TypeError(_REKEY_FIELD)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigurationError(
            f"identity file {path} is damaged; restore it from a backup: {RECOVERY}"
        ) from None
    return dict(document)


def read_identity_file(path: Path) -> str | None:
    """Return the ID in the identity file, ``None`` if there is none; refuse a damaged one."""
    document = _read_identity_document(path)
    return None if document is None else str(document["id"])


def _recorded_keys(document: dict[str, object]) -> dict[str, str]:
    keys = document.get(_KEYS_FIELD, {})
    if not isinstance(keys, dict):
        return {}
    return {str(name): str(key_id) for name, key_id in keys.items()}


def _write_identity_file(
    path: Path,
    identity: str,
    keys: dict[str, str],
    *,
    created: str | None = None,
    rekey_to: str | None = None,
) -> None:
    document: dict[str, object] = {
        "v": 1,
        "id": identity,
        "created": created or datetime.now(UTC).isoformat(),
        _KEYS_FIELD: keys,
    }
    if rekey_to is not None:
        document[_REKEY_FIELD] = rekey_to
    write_private_file(path, json.dumps(document))


def _key_ids(settings: Settings) -> dict[str, str]:
    """Return the key files the identity binds, by name, with the ID of the key in each.

    Only keys kept in files: a key given in its environment variable is the
    operator's to keep (and to change), and has no file to swap.
    """
    keys = settings.data_dir / "keys"
    files = {"pseudonym.key": (settings.pseudonym_key is None, "pseudonym", "p")}
    files["vault.key"] = (
        settings.backend == "sqlite" and settings.vault_key is None,
        "vault",
        "v",
    )
    return {
        name: key_id_for(load_or_create_key(keys / name, purpose=purpose), prefix)
        for name, (from_file, purpose, prefix) in files.items()
        if from_file and (keys / name).exists()
    }


@attrs.frozen(kw_only=True)
class _Assessment:
    identity: str | None
    """The directory's ID if it has one (in the identity file or the database)."""
    initialized: bool
    """The identity file exists and everything matches: nothing to create."""
    key_ids: dict[str, str] | None = None
    """The key IDs to record in the identity file, if it lacks them (or holds a rekey's)."""


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
        if refusal := unreadable_database(path, error, "this data directory"):
            raise refusal from None
        return None


def unreadable_database(
    path: Path, error: sqlite3.DatabaseError, unchecked: str
) -> ConfigurationError | None:
    """Return the refusal for a database ``error``; ``None`` if the file is no database at all.

    Not a database, or a damaged one: opening the stores reports it (``None``).
    Anything else (busy, an I/O error) means ``unchecked`` cannot be checked
    just now, which is no reason to go on as if it had been.
    """
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return None
    name = getattr(error, "sqlite_errorname", None) or type(error).__name__
    return ConfigurationError(
        f"database {path} cannot be read ({name}), so {unchecked} cannot be "
        "checked; try again, or see what holds it (timmybot-admin doctor)"
    )


def _assess(settings: Settings) -> _Assessment:
    """Decide whether the directory is new, half set up, or used; refuse what does not match."""
    if problems := mode_problems(settings):
        raise ConfigurationError(problems[0])
    id_path = identity_path(settings)
    document = _read_identity_document(id_path)
    identity = None if document is None else str(document["id"])
    missing = [path for path in required_key_files(settings) if not path.exists()]
    sqlite = settings.backend == "sqlite"
    shape = _database_shape(settings) if sqlite else None
    empty = shape is not None and shape.exists and shape.size == 0
    db = database_path(settings)
    if document is not None:
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
        return _Assessment(
            identity=identity, initialized=True, key_ids=_check_key_ids(settings, document)
        )
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


def _check_key_ids(settings: Settings, document: dict[str, object]) -> dict[str, str] | None:
    """Refuse a key file holding another key than the identity records; say what to record.

    Returns the key IDs to write into the identity file: an identity file of
    an earlier release records none (they are added), and a ``vault rekey``
    that promoted its key but stopped before recording it left the key it
    was moving to (now current: recorded as such). ``None``: nothing to write.
    """
    id_path = identity_path(settings)
    recorded = _recorded_keys(document)
    rekey_to = document.get(_REKEY_FIELD)
    current = _key_ids(settings)
    for name, key_id in current.items():
        expected = recorded.get(name)
        if expected is None or expected == key_id:
            continue
        if name == "vault.key" and key_id == rekey_to:
            continue  # promoted by a rekey that stopped before recording it
        raise ConfigurationError(
            f"key file {settings.data_dir / 'keys' / name} holds key {key_id}, but this data "
            f"directory's is {expected} ({id_path}): it is another directory's key or was "
            f"replaced; restore the matching one: {RECOVERY}"
        )
    if all(recorded.get(name) == key_id for name, key_id in current.items()):
        return None
    return {**recorded, **current}


def check(settings: Settings) -> None:
    """Refuse a used directory whose parts do not match; create nothing (``--check-config``)."""
    if settings.backend == "memory":
        return
    _assess(settings)


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
    with keys_lock(settings):
        assessment = _assess(settings)
        if assessment.initialized:
            if assessment.identity is not None and assessment.key_ids is not None:
                # A rekey still under way keeps its target; a promoted one is done.
                rekey_to = recorded_vault_rekey(settings)
                if rekey_to == assessment.key_ids.get("vault.key"):
                    rekey_to = None
                _update_identity_file(settings, assessment.key_ids, rekey_to=rekey_to)
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
            _write_identity_file(identity_path(settings), identity, _key_ids(settings))
        except OSError as error:
            raise not_written("identity file", identity_path(settings), error) from None
        return identity


def _update_identity_file(
    settings: Settings, keys: dict[str, str], *, rekey_to: str | None = None
) -> None:
    """Rewrite the identity file with ``keys`` (and ``rekey_to``), keeping its ID; atomic."""
    path = identity_path(settings)
    document = _read_identity_document(path)
    if document is None:
        return
    created = document.get("created")
    try:
        _write_identity_file(
            path,
            str(document["id"]),
            keys,
            created=created if isinstance(created, str) else None,
            rekey_to=rekey_to,
        )
    except OSError as error:
        raise not_written("identity file", path, error) from None


def record_vault_key(settings: Settings, key_id: str, *, rekey_to: str | None = None) -> None:
    """Record ``key_id`` as the vault key in the identity file (``vault rekey``).

    ``rekey_to`` is the key a rekey is moving to, recorded before it is
    promoted: a crash after the promotion but before the new key is recorded
    leaves a ``vault.key`` the next start accepts (and records). Nothing is
    recorded for a key given in ``TIMMYBOT_VAULT_KEY``, or before the
    directory has an identity (its first start records the key file's).
    """
    if settings.backend != "sqlite" or settings.vault_key is not None:
        return
    with keys_lock(settings):
        document = _read_identity_document(identity_path(settings))
        if document is None:
            return
        keys = {**_recorded_keys(document), "vault.key": key_id}
        _update_identity_file(settings, keys, rekey_to=rekey_to)


def recorded_vault_rekey(settings: Settings) -> str | None:
    """Return the vault key ID a rekey recorded it is moving to, if any."""
    document = _read_identity_document(identity_path(settings))
    rekey_to = None if document is None else document.get(_REKEY_FIELD)
    return rekey_to if isinstance(rekey_to, str) else None


# -- the running-process lock ----------------------------------------------------------


def bot_running(settings: Settings) -> bool:
    """Tell whether a live bot process holds the run lock of ``settings``' data directory."""
    path = settings.data_dir / RUN_LOCK
    if not path.exists():
        return False
    try:
        # Taken only if no bot shares it; closing the file gives it back.
        # Read-only: probing needs no write access to the lock file.
        with locked(path, fcntl.LOCK_EX | fcntl.LOCK_NB, os.O_RDONLY):
            return False
    except BlockingIOError:
        return True
