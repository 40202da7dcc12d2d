"""Moving the SQLite token vault to a new key: what ``timmybot-admin vault rekey`` does.

Key files, all in ``<data_dir>/keys/`` with mode 0600:

* ``vault.key``: the current key, the one every bot process loads;
* ``vault.next.key``: the new key, *staged* before the first record is
  re-encrypted under it, so that a crash at any moment leaves every record
  under a key that exists in a file;
* ``vault.retired-<key id>.key``: earlier keys, kept after a rekey because
  backups of ``timmybot.db`` made before it are encrypted with them.

A rekey (:func:`rekey_vault`) stages the new key, re-encrypts every token
record (:meth:`SqliteTokenVault.rekey`, batch by batch, resumable) and every
encrypted preference, and only then *promotes* the new key: the old key is
copied to its retired file and ``vault.next.key`` replaces ``vault.key``.
Until the promotion the old key stays in ``vault.key``; interrupted, the next
``vault rekey`` finds the staged key and finishes the job.

When the current key comes from ``TIMMYBOT_VAULT_KEY`` instead of the file,
keys are the operator's to keep: nothing is staged or promoted, the new key
must come from a file or an environment variable (and be kept there), and
the operator then sets ``TIMMYBOT_VAULT_KEY`` to it.

Nothing here prints, logs or raises a key; messages name key IDs and files.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import attrs

from timmybot_adapters.sqlite import (
    SqliteDatabase,
    SqliteTokenVault,
    SqliteUserDataStore,
    VaultKeys,
)
from timmybot_adapters.sqlite.crypto import KEY_BYTES, safe_key_id, valid_key_id
from timmybot_bot.runtime import data_dir
from timmybot_bot.runtime.keys import (
    RECOVERY,
    key_document,
    key_id_for,
    load_or_create_key,
    parse_key,
    write_private_file,
)
from timmybot_bot.runtime.settings import ConfigurationError, Settings
from timmybot_core.domain.errors import StoreUnavailable, VaultIntegrityError

__all__ = [
    "CURRENT_FILE",
    "STAGED_FILE",
    "NewKeySource",
    "RekeyError",
    "RekeyOutcome",
    "RekeyPlan",
    "RekeyUsageError",
    "check_record_keys",
    "current_vault_key",
    "plan_rekey",
    "refuse_while_running",
    "rekey_vault",
    "retired_file",
    "running_vault_keys",
]

CURRENT_FILE: Final = "vault.key"
STAGED_FILE: Final = "vault.next.key"
_RETIRED_PREFIX: Final = "vault.retired-"
_ENV_KEY: Final = "TIMMYBOT_VAULT_KEY"

Report = Callable[[str, int, int], None]
"""``report(phase, done, total)``: progress of a phase (``records``, ``preferences``)."""


class RekeyUsageError(Exception):
    """The operator asked for a rekey that cannot be done as asked; nothing changed."""


class RekeyError(Exception):
    """A rekey could not finish; the message says what is done and what to do next."""


@attrs.frozen(kw_only=True)
class NewKeySource:
    """Where the new key comes from: a file, an environment variable, or generated.

    With ``generate`` and a ``file``, the generated key is written to that
    file (which must not exist); with ``generate`` alone, it is written to
    the staged key file only. Never a command-line value: that would leak
    through the process list and the shell history.
    """

    file: Path | None = None
    env: str | None = None
    generate: bool = False

    @property
    def given(self) -> bool:
        """Whether the operator named a new key at all."""
        return self.file is not None or self.env is not None or self.generate


@attrs.frozen(kw_only=True)
class RekeyPlan:
    """The keys a rekey works with, resolved and checked, before anything changes.

    Attributes:
        old_key_id, old_key: the key the vault is under now.
        new_key_id, new_key: the key to move every record to; the same as the
            old key for a *sweep* (records under retired keys only).
        retired: retired keys by ID, to read what is still under them.
        env_managed: the current key comes from ``TIMMYBOT_VAULT_KEY``.
        staged: the new key is already in ``vault.next.key`` (an earlier,
            interrupted run).
        write_to: where a generated key is to be written besides the staged file.

    """

    old_key_id: str
    old_key: bytes = attrs.field(repr=False)
    new_key_id: str
    new_key: bytes = attrs.field(repr=False)
    #: Shown by key ID only, like the keys above: a repr never holds a key.
    retired: Mapping[str, bytes] = attrs.field(factory=dict, repr=lambda keys: repr(sorted(keys)))
    env_managed: bool = False
    staged: bool = False
    write_to: Path | None = None

    @property
    def sweep(self) -> bool:
        """Whether this only moves records off retired keys to the current key."""
        return self.new_key_id == self.old_key_id

    def old_keys(self) -> VaultKeys:
        """Return the keys the vault uses today."""
        return VaultKeys.single(self.old_key_id, self.old_key)

    def target_keys(self) -> VaultKeys:
        """Return the new key as current, with the retired keys to read what is under them."""
        return VaultKeys(
            current=self.new_key_id, keys={**self.retired, self.new_key_id: self.new_key}
        )

    def every_key(self) -> VaultKeys:
        """Return the old, retired and new keys, encrypting with the new one."""
        return self.old_keys().merged_with(self.target_keys())


@attrs.frozen(kw_only=True)
class RekeyOutcome:
    """What a rekey did.

    ``records`` and ``preferences`` count what was re-encrypted; ``total`` is
    how many token records the vault holds. ``damaged`` lists the users
    whose record or preference failed its integrity check: they were left
    as they were, and the new key was not promoted.
    """

    old_key_id: str
    new_key_id: str
    total: int
    records: int
    preferences: int
    promoted: bool
    env_managed: bool
    retired_file: Path | None = None
    damaged: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every record and preference is under the new key."""
        return not self.damaged

    def as_dict(self) -> dict[str, object]:
        """Return the outcome as JSON data (key IDs only, never a key)."""
        return {
            "ok": self.ok,
            "old_key_id": self.old_key_id,
            "new_key_id": self.new_key_id,
            "token_records": self.total,
            "reencrypted_records": self.records,
            "reencrypted_preferences": self.preferences,
            "promoted": self.promoted,
            "key_managed_by": "environment" if self.env_managed else "key file",
            "retired_key_file": str(self.retired_file) if self.retired_file else None,
            "damaged_users": [str(user) for user in self.damaged],
        }


def _keys_dir(settings: Settings) -> Path:
    return settings.data_dir / "keys"


def retired_file(settings: Settings, key_id: str) -> Path:
    """Return the file a retired key with ``key_id`` is kept in."""
    return _keys_dir(settings) / f"{_RETIRED_PREFIX}{key_id}.key"


def _retired_keys(settings: Settings) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for path in sorted(_keys_dir(settings).glob(f"{_RETIRED_PREFIX}*.key")):
        key = _load(path)
        keys[key_id_for(key, "v")] = key
    return keys


def current_vault_key(settings: Settings) -> bytes | None:
    """Return the vault key in use (``TIMMYBOT_VAULT_KEY`` or ``vault.key``); create none.

    ``None`` when the key comes from the file and there is no file yet.
    """
    if settings.vault_key is not None:
        return parse_key(_ENV_KEY, settings.vault_key, exact=KEY_BYTES)
    path = _keys_dir(settings) / CURRENT_FILE
    return load_or_create_key(path, purpose="vault") if path.exists() else None


def running_vault_keys(settings: Settings, current: bytes) -> VaultKeys:
    """Return the keys a running bot uses: ``current`` plus the retired and staged keys.

    Records still under a retired key stay readable. While a rekey is
    staged (``vault.next.key`` exists), new records are encrypted with the
    staged key, so processes restarted during a rekey neither write records
    the rekey must redo nor fail on records it already moved: a rekey no
    longer needs every process stopped, only restarted once it is staged.
    """
    current_id = key_id_for(current, "v")
    keys = VaultKeys(current=current_id, keys={**_retired_keys(settings), current_id: current})
    staged = _keys_dir(settings) / STAGED_FILE
    if staged.exists():
        key = _load(staged)
        keys = keys.with_new_current(key_id_for(key, "v"), key)
    return keys


def _key_ids_in_use(path: Path) -> set[str]:
    """Return the key IDs the vault records and encrypted preferences in ``path`` are under.

    ``vault_records`` has an index on ``key_id``; ``user_preferences`` is
    read whole (one small row per user). A file that is not a database (or
    a damaged one) gives none: opening the stores reports it.
    """
    if not path.exists() or path.stat().st_size == 0:
        return set()
    queries = {
        "vault_records": "SELECT DISTINCT key_id FROM vault_records",
        "user_preferences": "SELECT DISTINCT key_id FROM user_preferences WHERE key_id IS NOT NULL",
    }
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as connection:
            tables = {
                str(row[0])
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            return {
                str(row[0])
                for table, query in queries.items()
                if table in tables
                for row in connection.execute(query)
            }
    except sqlite3.DatabaseError as error:
        if refusal := data_dir.unreadable_database(path, error, "the vault's keys"):
            raise refusal from None
        return set()


def check_record_keys(settings: Settings) -> None:
    """Refuse a vault whose records are under a key no key file (or variable) holds.

    A lost ``vault.next.key`` or ``vault.retired-<id>.key`` orphans every
    record still under it, and nothing else would notice before a user's
    command failed on one; the refusal names the key ID and the file to
    restore (the staged file if the identity records a rekey to that key).

    Raises:
        ConfigurationError: records are under a key that is not loaded.

    """
    if settings.backend != "sqlite":
        return
    current = current_vault_key(settings)
    if current is None:
        return  # no vault key yet: a first start (or its loss is refused already)
    db = data_dir.database_path(settings)
    loaded = running_vault_keys(settings, current).keys
    unknown = sorted(_key_ids_in_use(db) - set(loaded))
    if not unknown:
        return
    key_id = unknown[0]
    try:
        valid_key_id(key_id)
    except ValueError:
        # Data, not a key ID we wrote: name no file after it.
        where = "the key file that held it"
    else:
        staged = key_id == data_dir.recorded_vault_rekey(settings)
        where = str(_keys_dir(settings) / STAGED_FILE if staged else retired_file(settings, key_id))
    more = f" (and {len(unknown) - 1} more key(s))" if len(unknown) > 1 else ""
    raise ConfigurationError(
        f"vault records in {db} are under key {safe_key_id(key_id)}{more}, which no key file "
        f"holds: restore {where} from a backup (a record under a lost key cannot be read): "
        f"{RECOVERY}"
    )


def _read_key_file(path: Path) -> bytes:
    """Read a new key from ``path``: a key file of ours (JSON) or hex/base64 text."""
    where = f"--new-key-file {path}"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise RekeyUsageError(
            f"{where} does not exist (add --generate to create a new key in it)"
        ) from None
    except OSError as error:
        raise RekeyUsageError(f"{where} cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        raise RekeyUsageError(f"{where} is not a regular file")
    if stat.S_IMODE(mode) & 0o077:
        raise RekeyUsageError(
            f"{where} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise RekeyUsageError(f"{where} cannot be read ({type(error).__name__})") from None
    if text.startswith("{"):
        try:
            key = bytes.fromhex(json.loads(text)["key"])
        except (ValueError, KeyError, TypeError):
            raise RekeyUsageError(f"{where} is not a key file (no hex 'key' field)") from None
    else:
        try:
            key = parse_key(where, text, exact=KEY_BYTES)
        except ConfigurationError as error:
            raise RekeyUsageError(str(error)) from None
    if len(key) != KEY_BYTES:
        raise RekeyUsageError(f"{where} must hold exactly {KEY_BYTES} bytes of key")
    return key


def _new_key(source: NewKeySource, environ: Mapping[str, str]) -> bytes:
    if source.env is not None:
        if source.env == _ENV_KEY:
            raise RekeyUsageError(
                f"--new-key-env names {_ENV_KEY}, which holds the current key; "
                "put the new key in another variable"
            )
        raw = environ.get(source.env)
        if raw is None:
            raise RekeyUsageError(
                f"--new-key-env: the environment variable {source.env} is not set"
            )
        try:
            return parse_key(source.env, raw, exact=KEY_BYTES)
        except ConfigurationError as error:
            raise RekeyUsageError(str(error)) from None
    if source.generate:
        if source.file is not None and (source.file.exists() or source.file.is_symlink()):
            raise RekeyUsageError(
                f"--new-key-file {source.file} exists; --generate writes a new file only"
            )
        return secrets.token_bytes(KEY_BYTES)
    if source.file is not None:
        return _read_key_file(source.file)
    raise RekeyUsageError("no new key given")  # pragma: no cover - callers check source.given


def refuse_while_running(settings: Settings, *, force: bool = False) -> None:
    """Refuse a rekey while a live bot process uses the data directory, unless ``force``.

    A bot holds the run lock while it runs, and a job's lease while it runs
    the job; a process that keeps its old key in memory would go on writing
    records the rekey has to redo (see docs/operations.md).

    Raises:
        RekeyUsageError: a live process was found and ``force`` is false.

    """
    from timmybot_bot.runtime.liveness import live_process

    if force:
        return
    reason = live_process(settings)
    if reason is not None:
        raise RekeyUsageError(
            f"a bot process is running on {settings.data_dir} ({reason}): stop every bot "
            "process first, or add --force if you know it is safe"
        )


def plan_rekey(settings: Settings, source: NewKeySource, environ: Mapping[str, str]) -> RekeyPlan:
    """Resolve the old, new and retired keys for a rekey; change nothing.

    Without a new key (``source.given`` false), a staged key from an
    interrupted run is resumed, or else records left under retired keys are
    moved to the current key (a sweep).

    Raises:
        RekeyUsageError: the keys given cannot be used (the message says why).
        ConfigurationError: a key file of the data directory is unreadable.

    """
    if source.env is not None and (source.file is not None or source.generate):
        # The CLI refuses --generate with it; a file would be silently ignored.
        other = "--new-key-file" if source.file is not None else "--generate"
        raise RekeyUsageError(
            f"--new-key-env and {other} both name the new key; give only one of them"
        )
    if settings.backend != "sqlite":
        raise RekeyUsageError(f"vault rekey works on the sqlite backend, not {settings.backend}")
    env_managed = settings.vault_key is not None
    every_retired = _retired_keys(settings)
    old = current_vault_key(settings)
    if old is None:
        current = _keys_dir(settings) / CURRENT_FILE
        raise RekeyError(f"there is no vault key yet ({current}): nothing to rekey")
    old_id = key_id_for(old, "v")
    # The current key may also sit in a retired file (a key brought back): it is not retired.
    retired = {kid: key for kid, key in every_retired.items() if kid != old_id}
    staged_path = _keys_dir(settings) / STAGED_FILE
    staged = None if env_managed or not staged_path.exists() else _load(staged_path)
    if staged is not None:
        staged_id = key_id_for(staged, "v")
        if source.generate or (
            source.given and not hmac.compare_digest(_new_key(source, environ), staged)
        ):
            raise RekeyUsageError(
                f"a rekey to key {staged_id} is staged in {staged_path} (an earlier run did not "
                "finish); finish it first: timmybot-admin vault rekey (without a new key)"
            )
        new, is_staged = staged, True
    elif source.given:
        if env_managed and source.generate and source.file is None:
            raise RekeyUsageError(
                f"{_ENV_KEY} is set, so the vault key is kept outside the data directory: "
                "give the new key with --new-key-env or --new-key-file (or --generate "
                "--new-key-file PATH to write a new one there)"
            )
        new, is_staged = _new_key(source, environ), False
        if hmac.compare_digest(new, old):
            raise RekeyUsageError(f"the new key is the key in use ({old_id})")
    else:
        if not retired:
            raise RekeyUsageError(
                "no new key given and nothing to finish: give the new key with "
                "--new-key-file PATH, --new-key-env NAME or --generate"
            )
        new, is_staged = old, False
    return RekeyPlan(
        old_key_id=old_id,
        old_key=old,
        new_key_id=key_id_for(new, "v"),
        new_key=new,
        retired=retired,
        env_managed=env_managed,
        staged=is_staged,
        write_to=source.file if source.generate and not is_staged else None,
    )


def _load(path: Path) -> bytes:
    key = load_or_create_key(path, purpose="vault")
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"key file {path} does not hold a {KEY_BYTES}-byte vault key")
    return key


def _write_key(path: Path, key: bytes, *, replace: bool) -> None:
    """Write the key file for ``key`` (mode 0600) atomically; exclusive unless ``replace``."""
    # Linked when exclusive: link() refuses an existing name, so a key is never overwritten.
    write_private_file(path, key_document(key, purpose="vault"), replace=replace)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    # A rename is durable once the directory is; not every platform allows it.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _stage(settings: Settings, plan: RekeyPlan) -> None:
    """Put the new key where it survives a crash, before any record is under it."""
    if plan.write_to is not None:
        try:
            _write_key(plan.write_to, plan.new_key, replace=False)
        except FileExistsError:
            raise RekeyUsageError(f"--new-key-file {plan.write_to} exists") from None
        except OSError as error:
            raise RekeyError(
                f"could not write the new key to {plan.write_to} ({error.strerror}); "
                "nothing was re-encrypted"
            ) from None
    if plan.env_managed or plan.staged or plan.sweep:
        return
    try:
        _write_key(_keys_dir(settings) / STAGED_FILE, plan.new_key, replace=False)
    except OSError as error:
        raise RekeyError(
            f"could not stage the new key in {_keys_dir(settings) / STAGED_FILE} "
            f"({error.strerror}); nothing was re-encrypted"
        ) from None
    # So that a start can name the staged file if records under it lose it.
    data_dir.record_vault_key(settings, plan.old_key_id, rekey_to=plan.new_key_id)


def _promote(settings: Settings, plan: RekeyPlan) -> Path:
    """Retire the old key and make the staged key current; return the retired file."""
    keys = _keys_dir(settings)
    retired = retired_file(settings, plan.old_key_id)
    # The identity file binds vault.key to its key ID: it learns the new key
    # before vault.key holds it (an interrupted stage from an earlier run
    # may not have told it), and records it as current once it does. A
    # crash in between leaves a vault.key the next start accepts.
    data_dir.record_vault_key(settings, plan.old_key_id, rekey_to=plan.new_key_id)
    # Old key kept first: a crash in between leaves both keys on disk and
    # vault.key still current, which the next run simply finishes.
    _write_key(retired, plan.old_key, replace=True)
    os.replace(keys / STAGED_FILE, keys / CURRENT_FILE)
    _sync_directory(keys)
    data_dir.record_vault_key(settings, plan.new_key_id)
    return retired


async def _rekey_preferences(
    db: SqliteDatabase, plan: RekeyPlan, report: Report
) -> tuple[int, set[int]]:
    """Re-encrypt every preference not under the new key; return the count and damaged users.

    Preferences are sealed with the vault's keys too (when the store
    encrypts), so the old key cannot go before they move. Rows stored in
    the clear (a store without keys) are left in the clear.
    """
    store = await SqliteUserDataStore.open(db, keys=plan.every_key())
    target = plan.new_key_id

    def pending(connection: sqlite3.Connection) -> list[tuple[str, str]]:
        rows = connection.execute(
            "SELECT user_id, key FROM user_preferences"
            " WHERE key_id IS NOT NULL AND key_id != ? ORDER BY user_id, key",
            (target,),
        ).fetchall()
        return [(str(user), str(key)) for user, key in rows]

    rows = await db.read(pending, operation="vault rekey: preferences")
    done = 0
    damaged: set[int] = set()
    report("preferences", 0, len(rows))
    for user, key in rows:
        user_id = int(user)
        try:
            preference = await store.get_preference(user_id, key)
        except StoreUnavailable:
            damaged.add(user_id)
            continue
        if preference is not None:
            await store.set_preference(user_id, key, preference.value, at=preference.updated_at)
            done += 1
        report("preferences", done, len(rows))
    return done, damaged


async def rekey_vault(
    settings: Settings, plan: RekeyPlan, *, batch: int = 100, report: Report | None = None
) -> RekeyOutcome:
    """Stage the new key, re-encrypt token records and preferences, then promote the key.

    Every bot process using the data directory must be stopped (see
    ``docs/operations.md``). Interrupted at any point, running the same plan
    again (or :func:`plan_rekey` without a new key) finishes the job.

    Holds the data directory's rekey lock throughout, and first checks that
    the keys on disk are still the plan's (see :func:`_check_plan_current`).

    Raises:
        RekeyUsageError: another rekey is running, or ran since the plan was
            made (nothing was changed).
        RekeyError: records are under key IDs that no known key has (nothing
            was changed), or the new key could not be written.
        StoreUnavailable: the database could not answer; committed batches
            stay done.

    """
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(data_dir.rekey_lock(settings))
        except BlockingIOError:
            raise RekeyUsageError(
                f"another vault rekey is running on {settings.data_dir}: let it finish, "
                "then run this command again if it did not"
            ) from None
        _check_plan_current(settings, plan)
        return await _rekey_locked(settings, plan, batch=batch, report=report)


def _check_plan_current(settings: Settings, plan: RekeyPlan) -> None:
    """Refuse a plan another rekey overtook: its old or staged key is no longer on disk.

    The plan was made before the confirmation, without the rekey lock;
    carried out after another rekey promoted a key, it would stage a key
    beside records it cannot read and record the old key as current in
    the identity file, which every later start then refuses.
    """
    current = current_vault_key(settings)
    staged_path = _keys_dir(settings) / STAGED_FILE
    staged = None if plan.env_managed or not staged_path.exists() else _load(staged_path)
    expected_staged = plan.new_key if plan.staged else None
    if (
        current is None
        or not hmac.compare_digest(current, plan.old_key)
        or (staged is None) != (expected_staged is None)
        or (
            staged is not None
            and expected_staged is not None
            and not hmac.compare_digest(staged, expected_staged)
        )
    ):
        raise RekeyUsageError(
            f"the vault keys in {_keys_dir(settings)} changed since this rekey was planned "
            "(another vault rekey ran meanwhile); nothing was changed: run the command again"
        )


async def _rekey_locked(
    settings: Settings, plan: RekeyPlan, *, batch: int, report: Report | None
) -> RekeyOutcome:
    tell: Report = report if report is not None else (lambda phase, done, total: None)
    _stage(settings, plan)
    async with SqliteDatabase(data_dir.database_path(settings)) as db:
        old_keys = plan.old_keys()
        vault = await SqliteTokenVault.open(db, old_keys)
        total = len([_ async for _ in vault.user_ids()])
        tell("records", 0, total)
        damaged: set[int] = set()
        moved = [0]

        def progress(done: int) -> None:
            moved[0] = done
            tell("records", done, total)

        try:
            moved[0] = await vault.rekey(plan.target_keys(), batch=batch, progress=progress)
        except VaultIntegrityError as error:
            if vault.keys is old_keys:
                # Refused before changing anything (the vault never switched to
                # the working keys): records under key IDs nobody has.
                raise RekeyError(str(error)) from None
            # The rest was re-encrypted; the damaged records stay as they were.
            damaged.update(await vault.find_damaged())
        preferences, damaged_preferences = await _rekey_preferences(db, plan, tell)
        damaged |= damaged_preferences
    retired: Path | None = None
    if not damaged and not plan.env_managed and not plan.sweep:
        retired = _promote(settings, plan)
    return RekeyOutcome(
        old_key_id=plan.old_key_id,
        new_key_id=plan.new_key_id,
        total=total,
        records=moved[0],
        preferences=preferences,
        promoted=retired is not None,
        env_managed=plan.env_managed,
        retired_file=retired,
        damaged=tuple(sorted(damaged)),
    )
