"""The access-policy store: allowlist, attempt counts, bans, switches.

The port is shaped so that DynamoDB can implement it with conditional,
atomic single-item updates: counting is "add one and return the count",
placing a ban is "create unless an active one exists", and nothing needs a
multi-item transaction. Several bot processes (shards) share one store, so
every limit holds across them.

The store also holds the scheduler's shared state: named **leases** (only
the holder of a job's lease runs the job, so several processes never run
it twice) and, per job, how far its schedule has been **satisfied**, so a
run missed during downtime is caught up once after a restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import attrs

from timmybot_core.domain.switches import Switch

__all__ = ["AccessPolicyStore", "Ban", "PurgeCounts", "Switch", "SwitchState", "check_lease"]


def check_lease(name: str, holder: str, ttl: timedelta) -> None:
    """Raise ``ValueError`` unless a lease has a name, a holder and a positive ``ttl``."""
    if not name or not holder:
        raise ValueError("a lease needs a name and a holder")
    if ttl <= timedelta(0):
        raise ValueError(f"a lease's ttl must be positive (got {ttl})")


@attrs.frozen(kw_only=True)
class Ban:
    """A temporary ban of a guild."""

    guild_id: int
    until: datetime
    reason: str
    placed_at: datetime

    def active(self, now: datetime) -> bool:
        """Tell whether the ban still holds at ``now``."""
        return now < self.until


@attrs.frozen(kw_only=True)
class SwitchState:
    """A switch's position, who set it, why, and until when."""

    switch: Switch
    on: bool = False
    reason: str | None = None
    actor: str | None = None
    changed_at: datetime | None = None
    expires_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        """Tell whether the switch is on and not expired at ``now``."""
        return self.on and (self.expires_at is None or now < self.expires_at)


@attrs.frozen(kw_only=True)
class PurgeCounts:
    """How many expired records a purge removed."""

    attempts: int = 0
    bans: int = 0
    switches: int = 0


@runtime_checkable
class AccessPolicyStore(Protocol):
    """Shared state of access control.

    Guild IDs are Discord snowflakes (positive integers). Every method may
    raise :class:`~timmybot_core.domain.errors.StoreUnavailable`; none returns a
    default in place of an answer it could not get.
    """

    async def allow_guild(self, guild_id: int, *, at: datetime) -> bool:
        """Add ``guild_id`` to the allowlist; ``True`` if it was not there."""
        ...

    async def remove_guild(self, guild_id: int) -> bool:
        """Remove ``guild_id`` from the allowlist; ``True`` if it was there."""
        ...

    async def is_guild_allowed(self, guild_id: int) -> bool:
        """Tell whether ``guild_id`` is on the allowlist."""
        ...

    async def list_allowed_guilds(self) -> list[int]:
        """Return the allowlist, sorted."""
        ...

    async def record_attempt(
        self, guild_id: int, *, at: datetime, window: timedelta, cap: int | None = None
    ) -> int:
        """Record one unauthorized attempt and return the count of attempts after ``at - window``.

        Atomic: concurrent callers, in any number of processes, never lose
        an attempt; each gets a count that includes its own attempt and
        every attempt recorded before it in the window, also those stamped
        later than ``at`` (callers stamp their time before they get here, so
        across processes stamps and records come in different orders).
        Hence the counts of a burst are ``1, 2, 3, ...``, each given once,
        and a limit is crossed by exactly one attempt. With
        ``cap``, the count returned is at most ``cap`` (the attempt is always
        recorded): a caller that only needs "over the limit?" passes
        ``limit + 1`` and a flood stays cheap to count.
        """
        ...

    async def clear_attempts(self, guild_id: int) -> int:
        """Forget every recorded attempt of ``guild_id``; return how many."""
        ...

    async def count_attempts(self, guild_id: int, *, now: datetime, window: timedelta) -> int:
        """Return the number of attempts recorded in ``(now - window, now]``."""
        ...

    async def place_ban(self, ban: Ban, *, now: datetime) -> bool:
        """Place ``ban`` unless an active ban of that guild exists.

        ``True`` only for the one caller that placed it, so exactly one
        alert follows however many processes race to ban a guild.
        """
        ...

    async def lift_ban(self, guild_id: int, *, now: datetime) -> bool:
        """Remove the guild's ban; ``True`` if an active ban was lifted."""
        ...

    async def get_ban(self, guild_id: int, *, now: datetime) -> Ban | None:
        """Return the guild's active ban at ``now``, or ``None``."""
        ...

    async def list_bans(self, *, now: datetime) -> list[Ban]:
        """Return every active ban at ``now``, by guild ID."""
        ...

    async def set_switch(self, state: SwitchState) -> None:
        """Store a switch's state (last write wins)."""
        ...

    async def get_switch(self, switch: Switch) -> SwitchState:
        """Return a switch's state; a never-set switch is off."""
        ...

    async def purge_expired(self, *, now: datetime, window: timedelta) -> PurgeCounts:
        """Delete attempts older than ``window``, ended bans and expired switches."""
        ...

    # -- the scheduler's leases and job runs -------------------------------

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``holder``, valid until ``now + ttl``.

        Succeeds (``True``, and the lease's expiry becomes ``now + ttl``)
        when nobody holds the lease, when the current lease expired
        (its expiry is at or before ``now``), or when ``holder`` already
        holds it (a renewal, even of its own expired lease). Fails
        (``False``, nothing changes) while another holder's lease is valid.

        Atomic: of any number of callers racing for one free lease, in any
        number of processes, exactly one gets ``True``. With DynamoDB: one
        ``PutItem`` with the condition ``attribute_not_exists(name) OR
        expires_at <= :now OR holder = :holder``.

        Raises:
            ValueError: ``name`` or ``holder`` is empty, or ``ttl`` is not positive.
        """
        ...

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give up the lease ``name`` if ``holder`` holds it, expired or not.

        ``True`` if it was ``holder``'s and is now free; ``False`` (nothing
        changes) if it is free or another holder's. With DynamoDB: one
        ``DeleteItem`` with the condition ``holder = :holder``.
        """
        ...

    async def last_job_run(self, job: str) -> datetime | None:
        """Return how far ``job``'s schedule is satisfied, or ``None`` if never recorded.

        The value is the latest ``at`` given to :meth:`record_job_run` (the
        scheduled time of the last completed run, or the moment the
        scheduler first saw the job).
        """
        ...

    async def record_job_run(self, job: str, at: datetime) -> bool:
        """Record that ``job``'s schedule is satisfied up to ``at``; it only moves forward.

        ``True`` if the stored time changed (there was none, or it was
        earlier than ``at``); ``False`` if it already was ``at`` or later,
        which stays as it was. With DynamoDB: one ``UpdateItem`` with the
        condition ``attribute_not_exists(last_run) OR last_run < :at``.

        Raises:
            ValueError: ``job`` is empty.
        """
        ...
