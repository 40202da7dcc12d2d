"""Sleeping until a moment of a :class:`~timmybot_core.domain.clock.Clock`.

The scheduler never calls ``asyncio.sleep`` with a computed number of
seconds; it asks a :class:`Sleeper` to wake it at a moment of its clock.
:class:`ClockSleeper` does that for real clocks. :class:`FakeSleeper` pairs
with a :class:`~timmybot_core.domain.clock.FakeClock`: sleepers wake only when a
test moves the clock through it, so a test can run a day of schedules in
milliseconds, deterministically.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, runtime_checkable

from timmybot_core.domain.clock import Clock, FakeClock

__all__ = ["ClockSleeper", "FakeSleeper", "Sleeper"]


@runtime_checkable
class Sleeper(Protocol):
    """Suspends the calling task until its clock reaches a moment."""

    async def sleep_until(self, moment: datetime) -> None:
        """Return once the clock reads ``moment`` or later (at once if it already does)."""
        ...


class ClockSleeper:
    """Sleeps on the event loop until ``clock.now() >= moment``.

    It sleeps in slices of at most ``max_slice`` seconds and looks at the
    clock after each, so a wall clock that jumps (NTP, a suspended VM) is
    noticed within one slice instead of oversleeping by the jump.
    """

    def __init__(self, clock: Clock, *, max_slice: float = 30.0) -> None:
        if max_slice <= 0:
            raise ValueError("max_slice must be positive")
        self._clock = clock
        self._max_slice = max_slice

    def __repr__(self) -> str:
        return f"ClockSleeper({self._clock!r})"

    async def sleep_until(self, moment: datetime) -> None:
        """Return once the clock reads ``moment`` or later."""
        # Polling is the point: the clock, not the event loop, decides when
        # the moment has come.
        while (remaining := (moment - self._clock.now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(remaining, self._max_slice))


class FakeSleeper:
    """Sleeps that end when a test moves a :class:`FakeClock` through this object.

    ``sleep_until`` parks the caller; :meth:`wake_due` wakes every sleeper
    whose moment the clock has reached; :meth:`advance_to` walks the clock
    forward from one wake-up to the next, letting the woken tasks run in
    between, exactly as the real clock would.
    """

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._counter = itertools.count()
        self._waiting: list[tuple[datetime, int, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        return f"FakeSleeper({self._clock!r}, waiting={self.waiting})"

    async def sleep_until(self, moment: datetime) -> None:
        """Park until the clock is moved to ``moment`` or later."""
        if moment <= self._clock.now():
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (moment, next(self._counter), future))
        await future

    @property
    def waiting(self) -> int:
        """How many sleepers are parked (cancelled ones excluded)."""
        return sum(1 for _, _, future in self._waiting if not future.done())

    def next_deadline(self) -> datetime | None:
        """Return the earliest moment a parked sleeper waits for, or ``None``."""
        while self._waiting and self._waiting[0][2].done():
            heapq.heappop(self._waiting)  # cancelled while asleep
        return self._waiting[0][0] if self._waiting else None

    def wake_due(self) -> int:
        """Wake every sleeper whose moment the clock has reached; return how many."""
        woken = 0
        now = self._clock.now()
        while self._waiting and self._waiting[0][0] <= now:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
                woken += 1
        return woken

    async def advance_to(
        self, target: datetime, *, settled: Callable[[], bool], patience: float = 10.0
    ) -> None:
        """Move the clock to ``target``, stopping at every wake-up on the way.

        Before each step, and at the end, waits (in real time) until
        ``settled()`` is true: the code under test has finished what the
        last wake-up started and is asleep again. Real time passes
        meanwhile so that work on other threads (SQLite) completes; the
        fake clock does not move. ``patience`` is the real time, in
        seconds, to wait for that each time.
        """
        await self.settle(settled, patience=patience)
        while (deadline := self.next_deadline()) is not None and deadline <= target:
            if deadline > self._clock.now():
                self._clock.set(deadline)
            self.wake_due()
            await self.settle(settled, patience=patience)
        if target > self._clock.now():
            self._clock.set(target)
        self.wake_due()
        await self.settle(settled, patience=patience)

    @staticmethod
    async def settle(settled: Callable[[], bool], *, patience: float = 10.0) -> None:
        """Wait in real time until ``settled()`` is true; ``TimeoutError`` after ``patience`` s."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + patience
        await asyncio.sleep(0)
        while not settled():
            if loop.time() > give_up:
                raise TimeoutError(f"not settled after {patience} s")
            await asyncio.sleep(0.001)
