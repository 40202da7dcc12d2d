"""A host hikari-lightbulb bot with TimmyBot's integration, Discord faked at REST.

The host's own commands are named like TimmyBot's (``whoami``, ``privacy``,
``search``): the guard checks them all, since it never decides by name. A
command the host exempts explicitly (by its class) runs anywhere.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import attrs
import hikari
import lightbulb
import pytest

from tests.e2e.discord import payloads
from tests.e2e.discord.conftest import assert_mentions_disabled
from tests.e2e.discord.fake_discord import FakeDiscord, Sent
from tests.unit.fake_oauth import FakeOAuthClient
from timmybot_bot.integrate import Integration, ReplySender, Settings, compose, rate_limit_hook
from timmybot_bot.runtime.bootstrap import bootstrap
from timmybot_core import FakeClock, StoreUnavailable, SystemClock, TokenRotationService
from timmybot_core.ports.rate_limits import RateDecision

ALLOWED_GUILD = 222_222_222_222_222_222
STRANGER_GUILD = 333_333_333_333_333_333
USER = 444_444_444_444_444_444


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backend": "memory",
        "discord_token": payloads.TOKEN,
        "allowed_guilds": {ALLOWED_GUILD},
    }
    return Settings(**(values | overrides))


@attrs.define
class Host:
    bot: hikari.GatewayBot
    client: lightbulb.GatewayEnabledClient
    discord: FakeDiscord
    ran: list[str]

    async def slash(self, name: str, *options: dict[str, Any], guild: int | None) -> list[Sent]:
        payload = payloads.command(name, *options, user_id=USER, guild_id=guild)
        interaction = self.bot.entity_factory.deserialize_interaction(payload)
        await self.client.handle_interaction_create(interaction)
        return self.discord.take()


def host_commands(ran: list[str]) -> dict[str, type[lightbulb.SlashCommand]]:
    """The host bot's own commands; each notes that it ran."""
    built = {}
    for name in ("whoami", "privacy", "search", "ping"):

        class Command(lightbulb.SlashCommand, name=name, description=f"the host's /{name}"):
            @lightbulb.invoke
            async def invoke(
                self, ctx: lightbulb.Context, sender: ReplySender = lightbulb.di.INJECTED
            ) -> None:
                ran.append(ctx.command_data.name)
                await sender.respond(ctx, f"host {ctx.command_data.name} ran")

        built[name] = Command
    return built


def new_client(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[FakeDiscord, hikari.GatewayBot, lightbulb.GatewayEnabledClient]:
    """Discord faked at REST, a bot and its lightbulb client."""
    discord = FakeDiscord()
    discord.install(monkeypatch)
    bot = hikari.GatewayBot(payloads.TOKEN, banner=None, logs=None)
    return discord, bot, lightbulb.client_from_app(bot)


@pytest.fixture
async def host(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Host]:
    discord, bot, client = new_client(monkeypatch)
    ran: list[str] = []
    commands = host_commands(ran)
    for command in commands.values():
        client.register(command)
    security = compose(settings(), guard=True, clock=SystemClock())
    integration = Integration(security, exempt=[commands["ping"]], bot_name="Juke")
    await integration.install(client)
    await client.start()
    discord.take()
    yield Host(bot=bot, client=client, discord=discord, ran=ran)
    await client.stop()
    await security.aclose()
    assert_mentions_disabled(discord)


@pytest.mark.parametrize("name", ["whoami", "privacy", "search"])
@pytest.mark.parametrize("guild", [STRANGER_GUILD, None], ids=["stranger-guild", "dm"])
async def test_a_host_command_named_like_ours_is_guarded(
    host: Host, name: str, guild: int | None
) -> None:
    (reply,) = await host.slash(name, guild=guild)
    assert reply.kind == "reply"
    assert reply.ephemeral
    assert (reply.content or "").startswith("Denied: ")
    assert "Juke" in (reply.content or "") and "TimmyBot" not in (reply.content or "")
    assert host.ran == []  # the host's invoke never ran


@pytest.mark.parametrize("name", ["whoami", "privacy", "search"])
async def test_a_host_command_runs_where_the_guard_allows_it(host: Host, name: str) -> None:
    (reply,) = await host.slash(name, guild=ALLOWED_GUILD)
    assert reply.content == f"host {name} ran"
    assert host.ran == [name]


@pytest.mark.parametrize("guild", [STRANGER_GUILD, None, ALLOWED_GUILD])
async def test_the_command_the_host_exempts_explicitly_is_not_guarded(
    host: Host, guild: int | None
) -> None:
    (reply,) = await host.slash("ping", guild=guild)
    assert reply.content == "host ping ran"
    assert host.ran == ["ping"]


async def test_exempting_a_command_by_name_does_not_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # Strings are not commands: only the objects named count.
    discord, bot, client = new_client(monkeypatch)
    ran: list[str] = []
    client.register(host_commands(ran)["whoami"])
    security = compose(settings(), guard=True)
    await Integration(security, exempt=["whoami"]).install(client)
    await client.start()
    discord.take()
    host = Host(bot=bot, client=client, discord=discord, ran=ran)
    try:
        (reply,) = await host.slash("whoami", guild=STRANGER_GUILD)
        assert reply.content == "Denied: This server is not authorized to use TimmyBot."
        assert ran == []
    finally:
        await client.stop()
        await security.aclose()


async def test_without_the_integration_services_the_guard_fails_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hook alone, without the loader's services in DI: the command does not run.
    discord = FakeDiscord()
    discord.install(monkeypatch)
    bot = hikari.GatewayBot(payloads.TOKEN, banner=None, logs=None)
    security = compose(settings(), guard=True)
    integration = Integration(security)
    client = lightbulb.client_from_app(bot, hooks=[integration.guard_hook])
    ran: list[str] = []
    client.register(host_commands(ran)["whoami"])
    await client.start()
    discord.take()
    host = Host(bot=bot, client=client, discord=discord, ran=ran)
    try:
        await host.slash("whoami", guild=ALLOWED_GUILD)
        assert ran == []
    finally:
        await client.stop()
        await security.aclose()


async def test_timmybots_own_commands_are_a_second_optional_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    discord, bot, client = new_client(monkeypatch)
    ran: list[str] = []
    client.register(host_commands(ran)["whoami"])
    clock = FakeClock()
    services = bootstrap(
        settings(), clock=clock, oauth=FakeOAuthClient(clock, platforms=("spotify",))
    )
    security = compose(settings(), guard=True, clock=clock)
    integration = Integration(security)
    await integration.install(client)
    await integration.commands_loader(services).add_to_client(client)
    await client.start()
    synced = discord.take()
    host = Host(bot=bot, client=client, discord=discord, ran=ran)
    try:
        (put,) = [s for s in synced if s.method == "PUT"]
        names = sorted(command["name"] for command in put.body["commands"])
        assert names == ["admin", "link", "linked", "privacy", "search", "unlink", "whoami"]
        # Our /privacy is exempt as an object: it answers in a stranger guild.
        (reply,) = await host.slash("privacy", payloads.sub("info"), guild=STRANGER_GUILD)
        assert not (reply.content or "").startswith("Denied")
        # Our /linked is guarded, and so is the host's /whoami.
        (reply,) = await host.slash("linked", guild=STRANGER_GUILD)
        assert (reply.content or "").startswith("Denied")
        (reply,) = await host.slash("whoami", guild=STRANGER_GUILD)
        assert (reply.content or "").startswith("Denied")
        assert ran == []
    finally:
        await client.stop()
        await services.aclose()
        await security.aclose()


def test_the_bot_name_must_be_a_plain_name() -> None:
    security = compose(settings(), guard=True)
    for bad in ("", "@everyone", "a" * 33, "Juke\nBot", "**Juke**"):
        with pytest.raises(ValueError, match="bot_name"):
            Integration(security, bot_name=bad)


def test_a_bot_name_ending_in_a_newline_is_refused() -> None:
    # ``$`` also matches before a final newline; the name would break our lines.
    security = compose(settings(), guard=True)
    with pytest.raises(ValueError, match="bot_name"):
        Integration(security, bot_name="Juke\n")


def test_the_integration_needs_the_guard() -> None:
    with pytest.raises(ValueError, match="needs the guard"):
        Integration(compose(settings(), guard=False, audit=True))


async def test_exempting_a_group_exempts_its_subcommands_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    discord, bot, client = new_client(monkeypatch)
    ran: list[str] = []
    open_group = lightbulb.Group("open", "anyone may")
    closed_group = lightbulb.Group("closed", "guarded")
    for group in (open_group, closed_group):

        @group.register
        class Info(lightbulb.SlashCommand, name="info", description="a subcommand"):
            @lightbulb.invoke
            async def invoke(
                self, ctx: lightbulb.Context, sender: ReplySender = lightbulb.di.INJECTED
            ) -> None:
                ran.append(ctx.command_data.qualified_name)
                await sender.respond(ctx, "info")

        client.register(group)
    security = compose(settings(), guard=True)
    await Integration(security, exempt=[open_group]).install(client)
    await client.start()
    discord.take()
    host = Host(bot=bot, client=client, discord=discord, ran=ran)
    try:
        (reply,) = await host.slash("open", payloads.sub("info"), guild=STRANGER_GUILD)
        assert reply.content == "info"
        (reply,) = await host.slash("closed", payloads.sub("info"), guild=STRANGER_GUILD)
        assert (reply.content or "").startswith("Denied")
        assert ran == ["open info"]
    finally:
        await client.stop()
        await security.aclose()


@pytest.fixture
async def limited_host(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Host]:
    """A host whose /roll carries the rate-limit hook, and /spend the provider-quota one."""
    discord, bot, client = new_client(monkeypatch)
    security = compose(settings(), guard=True)
    integration = Integration(security, bot_name="Juke", reply_to_errors=False)
    ran: list[str] = []
    for name, quota in (("roll", False), ("spend", True)):

        class Command(
            lightbulb.SlashCommand,
            name=name,
            description=f"the host's /{name}",
            hooks=[rate_limit_hook(spends_quota=quota)],
        ):
            @lightbulb.invoke
            async def invoke(
                self, ctx: lightbulb.Context, sender: ReplySender = lightbulb.di.INJECTED
            ) -> None:
                ran.append(ctx.command_data.name)
                await sender.respond(ctx, f"host {ctx.command_data.name} ran")

        client.register(Command)
    await integration.install(client)
    await client.start()
    discord.take()
    yield Host(bot=bot, client=client, discord=discord, ran=ran)
    await client.stop()
    await security.aclose()
    assert_mentions_disabled(discord)


async def test_the_rate_limit_hook_limits_a_host_command_and_tells_once(
    limited_host: Host,
) -> None:
    answered = [await limited_host.slash("roll", guild=ALLOWED_GUILD) for _ in range(8)]

    assert [reply.content for (reply,) in answered[:5]] == ["host roll ran"] * 5
    (told,) = answered[5]
    assert told.ephemeral
    assert re.fullmatch(
        r"Slow down \(5 uses of this command per 10 s\): try again in (9|10) s\.",
        told.content or "",
    )
    assert answered[6:] == [[], []]  # nothing sent for the rest of the episode
    assert limited_host.ran == ["roll"] * 5


async def test_the_provider_quota_hook_is_stricter(limited_host: Host) -> None:
    answered = [await limited_host.slash("spend", guild=ALLOWED_GUILD) for _ in range(4)]

    assert limited_host.ran == ["spend"] * 3
    (told,) = answered[3]
    assert (told.content or "").startswith(
        "Slow down (3 uses of this command per 30 s): try again in"
    )


async def test_the_rate_limit_hook_runs_after_the_guard(limited_host: Host) -> None:
    for _ in range(10):
        (denied,) = await limited_host.slash("roll", guild=STRANGER_GUILD)
        assert (denied.content or "").startswith("Denied: ")

    # The denials used up none of the member's windows.
    answered = [await limited_host.slash("roll", guild=ALLOWED_GUILD) for _ in range(5)]
    assert [reply.content for (reply,) in answered] == ["host roll ran"] * 5


async def test_removing_the_loader_removes_the_guard_and_the_error_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A host that takes the integration out again answers its own failures.
    discord, bot, client = new_client(monkeypatch)
    ran: list[str] = []

    class Broken(lightbulb.SlashCommand, name="broken", description="the host's failing command"):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            ran.append("broken")
            raise RuntimeError("the host's bug")

    client.register(Broken)
    security = compose(settings(), guard=True)
    loader = Integration(security).loader()
    await loader.add_to_client(client)
    await loader.remove_from_client(client)
    await client.start()
    discord.take()
    host = Host(bot=bot, client=client, discord=discord, ran=ran)
    try:
        # No guard: the command runs in a stranger guild; no error handler of ours answers.
        assert await host.slash("broken", guild=STRANGER_GUILD) == []
        assert ran == ["broken"]
    finally:
        await client.stop()
        await security.aclose()


async def test_our_direct_messages_carry_the_host_bots_name_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /privacy export answers by direct message: that text is ours as well.
    discord, bot, client = new_client(monkeypatch)
    clock = FakeClock()
    services = bootstrap(
        settings(), clock=clock, oauth=FakeOAuthClient(clock, platforms=("spotify",))
    )
    security = compose(settings(), guard=True, clock=clock)
    integration = Integration(security, bot_name="Juke")
    await integration.install(client)
    await integration.commands_loader(services).add_to_client(client)
    await client.start()
    discord.take()
    host = Host(bot=bot, client=client, discord=discord, ran=[])
    try:
        sent = await host.slash("privacy", payloads.sub("export"), guild=ALLOWED_GUILD)
        (dm,) = [s for s in sent if s.kind == "dm-message"]
        assert "Juke" in (dm.content or "") and "TimmyBot" not in (dm.content or "")
    finally:
        await client.stop()
        await services.aclose()
        await security.aclose()


async def test_a_groups_subcommands_have_windows_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /music queue (read-only) and /music search (spends quota) in one group:
    # keyed by the root name, three queues used up search's 3-per-30 s window.
    discord, bot, client = new_client(monkeypatch)
    security = compose(settings(), guard=True)
    ran: list[str] = []
    music = lightbulb.Group("music", "the host's music")
    for name, quota in (("queue", False), ("search", True)):

        @music.register
        class Sub(
            lightbulb.SlashCommand,
            name=name,
            description=f"the host's /music {name}",
            hooks=[rate_limit_hook(spends_quota=quota)],
        ):
            @lightbulb.invoke
            async def invoke(
                self, ctx: lightbulb.Context, sender: ReplySender = lightbulb.di.INJECTED
            ) -> None:
                ran.append(ctx.command_data.qualified_name)
                await sender.respond(ctx, "ran")

    client.register(music)
    await Integration(security).install(client)
    await client.start()
    discord.take()
    host = Host(bot=bot, client=client, discord=discord, ran=ran)
    try:
        for _ in range(3):
            await host.slash("music", payloads.sub("queue"), guild=ALLOWED_GUILD)
        (reply,) = await host.slash("music", payloads.sub("search"), guild=ALLOWED_GUILD)
        assert reply.content == "ran"
        # And search's own window is still its own: three, then the wait.
        for _ in range(2):
            await host.slash("music", payloads.sub("search"), guild=ALLOWED_GUILD)
        (told,) = await host.slash("music", payloads.sub("search"), guild=ALLOWED_GUILD)
        assert (told.content or "").startswith("Slow down (3 uses of this command per 30 s)")
        assert ran == ["music queue"] * 3 + ["music search"] * 3
    finally:
        await client.stop()
        await security.aclose()


@pytest.mark.parametrize(
    "order",
    [
        (lightbulb.ExecutionSteps.INVOKE,),
        (lightbulb.ExecutionSteps.INVOKE, lightbulb.ExecutionSteps.CHECKS),
    ],
    ids=["no-checks", "checks-after-invoke"],
)
async def test_a_client_whose_steps_would_skip_the_guard_is_refused_at_install(
    monkeypatch: pytest.MonkeyPatch, order: tuple[lightbulb.ExecutionStep, ...]
) -> None:
    # The guard is a CHECKS hook: without that step before INVOKE, every
    # command ran unguarded, and nothing said so.
    discord = FakeDiscord()
    discord.install(monkeypatch)
    bot = hikari.GatewayBot(payloads.TOKEN, banner=None, logs=None)
    client = lightbulb.client_from_app(bot, execution_step_order=order)
    ran: list[str] = []
    client.register(host_commands(ran)["whoami"])
    security = compose(settings(), guard=True)
    integration = Integration(security)
    try:
        with pytest.raises(ValueError, match=r"execution_step_order.*CHECKS.*before.*INVOKE"):
            await integration.install(client)
        assert integration.guard_hook not in client.hooks
    finally:
        await security.aclose()


async def test_a_client_with_its_own_steps_around_checks_is_guarded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Any order that runs CHECKS before INVOKE is fine.
    discord = FakeDiscord()
    discord.install(monkeypatch)
    bot = hikari.GatewayBot(payloads.TOKEN, banner=None, logs=None)
    steps = lightbulb.ExecutionSteps
    client = lightbulb.client_from_app(bot, execution_step_order=(steps.CHECKS, steps.INVOKE))
    ran: list[str] = []
    client.register(host_commands(ran)["whoami"])
    security = compose(settings(), guard=True)
    await Integration(security).install(client)
    await client.start()
    discord.take()
    host = Host(bot=bot, client=client, discord=discord, ran=ran)
    try:
        (reply,) = await host.slash("whoami", guild=STRANGER_GUILD)
        assert (reply.content or "").startswith("Denied")
        assert ran == []
    finally:
        await client.stop()
        await security.aclose()


@pytest.mark.parametrize("reply_to_errors", [True, False])
async def test_a_quota_hook_failing_closed_is_answered_or_left_to_the_host(
    monkeypatch: pytest.MonkeyPatch, reply_to_errors: bool
) -> None:
    # docs/integrate.md: with reply_to_errors=False the host's handlers get
    # the StoreUnavailable (the command did not run), and we send nothing.
    discord, bot, client = new_client(monkeypatch)
    security = compose(settings(), guard=True)
    assert security.limiter is not None

    async def down(*_: object, **__: object) -> RateDecision:
        raise StoreUnavailable("rate limit store: database is locked")

    monkeypatch.setattr(security.limiter._store, "acquire", down)
    ran: list[str] = []

    class Spend(
        lightbulb.SlashCommand,
        name="spend",
        description="spends quota",
        hooks=[rate_limit_hook(spends_quota=True)],
    ):
        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            ran.append("spend")

    received: list[lightbulb.exceptions.ExecutionPipelineFailedException] = []

    @client.error_handler(priority=-1)  # after ours
    async def host_handler(failure: lightbulb.exceptions.ExecutionPipelineFailedException) -> bool:
        received.append(failure)
        return True

    client.register(Spend)
    await Integration(security, bot_name="Juke", reply_to_errors=reply_to_errors).install(client)
    await client.start()
    discord.take()
    host = Host(bot=bot, client=client, discord=discord, ran=ran)
    try:
        sent = await host.slash("spend", guild=ALLOWED_GUILD)
        assert ran == []
        if reply_to_errors:
            (reply,) = sent
            assert reply.content == "A Juke store is unavailable right now; try again soon."
            assert received == []
        else:
            assert sent == []
            (failure,) = received
            (hook,) = failure.failed_hooks
            assert hook.name == "timmybot_rate_limit_quota"
            (cause,) = failure.causes
            assert isinstance(cause, StoreUnavailable)
    finally:
        await client.stop()
        await security.aclose()


async def test_a_host_runs_the_jobs_with_the_public_services() -> None:
    # docs/integrate.md: compose() starts no scheduler; these are the calls
    # a host without a TimmyBot bot on its data runs itself.
    clock = FakeClock()
    oauth = FakeOAuthClient(clock, platforms=("spotify",))
    security = compose(settings(), privacy=True, clock=clock, oauth=oauth)
    assert security.audit is not None and security.privacy is not None
    assert security.tokens is not None
    await security.open()
    try:
        await security.tokens.store_user_tokens(USER, oauth.issue())
        assert await security.audit.seal_abandoned() == 0
        cleaned = await security.privacy.cleanup_expired_data()
        assert cleaned.as_dict()["failed"] == []
        rotation = TokenRotationService(
            tokens=security.tokens, alerter=security.alerter, clock=security.clock
        )
        report = await rotation.rotate_expiring()
        assert (report.users, report.refreshed, report.failed) == (1, 1, 0)
    finally:
        await security.aclose()
