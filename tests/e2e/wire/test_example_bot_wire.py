"""The example bot (examples/guarded_bot.py) as a real process over the wire.

It uses only the public integration: its own /whoami (named like a TimmyBot
command) is guarded, its /ping is exempt because the bot says so, and our
messages carry its name.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.wire.conftest import (
    ROOT,
    STRANGER_GUILD,
    BotProcess,
    bot_environment,
    slash,
    start_process,
)
from tests.e2e.wire.discord_standin import DiscordStandIn

pytestmark = pytest.mark.discord_wire


@pytest.fixture
async def juke(discord: DiscordStandIn, tmp_path: Path) -> AsyncIterator[BotProcess]:
    bot = await start_process(
        [sys.executable, str(ROOT / "examples" / "guarded_bot.py")],
        bot_environment(discord, tmp_path / "var"),
        tmp_path / "juke.log",
        cwd=tmp_path,
    )
    try:
        await discord.wait_for(
            lambda: None in discord.commands or bot.process.returncode is not None,
            "the example bot's command sync",
            within=60,
        )
        assert bot.process.returncode is None, bot.output()
        yield bot
    finally:
        if bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()


async def test_the_example_bot_syncs_its_own_commands_only(
    discord: DiscordStandIn, juke: BotProcess
) -> None:
    assert sorted(command["name"] for command in discord.commands[None]) == ["ping", "whoami"]
    assert discord.unexpected == []


@pytest.mark.parametrize("guild", [STRANGER_GUILD, None], ids=["stranger-guild", "dm"])
async def test_its_whoami_is_guarded_in_its_name(
    discord: DiscordStandIn, juke: BotProcess, guild: int | None
) -> None:
    (reply,) = await discord.dispatch_interaction(slash("whoami", guild=guild))
    assert reply.ephemeral
    assert (reply.content or "").startswith("Denied: ")
    assert "Juke" in (reply.content or "")
    assert "TimmyBot" not in (reply.content or "")


async def test_its_whoami_reads_the_vault_where_allowed(
    discord: DiscordStandIn, juke: BotProcess
) -> None:
    (reply,) = await discord.dispatch_interaction(slash("whoami"))
    assert reply.content == "Juke keeps your links to: nothing."
    assert reply.ephemeral


@pytest.mark.parametrize("guild", [STRANGER_GUILD, None, 222_222_222_222_222_222])
async def test_its_exempt_ping_answers_anywhere(
    discord: DiscordStandIn, juke: BotProcess, guild: int | None
) -> None:
    (reply,) = await discord.dispatch_interaction(slash("ping", guild=guild))
    assert reply.content == "pong"


async def test_mentions_are_disabled_and_sigterm_stops_it_cleanly(
    discord: DiscordStandIn, juke: BotProcess, tmp_path: Path
) -> None:
    await discord.dispatch_interaction(slash("ping"))
    await discord.dispatch_interaction(slash("whoami"))
    await discord.dispatch_interaction(slash("whoami", guild=STRANGER_GUILD))
    for sent in discord.messages():
        assert sent.message.get("allowed_mentions") == {"parse": []}, sent
    status = await juke.stop(signal.SIGTERM)
    output = juke.output()
    assert status == 0, output
    assert "Traceback" not in output
    await discord.wait_for(lambda: discord.close_codes, "the gateway to close")
    assert discord.close_codes == [1001]
    # The audit trail closed with a signed digest of what /whoami recorded.
    assert "audit digest 1" in output


async def test_it_takes_its_token_from_timmybot_discord_token_too(
    discord: DiscordStandIn, tmp_path: Path
) -> None:
    # The token is one of TimmyBot's settings: its second name, or the TOML
    # file's discord_token, starts the bot as DISCORD_TOKEN does.
    env = bot_environment(discord, tmp_path / "var")
    env["TIMMYBOT_DISCORD_TOKEN"] = env.pop("DISCORD_TOKEN")
    bot = await start_process(
        [sys.executable, str(ROOT / "examples" / "guarded_bot.py")],
        env,
        tmp_path / "juke.log",
        cwd=tmp_path,
    )
    try:
        await discord.wait_for(
            lambda: None in discord.commands or bot.process.returncode is not None,
            "the example bot's command sync",
            within=60,
        )
        assert bot.process.returncode is None, bot.output()
        assert await bot.stop(signal.SIGTERM) == 0, bot.output()
    finally:
        if bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()
