"""Guild and switch handlers: what they change, what they return, what they record."""

from __future__ import annotations

import pytest

from tests.unit.handlers.conftest import AS_OWNER, AS_USER, GUILD, admin_records
from timmybot_bot.app import commands as c
from timmybot_bot.app.failures import NotAdmin
from timmybot_bot.app.handlers.access import GuildChanged, Guilds, SwitchChanged, Switches
from timmybot_bot.runtime.bootstrap import Services
from timmybot_core import Switch

OTHER = 333_333_333_333_333_333


async def test_allow_remove_unban_change_the_allowlist_and_record_each_once(
    services: Services,
) -> None:
    bus = services.bus
    allowed = await bus.handle(c.AllowGuild(guild_id=OTHER), AS_OWNER)
    again = await bus.handle(c.AllowGuild(guild_id=OTHER), AS_OWNER)
    removed = await bus.handle(c.RemoveGuild(guild_id=OTHER), AS_OWNER)
    unbanned = await bus.handle(c.UnbanGuild(guild_id=OTHER), AS_OWNER)
    assert [allowed, again, removed, unbanned] == [
        GuildChanged(guild_id=OTHER, changed=True, recorded=True),
        GuildChanged(guild_id=OTHER, changed=False, recorded=True),
        GuildChanged(guild_id=OTHER, changed=True, recorded=True),
        GuildChanged(guild_id=OTHER, changed=False, recorded=True),
    ]
    records = await admin_records(services)
    assert [(r.action, r.resource, dict(r.details)) for r in records] == [
        ("guild.allow", f"guild:{OTHER}", {"changed": True}),
        ("guild.allow", f"guild:{OTHER}", {"changed": False}),
        ("guild.remove", f"guild:{OTHER}", {"changed": True}),
        ("guild.unban", f"guild:{OTHER}", {"changed": False}),
    ]
    assert {r.source for r in records} == {"discord"}


async def test_removing_a_configured_guild_says_so(services: Services) -> None:
    result = await services.bus.handle(c.RemoveGuild(guild_id=GUILD), AS_OWNER)
    assert result.configured
    listed = await services.bus.handle(c.ListGuilds(), AS_OWNER)
    assert isinstance(listed, Guilds)
    assert GUILD in listed.allowed and GUILD in listed.configured


async def test_switches_turn_on_and_off_with_fixed_actions(services: Services) -> None:
    on = await services.bus.handle(
        c.SwitchOn(switch=Switch.LOCKDOWN, reason="drill\u202e"), AS_OWNER
    )
    assert isinstance(on, SwitchChanged)
    assert on.state.active(on.now)
    assert on.state.reason == "drill"  # sanitized before it is stored
    status = await services.bus.handle(c.SwitchStatus(switch=Switch.LOCKDOWN), AS_OWNER)
    assert isinstance(status, Switches)
    assert status.states[0].active(status.now)
    off = await services.bus.handle(c.SwitchOff(switch=Switch.LOCKDOWN), AS_OWNER)
    assert not off.state.active(off.now)
    records = await admin_records(services)
    assert [(r.action, r.resource) for r in records] == [
        ("switch.on", "switch:lockdown"),
        ("switch.off", "switch:lockdown"),
    ]


@pytest.mark.parametrize(
    "command",
    [c.AllowGuild(guild_id=OTHER), c.SwitchOn(switch=Switch.KILL_SWITCH), c.ListGuilds()],
)
async def test_the_bus_refuses_admin_commands_to_others_before_the_handler(
    services: Services, command: c.Command
) -> None:
    with pytest.raises(NotAdmin):
        await services.bus.handle(command, AS_USER)
    assert await admin_records(services) == []
    assert not (await services.access.switch_state(Switch.KILL_SWITCH)).on
