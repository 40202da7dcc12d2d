"""The access guard hook: allowed, denied, banned and kill-switched invocations."""

from __future__ import annotations

import pytest

from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import (
    ADMIN_ROLE,
    ALLOWED_GUILD,
    OTHER_ROLE,
    OWNER,
    STRANGER_GUILD,
    USER,
    Forwarded,
    Harness,
    MakeBot,
    only,
)
from timmybot_adapters.memory import MemorySecurityMetrics
from timmybot_bot.app.commands import ShowLinks, SwitchOff, SwitchOn
from timmybot_core import Switch

LINK = (p.string("platform", "spotify"),)


async def test_an_allowed_guild_runs_the_command(
    discord_bot: Harness, forwarded: list[Forwarded]
) -> None:
    sent = only(await discord_bot.slash("linked"))
    assert sent.content == "You have not linked any account. Use /link <platform>."
    assert [call.command for call in forwarded] == [ShowLinks()]


async def test_a_guild_not_on_the_allowlist_is_denied_before_the_command_runs(
    discord_bot: Harness, forwarded: list[Forwarded]
) -> None:
    sent = only(await discord_bot.slash("link", *LINK, guild=STRANGER_GUILD))
    assert sent.kind == "reply"
    assert sent.ephemeral
    assert sent.content == "Denied: This server is not authorized to use TimmyBot."
    # The command never ran: the bus stopped it before its handler.
    assert forwarded == []
    assert isinstance(discord_bot.services.metrics, MemorySecurityMetrics)
    assert discord_bot.services.metrics.snapshot().unauthorized_access == 1


async def test_the_denial_reads_exactly_like_the_consoles(discord_bot: Harness) -> None:
    sent = only(await discord_bot.slash("linked", guild=STRANGER_GUILD))
    console = await discord_bot.console("linked", "", user_id=USER, guild_id=STRANGER_GUILD)
    assert sent.content == console


async def test_repeated_attempts_ban_the_guild_and_each_attempt_counts_once(
    discord_bot: Harness,
) -> None:
    # attempt_limit is 3: the fourth denied attempt within the window places
    # the ban. Were a command guarded twice, the ban would come sooner.
    for _ in range(3):
        sent = only(await discord_bot.slash("linked", guild=STRANGER_GUILD))
        assert sent.content == "Denied: This server is not authorized to use TimmyBot."
    banned = only(await discord_bot.slash("linked", guild=STRANGER_GUILD))
    assert banned.content == (
        "Denied: This server is temporarily blocked after repeated unauthorized attempts. "
        "Try again in 60 minutes."
    )
    bans = await discord_bot.services.access.list_bans()
    assert [ban.guild_id for ban in bans] == [STRANGER_GUILD]

    # An owner lifts it from Discord; the guild is back to "not authorized".
    unban = p.sub("guild", p.sub("unban", p.string("guild", str(STRANGER_GUILD))))
    lifted = only(await discord_bot.slash("admin", unban, user=OWNER, guild=ALLOWED_GUILD))
    assert lifted.content == f"Guild {STRANGER_GUILD} is unbanned."
    after = only(await discord_bot.slash("linked", guild=STRANGER_GUILD))
    assert after.content == "Denied: This server is not authorized to use TimmyBot."


async def test_the_kill_switch_stops_everyone_but_the_owners(
    discord_bot: Harness, forwarded: list[Forwarded]
) -> None:
    on = p.sub("killswitch", p.sub("on", p.string("reason", "incident")))
    only(await discord_bot.slash("admin", on, user=OWNER))

    stopped = only(await discord_bot.slash("linked"))
    assert stopped.content == "Denied: TimmyBot is paused by its operators. Please try again later."
    assert stopped.ephemeral
    # Admin roles do not pass the kill switch either: only owners do.
    role_admin = only(
        await discord_bot.slash("admin", p.sub("killswitch", p.sub("off")), roles=(ADMIN_ROLE,))
    )
    assert role_admin.content == stopped.content

    owner = only(await discord_bot.slash("linked", user=OWNER))
    assert owner.content == "You have not linked any account. Use /link <platform>."

    only(await discord_bot.slash("admin", p.sub("killswitch", p.sub("off")), user=OWNER))
    back = only(await discord_bot.slash("linked"))
    assert back.content == "You have not linked any account. Use /link <platform>."
    assert [call.command for call in forwarded if type(call.command).admin_only] == [
        SwitchOn(switch=Switch.KILL_SWITCH, reason="incident"),
        SwitchOff(switch=Switch.KILL_SWITCH),
    ]


async def test_direct_messages_are_denied_unless_allowed(make_bot: MakeBot) -> None:
    closed = await make_bot()
    sent = only(await closed.slash("linked", guild=None))
    assert sent.content == "Denied: TimmyBot commands are not available in direct messages."
    owner = only(await closed.slash("linked", guild=None, user=OWNER))
    assert owner.content == "You have not linked any account. Use /link <platform>."

    open_ = await make_bot(allow_direct_messages=True)
    allowed = only(await open_.slash("linked", guild=None))
    assert allowed.content == "You have not linked any account. Use /link <platform>."


@pytest.mark.parametrize(
    ("roles", "allowed"),
    [
        ((), False),  # lightbulb's has_roles([...], mode="any") lets this one through
        ((OTHER_ROLE,), False),
        ((ADMIN_ROLE,), True),
        ((OTHER_ROLE, ADMIN_ROLE), True),
    ],
)
async def test_admin_commands_need_an_owner_or_an_admin_role(
    discord_bot: Harness, roles: tuple[int, ...], allowed: bool
) -> None:
    sent = only(await discord_bot.slash("admin", p.sub("guild", p.sub("list")), roles=roles))
    if allowed:
        assert (sent.content or "").startswith("Allowed guilds: ")
    else:
        assert sent.content == "Only TimmyBot owners and admins can use /admin."
        assert sent.ephemeral


async def test_the_everyone_role_never_counts_as_an_admin_role(make_bot: MakeBot) -> None:
    # A deployer who lists a guild's @everyone role (its ID is the guild's)
    # must not make every member an admin.
    bot = await make_bot(admin_role_ids={ALLOWED_GUILD})
    sent = only(await bot.slash("admin", p.sub("guild", p.sub("list"))))
    assert sent.content == "Only TimmyBot owners and admins can use /admin."


async def test_a_store_outage_fails_closed(
    discord_bot: Harness, forwarded: list[Forwarded], monkeypatch: pytest.MonkeyPatch
) -> None:
    from timmybot_core import StoreUnavailable

    async def down(*_: object, **__: object) -> bool:
        raise StoreUnavailable("access store: database is locked")

    store = discord_bot.services.access._store  # the port behind the guard
    monkeypatch.setattr(store, "is_guild_allowed", down)
    monkeypatch.setattr(store, "get_switch", down)
    sent = only(await discord_bot.slash("linked", guild=STRANGER_GUILD))
    assert sent.content == (
        "Denied: TimmyBot cannot check access right now. Please try again in a moment."
    )
    assert forwarded == []
