"""The bot built by ``build_discord_bot`` over memory services, with Discord faked at REST."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from tests.e2e.discord import payloads
from tests.e2e.discord.fake_discord import FakeDiscord, Sent
from tests.unit.fake_oauth import FakeOAuthClient
from timmybot_adapters.oauth import OAuthProvider
from timmybot_bot.app.commands import Command, Invocation
from timmybot_bot.app.messagebus import MessageBus
from timmybot_bot.app.replies import Reply
from timmybot_bot.console.lines import run_command
from timmybot_bot.discord import DiscordBot, build_discord_bot
from timmybot_bot.discord import runner as runner_module
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_core import FakeClock

OWNER = 111_111_111_111_111_111
ALLOWED_GUILD = 222_222_222_222_222_222
STRANGER_GUILD = 333_333_333_333_333_333
USER = 444_444_444_444_444_444
OTHER_USER = 555_555_555_555_555_555
ADMIN_ROLE = 666_666_666_666_666_666
OTHER_ROLE = 777_777_777_777_777_777
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@attrs.define
class Harness:
    """Drives the bot with Discord-shaped interactions and reads what it sent."""

    bot: DiscordBot
    discord: FakeDiscord
    services: Services
    clock: FakeClock
    oauth: FakeOAuthClient | None
    synced: list[Sent]

    async def slash(
        self,
        name: str,
        *options: dict[str, Any],
        user: int = USER,
        guild: int | None = ALLOWED_GUILD,
        roles: tuple[int, ...] = (),
    ) -> list[Sent]:
        """Run a slash command; return the REST requests it caused."""
        payload = payloads.command(name, *options, user_id=user, guild_id=guild, role_ids=roles)
        interaction = self.bot.app.entity_factory.deserialize_interaction(payload)
        await self.bot.client.handle_interaction_create(interaction)
        return self.discord.take()

    async def press(
        self,
        custom_id: str,
        *,
        user: int = USER,
        guild: int | None = ALLOWED_GUILD,
        roles: tuple[int, ...] = (),
    ) -> list[Sent]:
        """Press a button of one of the bot's messages; return the requests it caused."""
        payload = payloads.button_press(
            custom_id, message_id="1", user_id=user, guild_id=guild, role_ids=roles
        )
        interaction = self.bot.app.entity_factory.deserialize_interaction(payload)
        await self.bot.client.handle_interaction_create(interaction)
        return self.discord.take()

    async def link_spotify(self, user: int = USER) -> None:
        """Link ``user``'s spotify account through /link and the in-memory provider."""
        assert self.oauth is not None
        sent = await self.slash(
            "link", {"type": 3, "name": "platform", "value": "spotify"}, user=user
        )
        match = re.search(r"<(http[^>]+)>", sent[0].content or "")
        assert match, sent
        state, code = self.oauth.approve(match.group(1))
        await self.services.links.complete(state, code)

    async def console(self, name: str, args: str, **where: Any) -> str:
        """What the offline console's path (``run_command``) answers on twin services."""
        twin = bootstrap(
            self.services.settings, clock=FakeClock(self.clock.now()), oauth=self.oauth
        )
        try:
            reply = await run_command(twin, Invocation(source="console", **where), name, args)
        finally:
            await twin.aclose()
        return reply.text


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backend": "memory",
        "discord_token": payloads.TOKEN,
        "owner_ids": {OWNER},
        "admin_role_ids": {ADMIN_ROLE},
        "allowed_guilds": {ALLOWED_GUILD},
        "attempt_limit": 3,
    }
    values.update(overrides)
    return Settings(**values)


MakeBot = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_bot(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeBot]:
    """Build and start bots; every one is stopped, and its messages checked, at the end."""
    discord = FakeDiscord()
    discord.install(monkeypatch)
    built: list[Harness] = []

    async def make(
        *,
        defer_after: float = 2.0,
        confirm_timeout: timedelta = timedelta(minutes=5),
        providers: Sequence[OAuthProvider] = (),
        **overrides: Any,
    ) -> Harness:
        """Build a bot; with ``providers``, real OAuth providers replace the in-memory one."""
        clock = FakeClock(datetime.now(UTC) if providers else START)
        oauth = None if providers else FakeOAuthClient(clock, platforms=("spotify",))
        services = bootstrap(
            settings(**overrides), clock=clock, oauth=oauth, extra_providers=providers
        )
        bot = build_discord_bot(services, defer_after=defer_after, confirm_timeout=confirm_timeout)
        # What hikari's StartedEvent does: sync the commands, then serve.
        await bot.client.start()
        harness = Harness(
            bot=bot,
            discord=discord,
            services=services,
            clock=clock,
            oauth=oauth,
            synced=discord.take(),
        )
        built.append(harness)
        return harness

    yield make
    for harness in built:
        await harness.bot.close()
        await harness.bot.client.stop()
        await harness.services.aclose()
    # Every test, whatever it checks, also checks this: no message left
    # the bot with mentions enabled.
    assert_mentions_disabled(discord)


@pytest.fixture
async def discord_bot(make_bot: MakeBot) -> Harness:
    return await make_bot()


def assert_mentions_disabled(discord: FakeDiscord) -> None:
    for method, arguments in discord.mention_arguments:
        assert arguments == {
            "user_mentions": False,
            "role_mentions": False,
            "mentions_everyone": False,
        }, method
    for sent in discord.history:
        if sent.content is not None or sent.kind in {"update", "edit"}:
            assert sent.message.get("allowed_mentions") == {"parse": []}, sent


@attrs.define
class Forwarded:
    command: Command
    invocation: Invocation
    reply: Reply


@pytest.fixture
def forwarded(monkeypatch: pytest.MonkeyPatch) -> list[Forwarded]:
    """Record the commands the Discord layer built that the bus let through to a handler."""
    calls: list[Forwarded] = []
    passed: list[Command] = []
    guard, chat = MessageBus.guard, runner_module.chat

    async def recording_guard(bus: MessageBus, command: Command, invocation: Invocation) -> None:
        await guard(bus, command, invocation)
        passed.append(command)

    async def recording_chat(
        bus: MessageBus, sanitizer: Any, invocation: Invocation, command: Command
    ) -> Reply:
        before = len(passed)
        reply = await chat(bus, sanitizer, invocation, command)
        if len(passed) > before:
            calls.append(Forwarded(command, invocation, reply))
        return reply

    monkeypatch.setattr(MessageBus, "guard", recording_guard)
    monkeypatch.setattr(runner_module, "chat", recording_chat)
    return calls


def only(requests: list[Sent]) -> Sent:
    """The single message-bearing request of an interaction."""
    assert len(requests) == 1, requests
    return requests[0]


__all__ = [
    "ADMIN_ROLE",
    "ALLOWED_GUILD",
    "OTHER_ROLE",
    "OTHER_USER",
    "OWNER",
    "STRANGER_GUILD",
    "USER",
    "Forwarded",
    "Harness",
    "MakeBot",
    "only",
]
