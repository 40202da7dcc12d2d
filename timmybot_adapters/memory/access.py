"""AccessPolicyStore in memory."""

from __future__ import annotations

import bisect
import threading
from datetime import UTC, datetime, timedelta

from timmybot_adapters.memory._dicts import delete_where
from timmybot_core.domain.clock import as_utc
from timmybot_core.ports.access import Ban, PurgeCounts, Switch, SwitchState, check_lease

__all__ = ["MemoryAccessPolicyStore"]


class MemoryAccessPolicyStore:
    """The access-policy store of one process.

    A lock makes every method atomic even when called from several threads;
    no method awaits while holding it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._allowed: dict[int, datetime] = {}
        self._attempts: dict[int, list[datetime]] = {}
        self._bans: dict[int, Ban] = {}
        self._switches: dict[Switch, SwitchState] = {}
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._job_runs: dict[str, datetime] = {}

    async def allow_guild(self, guild_id: int, *, at: datetime) -> bool:
        """Add ``guild_id`` to the allowlist; ``True`` if it was not there."""
        with self._lock:
            if guild_id in self._allowed:
                return False
            self._allowed[guild_id] = at
            return True

    async def remove_guild(self, guild_id: int) -> bool:
        """Remove ``guild_id`` from the allowlist; ``True`` if it was there."""
        with self._lock:
            return self._allowed.pop(guild_id, None) is not None

    async def is_guild_allowed(self, guild_id: int) -> bool:
        """Tell whether ``guild_id`` is on the allowlist."""
        with self._lock:
            return guild_id in self._allowed

    async def list_allowed_guilds(self) -> list[int]:
        """Return the allowlist, sorted."""
        with self._lock:
            return sorted(self._allowed)

    async def record_attempt(
        self, guild_id: int, *, at: datetime, window: timedelta, cap: int | None = None
    ) -> int:
        """Record one attempt and return the count after ``at - window`` (at most ``cap``).

        Attempts stamped later than ``at`` count too (they were recorded
        first), so concurrent callers get distinct counts.
        """
        with self._lock:
            attempts = self._attempts.setdefault(guild_id, [])
            bisect.insort(attempts, at)
            if window <= timedelta(0):
                count = 0
            else:
                count = len(attempts) - bisect.bisect_right(attempts, at - window)
            return count if cap is None else min(count, max(cap, 0))

    async def clear_attempts(self, guild_id: int) -> int:
        """Forget every recorded attempt of ``guild_id``."""
        with self._lock:
            return len(self._attempts.pop(guild_id, []))

    async def count_attempts(self, guild_id: int, *, now: datetime, window: timedelta) -> int:
        """Return the number of attempts in ``(now - window, now]``."""
        with self._lock:
            return self._count(self._attempts.get(guild_id, []), now, window)

    @staticmethod
    def _count(attempts: list[datetime], now: datetime, window: timedelta) -> int:
        if window <= timedelta(0):
            return 0
        return bisect.bisect_right(attempts, now) - bisect.bisect_right(attempts, now - window)

    async def place_ban(self, ban: Ban, *, now: datetime) -> bool:
        """Place ``ban`` unless an active ban of that guild exists."""
        with self._lock:
            current = self._bans.get(ban.guild_id)
            if current is not None and current.active(now):
                return False
            self._bans[ban.guild_id] = ban
            return True

    async def lift_ban(self, guild_id: int, *, now: datetime) -> bool:
        """Remove the guild's ban; ``True`` if an active ban was lifted."""
        with self._lock:
            ban = self._bans.pop(guild_id, None)
            return ban is not None and ban.active(now)

    async def get_ban(self, guild_id: int, *, now: datetime) -> Ban | None:
        """Return the guild's active ban, or ``None``."""
        with self._lock:
            ban = self._bans.get(guild_id)
            return ban if ban is not None and ban.active(now) else None

    async def list_bans(self, *, now: datetime) -> list[Ban]:
        """Return every active ban, by guild ID."""
        with self._lock:
            return [ban for _, ban in sorted(self._bans.items()) if ban.active(now)]

    async def set_switch(self, state: SwitchState) -> None:
        """Store a switch's state."""
        with self._lock:
            self._switches[state.switch] = state

    async def get_switch(self, switch: Switch) -> SwitchState:
        """Return a switch's state; a never-set switch is off."""
        with self._lock:
            return self._switches.get(switch, SwitchState(switch=switch))

    async def purge_expired(self, *, now: datetime, window: timedelta) -> PurgeCounts:
        """Delete attempts older than ``window``, ended bans and expired switches."""
        with self._lock:
            attempts = 0
            for stamps in self._attempts.values():
                # Sorted (record_attempt inserts in order): the old ones lead.
                old = bisect.bisect_right(stamps, now - window)
                del stamps[:old]
                attempts += old
            delete_where(self._attempts, lambda _, stamps: not stamps)
            bans = delete_where(self._bans, lambda _, ban: not ban.active(now))
            # A deleted switch reads back as the default (off) state, as in the SQLite store.
            switches = delete_where(
                self._switches,
                lambda _, state: (
                    state.on and state.expires_at is not None and state.expires_at <= now
                ),
            )
            return PurgeCounts(attempts=attempts, bans=bans, switches=switches)

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``."""
        check_lease(name, holder, ttl)
        as_utc(now, "timestamps")
        with self._lock:
            current = self._leases.get(name)
            if current is not None and current[0] != holder and now < current[1]:
                return False
            self._leases[name] = (holder, now + ttl)
            return True

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give up the lease ``name`` if ``holder`` holds it."""
        with self._lock:
            current = self._leases.get(name)
            if current is None or current[0] != holder:
                return False
            del self._leases[name]
            return True

    async def last_job_run(self, job: str) -> datetime | None:
        """Return how far ``job``'s schedule is satisfied, or ``None``."""
        with self._lock:
            return self._job_runs.get(job)

    async def record_job_run(self, job: str, at: datetime) -> bool:
        """Record that ``job``'s schedule is satisfied up to ``at`` (only forward)."""
        if not job:
            raise ValueError("a job needs a name")
        as_utc(at, "timestamps")
        with self._lock:
            current = self._job_runs.get(job)
            if current is not None and current >= at:
                return False
            self._job_runs[job] = at.astimezone(UTC)
            return True
