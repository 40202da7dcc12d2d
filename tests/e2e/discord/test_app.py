"""build_discord_bot: configuration, dependency injection, shards and the start/stop steps."""

from __future__ import annotations

from typing import Any

import hikari
import lightbulb
import pytest
from linkd.exceptions import DependencyNotSatisfiableException

from tests.e2e.discord import payloads
from tests.e2e.discord.conftest import Harness, MakeBot, settings
from timmybot_bot.discord import build_discord_bot
from timmybot_bot.discord.replies import ReplySender
from timmybot_bot.discord.runner import CommandRunner
from timmybot_bot.runtime.bootstrap import Services, bootstrap
from timmybot_bot.runtime.settings import ConfigurationError


def services(**overrides: Any) -> Services:
    return bootstrap(settings(**overrides))


def test_a_missing_token_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="DISCORD_TOKEN is not set"):
        build_discord_bot(services(discord_token=None))


def test_a_malformed_token_is_refused_without_being_echoed() -> None:
    with pytest.raises(ConfigurationError, match="DISCORD_TOKEN is not shaped like") as caught:
        build_discord_bot(services(discord_token="$$$ not-base64"))
    assert "not-base64" not in str(caught.value)


async def test_the_gateway_asks_for_no_intents(discord_bot: Harness) -> None:
    # Slash commands arrive whatever the intents; the bot reads nothing else.
    assert discord_bot.bot.app.intents == hikari.Intents.NONE


async def test_lightbulbs_dependency_injection_holds_what_the_commands_are_injected(
    discord_bot: Harness,
) -> None:
    # Issue 14: no service locator in the DI registry, only what the slash
    # commands and the error handler ask for.
    async with discord_bot.bot.client.di.enter_context(lightbulb.di.Contexts.DEFAULT) as container:
        assert isinstance(await container.get(CommandRunner), CommandRunner)
        assert isinstance(await container.get(ReplySender), ReplySender)
        with pytest.raises(DependencyNotSatisfiableException):
            await container.get(Services)


@pytest.mark.parametrize(
    ("shards", "syncs"),
    [
        ({}, True),
        ({"shard_ids": (0, 1), "shard_count": 4}, True),
        ({"shard_ids": (2, 3), "shard_count": 4}, False),
    ],
)
async def test_only_the_process_with_shard_zero_registers_the_commands(
    make_bot: MakeBot, shards: dict[str, Any], syncs: bool
) -> None:
    bot = await make_bot(**shards)
    assert any(sent.method == "PUT" for sent in bot.synced) is syncs
    # Every process still answers every command.
    assert bot.bot.client.invokable_commands


async def test_run_starts_the_configured_shards_and_stops_cleanly_when_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.e2e.discord.fake_discord import FakeDiscord

    discord = FakeDiscord()
    discord.install(monkeypatch)
    discord.refuse_token = True
    steps: list[str] = []
    started_with: dict[str, Any] = {}
    original_start = hikari.GatewayBot.start

    async def recording_start(self: hikari.GatewayBot, **kwargs: Any) -> None:
        started_with.update(kwargs)
        await original_start(self, **kwargs)

    monkeypatch.setattr(hikari.GatewayBot, "start", recording_start)

    async def on_starting() -> None:
        steps.append("starting")

    async def on_stopping() -> None:
        steps.append("stopping")

    built = services(shard_ids=(1,), shard_count=2)
    bot = build_discord_bot(built, on_starting=on_starting, on_stopping=on_stopping)
    with pytest.raises(ConfigurationError, match="refused by Discord") as caught:
        await bot.run()
    assert payloads.TOKEN not in str(caught.value)
    assert started_with["shard_ids"] == (1,)
    assert started_with["shard_count"] == 2
    assert steps == ["starting", "stopping"]
    assert not bot.app.is_alive
    await bot.close()  # closing again is harmless
    await built.aclose()


async def test_a_client_that_cannot_start_is_reported_not_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.e2e.discord.fake_discord import FakeDiscord

    discord = FakeDiscord()
    discord.install(monkeypatch)
    discord.failing_paths.append("/commands")  # Discord refuses the command list
    built = services()
    bot = build_discord_bot(built)
    with caplog.at_level("ERROR", logger="timmybot.discord"):
        await bot.app.event_manager.dispatch(hikari.StartedEvent(app=bot.app), return_tasks=True)
    assert any(
        "the command client could not start: InternalServerError" in record.getMessage()
        for record in caplog.records
    )
    assert isinstance(bot._startup_failure, hikari.InternalServerError)
    await built.aclose()
