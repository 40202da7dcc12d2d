"""SecurityAuditLogger: security events as one JSON object per log line.

IDs and IP addresses are pseudonymized before anything is written, and every
line is JSON with ``ensure_ascii``: a newline or control character typed by a
user becomes an escape sequence, so user input can never forge a log line.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.events import (
    DetailValue,
    SecurityEvent,
    SecurityEventType,
    bound_integer,
)
from timmybot_core.safety.pseudonymizer import Pseudonymizer, PseudonymKind
from timmybot_core.safety.text import collapse_whitespace, strip_invisible

__all__ = ["EventListener", "SecurityAuditLogger"]

EventListener = Callable[[SecurityEvent], Awaitable[None]]
"""Called with every recorded event (suspicion meter, alarm rules, audit sink)."""

_MAX_DETAIL_TEXT = 200
_MAX_DETAILS = 16

_internal = logging.getLogger("timmybot.security.internal")


def _clean_detail(value: object) -> DetailValue:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    text = collapse_whitespace(strip_invisible(str(value)))
    return text if len(text) <= _MAX_DETAIL_TEXT else text[: _MAX_DETAIL_TEXT - 1] + "…"


class SecurityAuditLogger:
    """Records security events: log line, recent-events buffer, listeners.

    Args:
        pseudonymizer: turns guild, user and IP identifiers into pseudonyms.
        clock: timestamps events.
        logger: where lines go (default ``timmybot.security``).
        recent: how many events the in-process buffer keeps for snapshots.
    """

    def __init__(
        self,
        *,
        pseudonymizer: Pseudonymizer,
        clock: Clock,
        logger: logging.Logger | None = None,
        recent: int = 500,
    ) -> None:
        self._pseudonymizer = pseudonymizer
        self._clock = clock
        self._logger = logger if logger is not None else logging.getLogger("timmybot.security")
        self._recent: deque[SecurityEvent] = deque(maxlen=recent)
        self._listeners: list[EventListener] = []

    @property
    def pseudonymizer(self) -> Pseudonymizer:
        """The pseudonymizer used for every identifier."""
        return self._pseudonymizer

    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener`` with every event recorded from now on."""
        self._listeners.append(listener)

    def recent(self, limit: int = 50) -> list[SecurityEvent]:
        """Return up to ``limit`` of the latest events of this process, newest first."""
        return list(reversed(self._recent))[: max(limit, 0)]

    async def record(
        self,
        event_type: SecurityEventType,
        *,
        guild_id: int | str | None = None,
        user_id: int | str | None = None,
        ip: str | None = None,
        details: Mapping[str, object] | None = None,
        level: int = logging.WARNING,
    ) -> SecurityEvent:
        """Pseudonymize, clean, log and publish one event; return it.

        ``details`` keys are the caller's (code, not user input); values are
        cleaned of control characters and cut to 200 characters.
        """
        cleaned = {
            # str() of an integer key past Python's digit limit raises.
            str(bound_integer(key) if isinstance(key, int) else key): _clean_detail(value)
            for key, value in list((details or {}).items())[:_MAX_DETAILS]
        }
        pseudo = self._pseudonymizer
        event = SecurityEvent(
            type=event_type,
            at=self._clock.now(),
            guild=pseudo.pseudonymize(PseudonymKind.GUILD, guild_id)
            if guild_id is not None
            else None,
            user=pseudo.pseudonymize(PseudonymKind.USER, user_id) if user_id is not None else None,
            ip=pseudo.pseudonymize(PseudonymKind.IP, ip) if ip is not None else None,
            details=cleaned,
        )
        self._recent.append(event)
        self._logger.log(level, self.format(event))
        for listener in list(self._listeners):
            try:
                await listener(event)
            except Exception:  # noqa: BLE001 - a listener must never break the caller
                _internal.exception("security event listener failed for %s", event.type.value)
        return event

    @staticmethod
    def format(event: SecurityEvent) -> str:
        """Return the event as one line of JSON (ASCII only, so always one line)."""
        return json.dumps(event.as_dict(), ensure_ascii=True, separators=(",", ":"), default=str)

    async def unauthorized_access(
        self, *, guild_id: int | None, user_id: int, command: str, reason: str, **extra: object
    ) -> SecurityEvent:
        """Record a denied command (the seed's ``UNAUTHORIZED_ACCESS``)."""
        return await self.record(
            SecurityEventType.UNAUTHORIZED_ACCESS,
            guild_id=guild_id,
            user_id=user_id,
            details={"command": command, "reason": reason, **extra},
        )

    async def authentication_attempt(
        self,
        *,
        user_id: int | None,
        platform: str,
        success: bool,
        reason: str | None = None,
        ip: str | None = None,
    ) -> SecurityEvent:
        """Record an OAuth link or refresh outcome (the seed's ``AUTHENTICATION_ATTEMPT``)."""
        return await self.record(
            SecurityEventType.AUTHENTICATION_ATTEMPT,
            user_id=user_id,
            ip=ip,
            details={"platform": platform, "success": success, "reason": reason},
            level=logging.INFO if success else logging.WARNING,
        )

    async def validation_rejected(
        self, *, guild_id: int | None, user_id: int, field: str, problem: str
    ) -> SecurityEvent:
        """Record input refused by the validator (the input itself is not logged)."""
        return await self.record(
            SecurityEventType.VALIDATION_REJECTED,
            guild_id=guild_id,
            user_id=user_id,
            details={"field": field, "problem": problem},
            level=logging.INFO,
        )
