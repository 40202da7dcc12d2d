"""The runtime beside the commands: web server and scheduler, and how the Discord bot drives them."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

import timmybot_bot.discord as discord_layer
import timmybot_bot.runtime.main as entry
from timmybot_bot.runtime.background import Runtime, WebServerUnavailable
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_bot.runtime.scheduler import JOB_CLEANUP, JOB_ROTATION
from timmybot_bot.runtime.shutdown import GracefulStop
from timmybot_bot.runtime.timers import FakeSleeper
from timmybot_core.domain.clock import FakeClock

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    built = bootstrap(
        Settings(backend="sqlite", data_dir=tmp_path / "var", web_port=free_port()),
        clock=FakeClock(START),
    )
    await built.open()
    yield built
    await built.aclose()


async def live(base_url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/healthz/live") as response:
        return response.status


async def test_the_runtime_serves_http_and_runs_the_daily_jobs(services: Services) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    sleeper = FakeSleeper(clock)
    runtime = Runtime(services, sleeper=sleeper, holder="test-process")
    await runtime.start()
    try:
        assert runtime.web is not None
        assert await live(runtime.web.base_url) == 200
        assert [job.name for job in runtime.scheduler.jobs] == [JOB_ROTATION, JOB_CLEANUP]
        await sleeper.advance_to(START + timedelta(days=1), settled=runtime.scheduler.settled)
        ran = [
            (run.job, run.scheduled_for.hour, run.outcome.value)
            for run in runtime.scheduler.history
        ]
        assert ran == [(JOB_ROTATION, 2, "ran"), (JOB_CLEANUP, 3, "ran")]
        # The reports are the services' own: the rotation's counts, the clean-up's.
        reports = {run.job: run.report for run in runtime.scheduler.history}
        assert reports[JOB_ROTATION] is not None and reports[JOB_ROTATION]["users"] == 0
        assert reports[JOB_CLEANUP] is not None and "link_states" in reports[JOB_CLEANUP]
        assert await services.access_store.last_job_run(JOB_ROTATION) == datetime(
            2026, 3, 2, 2, 0, tzinfo=UTC
        )
    finally:
        await runtime.stop()
    assert runtime.web is None
    assert not runtime.scheduler.running


async def test_a_busy_port_stops_a_runtime_that_needs_its_web_server(services: Services) -> None:
    with socket.socket() as taken:
        taken.bind((services.settings.web_host, services.settings.web_port))
        taken.listen()
        runtime = Runtime(services, web_required=True)
        with pytest.raises(WebServerUnavailable, match=f"port|:{services.settings.web_port}"):
            await runtime.start()
        assert not runtime.scheduler.running

        console = Runtime(services, web_required=False)
        await console.start()
        try:
            assert console.web is None
            assert console.scheduler.running
        finally:
            await console.stop()


class FakeDiscordBot:
    """Stands in for ``timmybot_bot.discord.DiscordBot`` at its documented boundary.

    ``run()`` calls ``on_starting`` (hikari's StartingEvent), serves until
    ``close()``, then calls ``on_stopping`` (StoppingEvent).
    """

    def __init__(
        self,
        services: Services,
        *,
        on_starting: Callable[[], Awaitable[None]],
        on_stopping: Callable[[], Awaitable[None]],
    ) -> None:
        self.services = services
        self.on_starting = on_starting
        self.on_stopping = on_stopping
        self.closed = asyncio.Event()
        self.started = asyncio.Event()

    async def run(self) -> None:
        await self.on_starting()
        self.started.set()
        try:
            await self.closed.wait()
        finally:
            await self.on_stopping()

    async def close(self) -> None:
        self.closed.set()


async def test_the_discord_bot_starts_and_stops_the_runtime_on_its_events(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    bots: list[FakeDiscordBot] = []
    built = asyncio.Event()

    def build(services: Services, **hooks: Callable[[], Awaitable[None]]) -> FakeDiscordBot:
        bots.append(FakeDiscordBot(services, **hooks))  # type: ignore[arg-type]
        built.set()
        return bots[-1]

    monkeypatch.setattr(discord_layer, "build_discord_bot", build)
    shutdown = GracefulStop()
    running = asyncio.create_task(entry._run_discord(services, shutdown))
    try:
        await asyncio.wait_for(built.wait(), timeout=10)
        await asyncio.wait_for(bots[0].started.wait(), timeout=10)
        base = f"http://127.0.0.1:{services.settings.web_port}"
        assert await live(base) == 200
        assert bots[0].services is services
        # What SIGTERM does: the bot closes, and on_stopping stops the runtime.
        shutdown.received(signal.SIGTERM)
        assert await asyncio.wait_for(running, timeout=10) == 0
        assert bots[0].closed.is_set()
        assert services.tokens.stopping  # no refresh starts after the signal
        with pytest.raises(aiohttp.ClientConnectionError):
            await live(base)
    finally:
        shutdown.uninstall()
        running.cancel()
