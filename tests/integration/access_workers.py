"""Worker processes for the multi-process access-control test (imported by spawn)."""

from __future__ import annotations

import asyncio
import logging
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Queue

from timmybot_adapters.memory import MemoryAlerter, MemorySecurityMetrics
from timmybot_adapters.sqlite import SqliteAccessPolicyStore, SqliteDatabase
from timmybot_core import (
    AccessSettings,
    Pseudonymizer,
    SecurityAuditLogger,
    SecurityEventType,
    ServerAccessControl,
    SystemClock,
)


async def _deny_many(path: str, guild: int, attempts: int, barrier: Barrier) -> tuple[int, int]:
    silent = logging.getLogger("timmybot.security.worker")
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    db = SqliteDatabase(Path(path))
    clock = SystemClock()
    security_log = SecurityAuditLogger(
        pseudonymizer=Pseudonymizer(key=b"w" * 32, key_id="w1"),
        clock=clock,
        logger=silent,
        recent=attempts + 10,
    )
    alerter = MemoryAlerter()
    access = ServerAccessControl(
        store=SqliteAccessPolicyStore(db),
        security_log=security_log,
        metrics=MemorySecurityMetrics(),
        alerter=alerter,
        clock=clock,
        settings=AccessSettings(),
    )
    await access.is_guild_allowed(guild + 1)  # migrate before the race starts
    barrier.wait()
    for _ in range(attempts):
        await access.check(guild, 7, "search")
    bans = sum(
        1 for e in security_log.recent(attempts + 10) if e.type is SecurityEventType.BAN_PLACED
    )
    await db.close()
    return len(alerter.sent), bans


def deny_many(
    path: str, guild: int, attempts: int, barrier: Barrier, results: Queue[object]
) -> None:
    """Run ``attempts`` denied checks, then report (alerts sent, bans logged)."""
    results.put(asyncio.run(_deny_many(path, guild, attempts, barrier)))
