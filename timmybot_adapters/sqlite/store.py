"""The part every SQLite store shares: lazy migration and labelled calls."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import ClassVar, Self, TypeVar

from timmybot_adapters.sqlite.database import SqliteDatabase

__all__ = ["SqliteStore"]

T = TypeVar("T")


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

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"{type(self).__name__}(db={self._db!r})"

    @classmethod
    async def open(cls, db: SqliteDatabase) -> Self:
        """Create or upgrade the store's tables in ``db`` and return the store.

        Raises:
            SchemaVersionError: ``db`` was written by a newer release.
            StoreUnavailable: the database could not be opened or migrated.
        """
        await db.migrate(cls.COMPONENT, cls.MIGRATIONS)
        return cls(db)

    async def _read(self, name: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        await self._db.ensure_migrated(self.COMPONENT, self.MIGRATIONS)
        return await self._db.read(fn, operation=f"{self.LABEL}: {name}")

    async def _write(self, name: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        await self._db.ensure_migrated(self.COMPONENT, self.MIGRATIONS)
        return await self._db.write(fn, operation=f"{self.LABEL}: {name}")
