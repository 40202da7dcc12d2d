"""The example bot (examples/guarded_bot.py) as a real process over the wire.

It uses only the public integration: its own /whoami (named like a TimmyBot
command) is guarded, its /ping is exempt because the bot says so, and our
messages carry its name.
"""

from __future__ import annotations

import signal
import sqlite3
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
from timmybot_bot.integrate import Settings, compose

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


# A command of the host's own that asks for no TimmyBot part, registered
# in the example beside its own: only the client-wide guard stands before it.
HELLO = """
class Hello(lightbulb.SlashCommand, name="hello", description="Say hi"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        await ctx.respond("hi")


client.register(Hello)
"""


async def test_stores_that_cannot_open_stop_it_before_any_command_runs(
    discord: DiscordStandIn, tmp_path: Path
) -> None:
    # hikari only logs a StartingEvent listener's failure and starts anyway;
    # the guard, installed after the stores open, would then be missing, and
    # a command asking for no TimmyBot part would run unguarded anywhere.
    data_dir = tmp_path / "var"
    security = compose(Settings(data_dir=data_dir), guard=True, vault=True, audit=True)
    await security.open()
    await security.aclose()
    with sqlite3.connect(data_dir / "timmybot.db") as db:
        db.execute("UPDATE schema_migrations SET version = 999")  # a newer release's
    source = (ROOT / "examples" / "guarded_bot.py").read_text(encoding="utf-8")
    anchor = "client.register(Whoami)\n"
    assert anchor in source
    host = tmp_path / "host_bot.py"
    host.write_text(source.replace(anchor, anchor + HELLO), encoding="utf-8")
    bot = await start_process(
        [sys.executable, str(host)],
        bot_environment(discord, data_dir),
        tmp_path / "host.log",
        cwd=tmp_path,
    )
    try:
        await discord.wait_for(
            lambda: None in discord.commands or bot.process.returncode is not None,
            "the bot to stop, or its command sync",
            within=60,
        )
        if bot.process.returncode is None:
            replies = await discord.dispatch_interaction(slash("hello", guild=STRANGER_GUILD))
            raise AssertionError(f"it started without its stores: /hello got {replies}")
        assert bot.process.returncode == 1, bot.output()
        assert None not in discord.commands  # nothing synced, so nothing to run
        assert "juke: could not start: sqlite database: the schema of " in bot.output()
        assert "Traceback" not in bot.output()
    finally:
        if bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()
