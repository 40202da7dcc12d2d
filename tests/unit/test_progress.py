"""The operator CLI's progress indicator: drawn on terminals only, throttled, erased at the end."""

from __future__ import annotations

import asyncio
import io

import pytest

from timmybot_bot.cli import progress as progress_module
from timmybot_bot.cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_drawn_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("rekey", stream=stream, total=10) as bar:
        bar.update(5)
        bar.update(10)
    assert stream.getvalue() == ""
    assert not bar.enabled


def test_a_known_total_draws_a_bar_with_count_and_percentage() -> None:
    bar = Progress("rekey", stream=Terminal(), total=8, unit="records", width=8, clock=Clock())
    bar.update(2)
    assert bar.render() == "rekey [##......] 2/8 records  25%"
    bar.update(8)
    assert bar.render() == "rekey [########] 8/8 records 100%"


def test_redraws_are_throttled_but_the_last_one_is_always_drawn() -> None:
    stream, clock = Terminal(), Clock()
    bar = Progress("verify", stream=stream, total=3, clock=clock, width=3)
    bar.update(1)
    bar.update(2)  # same instant: skipped
    assert stream.getvalue() == "\rverify [#..] 1/3  33%"
    bar.update(3)  # finished: drawn at once
    assert stream.getvalue().endswith("\rverify [###] 3/3 100%")
    clock.now += 1
    bar.close()
    assert stream.getvalue().endswith("\r" + " " * len("verify [###] 3/3 100%") + "\r")


def test_without_a_total_it_spins_with_the_count_and_elapsed_time() -> None:
    clock = Clock()
    bar = Progress("rotating", stream=Terminal(), unit="users", clock=clock)
    clock.now += 12.4
    bar.update(7)
    first = bar.render()
    assert first == "rotating | 7 users 12s"
    bar.tick()
    assert bar.render() == "rotating / 7 users 12s"


def test_a_shorter_line_covers_the_longer_one_before_it() -> None:
    stream, clock = Terminal(), Clock()
    bar = Progress("x", stream=stream, clock=clock)
    bar.update(123456)
    clock.now += 1
    bar.update(1)
    last = stream.getvalue().rsplit("\r", 1)[1]
    assert last.startswith("x | 1 1s")
    assert len(last) == len("x | 123456 0s")


async def test_spinning_keeps_turning_while_the_body_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "_TICK_EVERY", 0.01)
    stream = Terminal()
    async with Progress("erasing", stream=stream).spinning():
        await asyncio.sleep(0.08)
    drawn = stream.getvalue()
    assert drawn.count("\rerasing ") >= 3
    assert drawn.endswith("\r")
    assert drawn.rsplit("\r", 2)[1].strip() == ""  # erased at the end
