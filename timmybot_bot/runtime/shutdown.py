"""A graceful stop: refreshes in flight reach the vault before the process ends.

A provider rotates a refresh token when it answers; the rotated token
exists nowhere but in that answer until the vault write. A process that
exits with refreshes in flight loses them all, so on SIGTERM, SIGINT or
hikari's ``StoppingEvent``:

1. no refresh starts any more (:meth:`SecureTokenService.stop_refreshing`);
   a rotation run stops listing users;
2. the refreshes in flight finish, bounded by :func:`drain_budget` (two
   provider calls, for presets that retry once, plus the vault write);
3. only then are the HTTP session and the stores closed.

A second signal stops the process at once (exit status 128 + signal): the
operator asked twice. Claims of refreshes cut off that way stay in the
vault, where every other process treats their tokens as possibly spent.

The whole stop takes at most :func:`stop_budget`; supervisors must wait
longer than that before they kill (docs/operations.md: ECS ``stopTimeout``,
systemd ``TimeoutStopSec``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final

from timmybot_bot.runtime.bootstrap import VAULT_WRITE_BUDGET, Services
from timmybot_bot.runtime.settings import Settings

__all__ = [
    "CLOSE_BUDGET",
    "GracefulStop",
    "drain_budget",
    "drain_refreshes",
    "stop_budget",
    "stopping_then",
]

_log = logging.getLogger("timmybot")

#: Closing the stores, flushing exporters and the audit trail's final digest.
CLOSE_BUDGET: Final = timedelta(seconds=5)


def drain_budget(settings: Settings) -> timedelta:
    """How long a stop waits for refreshes in flight: two provider calls and a write."""
    return 2 * settings.oauth_timeout + VAULT_WRITE_BUDGET


def stop_budget(settings: Settings) -> timedelta:
    """Return the longest a graceful stop takes: the drain plus closing the stores."""
    return drain_budget(settings) + CLOSE_BUDGET


async def drain_refreshes(services: Services) -> tuple[int, int]:
    """Stop starting refreshes, wait for those in flight; return (finished, cut off).

    Idempotent: a second call finds nothing left in flight.
    """
    tokens = services.tokens
    tokens.stop_refreshing()
    running = tokens.in_flight
    budget = drain_budget(services.settings).total_seconds()
    finished, left = await tokens.drain(budget)
    if running or left:
        _log.warning(
            "stop: %d token refresh(es) in flight drained, %d cut off after %g s",
            finished,
            left,
            budget,
        )
    return finished, left


def stopping_then(
    services: Services, stop: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """Wrap the runtime's ``stop`` for hikari's ``StoppingEvent``.

    Refreshing stops first, then ``stop`` runs, then the refreshes in flight drain.
    """

    async def stopping() -> None:
        services.tokens.stop_refreshing()
        await stop()
        await drain_refreshes(services)

    return stopping


class GracefulStop:
    """Turns SIGTERM and SIGINT into a graceful stop, and a second one into an immediate exit."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._on_signal: Callable[[], None] | None = None
        self._services: Services | None = None

    def install(self, on_signal: Callable[[], None], services: Services | None = None) -> None:
        """Call ``on_signal`` on the first SIGTERM or SIGINT (and stop ``services`` refreshing)."""
        self._on_signal = on_signal
        self._services = services
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Not available off the main thread or on Windows: Ctrl-C then
            # raises KeyboardInterrupt, which main() turns into status 130.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.received, sig)

    def received(self, sig: signal.Signals) -> None:
        """Handle ``sig``: the first asks whatever runs to stop, the second exits at once."""
        if self.signal is not None:
            _log.warning("%s received again: stopping at once", sig.name)
            sys.stderr.flush()
            os._exit(128 + int(sig))
        _log.warning("%s received: shutting down (refreshes in flight are drained)", sig.name)
        self.signal = sig
        if self._services is not None:
            self._services.tokens.stop_refreshing()
        if self._on_signal is not None:
            self._on_signal()

    def uninstall(self) -> None:
        """Give the signals back to their default handlers."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    def status(self, otherwise: int) -> int:
        """Return the exit status: 0 after SIGTERM, 130 after SIGINT, else ``otherwise``."""
        if self.signal is None:
            return otherwise
        return 130 if self.signal is signal.SIGINT else 0
