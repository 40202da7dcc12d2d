"""Alarm rules that raise incidents automatically, mirroring the seed's CloudWatch alarms.

- ``UnauthorizedAccess``: unauthorized attempts from more than 10 guilds (in
  direct messages: users) in 5 minutes; each counts once, however many it makes.
- ``AuthFailures``: more than 20 authentication failures in 15 minutes.
- ``RateLimitFailures``: more than 5 failures of the rate-limit store in 5
  minutes (the seed's P2 "rate limiting failure"). Members hammering a
  command raise no rule: they feed the suspicion meter only.

The rules count what nothing has handled yet. A guild's attempts stop
counting once it is banned (the ban and its alert already answer them), and
denials caused by a ban or by the kill switch never count: one guild
spamming a command is a ban, not an incident; many guilds at once is.

Each rule fires once per episode: after firing it stays quiet for one
window, so an attack raises one incident, not one per event. The counts are
this process's; with several shards, the CloudWatch alarms of the AWS
deployment see the raw sum.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.events import SecurityEvent, SecurityEventType
from timmybot_core.ports.alerts import Severity
from timmybot_core.services.incidents import Incident, IncidentReport, IncidentResponseService
from timmybot_core.services.suspicion import is_auth_failure

__all__ = ["DEFAULT_RULES", "AlarmMonitor", "AlarmRule"]


_UNHANDLED_DENIALS = frozenset({"not_allowlisted", "direct_message", "not_owner"})


def _is_unauthorized(event: SecurityEvent) -> bool:
    return (
        event.type is SecurityEventType.UNAUTHORIZED_ACCESS
        and event.details.get("reason") in _UNHANDLED_DENIALS
    )


def _source(event: SecurityEvent) -> str:
    # A guild, or for a direct message the user; user pseudonyms are marked
    # so that they can never equal a guild's.
    return event.guild if event.guild is not None else f"dm:{event.user}"


def _banned_guild(event: SecurityEvent) -> str | None:
    return event.guild if event.type is SecurityEventType.BAN_PLACED else None


def _is_rate_limit_failure(event: SecurityEvent) -> bool:
    return (
        event.type is SecurityEventType.STORE_UNAVAILABLE
        and event.details.get("store") == "rate_limits"
    )


def _never(event: SecurityEvent) -> str | None:
    return None


@attrs.frozen(kw_only=True)
class AlarmRule:
    """Raise an incident when more than ``threshold`` matching events occur within ``window``.

    ``handled`` names a guild pseudonym whose counted events an event
    settles (a ban settles that guild's attempts). With ``source``, the rule
    counts distinct sources instead of events (the guild an event came from,
    say): each source counts once within ``window`` however many events it
    sends, so one source alone never trips the rule.
    """

    name: str
    matches: Callable[[SecurityEvent], bool]
    threshold: int
    window: timedelta
    title: str
    severity: Severity = Severity.P1
    handled: Callable[[SecurityEvent], str | None] = _never
    source: Callable[[SecurityEvent], str] | None = None


DEFAULT_RULES: tuple[AlarmRule, ...] = (
    AlarmRule(
        name="UnauthorizedAccess",
        matches=_is_unauthorized,
        handled=_banned_guild,
        source=_source,
        threshold=10,
        window=timedelta(minutes=5),
        title="Surge of unauthorized access attempts",
    ),
    AlarmRule(
        name="AuthFailures",
        matches=is_auth_failure,
        threshold=20,
        window=timedelta(minutes=15),
        title="Surge of authentication failures",
    ),
    AlarmRule(
        name="RateLimitFailures",
        matches=_is_rate_limit_failure,
        threshold=5,
        window=timedelta(minutes=5),
        title="Rate limiting failure",
        severity=Severity.P2,
    ),
)


@attrs.define
class _RuleState:
    seen: deque[tuple[datetime, str | None]]
    #: For a rule counting sources: each source's latest event, oldest first.
    sources: dict[str, datetime] = attrs.field(factory=dict)
    quiet_until: datetime | None = None


class AlarmMonitor:
    """Listens to security events and raises incidents when a rule trips."""

    def __init__(
        self,
        incidents: IncidentResponseService,
        clock: Clock,
        rules: tuple[AlarmRule, ...] = DEFAULT_RULES,
    ) -> None:
        self._incidents = incidents
        self._clock = clock
        self._rules = rules
        self._state = {
            rule.name: _RuleState(seen=deque(maxlen=rule.threshold + 1)) for rule in rules
        }
        # The latest reports, for diagnostics; bounded like everything kept
        # in process memory.
        self.raised: deque[IncidentReport] = deque(maxlen=50)

    async def on_event(self, event: SecurityEvent) -> None:
        """Count ``event`` against every rule it matches (a SecurityAuditLogger listener)."""
        for rule in self._rules:
            settled = rule.handled(event)
            if settled is not None:
                state = self._state[rule.name]
                state.seen = deque((e for e in state.seen if e[1] != settled), state.seen.maxlen)
                state.sources.pop(settled, None)
            if rule.matches(event):
                await self._count(rule, event)

    async def _count(self, rule: AlarmRule, event: SecurityEvent) -> None:
        state = self._state[rule.name]
        now = self._clock.now()

        def recent(at: datetime) -> bool:
            # An event stamped after now was seen before the clock jumped
            # back: how old it really is cannot be told, so it stops counting.
            return now - rule.window < at <= now

        if rule.source is None:
            state.seen.append((event.at, event.guild))
            count = sum(recent(at) for at, _ in state.seen)
        else:
            key = rule.source(event)
            state.sources.pop(key, None)
            state.sources[key] = event.at
            for stale in [name for name, at in state.sources.items() if not recent(at)]:
                del state.sources[stale]
            # Bounded: more than threshold + 1 sources only matter as "more".
            while len(state.sources) > rule.threshold + 1:
                del state.sources[next(iter(state.sources))]
            count = len(state.sources)
        # Quiet from the firing for one window; a clock set back before the
        # firing ends it, or a jump of an hour would silence the rule an hour.
        quiet = state.quiet_until
        if quiet is not None and quiet - rule.window <= now < quiet:
            return
        if count <= rule.threshold:
            return
        state.quiet_until = now + rule.window
        report = await self._incidents.handle(
            Incident(
                severity=rule.severity,
                title=rule.title,
                description=f"alarm {rule.name}: more than {rule.threshold} in {rule.window}",
                source=f"alarm:{rule.name}",
            )
        )
        self.raised.append(report)
