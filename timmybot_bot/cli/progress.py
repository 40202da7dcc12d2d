"""A one-line progress indicator for the operator CLI (``timmybot-admin``).

It draws on standard error, and only when that is a terminal: piped output,
log files and CI stay free of carriage returns. With a known total it draws
a bar (``rekey [########..........] 40/100 records  40%``); without one, a
spinner with the count and the elapsed time, kept turning by
:meth:`Progress.spinning` while a call that reports nothing runs. The line is
erased when the work ends, so the summary that follows stands alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from types import TracebackType
from typing import Final, TextIO

__all__ = ["Progress", "is_terminal"]

_SPINNER: Final = "|/-\\"
_REDRAW_EVERY: Final = 0.1
_TICK_EVERY: Final = 0.2


class Progress:
    """Progress of one long operation, drawn on ``stream`` when ``enabled``.

    Args:
        label: what runs (``rekey``, ``verify``).
        stream: where to draw (standard error).
        enabled: draw at all; ``None`` means "when ``stream`` is a terminal".
        total: how many units there are, if known.
        unit: what is counted (``records``).
        width: the bar's width in characters.
        clock: seconds from an arbitrary start (tests pass a fake).

    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO,
        enabled: bool | None = None,
        total: int | None = None,
        unit: str = "",
        width: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._stream = stream
        self._enabled = is_terminal(stream) if enabled is None else enabled
        self._total = total
        self._unit = unit
        self._width = width
        self._clock = clock
        self._started = clock()
        self._done = 0
        self._drawn_at: float | None = None
        self._drawn_length = 0
        self._turns = 0

    @property
    def enabled(self) -> bool:
        """Whether anything is drawn."""
        return self._enabled

    def update(self, done: int, *, total: int | None = None) -> None:
        """Set the units done (and the total, if it became known); redraw if due."""
        self._done = done
        if total is not None:
            self._total = total
        self._draw()

    def advance(self, step: int = 1) -> None:
        """Count ``step`` more units done; redraw if due."""
        self.update(self._done + step)

    def tick(self) -> None:
        """Turn the spinner and redraw (nothing new was counted)."""
        self._turns += 1
        self._draw(force=True)

    def render(self) -> str:
        """Return the line as it would be drawn now."""
        unit = f" {self._unit}" if self._unit else ""
        if self._total is not None and self._total > 0:
            shown = min(self._done, self._total)
            filled = shown * self._width // self._total
            bar = "#" * filled + "." * (self._width - filled)
            percent = shown * 100 // self._total
            return f"{self._label} [{bar}] {shown}/{self._total}{unit} {percent:3d}%"
        elapsed = self._clock() - self._started
        spinner = _SPINNER[self._turns % len(_SPINNER)]
        count = f" {self._done}{unit}" if self._done or unit else ""
        return f"{self._label} {spinner}{count} {elapsed:.0f}s"

    def _draw(self, *, force: bool = False) -> None:
        if not self._enabled:
            return
        now = self._clock()
        finished = self._total is not None and self._done >= self._total
        recent = self._drawn_at is not None and now - self._drawn_at < _REDRAW_EVERY
        if recent and not force and not finished:
            return
        line = self.render()
        # Pad over the previous, possibly longer, line instead of relying on
        # an ANSI erase sequence that a dumb terminal would print.
        padding = " " * max(0, self._drawn_length - len(line))
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()
        self._drawn_at = now
        self._drawn_length = len(line)

    def close(self) -> None:
        """Erase the line, so that what is printed next starts clean."""
        if self._enabled and self._drawn_length:
            self._stream.write("\r" + " " * self._drawn_length + "\r")
            self._stream.flush()
        self._drawn_length = 0
        self._drawn_at = None

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @asynccontextmanager
    async def spinning(self) -> AsyncIterator[Progress]:
        """Keep the indicator moving while the body awaits something that reports nothing."""
        if not self._enabled:
            with self:
                yield self
            return

        async def turn() -> None:
            while True:
                await asyncio.sleep(_TICK_EVERY)
                self.tick()

        ticker = asyncio.create_task(turn())
        try:
            with self:
                yield self
        finally:
            ticker.cancel()
            with suppress(asyncio.CancelledError):
                await ticker


def is_terminal(stream: TextIO) -> bool:
    """Tell whether ``stream`` is a terminal (a closed or unusual stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
