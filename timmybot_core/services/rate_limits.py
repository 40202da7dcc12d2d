"""RateLimiter: how often a member may run commands, counted in a store every shard shares.

One :meth:`RateLimiter.check` asks three sliding windows in turn: the member
on this command, the member across commands, and the guild (none in a
direct message). A request is allowed only if all three have room; when one
refuses, the hits the others counted are given back, so a refused request
costs the member nothing, and the answer is the longest wait of the keys
that refused. Commands that spend a provider's quota (``/search``,
``/link``: Spotify counts its limit per application) have a stricter
per-command window.

Who is exempt (owners, the local operator) is the caller's business: the
application layer knows them. Keys name the member and the guild by their
pseudonyms (the security log's keyed pseudonymizer, the same in every
process of one deployment), so the store never holds a Discord ID.

What a refusal leaves behind:

- the security log gets one ``REQUESTS_REFUSED`` line per key and refusal
  window with the count (the shared :class:`RefusalLedger`), never one line
  per refusal;
- :attr:`RateVerdict.first` is true for the first refusal of an episode
  only (until the wait it announced has passed), so the member is told once;
- a member refused ``hammering`` times in one refusal window is reported
  once as ``RATE_LIMIT_ABUSE``, which feeds the suspicious-activity gauge
  and no alarm rule: hammering is never an incident by itself.

A store failure (:class:`StoreUnavailable`) is the seed's P2 "rate limiting
failure": logged, counted (``timmybot.security.rate_limit_failures``), and
recorded as ``STORE_UNAVAILABLE`` with ``store=rate_limits``, which the
``RateLimitFailures`` alarm rule turns into an incident when it persists.
The request then passes (fail open: read-only commands by default) or the
error propagates (fail closed: commands that spend provider quota), unless
another of its windows answered that it is full: then it is refused.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Final

import attrs

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.domain.events import SecurityEventType
from timmybot_core.ports.metrics import SecurityMetrics
from timmybot_core.ports.rate_limits import RateDecision, RateLimit, RateLimitStore
from timmybot_core.safety.pseudonymizer import PseudonymKind
from timmybot_core.services.refusals import RefusalLedger
from timmybot_core.services.security_log import SecurityAuditLogger

__all__ = ["RateLimitSettings", "RateLimiter", "RateVerdict"]

_log = logging.getLogger("timmybot.access")

_NAME: Final = re.compile(r"^[a-z0-9_-]{1,32}$")
# Episodes remembered at most (who was already told); the oldest are dropped.
_MAX_TOLD: Final = 10_000
# Names in a command's path at most: command, group, subcommand.
_MAX_DEPTH: Final = 3


def _one_name(name: str) -> str:
    # Keys are short ASCII; a host bot's command may be named in any script.
    # fullmatch: ``$`` in match() would also accept a name ending in a newline.
    if _NAME.fullmatch(name):
        return name
    return "h" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def _name_part(command: str) -> str:
    # A subcommand's full path ("music search") is a window of its own: keyed
    # by the root alone, a group's read-only and quota-spending subcommands
    # shared one window, judged by whichever rate wrote it last. Each name is
    # kept or hashed on its own and joined by ".", which no name holds;
    # Discord nests three deep at most, so the part stays under 100 characters.
    names = command.split(" ")
    if len(names) > _MAX_DEPTH:
        return _one_name(command)
    return ".".join(_one_name(name) for name in names)


_PER_COMMAND: Final = RateLimit(limit=5, window=10)
_PER_QUOTA_COMMAND: Final = RateLimit(limit=3, window=30)
_PER_USER: Final = RateLimit(limit=20, window=60)
_PER_GUILD: Final = RateLimit(limit=120, window=60)


@attrs.frozen(kw_only=True)
class RateLimitSettings:
    """The windows and failure modes (defaults as in docs/access-control.md).

    Attributes:
        command: one member on one command.
        quota_command: one member on one command that spends provider quota.
        user: one member across every command.
        guild: every member of one guild together.
        fail_open: read-only commands pass when the store fails.
        quota_fail_open: commands that spend provider quota pass when the store fails.
        hammering: refusals of one key within one refusal window that report
            the member as suspicious activity.
    """

    command: RateLimit = _PER_COMMAND
    quota_command: RateLimit = _PER_QUOTA_COMMAND
    user: RateLimit = _PER_USER
    guild: RateLimit = _PER_GUILD
    fail_open: bool = True
    quota_fail_open: bool = False
    hammering: int = 30


@attrs.frozen(kw_only=True)
class RateVerdict:
    """What :meth:`RateLimiter.check` decided.

    Attributes:
        allowed: the request may run.
        retry_after: seconds until it would be allowed (the longest wait), 0 if allowed.
        scope: what refused: ``command``, ``user`` or ``guild`` (``None`` if allowed).
        rate: the refusing window's limit (``None`` if allowed).
        first: the first refusal of this episode (tell the member); later ones are quiet.
        degraded: allowed because the store failed and the command fails open.
    """

    allowed: bool
    retry_after: float = 0.0
    scope: str | None = None
    rate: RateLimit | None = None
    first: bool = True
    degraded: bool = False


_ALLOWED: Final = RateVerdict(allowed=True)


class RateLimiter:
    """Per-member, per-command and per-guild limits over a shared :class:`RateLimitStore`.

    Args:
        store: the sliding-window counters (memory, SQLite, DynamoDB).
        clock: the hits' moments (wall clock, shared by every process).
        security_log: where store failures and hammering go.
        metrics: counts store failures.
        refusals: aggregates refusals into one record per key and window.
        settings: the windows and failure modes.
    """

    def __init__(
        self,
        *,
        store: RateLimitStore,
        clock: Clock,
        security_log: SecurityAuditLogger,
        metrics: SecurityMetrics,
        refusals: RefusalLedger,
        settings: RateLimitSettings | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._log = security_log
        self._metrics = metrics
        self._refusals = refusals
        self._settings = settings if settings is not None else RateLimitSettings()
        # key -> moment until which its refusal was told (insertion ordered).
        self._told: dict[str, float] = {}

    @property
    def settings(self) -> RateLimitSettings:
        """The limiter's windows and failure modes."""
        return self._settings

    def keys(
        self, *, user_id: int, guild_id: int | None, command: str, spends_quota: bool = False
    ) -> list[tuple[str, str, RateLimit]]:
        """Return ``(scope, key, rate)`` of each window a request is counted in, in order."""
        settings, pseudonyms = self._settings, self._log.pseudonymizer
        per_command = settings.quota_command if spends_quota else settings.command
        user = pseudonyms.pseudonymize(PseudonymKind.USER, user_id)
        keys = [
            ("command", f"cmd:{_name_part(command)}:{user}", per_command),
            ("user", f"user:{user}", settings.user),
        ]
        if guild_id is not None:
            guild = pseudonyms.pseudonymize(PseudonymKind.GUILD, guild_id)
            keys.append(("guild", f"guild:{guild}", settings.guild))
        return keys

    async def check(
        self, *, user_id: int, guild_id: int | None, command: str, spends_quota: bool = False
    ) -> RateVerdict:
        """Count one request of ``user_id`` running ``command`` in ``guild_id`` (``None``: a DM).

        ``command`` is the command's name or, for a subcommand, its full
        path as lightbulb's ``qualified_name`` spells it (``"music search"``):
        each path has a window of its own.

        Raises:
            StoreUnavailable: the store failed, no window refused, and the
                command fails closed.
        """
        now = self._clock.now().timestamp()
        held: list[tuple[str, str]] = []
        refused: list[tuple[str, str, RateLimit, RateDecision]] = []
        try:
            for scope, key, rate in self.keys(
                user_id=user_id, guild_id=guild_id, command=command, spends_quota=spends_quota
            ):
                decision = await self._store.acquire(key, rate, now=now)
                if decision.allowed and decision.hit_id is not None:
                    held.append((key, decision.hit_id))
                elif not decision.allowed:
                    refused.append((scope, key, rate, decision))
            if not refused:
                return _ALLOWED
            await self._release(held)
        except StoreUnavailable:
            await self._release(held)
            fail_open = self._settings.quota_fail_open if spends_quota else self._settings.fail_open
            await self._failed(guild_id, user_id, command, fail_open)
            # A window that answered "full" still refuses: the fail mode
            # covers the answers the store could not give, not this one.
            if not refused:
                if not fail_open:
                    raise
                return RateVerdict(allowed=True, degraded=True)
        scope, key, rate, decision = max(refused, key=lambda item: item[3].retry_after)
        reason = f"command:{_name_part(command)}" if scope == "command" else scope
        verdict = await self._refused(key, reason, decision.retry_after, now, guild_id, user_id)
        return attrs.evolve(verdict, scope=scope, rate=rate)

    async def _release(self, held: list[tuple[str, str]]) -> None:
        for key, hit_id in held:
            try:
                await self._store.release(key, hit_id)
            except StoreUnavailable:
                # The hit stays counted until its window ends: strict, not lax.
                _log.warning("rate-limit store unavailable; a hit was not given back")

    async def _failed(
        self, guild_id: int | None, user_id: int, command: str, fail_open: bool
    ) -> None:
        _log.error("rate-limit store unavailable, failing %s", "open" if fail_open else "closed")
        self._metrics.record_rate_limit_failure()
        await self._log.record(
            SecurityEventType.STORE_UNAVAILABLE,
            guild_id=guild_id,
            user_id=user_id,
            details={
                "command": command,
                "store": "rate_limits",
                "fail": "open" if fail_open else "closed",
            },
            level=logging.ERROR,
        )

    async def _refused(
        self,
        key: str,
        reason: str,
        retry_after: float,
        now: float,
        guild_id: int | None,
        user_id: int,
    ) -> RateVerdict:
        # A guild's refusals are the guild's: aggregated without the member.
        member = None if reason == "guild" else user_id
        count = await self._refusals.refuse(
            source="rate_limit", reason=reason, guild_id=guild_id, user_id=member
        )
        if member is not None and count == self._settings.hammering:
            await self._log.record(
                SecurityEventType.RATE_LIMIT_ABUSE,
                guild_id=guild_id,
                user_id=member,
                details={
                    "reason": reason,
                    "count": count,
                    "window_seconds": int(self._refusals.window.total_seconds()),
                },
            )
        first = self._told.get(key, 0.0) <= now
        if first:
            self._told.pop(key, None)
            self._told[key] = now + retry_after
            if len(self._told) > _MAX_TOLD:
                # Drop what has expired, else the oldest: the cost is one more reply.
                self._told = {k: t for k, t in self._told.items() if t > now}
                while len(self._told) > _MAX_TOLD:
                    del self._told[next(iter(self._told))]
        return RateVerdict(allowed=False, retry_after=retry_after, first=first)
