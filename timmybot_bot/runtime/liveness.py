"""Is a bot process alive? The run lock, and the scheduler's job leases.

A bot process holds the data directory's run lock while it runs (see
:func:`timmybot_bot.runtime.data_dir.run_lock`), and a process running a job holds
the job's lease in the shared store, named ``host/pid/tag``. A lease
holder on this host is alive if its process exists; one on another host
cannot be checked from here (``None``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
from datetime import UTC, datetime

import attrs

from timmybot_adapters.sqlite.database import micros_to_datetime
from timmybot_bot.runtime.data_dir import bot_running, database_path
from timmybot_bot.runtime.settings import Settings

__all__ = ["Lease", "holder_alive", "job_leases", "live_process"]


@attrs.frozen(kw_only=True)
class Lease:
    """A job lease as stored: its name, holder and expiry, and whether the holder lives."""

    name: str
    holder: str
    expires_at: datetime
    alive: bool | None

    def describe(self, now: datetime) -> str:
        """Return one line about the lease."""
        state = {True: "alive", False: "gone", None: "on another host"}[self.alive]
        lapse = (
            "lapsed" if self.expires_at <= now else f"until {self.expires_at:%Y-%m-%d %H:%M:%S}Z"
        )
        return f"{self.name} held by {self.holder} ({state}; {lapse})"


def holder_alive(holder: str) -> bool | None:
    """Tell whether the process named ``host/pid/tag`` runs (``None``: another host)."""
    host, _, rest = holder.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def job_leases(settings: Settings) -> list[Lease]:
    """Return the job leases in the sqlite database (none for other backends or no file).

    Raises ``sqlite3.Error`` when the database cannot be read.
    """
    path = database_path(settings)
    if settings.backend != "sqlite" or not path.exists() or path.stat().st_size == 0:
        return []
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as connection:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'access_leases'"
        ).fetchone()
        if exists is None:
            return []
        rows = connection.execute("SELECT name, holder, expires_at FROM access_leases").fetchall()
    return [
        Lease(
            name=str(name),
            holder=str(holder),
            expires_at=micros_to_datetime(int(expires)),
            alive=holder_alive(str(holder)),
        )
        for name, holder, expires in rows
    ]


def live_process(settings: Settings) -> str | None:
    """Return why a live bot process is believed to use the data directory, or ``None``."""
    if bot_running(settings):
        return f"a bot process holds {settings.data_dir / 'run.lock'}"
    now = datetime.now(UTC)
    for lease in job_leases(settings):
        if lease.expires_at > now and lease.alive is not False:
            return f"the job lease {lease.describe(now)}"
    return None
