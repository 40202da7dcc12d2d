"""RefusalLedger: refusals nobody authenticated, counted and recorded once per window.

Anyone on the internet can send ``GET /oauth/callback?state=<made up>``, and
an already banned guild can keep typing commands. Recording each of these as
its own security event gave a stranger two levers: one audit row per request
(kept a year), and, when they counted as authentication failures, the
``AuthFailures`` alarm with its P1 lockdown.

So such refusals are tallied here by ``(source, reason, guild, user)`` and written
as **one** ``REQUESTS_REFUSED`` event per key and window, carrying the count
and the first and last time. That event type feeds neither the alarm rules
nor the suspicion meter: only failures tied to a real pending link or a real
token exchange count as authentication failures.

A window's record is written when the next refusal arrives after the window
ended, or when :meth:`flush_due` (the web server calls it every few seconds)
or :meth:`flush` (on shutdown) runs. The number of open keys is bounded:
beyond ``max_keys``, new guilds and users are folded into one key without them.

The command rate limiter aggregates its refusals here too (source
``rate_limit``): a member hammering a command is one line per window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.events import SecurityEventType
from timmybot_core.services.security_log import SecurityAuditLogger

__all__ = ["REFUSAL_WINDOW", "RefusalLedger"]

REFUSAL_WINDOW = timedelta(minutes=5)

_Key = tuple[str, str, int | None, int | None, str | None]


@attrs.define(kw_only=True)
class _Tally:
    first_at: datetime
    last_at: datetime
    count: int = 0


class RefusalLedger:
    """Aggregates unauthenticated refusals into one security event per key and window.

    Args:
        security_log: where the aggregated ``REQUESTS_REFUSED`` events go.
        clock: decides windows.
        window: how long one record's count runs (5 minutes).
        max_keys: open keys kept at most; further guilds share one key.
    """

    def __init__(
        self,
        *,
        security_log: SecurityAuditLogger,
        clock: Clock,
        window: timedelta = REFUSAL_WINDOW,
        max_keys: int = 1000,
    ) -> None:
        if window <= timedelta(0) or max_keys < 1:
            raise ValueError("a refusal window must be positive and max_keys at least 1")
        self._log = security_log
        self._clock = clock
        self._window = window
        self._max_keys = max_keys
        self._open: dict[_Key, _Tally] = {}

    @property
    def window(self) -> timedelta:
        """How long one record's count runs."""
        return self._window

    def pending(self) -> int:
        """How many refusals are counted but not yet recorded."""
        return sum(tally.count for tally in self._open.values())

    async def refuse(
        self,
        *,
        source: str,
        reason: str,
        guild_id: int | None = None,
        user_id: int | None = None,
        platform: str | None = None,
    ) -> int:
        """Count one refusal; record the windows that have ended; return the key's count so far.

        ``source`` and ``reason`` are the caller's fixed names (code, not
        input); ``platform`` must be a configured platform's name or ``None``.
        """
        # Ended windows are written first, so this refusal opens a new one.
        await self.flush_due()
        now = self._clock.now()
        key: _Key = (source, reason, guild_id, user_id, platform)
        if key not in self._open and len(self._open) >= self._max_keys:
            key = (source, reason, None, None, platform)
        tally = self._open.get(key)
        if tally is None:
            tally = self._open[key] = _Tally(first_at=now, last_at=now)
        tally.count += 1
        tally.last_at = max(tally.last_at, now)
        return tally.count

    async def flush_due(self) -> int:
        """Record every window that has ended; return how many records were written."""
        horizon = self._clock.now() - self._window
        return await self._flush(lambda tally: tally.first_at <= horizon)

    async def flush(self) -> int:
        """Record every open window now (shutdown); return how many records were written."""
        return await self._flush(lambda _: True)

    async def _flush(self, due: Callable[[_Tally], bool]) -> int:
        # Taken out before the first await: a concurrent refusal opens a new
        # window rather than adding to one being written.
        ready = [(key, tally) for key, tally in self._open.items() if due(tally)]
        for key, _ in ready:
            del self._open[key]
        for (source, reason, guild_id, user_id, platform), tally in ready:
            await self._log.record(
                SecurityEventType.REQUESTS_REFUSED,
                guild_id=guild_id,
                user_id=user_id,
                details={
                    "source": source,
                    "reason": reason,
                    "platform": platform,
                    "count": tally.count,
                    "first_at": tally.first_at,
                    "last_at": tally.last_at,
                    "window_seconds": int(self._window.total_seconds()),
                },
                level=logging.INFO,
            )
        return len(ready)
