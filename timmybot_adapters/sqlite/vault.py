"""TokenVault in SQLite: one AES-256-GCM encrypted record per user.

Open it with ``vault = await SqliteTokenVault.open(db, keys)``, which creates
or upgrades its tables at once, or build it with ``SqliteTokenVault(db,
keys)`` without I/O and let the first call migrate.

Storage (table ``vault_records``, one row per user):

* ``user_id``: the Discord snowflake as 20-digit zero-padded decimal text
  (snowflakes reach ``2**64 - 1``, beyond SQLite's signed INTEGER; the
  padding makes text order numeric order, so :meth:`SqliteTokenVault.user_ids`
  pages through users by ID);
* ``key_id``, ``nonce``, ``ciphertext``: the record's JSON form
  (:meth:`UserTokens.to_json`) sealed with AES-256-GCM under the key
  ``key_id``, with a fresh random 96-bit nonce per write, and associated data
  ``("timmybot/vault/v1", user ID, "record-version", version, key ID)``: a
  ciphertext copied to another user's row, relabelled with another key ID,
  or put back under another version (an older ciphertext restored into the
  row, which would serve a spent refresh token) fails to decrypt;
* ``aad``: the associated-data format, ``2`` for the above. Rows written
  before the version was bound (``1``: user and key ID only) are re-sealed
  in format 2, keeping their version, by the first process that opens the
  vault after the upgrade; from then on (``vault_aad.legacy_open = 0``) a
  format-1 row is refused, so it cannot be used to put an old ciphertext
  back either;
* ``version``: the compare-and-set version, drawn from one counter for the
  whole table, so a version is never reused, not even after a delete and a
  new link (a writer holding a version from before the delete conflicts);
* ``updated_at``: the record's ``updated_at`` in microseconds (metadata in
  the clear, for retention).

Failures: every SQLite error surfaces as
:class:`~timmybot_core.domain.errors.VaultUnavailable`; a record that fails
authentication, names a key ID that is not configured, or is malformed
raises :class:`~timmybot_core.domain.errors.VaultIntegrityError` (a subclass) and
is never returned. Messages and log lines name neither the user nor any
token. Plaintext is never cached: each call decrypts what it returns and
keeps nothing.

Key rotation: see :meth:`SqliteTokenVault.rekey`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Final, NamedTuple, TypeVar

from timmybot_adapters.sqlite.crypto import (
    AeadCipher,
    IntegrityFailure,
    Sealed,
    VaultKeys,
    safe_key_id,
)
from timmybot_adapters.sqlite.database import SqliteDatabase, datetime_to_micros
from timmybot_adapters.sqlite.store import SqliteStore
from timmybot_core.domain.errors import (
    StoreUnavailable,
    VaultIntegrityError,
    VaultUnavailable,
    VersionConflict,
)
from timmybot_core.domain.snowflake import check_snowflake
from timmybot_core.domain.tokens import UserTokens

__all__ = ["SqliteTokenVault"]

T = TypeVar("T")

COMPONENT: Final = "token_vault"
CONTEXT: Final = "timmybot/vault/v1"
PAGE: Final = 500
_WHAT: Final = "the token record of one user"

# Append only: a released step never changes, a new version is a new step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE vault_records (
        user_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        version INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX vault_records_by_key ON vault_records (key_id);
    CREATE TABLE vault_versions (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last INTEGER NOT NULL
    );
    INSERT INTO vault_versions (id, last) VALUES (1, 0);
    """,
    # The record version joins the associated data (format 2); rows of
    # format 1 are re-sealed by _upgrade_legacy, then refused.
    """
    ALTER TABLE vault_records ADD COLUMN aad INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE vault_aad (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        legacy_open INTEGER NOT NULL
    );
    INSERT INTO vault_aad (id, legacy_open) VALUES (1, 1);
    """,
)
_AAD_LEGACY: Final = 1
_AAD_VERSIONED: Final = 2

# Logs integrity failures at error level: no user ID, no token, no ciphertext.
_log = logging.getLogger("timmybot.vault")


def _key(user_id: int) -> str:
    # A str, float or bool is refused: it would be stored under a
    # key that no int lookup ever matches.
    return f"{check_snowflake(user_id, what='a user ID', allow_zero=True):020d}"


def _legacy_subject(user_id: int) -> tuple[str, ...]:
    return (str(check_snowflake(user_id, what="a user ID", allow_zero=True)),)


def _subject(user_id: int, version: int) -> tuple[str, ...]:
    """Return the associated data of format 2: the user and the record's version."""
    return (*_legacy_subject(user_id), "record-version", str(int(version)))


def _next_version(connection: sqlite3.Connection) -> int:
    connection.execute("UPDATE vault_versions SET last = last + 1 WHERE id = 1")
    row = connection.execute("SELECT last FROM vault_versions WHERE id = 1").fetchone()
    return int(row[0])


class _Row(NamedTuple):
    user_id: str
    key_id: str
    nonce: bytes
    ciphertext: bytes
    version: int
    aad: int


_SELECT: Final = "SELECT user_id, key_id, nonce, ciphertext, version, aad FROM vault_records"


def _rows(connection: sqlite3.Connection, where: str, *params: object) -> list[_Row]:
    return [_Row(*row) for row in connection.execute(f"{_SELECT} {where}", params)]


def _sealed(row: _Row) -> Sealed:
    return Sealed(key_id=row.key_id, nonce=row.nonce, ciphertext=row.ciphertext)


def _reseal(
    connection: sqlite3.Connection, cipher: AeadCipher, row: _Row, plaintext: bytes, version: int
) -> None:
    """Seal ``plaintext`` anew in ``row``'s place, in format 2 bound to ``version``."""
    sealed = cipher.seal(_subject(int(row.user_id), version), plaintext)
    connection.execute(
        "UPDATE vault_records SET key_id = ?, nonce = ?, ciphertext = ?, version = ?, aad = ?"
        " WHERE user_id = ?",
        (sealed.key_id, sealed.nonce, sealed.ciphertext, version, _AAD_VERSIONED, row.user_id),
    )


class _Batch(NamedTuple):
    rekeyed: int
    damaged: int
    last: str | None


def _check_version(connection: sqlite3.Connection, key: str, expected: str | None) -> None:
    """Raise ``VersionConflict`` unless the stored version is ``expected`` (``None``: no record)."""
    query = "SELECT version FROM vault_records WHERE user_id = ?"
    row = connection.execute(query, (key,)).fetchone()
    if (None if row is None else str(row[0])) != expected:
        raise VersionConflict("the token record changed since it was read")


class SqliteTokenVault(SqliteStore):
    """The token vault of every process sharing one SQLite file.

    Compare-and-set writes run in ``BEGIN IMMEDIATE`` transactions, so of
    several processes writing one user's record from the same version,
    exactly one wins and the others get
    :class:`~timmybot_core.domain.errors.VersionConflict`.
    """

    COMPONENT = COMPONENT
    MIGRATIONS = MIGRATIONS
    LABEL = "token vault"
    # A rotated refresh token lost to a power cut leaves the spent one in
    # the record, to be presented again: vault writes wait for the disk.
    DURABLE = True

    def __init__(self, db: SqliteDatabase, keys: VaultKeys) -> None:
        """Use ``db`` and ``keys``; the tables are created or upgraded on the first call.

        No I/O happens here. :meth:`open` migrates at once instead, so a
        broken or too-new database fails at start-up rather than later.
        """
        super().__init__(db)
        self._cipher = AeadCipher(keys, context=CONTEXT)
        self._legacy_open = True
        self._upgraded = False

    def __repr__(self) -> str:
        return f"SqliteTokenVault(db={self._db!r}, keys={self._cipher.keys!r})"

    @property
    def keys(self) -> VaultKeys:
        """The keys in use: the current one encrypts every write."""
        return self._cipher.keys

    async def _call(self, name: str, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        try:
            if not self._upgraded:
                await self._db.ensure_migrated(COMPONENT, MIGRATIONS)
                await self._upgrade_legacy()
            return await super()._call(name, fn, write=write)
        except VaultUnavailable:
            raise
        except StoreUnavailable as error:
            # The database's message names the operation and the error
            # class only; the vault's callers expect VaultUnavailable.
            raise VaultUnavailable(str(error)) from error

    async def _upgrade_legacy(self) -> None:
        """Re-seal every format-1 row in format 2 (same version), then close format 1.

        Runs once per vault object, in one ``BEGIN IMMEDIATE`` transaction,
        so concurrent processes upgrade each row once. Rows that fail their
        integrity check stay as they are (and are refused from now on, like
        any damaged row: :meth:`find_damaged` lists them). A row under a key
        this process lacks keeps format 1 open until a process holding that
        key upgrades it: it is not damaged, just not readable here.
        """
        cipher = self._cipher

        def upgrade(connection: sqlite3.Connection) -> tuple[int, bool]:
            (legacy_open,) = connection.execute(
                "SELECT legacy_open FROM vault_aad WHERE id = 1"
            ).fetchone()
            if not legacy_open:
                return 0, False
            upgraded, missing_key = 0, False
            for row in _rows(connection, "WHERE aad = ?", _AAD_LEGACY):
                try:
                    plaintext = cipher.open(
                        _legacy_subject(int(row.user_id)), _sealed(row), what=_WHAT
                    )
                except IntegrityFailure as failure:
                    _log.error("token vault: a record could not be upgraded: %s", failure)
                    missing_key = missing_key or failure.unknown_key
                    continue
                _reseal(connection, cipher, row, plaintext, row.version)
                upgraded += 1
            if not missing_key:
                connection.execute("UPDATE vault_aad SET legacy_open = 0 WHERE id = 1")
            return upgraded, missing_key

        upgraded, still_open = await self._db.write(
            upgrade, operation="token vault: upgrade", durable=True
        )
        if upgraded:
            _log.info("token vault: %d records re-sealed with their version bound", upgraded)
        self._legacy_open = still_open
        self._upgraded = not still_open

    def _open(self, row: _Row) -> UserTokens:
        """Decrypt and parse one row, or raise ``VaultIntegrityError`` (logged)."""
        user_id = int(row.user_id)
        try:
            if row.aad == _AAD_VERSIONED:
                subject = _subject(user_id, row.version)
            elif row.aad == _AAD_LEGACY and self._legacy_open:
                subject = _legacy_subject(user_id)
            else:
                raise IntegrityFailure(
                    f"{_WHAT} is in a format refused since the upgrade (its version is "
                    "not bound): it may be an old record put back",
                    unknown_key=False,
                )
            plaintext = self._cipher.open(subject, _sealed(row), what=_WHAT)
        except IntegrityFailure as failure:
            _log.error("token vault: %s", failure)
            raise VaultIntegrityError(str(failure)) from None
        try:
            record = UserTokens.from_json(plaintext, version=str(row.version))
        except VaultIntegrityError as error:
            _log.error("token vault: %s", error)
            raise
        if record.user_id != user_id:
            # Cannot happen while the user ID is in the associated data; kept
            # so that a future format change cannot silently hand out another
            # user's tokens.
            message = f"{_WHAT} names another user inside"
            _log.error("token vault: %s", message)
            raise VaultIntegrityError(message)
        return record

    async def get(self, user_id: int) -> UserTokens | None:
        """Return the user's record with its ``version`` set, or ``None`` if never linked.

        Raises:
            VaultIntegrityError: the record is tampered with, was moved from
                another user, is under a key that is not configured or under
                another key, or is malformed.
            VaultUnavailable: the database could not answer.

        """
        key = _key(user_id)

        def select(connection: sqlite3.Connection) -> list[_Row]:
            return _rows(connection, "WHERE user_id = ?", key)

        rows = await self._read("get", select)
        return self._open(rows[0]) if rows else None

    async def put(self, user_id: int, record: UserTokens, *, expected_version: str | None) -> str:
        """Store ``record`` if the stored version is ``expected_version``; return the new version.

        ``expected_version=None`` means "only if there is no record yet". The
        record is encrypted under the current key inside the transaction, bound to
        the version it draws there.

        Raises:
            ValueError: ``record`` belongs to another user.
            VersionConflict: the stored version differs; nothing changed.
            VaultUnavailable: the database could not answer.

        """
        if record.user_id != user_id:
            raise ValueError("the record belongs to another user")
        key = _key(user_id)
        plaintext = record.to_json().encode("utf-8")
        updated_at = datetime_to_micros(record.updated_at)
        cipher = self._cipher

        def store(connection: sqlite3.Connection) -> str:
            _check_version(connection, key, expected_version)
            version = _next_version(connection)
            # Sealed here: the version it is bound to is drawn in this transaction.
            sealed = cipher.seal(_subject(user_id, version), plaintext)
            connection.execute(
                "INSERT INTO vault_records"
                " (user_id, key_id, nonce, ciphertext, version, updated_at, aad)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                " key_id = excluded.key_id, nonce = excluded.nonce,"
                " ciphertext = excluded.ciphertext, version = excluded.version,"
                " updated_at = excluded.updated_at, aad = excluded.aad",
                (key, *sealed, version, updated_at, _AAD_VERSIONED),
            )
            return str(version)

        return await self._write("put", store)

    async def delete(self, user_id: int, *, expected_version: str | None = None) -> bool:
        """Delete the user's record; ``True`` if there was one.

        With ``expected_version``, only if the stored version is that one,
        checked in the same transaction as the delete.

        Raises:
            VersionConflict: the stored version differs (or there is no
                record); nothing changed.
            VaultUnavailable: the database could not answer.

        """
        key = _key(user_id)

        def remove(connection: sqlite3.Connection) -> bool:
            if expected_version is not None:
                _check_version(connection, key, expected_version)
            cursor = connection.execute("DELETE FROM vault_records WHERE user_id = ?", (key,))
            return cursor.rowcount > 0

        return await self._write("delete", remove)

    async def user_ids(self) -> AsyncIterator[int]:
        """Iterate over the IDs of every user with a record, in increasing order.

        Reads :data:`PAGE` IDs per query, so a huge vault is never loaded at
        once. Each page is its own snapshot: a user added or deleted while
        the iteration runs may or may not be seen, every other user is seen
        exactly once.
        """
        sql = "SELECT user_id FROM vault_records WHERE user_id > ? ORDER BY user_id LIMIT ?"
        async for (user_id,) in self._paged("user_ids", sql, PAGE):
            yield int(user_id)

    async def find_damaged(self) -> list[int]:
        """Return the IDs of users whose record fails to decrypt or parse.

        An operator tool: a damaged record blocks :meth:`rekey` from
        finishing, and the user must link again once it is deleted. Failures
        are logged (without user IDs) like in :meth:`get`.
        """
        damaged: list[int] = []
        sql = _SELECT + " WHERE user_id > ? ORDER BY user_id LIMIT ?"
        async for row in self._paged("list", sql, PAGE):
            try:
                self._open(_Row(*row))
            except VaultIntegrityError:
                damaged.append(int(row[0]))
        return damaged

    async def rekey(
        self,
        new_keys: VaultKeys,
        *,
        batch: int = 100,
        progress: Callable[[int], object] | None = None,
    ) -> int:
        """Re-encrypt every record not under ``new_keys.current``; return how many.

        How it runs:

        * Before changing anything, the key IDs in use are checked: if a
          record is under a key ID that neither the vault's keys nor
          ``new_keys`` hold, :class:`~timmybot_core.domain.errors.VaultIntegrityError`
          lists those key IDs (never users) and nothing changes. A key ID
          naming different bytes in the two raises ``ValueError``.
        * From then on the vault decrypts with the keys of both and encrypts
          every write with ``new_keys.current``.
        * Records are re-encrypted ``batch`` at a time, each batch one
          ``BEGIN IMMEDIATE`` transaction that also gives every record a new
          version, so a concurrent compare-and-set writer holding the old
          version conflicts and retries instead of overwriting. The record's
          content, ``updated_at`` included, does not change.
        * ``progress``, if given, is called after each committed batch with
          the number re-encrypted so far; an exception it raises stops the
          rekey after that batch.
        * When no record is left under another key, the vault uses
          ``new_keys`` alone (keys missing from it are forgotten).

        Interrupted (cancelled, crashed, an error), the batches committed so
        far stay done, and calling ``rekey`` again with the same keys
        finishes the job; on a finished vault it returns 0.

        Other processes sharing the file must be able to read records under
        ``new_keys.current`` and should encrypt with it too: restart them with
        ``new_keys`` (keeping the old key as long as any of them might still
        write under it), then rekey from one process, then drop the old key.

        Records that fail their integrity check are left as they are: the
        rest is re-encrypted, then ``VaultIntegrityError`` reports how many
        failed (see :meth:`find_damaged`) and the vault keeps the old keys
        too, so those records still read if they merely lacked a key.

        Raises:
            ValueError: ``batch`` is below 1, or a key ID names two keys.
            VaultIntegrityError: records under unknown key IDs (nothing
                changed), or damaged records (everything else re-encrypted).
            VaultUnavailable: the database could not answer.

        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        working_keys = self._cipher.keys.merged_with(new_keys)

        def key_ids_in_use(connection: sqlite3.Connection) -> list[str]:
            rows = connection.execute("SELECT DISTINCT key_id FROM vault_records").fetchall()
            return [row[0] for row in rows]

        in_use = await self._read("rekey", key_ids_in_use)
        unknown = sorted({str(k) for k in in_use if k not in working_keys.keys})
        if unknown:
            names = ", ".join(safe_key_id(key_id) for key_id in unknown)
            raise VaultIntegrityError(
                f"cannot rekey: some token records are encrypted with key IDs that are "
                f"configured neither in the vault nor in the new keys ({names}); "
                f"nothing was changed"
            )
        working = AeadCipher(working_keys, context=CONTEXT)
        self._cipher = working
        target = new_keys.current
        total = 0
        while True:
            # One pass over the records still under another key. A record
            # that another process writes under an old key behind the
            # cursor is caught by the next pass; the rekey ends with a pass
            # that found nothing left to re-encrypt.
            rekeyed_this_pass = damaged = 0
            after = ""
            while True:
                done = await self._write("rekey", self._rekey_batch(working, target, after, batch))
                rekeyed_this_pass += done.rekeyed
                damaged += done.damaged
                if done.rekeyed:
                    total += done.rekeyed
                    if progress is not None:
                        progress(total)
                if done.last is None:
                    break
                after = done.last
            if rekeyed_this_pass == 0:
                break
        if damaged:
            raise VaultIntegrityError(
                f"rekey re-encrypted {total} token records, but {damaged} failed their "
                f"integrity check and were left under their old key; find_damaged() lists "
                f"the users, who must link again once their records are deleted"
            )
        self._cipher = AeadCipher(new_keys, context=CONTEXT)
        return total

    def _rekey_batch(
        self, cipher: AeadCipher, target: str, after: str, size: int
    ) -> Callable[[sqlite3.Connection], _Batch]:
        def rekey(connection: sqlite3.Connection) -> _Batch:
            rows = _rows(
                connection,
                "WHERE user_id > ? AND key_id != ? ORDER BY user_id LIMIT ?",
                after,
                target,
                size,
            )
            rekeyed = damaged = 0
            for row in rows:
                user_id = int(row.user_id)
                if row.aad != _AAD_VERSIONED:
                    _log.error("token vault: rekey skipped a record in the refused old format")
                    damaged += 1
                    continue
                try:
                    plaintext = cipher.open(
                        _subject(user_id, row.version), _sealed(row), what=_WHAT
                    )
                except IntegrityFailure as failure:
                    _log.error("token vault: rekey skipped a record: %s", failure)
                    damaged += 1
                    continue
                _reseal(connection, cipher, row, plaintext, _next_version(connection))
                rekeyed += 1
            last = rows[-1].user_id if len(rows) == size else None
            return _Batch(rekeyed=rekeyed, damaged=damaged, last=last)

        return rekey
