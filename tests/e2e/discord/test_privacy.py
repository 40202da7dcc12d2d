"""/privacy on Discord with the real handler: info, export by direct message, delete after confirming.

These run once the ``privacy`` command is in ``COMMANDS``; until then the
Discord side of the same contract is pinned by ``test_replies.py``.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import OTHER_USER, STRANGER_GUILD, USER, Harness, only
from timmybot_bot.console.lines import COMMANDS

pytestmark = pytest.mark.skipif(
    "privacy" not in {command.name for command in COMMANDS},
    reason="the /privacy handler has not landed in commands.py yet",
)


def secrets_of(bot: Harness) -> list[str]:
    assert bot.oauth is not None
    return list(bot.oauth.issued)


async def test_privacy_info_answers_privately(discord_bot: Harness) -> None:
    sent = only(await discord_bot.slash("privacy", p.sub("info")))
    assert sent.kind == "reply"
    assert sent.ephemeral
    assert sent.content


async def test_privacy_export_arrives_as_a_json_file_in_a_direct_message(
    discord_bot: Harness,
) -> None:
    await discord_bot.link_spotify()
    requests = await discord_bot.slash("privacy", p.sub("export"))
    dms = [sent for sent in requests if sent.kind == "dm-message"]
    assert len(dms) == 1
    [(filename, content)] = dms[0].files
    assert filename.endswith(".json")
    assert json.loads(content)
    note = requests[-1]
    assert note.kind == "reply"
    assert note.ephemeral
    assert note.files == []
    # The export never carries a token, and nothing in the channel does.
    everything = " ".join(str(sent.body) + repr(sent.files) for sent in discord_bot.discord.history)
    assert [secret for secret in secrets_of(discord_bot) if secret in everything] == []


async def test_privacy_delete_asks_first_then_deletes_the_callers_data(
    discord_bot: Harness,
) -> None:
    await discord_bot.link_spotify()
    await discord_bot.link_spotify(user=OTHER_USER)
    prompt = only(await discord_bot.slash("privacy", p.sub("delete")))
    assert len(prompt.custom_ids) == 2  # confirm, cancel
    assert await discord_bot.services.vault.get(USER) is not None  # nothing deleted yet

    refused = only(await discord_bot.press(prompt.custom_ids[0], user=OTHER_USER))
    assert refused.ephemeral
    assert await discord_bot.services.vault.get(USER) is not None

    done = only(await discord_bot.press(prompt.custom_ids[0]))
    assert done.kind == "update"
    assert done.message["components"] == []
    assert done.content
    assert await discord_bot.services.vault.get(USER) is None
    assert await discord_bot.services.vault.get(OTHER_USER) is not None


async def test_privacy_is_open_to_guilds_the_allowlist_does_not_cover(discord_bot: Harness) -> None:
    # A user's rights do not depend on the allowlist: /privacy is unguarded
    # in run_command, and the Discord guard hook follows it.
    sent = only(await discord_bot.slash("privacy", p.sub("info"), guild=STRANGER_GUILD))
    assert not (sent.content or "").startswith("Denied:")
    assert sent.content == await discord_bot.console(
        "privacy", "info", user_id=USER, guild_id=STRANGER_GUILD
    )
