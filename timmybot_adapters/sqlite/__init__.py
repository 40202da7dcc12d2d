"""SQLite adapters: the embedded default backend.

Every store shares one database file (:class:`SqliteDatabase`), safe for
several bot processes on one machine. The composition root opens the file
once and each store from it::

    db = SqliteDatabase(Path("var/timmybot.db"))
    access = await SqliteAccessPolicyStore.open(db)
    incidents = await SqliteIncidentStore.open(db)
    ...
    await db.close()

``open`` migrates at once, so a too-new or damaged file fails at start-up.
A composition root that must not do I/O while building can construct the
stores directly (``SqliteAccessPolicyStore(db)``); they migrate on their
first call instead.
"""

from __future__ import annotations

from timmybot_adapters.sqlite.access import SqliteAccessPolicyStore
from timmybot_adapters.sqlite.audit import SqliteAuditLog
from timmybot_adapters.sqlite.crypto import VaultKeys
from timmybot_adapters.sqlite.database import SchemaVersionError, SqliteDatabase
from timmybot_adapters.sqlite.erasure import SqliteErasureJournal
from timmybot_adapters.sqlite.incidents import SqliteIncidentStore
from timmybot_adapters.sqlite.link_states import SqliteLinkStateStore
from timmybot_adapters.sqlite.rate_limits import SqliteRateLimitStore
from timmybot_adapters.sqlite.user_data import SqliteUserDataStore
from timmybot_adapters.sqlite.vault import SqliteTokenVault

__all__ = [
    "SchemaVersionError",
    "SqliteAccessPolicyStore",
    "SqliteAuditLog",
    "SqliteDatabase",
    "SqliteErasureJournal",
    "SqliteIncidentStore",
    "SqliteLinkStateStore",
    "SqliteRateLimitStore",
    "SqliteTokenVault",
    "SqliteUserDataStore",
    "VaultKeys",
]
