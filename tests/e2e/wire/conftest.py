"""A bot process against the Discord stand-in: start it, read its log, stop it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import attrs
import pytest

from tests.e2e.discord import payloads
from tests.e2e.wire.discord_standin import DiscordStandIn

ROOT = Path(__file__).resolve().parents[3]
ALLOWED_GUILD = 222_222_222_222_222_222
STRANGER_GUILD = 333_333_333_333_333_333
USER = 444_444_444_444_444_444


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_environment(discord: DiscordStandIn, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TIMMYBOT_", "DISCORD_"))
    }
    env.update(
        DISCORD_TOKEN=discord.token,
        TIMMYBOT_TEST_DISCORD_API_URL=discord.api_url,
        TIMMYBOT_DATA_DIR=str(data_dir),
        TIMMYBOT_ALLOWED_GUILDS=str(ALLOWED_GUILD),
        TIMMYBOT_WEB_HOST="127.0.0.1",
        TIMMYBOT_WEB_PORT=str(free_port()),
        TIMMYBOT_LOG_LEVEL="INFO",
        # A configured platform gives /link an authorization URL to answer with
        # (built locally: nothing is sent to Spotify).
        TIMMYBOT_SPOTIFY_CLIENT_ID="wire-test-client",
    )
    env.update(extra)
    return env


@attrs.define
class BotProcess:
    """A real bot process; its output goes to files so no pipe can fill up."""

    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self, sig: signal.Signals = signal.SIGTERM, *, within: float = 30) -> int:
        """Send ``sig`` and wait for the exit status."""
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), within)

    async def wait(self, *, within: float = 30) -> int:
        return await asyncio.wait_for(self.process.wait(), within)


async def start_process(
    args: Sequence[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> BotProcess:
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
    return BotProcess(process=process, log=log)


@pytest.fixture
async def discord() -> AsyncIterator[DiscordStandIn]:
    async with DiscordStandIn() as standin:
        yield standin


@pytest.fixture
async def timmybot(discord: DiscordStandIn, tmp_path: Path) -> AsyncIterator[BotProcess]:
    """``python -m timmybot_bot`` with a DISCORD_TOKEN, connected and its commands synced."""
    bot = await start_process(
        [sys.executable, "-m", "timmybot_bot"],
        bot_environment(discord, tmp_path / "var"),
        tmp_path / "bot.log",
    )
    try:
        await discord.wait_for(
            lambda: discord.live is not None or bot.process.returncode is not None,
            "the bot to connect",
            within=60,
        )
        assert bot.process.returncode is None, bot.output()
        await discord.wait_for(lambda: None in discord.commands, "the command sync", within=30)
        yield bot
    finally:
        if bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()


def slash(name: str, *options: dict[str, object], guild: int | None = ALLOWED_GUILD) -> dict:
    """A slash command interaction as Discord dispatches it."""
    return payloads.command(name, *options, user_id=USER, guild_id=guild)
