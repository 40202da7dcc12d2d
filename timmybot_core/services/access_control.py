"""ServerAccessControl: the guard every command passes.

Order of the checks, and why:

1. Owners pass everything, so they can always turn the kill switch off and
   fix an allowlist from wherever they are.
2. The kill switch denies everyone else.
3. Direct messages are denied unless allowed by settings.
4. An allowlisted guild passes. Bans matter only for guilds that are not
   allowlisted (only they accumulate denied attempts), so the allowed path
   needs no ban lookup.
5. A banned guild is denied with the time left.
6. Anything else is an unauthorized attempt: logged with pseudonyms,
   counted in the metric and in the shared store; past the limit within the
   window, the guild is banned and exactly one alert is sent.

Switches and allowlist answers are cached for ``cache_ttl`` (default 5 s):
the allowed path then costs no store round-trip, which matters when the
store is DynamoDB. A change made through this object is seen at once here
and within ``cache_ttl`` by other processes.

The guard fails closed: if the store cannot answer, the command is denied
with reason ``UNAVAILABLE`` (owners still pass).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import TypeVar

import attrs

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.errors import AlertDeliveryError, StoreUnavailable
from timmybot_core.domain.events import SecurityEventType
from timmybot_core.domain.snowflake import check_snowflake
from timmybot_core.ports.access import AccessPolicyStore, Ban, Switch, SwitchState
from timmybot_core.ports.alerts import Alert, Alerter, Severity
from timmybot_core.ports.metrics import SecurityMetrics
from timmybot_core.safety.pseudonymizer import PseudonymKind
from timmybot_core.services.refusals import RefusalLedger
from timmybot_core.services.security_log import SecurityAuditLogger

__all__ = ["AccessDecision", "AccessReason", "AccessSettings", "ServerAccessControl"]

_log = logging.getLogger("timmybot.access")

_T = TypeVar("_T")
_CACHE_LIMIT = 10_000


class AccessReason(enum.StrEnum):
    """Why a command was allowed or denied."""

    ALLOWED = "allowed"
    NOT_ALLOWLISTED = "not_allowlisted"
    GUILD_BANNED = "guild_banned"
    KILL_SWITCH = "kill_switch"
    DIRECT_MESSAGE = "direct_message"
    UNAVAILABLE = "unavailable"


_MESSAGES = {
    AccessReason.ALLOWED: "Allowed.",
    AccessReason.NOT_ALLOWLISTED: "This server is not authorized to use TimmyBot.",
    AccessReason.GUILD_BANNED: "This server is temporarily blocked after repeated "
    "unauthorized attempts.",
    AccessReason.KILL_SWITCH: "TimmyBot is paused by its operators. Please try again later.",
    AccessReason.DIRECT_MESSAGE: "TimmyBot commands are not available in direct messages.",
    AccessReason.UNAVAILABLE: "TimmyBot cannot check access right now. Please try again "
    "in a moment.",
}


@attrs.frozen(kw_only=True)
class AccessDecision:
    """The guard's answer: allowed or not, why, and when to retry after a ban."""

    allowed: bool
    reason: AccessReason
    retry_after: timedelta | None = None

    @property
    def message(self) -> str:
        """A short explanation fit to show the user."""
        text = _MESSAGES[self.reason]
        if self.retry_after is not None:
            # Rounded up on the timedelta itself: int() of the seconds dropped
            # the fraction, so 60.4 s left read "1 minute", too early.
            minutes = max(1, -(-self.retry_after // timedelta(minutes=1)))
            text += f" Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        return text


_ALLOWED = AccessDecision(allowed=True, reason=AccessReason.ALLOWED)


def _id_set(values: Iterable[int]) -> frozenset[int]:
    return frozenset(values)


@attrs.frozen(kw_only=True)
class AccessSettings:
    """How the guard behaves.

    Attributes:
        owner_ids: users who pass every check.
        allowed_guilds: guilds allowed by configuration (in addition to the
            store's allowlist; they cannot be removed at run time).
        attempt_limit: denied attempts per guild within ``attempt_window``
            before a ban; the attempt that exceeds it places the ban.
        attempt_window: the sliding window for counting attempts.
        ban_duration: how long a ban lasts.
        lockdown_attempt_limit: the limit while a lockdown (P1 incident) is on.
        allow_direct_messages: whether commands work in DMs.
        cache_ttl: how long switch and allowlist answers are reused.
        alert_timeout: how long the ban alert may take; an alerter that has
            not answered by then counts as a failed delivery (the denied
            command it rides on must not wait on it).
    """

    owner_ids: frozenset[int] = attrs.field(factory=frozenset, converter=_id_set)
    allowed_guilds: frozenset[int] = attrs.field(factory=frozenset, converter=_id_set)
    attempt_limit: int = 10
    attempt_window: timedelta = timedelta(hours=1)
    ban_duration: timedelta = timedelta(hours=1)
    lockdown_attempt_limit: int = 3
    allow_direct_messages: bool = False
    cache_ttl: timedelta = timedelta(seconds=5)
    alert_timeout: timedelta = timedelta(seconds=10)

    def __attrs_post_init__(self) -> None:
        for name in ("attempt_limit", "lockdown_attempt_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("attempt_window", "ban_duration"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive (got {getattr(self, name)})")
        if self.cache_ttl < timedelta(0):
            raise ValueError(f"cache_ttl must not be negative (got {self.cache_ttl})")
        if self.alert_timeout <= timedelta(0):
            raise ValueError(f"alert_timeout must be positive (got {self.alert_timeout})")


@attrs.define
class _Cached:
    value: object
    at: datetime


class ServerAccessControl:
    """Decides whether a command may run, and defends against repeated attempts."""

    def __init__(
        self,
        *,
        store: AccessPolicyStore,
        security_log: SecurityAuditLogger,
        metrics: SecurityMetrics,
        alerter: Alerter,
        clock: Clock,
        settings: AccessSettings | None = None,
        refusals: RefusalLedger | None = None,
    ) -> None:
        self._store = store
        self._refusals = refusals
        self._log = security_log
        self._metrics = metrics
        self._alerter = alerter
        self._clock = clock
        self._settings = settings if settings is not None else AccessSettings()
        self._cache: dict[object, _Cached] = {}

    @property
    def settings(self) -> AccessSettings:
        """The guard's settings."""
        return self._settings

    def is_owner(self, user_id: int) -> bool:
        """Tell whether ``user_id`` is a configured owner."""
        return user_id in self._settings.owner_ids

    # -- the guard ---------------------------------------------------------

    async def check(self, guild_id: int | None, user_id: int, command: str) -> AccessDecision:
        """Decide whether ``user_id`` may run ``command`` in ``guild_id`` (``None``: a DM)."""
        if self.is_owner(user_id):
            return _ALLOWED
        try:
            return await self._check(guild_id, user_id, command)
        except StoreUnavailable as error:
            # An outage is not an attack: no unauthorized-access metric or
            # event, so alarms do not mistake it for one.
            _log.error("access store unavailable, denying: %s", error)
            await self._log.record(
                SecurityEventType.STORE_UNAVAILABLE,
                guild_id=guild_id,
                user_id=user_id,
                details={"command": command, "store": "access"},
                level=logging.ERROR,
            )
            return AccessDecision(allowed=False, reason=AccessReason.UNAVAILABLE)

    async def _check(self, guild_id: int | None, user_id: int, command: str) -> AccessDecision:
        now = self._clock.now()
        if (await self._switch(Switch.KILL_SWITCH)).active(now):
            return await self._deny(guild_id, user_id, command, AccessReason.KILL_SWITCH)
        if guild_id is None:
            if self._settings.allow_direct_messages:
                return await self._granted(None, user_id, command, now)
            return await self._deny(None, user_id, command, AccessReason.DIRECT_MESSAGE)
        if await self.is_guild_allowed(guild_id):
            return await self._granted(guild_id, user_id, command, now)
        ban = await self._store.get_ban(guild_id, now=now)
        if ban is None:
            return await self._unauthorized(guild_id, user_id, command, now)
        # Recorded (a persistent guild is banned again when this ban
        # ends) but not counted: the count is not needed here.
        await self._store.record_attempt(
            guild_id, at=now, window=self._settings.attempt_window, cap=0
        )
        banned = AccessReason.GUILD_BANNED
        if self._refusals is None:
            return await self._deny(guild_id, user_id, command, banned, ban.until - now)
        # The ban and its alert already answered this guild: its
        # further denials are one record per window, not one each.
        self._metrics.record_unauthorized_access()
        await self._refusals.refuse(source="access", reason=banned.value, guild_id=guild_id)
        return AccessDecision(allowed=False, reason=banned, retry_after=ban.until - now)

    async def _granted(
        self, guild_id: int | None, user_id: int, command: str, now: datetime
    ) -> AccessDecision:
        # During a lockdown every granted command is logged too ("raised log
        # detail"); otherwise the allowed path writes nothing.
        if (await self._switch(Switch.LOCKDOWN)).active(now):
            await self._log.record(
                SecurityEventType.ACCESS_GRANTED,
                guild_id=guild_id,
                user_id=user_id,
                details={"command": command},
                level=logging.INFO,
            )
        return _ALLOWED

    async def _unauthorized(
        self, guild_id: int, user_id: int, command: str, now: datetime
    ) -> AccessDecision:
        settings = self._settings
        limit = settings.attempt_limit
        if (await self._switch(Switch.LOCKDOWN)).active(now):
            limit = min(limit, settings.lockdown_attempt_limit)
        count = await self._store.record_attempt(
            guild_id, at=now, window=settings.attempt_window, cap=limit + 1
        )
        if count <= limit:
            reason = AccessReason.NOT_ALLOWLISTED
            return await self._deny(guild_id, user_id, command, reason, attempts=count)
        ban = Ban(
            guild_id=guild_id,
            until=now + settings.ban_duration,
            reason=f"more than {limit} unauthorized attempts within {settings.attempt_window}",
            placed_at=now,
        )
        # The ban is logged before the attempt that caused it, so listeners
        # (the alarm rules) see the attempts as handled.
        if await self._store.place_ban(ban, now=now):
            await self._ban_placed(ban, count)
        else:
            # Another process placed it first: report the time its ban has left.
            ban = await self._store.get_ban(guild_id, now=now) or ban
        return await self._deny(
            guild_id, user_id, command, AccessReason.GUILD_BANNED, ban.until - now, attempts=count
        )

    async def _ban_placed(self, ban: Ban, attempts: int) -> None:
        event = await self._log.record(
            SecurityEventType.BAN_PLACED,
            guild_id=ban.guild_id,
            details={"until": ban.until, "attempts": attempts, "reason": ban.reason},
        )
        await self.send_alert(
            Alert(
                severity=Severity.P2,
                title="Guild banned after repeated unauthorized attempts",
                at=ban.placed_at,
                details={
                    "guild": event.guild,
                    "attempts": attempts,
                    "until": ban.until.isoformat(),
                },
            )
        )

    async def _deny(
        self,
        guild_id: int | None,
        user_id: int,
        command: str,
        reason: AccessReason,
        retry_after: timedelta | None = None,
        **extra: object,
    ) -> AccessDecision:
        """Count and log a denied command; return the denial."""
        self._metrics.record_unauthorized_access()
        await self._log.unauthorized_access(
            guild_id=guild_id, user_id=user_id, command=command, reason=reason.value, **extra
        )
        return AccessDecision(allowed=False, reason=reason, retry_after=retry_after)

    async def send_alert(self, alert: Alert) -> bool:
        """Send ``alert``; a delivery failure is logged, never raised. ``True`` if sent.

        An alerter that has not answered within ``alert_timeout`` is a failed
        delivery too: a host's or a remote alerter must not hold a check.
        """
        try:
            async with asyncio.timeout(self._settings.alert_timeout.total_seconds()):
                await self._alerter.send(alert)
        except (AlertDeliveryError, OSError, TimeoutError) as error:
            _log.error("alert delivery failed: %s", type(error).__name__)
            await self._log.record(
                SecurityEventType.ALERT_FAILED,
                details={"title": alert.title, "severity": alert.severity.value},
            )
            return False
        return True

    # -- cached reads --------------------------------------------------------

    async def _cached(self, key: object, load: Callable[[], Awaitable[_T]], kind: type[_T]) -> _T:
        ttl = self._settings.cache_ttl
        now = self._clock.now()
        entry = self._cache.get(key)
        # A negative age is a wall clock set back since the read (NTP, a VM
        # resumed): the entry is stale, or a kill switch turned on by another
        # process would be missed for as long as the clock went back.
        fresh = entry is not None and ttl > timedelta(0) and timedelta(0) <= now - entry.at < ttl
        if fresh and entry is not None and isinstance(entry.value, kind):
            return entry.value
        value = await load()
        if len(self._cache) >= _CACHE_LIMIT:
            # Guild IDs come from outside: never let them grow memory unbounded.
            self._cache.clear()
        self._cache[key] = _Cached(value=value, at=now)
        return value

    async def _switch(self, switch: Switch) -> SwitchState:
        return await self._cached(switch, lambda: self._store.get_switch(switch), SwitchState)

    async def is_guild_allowed(self, guild_id: int) -> bool:
        """Tell whether ``guild_id`` is allowed by configuration or by the allowlist."""
        if guild_id in self._settings.allowed_guilds:
            return True
        return await self._cached(
            ("guild", guild_id), lambda: self._store.is_guild_allowed(guild_id), bool
        )

    def _forget(self, key: object) -> None:
        self._cache.pop(key, None)

    # -- administration --------------------------------------------------------

    async def allow_guild(self, guild_id: int, *, actor: int) -> bool:
        """Allowlist ``guild_id`` and lift any ban on it; ``True`` if newly allowed."""
        check_snowflake(guild_id, what="a guild ID")
        now = self._clock.now()
        added = await self._store.allow_guild(guild_id, at=now)
        await self._store.lift_ban(guild_id, now=now)
        await self._store.clear_attempts(guild_id)
        self._forget(("guild", guild_id))
        await self._log.record(
            SecurityEventType.ALLOWLIST_CHANGED,
            guild_id=guild_id,
            details={"change": "allowed", "actor": self._actor(actor), "new": added},
        )
        return added

    async def remove_guild(self, guild_id: int, *, actor: int) -> bool:
        """Remove ``guild_id`` from the allowlist; ``True`` if it was there.

        A guild allowed by configuration stays allowed; change the settings.
        """
        check_snowflake(guild_id, what="a guild ID")
        removed = await self._store.remove_guild(guild_id)
        self._forget(("guild", guild_id))
        await self._log.record(
            SecurityEventType.ALLOWLIST_CHANGED,
            guild_id=guild_id,
            details={"change": "removed", "actor": self._actor(actor), "existed": removed},
        )
        return removed

    async def list_allowed_guilds(self) -> list[int]:
        """Return every allowed guild: configured and allowlisted, sorted."""
        stored = await self._store.list_allowed_guilds()
        return sorted(set(stored) | self._settings.allowed_guilds)

    async def unban(self, guild_id: int, *, actor: int) -> bool:
        """Lift the guild's ban and forget its attempts; ``True`` if there was an active ban.

        The attempts go too: otherwise the next attempt would count the old
        ones and ban the guild again at once.
        """
        check_snowflake(guild_id, what="a guild ID")
        lifted = await self._store.lift_ban(guild_id, now=self._clock.now())
        await self._store.clear_attempts(guild_id)
        if lifted:
            await self._log.record(
                SecurityEventType.BAN_LIFTED,
                guild_id=guild_id,
                details={"actor": self._actor(actor)},
            )
        return lifted

    async def list_bans(self) -> list[Ban]:
        """Return the active bans."""
        return await self._store.list_bans(now=self._clock.now())

    async def set_switch(
        self,
        switch: Switch,
        on: bool,
        *,
        reason: str | None,
        actor: int | None,
        duration: timedelta | None = None,
    ) -> SwitchState:
        """Turn a switch on or off for every process; logged as a security event."""
        now = self._clock.now()
        state = SwitchState(
            switch=switch,
            on=on,
            reason=reason if on else None,
            actor=self._actor(actor),
            changed_at=now,
            expires_at=now + duration if on and duration is not None else None,
        )
        await self._store.set_switch(state)
        self._forget(switch)
        await self._log.record(
            SecurityEventType[switch.name],  # each switch's event type has its name
            details={
                "on": on,
                "reason": reason,
                "actor": state.actor,
                "expires_at": state.expires_at,
            },
        )
        return state

    async def switch_state(self, switch: Switch) -> SwitchState:
        """Return a switch's current state, straight from the store."""
        self._forget(switch)
        return await self._switch(switch)

    def _actor(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        return self._log.pseudonymizer.pseudonymize(PseudonymKind.ADMIN, user_id)
