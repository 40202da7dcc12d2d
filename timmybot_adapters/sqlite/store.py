"""The part every SQLite store shares: lazy migration, labelled calls, optional sealing."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ClassVar, NoReturn, ParamSpec, TypeVar

from timmybot_adapters.sqlite.crypto import AeadCipher, IntegrityFailure, Sealed, VaultKeys
from timmybot_adapters.sqlite.database import SqliteDatabase
from timmybot_core.domain.errors import StoreUnavailable

__all__ = ["SqliteSealedStore", "SqliteStore"]

T = TypeVar("T")
S = TypeVar("S", bound="SqliteStore")
P = ParamSpec("P")


class SqliteStore:
    """A store keeping its tables in a shared :class:`SqliteDatabase`.

    Subclasses name their ``COMPONENT`` (its schema version is tracked on
    its own), its append-only ``MIGRATIONS`` and a ``LABEL`` for error
    messages. Construction does no I/O: the first call migrates.
    :meth:`open` migrates at once instead, so a broken or too-new database
    fails at start-up rather than at the first command.
    """

    COMPONENT: ClassVar[str]
    MIGRATIONS: ClassVar[Sequence[str]]
    LABEL: ClassVar[str]
    #: Writes that must outlive a power cut, not only a crash (see
    #: :meth:`SqliteDatabase.write`): what losing would undo a promise.
    DURABLE: ClassVar[bool] = False

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"{type(self).__name__}(db={self._db!r})"

    @classmethod
    async def open(cls: Callable[P, S], *args: P.args, **kwargs: P.kwargs) -> S:
        """Build the store (its database first, then what its constructor takes) and migrate.

        The store's tables in the database are created or upgraded at once.

        Raises:
            SchemaVersionError: ``db`` was written by a newer release.
            StoreUnavailable: the database could not be opened or migrated.
        """
        store = cls(*args, **kwargs)
        await store._db.migrate(store.COMPONENT, store.MIGRATIONS)
        return store

    async def _read(self, name: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(name, fn, write=False)

    async def _write(self, name: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(name, fn, write=True)

    async def _call(self, name: str, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        await self._db.ensure_migrated(self.COMPONENT, self.MIGRATIONS)
        operation = f"{self.LABEL}: {name}"
        if write:
            return await self._db.write(fn, operation=operation, durable=self.DURABLE)
        return await self._db.read(fn, operation=operation)

    async def _paged(self, name: str, sql: str, size: int) -> AsyncIterator[tuple[Any, ...]]:
        """Yield the rows of ``sql``, read ``size`` per query, each page its own snapshot.

        ``sql`` selects the key first and ends ``WHERE key > ? ORDER BY key
        LIMIT ?``: it is given the last key read so far (``""`` at first)
        and ``size``.
        """
        after = ""
        while True:

            def select(connection: sqlite3.Connection, after: str = after) -> list[Any]:
                return connection.execute(sql, (after, size)).fetchall()

            page = await self._read(name, select)
            for row in page:
                yield row
            if len(page) < size:
                return
            after = page[-1][0]


class SqliteSealedStore(SqliteStore):
    """A store whose one secret column is sealed with AES-256-GCM when ``keys`` are given.

    Subclasses also name the ``CONTEXT`` their ciphertexts are bound to and
    ``WHAT`` one sealed value is, for messages. Without keys values are
    stored as they are, and rows are not authenticated: for tests.
    """

    CONTEXT: ClassVar[str]
    WHAT: ClassVar[str]

    def __init__(self, db: SqliteDatabase, *, keys: VaultKeys | None = None) -> None:
        """Use ``db``; encrypt with ``keys`` if given. No I/O happens here."""
        super().__init__(db)
        self._cipher = AeadCipher(keys, context=self.CONTEXT) if keys is not None else None

    def __repr__(self) -> str:
        keys = self._cipher.keys if self._cipher is not None else None
        return f"{type(self).__name__}(db={self._db!r}, keys={keys!r})"

    def _seal(
        self, subject: tuple[str, ...], plain: bytes
    ) -> tuple[str | None, bytes | None, bytes]:
        """Return ``(key_id, nonce, stored)`` for ``plain`` bound to ``subject``."""
        if self._cipher is None:
            return (None, None, plain)
        sealed = self._cipher.seal(subject, plain)
        return (sealed.key_id, sealed.nonce, sealed.ciphertext)

    def _unseal(
        self, subject: tuple[str, ...], key_id: str | None, nonce: bytes | None, stored: bytes
    ) -> bytes:
        """Return what :meth:`_seal` stored; :meth:`_fail` if it fails its integrity check.

        A row sealed under keys this store lacks, or plain where this store
        encrypts, fails as well: either is a configuration or tampering problem.
        """
        try:
            if self._cipher is None:
                if key_id is not None:
                    raise IntegrityFailure(
                        f"{self.WHAT} is encrypted, but this store has no keys", unknown_key=True
                    )
                return bytes(stored)
            if key_id is None or nonce is None:
                raise IntegrityFailure(
                    f"{self.WHAT} is stored unencrypted, but this store encrypts",
                    unknown_key=False,
                )
            sealed = Sealed(key_id=key_id, nonce=nonce, ciphertext=stored)
            return self._cipher.open(subject, sealed, what=self.WHAT)
        except IntegrityFailure as failure:
            self._fail(str(failure))

    def _fail(self, message: str) -> NoReturn:
        """Log ``message`` (it names no user and no value) and raise ``StoreUnavailable``."""
        logging.getLogger(f"timmybot.{self.COMPONENT}").error("%s: %s", self.LABEL, message)
        raise StoreUnavailable(f"{self.LABEL}: {message}") from None
