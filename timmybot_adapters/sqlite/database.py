"""One SQLite database file shared by several stores, safe across processes.

Every store of the embedded backend (access policy, incidents, and later the
token vault, audit log and user data) lives in the same file, each with its
own tables and its own schema version in ``schema_migrations``.

Concurrency model:

* All blocking sqlite calls run on one worker thread per
  :class:`SqliteDatabase`, never on the event loop; the thread owns the one
  connection, so calls from one process are serialized.
* Write transactions start with ``BEGIN IMMEDIATE``, which takes the
  database's write lock up front. A read-modify-write sequence inside
  :meth:`SqliteDatabase.write` is therefore atomic against every other
  connection, in this process or another one (the shards of the bot).
* WAL mode lets readers proceed while one process writes; ``busy_timeout``
  makes a writer wait for the lock instead of failing at once. Switching a
  new file to WAL needs a moment of exclusive access that SQLite's busy
  handler does not wait for, so that switch is retried (up to the busy
  timeout) when several processes open a fresh file at once.

The file also holds the data directory's identity (:func:`read_identity`,
:func:`write_identity`): one ID, written when the directory is first set
up, that the key directory holds too, so a database replaced or emptied
under existing keys is recognised (see ``timmybot_bot.runtime.data_dir``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import attrs

from timmybot_core.domain.clock import as_utc
from timmybot_core.domain.errors import StoreUnavailable

__all__ = [
    "DatabaseShape",
    "SchemaVersionError",
    "SqliteDatabase",
    "clamp_int64",
    "create_private_file",
    "datetime_to_micros",
    "inspect_database",
    "micros_to_datetime",
    "set_wal_mode",
    "split_statements",
    "write_identity",
]

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# SQLite INTEGER is a signed 64-bit value; bounds computed from a huge window
# are clamped to it rather than overflowing when bound.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_DIRECTORY_MODE = 0o700
_FILE_MODE = 0o600


class SchemaVersionError(StoreUnavailable):
    """The database holds a schema newer than this code knows.

    Raised instead of touching the data: an older release must not read or
    write tables whose meaning a newer release has changed.
    """


def datetime_to_micros(moment: datetime) -> int:
    """Return ``moment`` as integer microseconds since the Unix epoch (UTC).

    Exact (no float rounding), and ordered like the datetimes themselves, so
    SQL comparisons on the stored integers match Python's comparisons.

    Raises:
        ValueError: ``moment`` is naive; its instant would be a guess.

    """
    return (as_utc(moment, "timestamps") - _EPOCH) // _MICROSECOND


def micros_to_datetime(micros: int) -> datetime:
    """Return the aware UTC datetime ``micros`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def clamp_int64(value: int) -> int:
    """Clamp ``value`` into SQLite's INTEGER range (for computed bounds)."""
    return max(_INT64_MIN, min(_INT64_MAX, value))


def split_statements(script: str) -> list[str]:
    """Split a script into single SQL statements.

    ``sqlite3.Connection.execute`` runs one statement and ``executescript``
    commits the open transaction first, so a migration step is split here to
    run inside the migration's transaction. ``sqlite3.complete_statement``
    knows about string literals and trigger bodies, so a ``;`` inside them
    does not split.
    """
    statements: list[str] = []
    pending: list[str] = []
    for piece in script.split(";"):
        pending.append(piece)
        candidate = ";".join(pending) + ";"
        if sqlite3.complete_statement(candidate):
            if candidate.strip(" \t\r\n;"):
                statements.append(candidate.strip())
            pending = []
    rest = ";".join(pending).strip()
    if rest:
        # Incomplete: let sqlite report the syntax error when it runs.
        statements.append(rest)
    return statements


class SqliteDatabase:
    """One SQLite database file, shared by several stores and processes.

    The file is created on first use with mode ``0600`` (its directory, if
    missing, with ``0700``). Use it as an async context manager, or call
    :meth:`close` when done.

    Every :class:`sqlite3.Error` (and any :class:`OSError` while creating the
    file) surfaces as :class:`~timmybot_core.domain.errors.StoreUnavailable` whose
    message names the operation and the error class, never row data.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 10.0) -> None:
        """Prepare, without touching the file yet.

        Args:
            path: The database file.
            busy_timeout: Seconds a statement waits for another connection's
                lock before the operation fails with ``StoreUnavailable``.

        """
        if busy_timeout < 0:
            raise ValueError("busy_timeout must not be negative")
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="timmybot-sqlite")
        # Touched only from the worker thread.
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._migrated: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"SqliteDatabase(path={str(self._path)!r})"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def read(
        self, fn: Callable[[sqlite3.Connection], T], *, operation: str | None = None
    ) -> T:
        """Run ``fn(connection)`` in one read transaction and return its result.

        The statements of ``fn`` see one consistent snapshot. ``operation``
        names the call in error messages (default: ``fn``'s name).
        """
        return await self._submit(fn, write=False, operation=operation)

    async def write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        operation: str | None = None,
        durable: bool = False,
    ) -> T:
        """Run ``fn(connection)`` in one ``BEGIN IMMEDIATE`` transaction.

        The transaction commits if ``fn`` returns and rolls back if it raises
        (the exception propagates, sqlite errors as ``StoreUnavailable``).
        Holding the write lock from the start makes read-then-write logic in
        ``fn`` atomic across processes.

        Every commit survives a crash of the process. With ``durable`` it also
        survives a power cut or an OS crash: the commit waits for the
        write-ahead log to reach the disk (``synchronous = FULL``), and so does
        everything committed before it.
        """
        return await self._submit(fn, write=True, operation=operation, durable=durable)

    async def migrate(self, component: str, steps: Sequence[str]) -> int:
        """Bring ``component``'s tables to version ``len(steps)``; return it.

        ``steps[i]`` is the SQL (one or more statements) taking the component
        from version ``i`` to ``i + 1``. Missing steps run in one transaction,
        so a crash leaves the previous version intact, and concurrent
        processes migrating the same file apply each step once.

        Raises:
            SchemaVersionError: the file's version for ``component`` is newer
                than ``len(steps)``.
            StoreUnavailable: the database could not be migrated.

        """
        target = len(steps)
        scripts = [split_statements(step) for step in steps]

        def apply(connection: sqlite3.Connection) -> int:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT PRIMARY KEY,"
                " version INTEGER NOT NULL)"
            )
            row = connection.execute(
                "SELECT version FROM schema_migrations WHERE component = ?", (component,)
            ).fetchone()
            current = int(row[0]) if row is not None else 0
            if current > target:
                raise SchemaVersionError(
                    f"sqlite database: the schema of {component!r} is at version {current}, "
                    f"newer than this release knows ({target}); upgrade timmybot or use "
                    f"another database file"
                )
            for script in scripts[current:]:
                for statement in script:
                    connection.execute(statement)
            if current != target:
                connection.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (?, ?)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (component, target),
                )
            return target

        version = await self.write(apply, operation=f"migrate {component}")
        self._migrated[component] = version
        return version

    async def ensure_migrated(self, component: str, steps: Sequence[str]) -> None:
        """Run :meth:`migrate` unless this object already did for ``component``.

        Lets a store migrate lazily on its first call, so building the
        stores needs no I/O; every later call costs a dictionary lookup.
        """
        if self._migrated.get(component) != len(steps):
            await self.migrate(component, steps)

    async def schema_version(self, component: str) -> int:
        """Return ``component``'s schema version in the file (0 if none)."""

        def version(connection: sqlite3.Connection) -> int:
            exists = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if exists is None:
                return 0
            row = connection.execute(
                "SELECT version FROM schema_migrations WHERE component = ?", (component,)
            ).fetchone()
            return int(row[0]) if row is not None else 0

        return await self.read(version, operation=f"schema version of {component}")

    async def close(self) -> None:
        """Close the connection and stop the worker thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            # Queued behind every call already submitted, so those finish first.
            await loop.run_in_executor(self._executor, self._close_connection)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite database: close failed ({_describe(exc)})") from exc
        finally:
            # The queue is empty (new calls are refused), so this join is brief.
            self._executor.shutdown(wait=True)

    async def _submit(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        write: bool,
        operation: str | None,
        durable: bool = False,
    ) -> T:
        what = operation if operation is not None else getattr(fn, "__name__", "operation")
        if self._closed:
            raise StoreUnavailable(f"{what}: the sqlite database is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._run, fn, write, durable)
        except (sqlite3.Error, OSError) as exc:
            # The class and sqlite's error code tell an operator what broke
            # (BUSY, NOTADB, IOERR, ...); sqlite's own text is left out
            # because constraint messages can quote schema details.
            raise StoreUnavailable(f"{what} failed ({_describe(exc)})") from exc

    # Everything below runs on the worker thread.

    def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool, durable: bool) -> T:
        connection = self._connect()
        if durable:
            # In WAL mode, NORMAL (the connection's default, see _connect) may
            # lose the last commits to a power cut, never to a process crash.
            # The pragma cannot change inside a transaction: set it around one.
            connection.execute("PRAGMA synchronous = FULL")
        try:
            return self._transaction(connection, fn, write)
        finally:
            if durable and self._connection is connection:
                connection.execute("PRAGMA synchronous = NORMAL")

    def _transaction(
        self, connection: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], write: bool
    ) -> T:
        connection.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        try:
            result = fn(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    # The original error is the one worth reporting. A
                    # connection that cannot roll back may still hold a
                    # transaction, so it is dropped and the next call reopens.
                    self._connection = None
                    with contextlib.suppress(sqlite3.Error):
                        connection.close()
            raise
        return result

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        create_private_file(self._path)
        connection = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            # Autocommit at the driver level: transactions are begun and
            # ended explicitly, so the driver never opens one behind our back.
            isolation_level=None,
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            set_wal_mode(connection, wait=self._busy_timeout)
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            # Erasure must not leave deleted tokens or preferences in free
            # pages: the default varies between SQLite builds, so say it.
            connection.execute("PRAGMA secure_delete = ON")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _close_connection(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (its missing directory 0700) unless it exists."""
    directory = path.parent
    if not directory.is_dir():
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir(mode=_DIRECTORY_MODE)
        except FileExistsError:
            pass
        else:
            # The umask may have removed bits that mkdir's mode asked for.
            os.chmod(directory, _DIRECTORY_MODE)
    try:
        # Created here rather than by sqlite, so the file never exists
        # with the umask's wider permissions, not even for a moment.
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, _FILE_MODE)
    finally:
        os.close(descriptor)


def set_wal_mode(connection: sqlite3.Connection, *, wait: float) -> None:
    """Put ``connection``'s database in WAL mode, retrying a busy file for up to ``wait`` s.

    Raises ``sqlite3.OperationalError`` (BUSY) when the file stays locked,
    and :class:`StoreUnavailable` when the file system has no WAL.
    """
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
            break
        except sqlite3.OperationalError as error:
            # The switch takes the file exclusively for a moment and SQLite
            # does not call the busy handler for it: wait here instead.
            busy = getattr(error, "sqlite_errorname", "") in {"SQLITE_BUSY", "SQLITE_LOCKED"}
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
    if mode is None or str(mode[0]).lower() != "wal":
        # WAL is what lets shards read while one writes; a file system
        # without it (some network mounts) is refused rather than run with
        # other locking behaviour.
        raise StoreUnavailable("sqlite database: WAL journal mode is not available")


_IDENTITY_TABLE = (
    "CREATE TABLE IF NOT EXISTS data_identity ("
    " singleton INTEGER PRIMARY KEY CHECK (singleton = 1),"
    " id TEXT NOT NULL,"
    " created_at INTEGER NOT NULL)"
)


@attrs.frozen(kw_only=True)
class DatabaseShape:
    """What a database file holds, as far as the start-up checks need to know.

    Attributes:
        exists: the file is there.
        size: its size in bytes (0 for an emptied file).
        identity: the data directory's ID written in it, if any.
        has_data: any table but the bookkeeping ones holds a row.
    """

    exists: bool
    size: int = 0
    identity: str | None = None
    has_data: bool = False


_BOOKKEEPING = frozenset({"schema_migrations", "data_identity"})


def inspect_database(path: Path, *, wait: float = 10.0) -> DatabaseShape:
    """Read ``path``'s identity and whether it holds data, without creating anything.

    Raises ``sqlite3.DatabaseError`` for a file that is not a database.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return DatabaseShape(exists=False)
    if size == 0:
        return DatabaseShape(exists=True, size=0)
    # Read-write (not mode=ro): a WAL file left by a crash must be replayed
    # to read what was committed, which a read-only connection cannot do.
    connection = sqlite3.connect(path, timeout=wait, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        tables = [
            str(row[0])
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        identity: str | None = None
        if "data_identity" in tables:
            row = connection.execute("SELECT id FROM data_identity WHERE singleton = 1").fetchone()
            identity = str(row[0]) if row is not None else None
        has_data = any(
            connection.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone() is not None  # noqa: S608 - names from sqlite_master
            for name in tables
            if name not in _BOOKKEEPING
        )
    finally:
        connection.close()
    return DatabaseShape(exists=True, size=size, identity=identity, has_data=has_data)


def write_identity(path: Path, identity: str, *, wait: float = 10.0) -> str:
    """Write ``identity`` into ``path`` (0600, WAL) unless one is there; return the stored one."""
    create_private_file(path)
    connection = sqlite3.connect(path, timeout=wait, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        set_wal_mode(connection, wait=wait)
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(_IDENTITY_TABLE)
            connection.execute(
                "INSERT INTO data_identity (singleton, id, created_at) VALUES (1, ?, ?)"
                " ON CONFLICT (singleton) DO NOTHING",
                (identity, datetime_to_micros(datetime.now(UTC))),
            )
            row = connection.execute("SELECT id FROM data_identity WHERE singleton = 1").fetchone()
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    finally:
        connection.close()
    return str(row[0])


def _describe(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorname", None)
        return f"{name} {code}" if code else name
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{name} {errno.errorcode.get(exc.errno, exc.errno)}"
    return name
