"""``python -m timmybot_bot`` with a token, over a real wire: gateway, REST, signals.

The bot is a real process; Discord is the stand-in of ``discord_standin.py``
on 127.0.0.1, reached through hikari's configurable REST URL.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.discord import payloads
from tests.e2e.wire.conftest import (
    STRANGER_GUILD,
    USER,
    BotProcess,
    bot_environment,
    slash,
    start_process,
)
from tests.e2e.wire.discord_standin import DiscordStandIn

pytestmark = pytest.mark.discord_wire

APPLICATION = payloads.APPLICATION
NO_MENTIONS = {"parse": []}


async def test_start_up_identifies_and_syncs_the_commands(
    discord: DiscordStandIn, timmybot: BotProcess
) -> None:
    (identify,) = discord.identifies
    assert identify["shard"] == [0, 1]
    assert identify["intents"] == 0  # slash commands need no intent
    names = sorted(command["name"] for command in discord.commands[None])
    assert names == ["admin", "link", "linked", "privacy", "search", "unlink"]
    # The sync compared with what Discord had, then overwrote the list in bulk.
    calls = [f"{s.method} {s.path}" for s in discord.requests]
    assert calls[0] == "GET /gateway/bot"
    assert "GET /oauth2/applications/@me" in calls
    assert calls.index(f"GET /applications/{APPLICATION}/commands") < calls.index(
        f"PUT /applications/{APPLICATION}/commands"
    )
    assert discord.unexpected == []
    # Heartbeats flow and are acknowledged.
    await discord.wait_for(lambda: discord.heartbeats >= 2, "two heartbeats")
    assert discord.acks >= 2
    assert "Traceback" not in timmybot.output()


async def test_an_allowed_and_a_denied_command_with_their_replies(
    discord: DiscordStandIn, timmybot: BotProcess
) -> None:
    (reply,) = await discord.dispatch_interaction(slash("linked"))
    assert reply.kind == "reply"
    assert reply.content == "You have not linked any account. Use /link <platform>."
    (denied,) = await discord.dispatch_interaction(slash("linked", guild=STRANGER_GUILD))
    assert denied.kind == "reply"
    assert denied.ephemeral
    assert denied.content == "Denied: This server is not authorized to use TimmyBot."


async def test_link_answers_ephemerally_with_an_authorization_url(
    discord: DiscordStandIn, timmybot: BotProcess
) -> None:
    (reply,) = await discord.dispatch_interaction(
        slash("link", payloads.string("platform", "spotify"))
    )
    assert reply.kind == "reply"
    assert reply.ephemeral
    assert "https://accounts.spotify.com/authorize?" in (reply.content or "")
    assert "client_id=wire-test-client" in (reply.content or "")
    assert "state=" in (reply.content or "")


async def test_allowed_mentions_are_disabled_on_every_message(
    discord: DiscordStandIn, timmybot: BotProcess
) -> None:
    await discord.dispatch_interaction(slash("linked"))
    await discord.dispatch_interaction(slash("linked", guild=STRANGER_GUILD))
    await discord.dispatch_interaction(slash("link", payloads.string("platform", "spotify")))
    await discord.dispatch_interaction(slash("privacy", payloads.sub("info")))
    await discord.dispatch_interaction(slash("search", payloads.string("query", "@everyone")))
    messages = discord.messages()
    assert len(messages) == 5
    for sent in messages:
        assert sent.message.get("allowed_mentions") == NO_MENTIONS, sent
        assert "@everyone" not in (sent.content or "")


async def test_a_reconnect_resumes_the_session_and_commands_still_arrive(
    discord: DiscordStandIn, timmybot: BotProcess
) -> None:
    first = discord.live
    assert first is not None
    await discord.reconnect()
    await discord.wait_for(lambda: discord.resumes, "a RESUME")
    (resume,) = discord.resumes
    assert resume["session_id"] == first.session_id
    assert resume["seq"] == first.seq
    assert len(discord.identifies) == 1  # resumed, not identified again
    (reply,) = await discord.dispatch_interaction(slash("linked"))
    assert reply.kind == "reply"


async def test_sigterm_stops_the_bot_cleanly(discord: DiscordStandIn, timmybot: BotProcess) -> None:
    await discord.dispatch_interaction(slash("linked"))
    status = await timmybot.stop(signal.SIGTERM)
    output = timmybot.output()
    assert status == 0, output
    assert "SIGTERM received: shutting down" in output
    assert "Traceback" not in output
    # The shard said goodbye for good (1001 GOING_AWAY), not "back soon".
    await discord.wait_for(lambda: discord.close_codes, "the gateway to close")
    assert discord.close_codes == [1001]


async def test_a_refused_token_is_a_configuration_error(
    discord: DiscordStandIn, tmp_path: Path
) -> None:
    env = bot_environment(discord, tmp_path / "var", DISCORD_TOKEN=payloads.TOKEN + "x")
    bot = await start_process([sys.executable, "-m", "timmybot_bot"], env, tmp_path / "bot.log")
    status = await bot.wait(within=60)
    output = bot.output()
    assert status == 2, output
    assert (
        "timmybot: configuration error: DISCORD_TOKEN was refused by Discord (401 Unauthorized)"
        in output
    )
    assert "Traceback" not in output
    assert payloads.TOKEN not in output
    assert discord.identifies == []


async def test_a_refused_command_sync_stops_the_bot_with_one_line(
    discord: DiscordStandIn, tmp_path: Path
) -> None:
    # A bot invited without the applications.commands scope, or a command
    # list Discord rejects: without its commands the bot must not stay up.
    discord.refuse_commands = {"message": "Missing Access", "code": 50001}
    env = bot_environment(discord, tmp_path / "var")
    bot = await start_process([sys.executable, "-m", "timmybot_bot"], env, tmp_path / "bot.log")
    status = await bot.wait(within=60)
    output = bot.output()
    assert status == 1, output
    assert (
        "timmybot: the command client could not start: ForbiddenError (status 403, code 50001)"
        in output
    )
    # Exception messages are never printed: hikari's quotes the request URL.
    assert "Traceback" not in output
    assert "Missing Access" not in output
    assert f"applications/{APPLICATION}/commands" not in output


async def test_privacy_export_arrives_as_a_file_in_a_direct_message(
    discord: DiscordStandIn, timmybot: BotProcess
) -> None:
    (note,) = await discord.dispatch_interaction(slash("privacy", payloads.sub("export")))
    assert note.kind in {"reply", "followup"}
    assert note.ephemeral
    (opened,) = discord.sent("open-dm")
    assert opened.body["recipient_id"] == str(USER)
    (dm,) = await discord.wait_for(lambda: discord.sent("dm-message"), "the DM")
    # A multipart upload over the wire: the JSON export as a file.
    [(filename, content)] = dm.files
    assert filename.endswith(".json")
    export = json.loads(content)
    assert export["user_id"] == str(USER)
    assert dm.message.get("allowed_mentions") == NO_MENTIONS
