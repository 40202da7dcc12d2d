"""Guilds and switches: allow, remove, unban, list; switches on, off, status, list."""

from __future__ import annotations

from datetime import datetime

import attrs

from timmybot_bot.app.commands import (
    AllowGuild,
    Invocation,
    ListGuilds,
    ListSwitches,
    RemoveGuild,
    SwitchOff,
    SwitchOn,
    SwitchStatus,
    UnbanGuild,
)
from timmybot_bot.app.recorder import AdminRecorder
from timmybot_core import (
    Ban,
    Clock,
    ResponseSanitizer,
    ServerAccessControl,
    Switch,
    SwitchState,
)

__all__ = [
    "GuildChanged",
    "Guilds",
    "SwitchChanged",
    "Switches",
    "allow_guild",
    "list_guilds",
    "list_switches",
    "remove_guild",
    "switch_off",
    "switch_on",
    "switch_status",
    "unban_guild",
]


@attrs.frozen(kw_only=True)
class GuildChanged:
    """What an allowlist change did; ``configured``: the setting allows it anyway."""

    guild_id: int
    changed: bool
    recorded: bool
    configured: bool = False


@attrs.frozen(kw_only=True)
class Guilds:
    """The allowed guilds (with those allowed by configuration) and the active bans."""

    allowed: tuple[int, ...]
    configured: frozenset[int]
    bans: tuple[Ban, ...]


@attrs.frozen(kw_only=True)
class SwitchChanged:
    """A switch's state after it was set."""

    state: SwitchState
    now: datetime
    recorded: bool


@attrs.frozen(kw_only=True)
class Switches:
    """The states of the asked switches."""

    states: tuple[SwitchState, ...]
    now: datetime


async def allow_guild(
    command: AllowGuild,
    invocation: Invocation,
    *,
    access: ServerAccessControl,
    recorder: AdminRecorder,
) -> GuildChanged:
    """Allowlist a guild (and lift any ban on it)."""
    guild = command.guild_id
    added = await access.allow_guild(guild, actor=invocation.user_id)
    recorded = await recorder.record(command, invocation, f"guild:{guild}", {"changed": added})
    return GuildChanged(guild_id=guild, changed=added, recorded=recorded)


async def remove_guild(
    command: RemoveGuild,
    invocation: Invocation,
    *,
    access: ServerAccessControl,
    recorder: AdminRecorder,
) -> GuildChanged:
    """Take a guild off the allowlist; say so when configuration allows it anyway."""
    guild = command.guild_id
    removed = await access.remove_guild(guild, actor=invocation.user_id)
    recorded = await recorder.record(command, invocation, f"guild:{guild}", {"changed": removed})
    return GuildChanged(
        guild_id=guild,
        changed=removed,
        recorded=recorded,
        configured=guild in access.settings.allowed_guilds,
    )


async def unban_guild(
    command: UnbanGuild,
    invocation: Invocation,
    *,
    access: ServerAccessControl,
    recorder: AdminRecorder,
) -> GuildChanged:
    """Lift a guild's ban and forget its attempts."""
    guild = command.guild_id
    lifted = await access.unban(guild, actor=invocation.user_id)
    recorded = await recorder.record(command, invocation, f"guild:{guild}", {"changed": lifted})
    return GuildChanged(guild_id=guild, changed=lifted, recorded=recorded)


async def list_guilds(
    command: ListGuilds, invocation: Invocation, *, access: ServerAccessControl
) -> Guilds:
    """Return the allowed guilds and the active bans."""
    return Guilds(
        allowed=tuple(await access.list_allowed_guilds()),
        configured=access.settings.allowed_guilds,
        bans=tuple(await access.list_bans()),
    )


async def switch_on(
    command: SwitchOn,
    invocation: Invocation,
    *,
    access: ServerAccessControl,
    sanitizer: ResponseSanitizer,
    clock: Clock,
    recorder: AdminRecorder,
) -> SwitchChanged:
    """Turn a switch on for every process, optionally for a while."""
    reason = sanitizer.sanitize_string(command.reason or "") or None
    state = await access.set_switch(
        command.switch, True, reason=reason, actor=invocation.user_id, duration=command.duration
    )
    duration = command.duration.total_seconds() if command.duration else None
    recorded = await recorder.record(
        command,
        invocation,
        f"switch:{command.switch.value}",
        {"reason": reason, "for_seconds": duration},
    )
    return SwitchChanged(state=state, now=clock.now(), recorded=recorded)


async def switch_off(
    command: SwitchOff,
    invocation: Invocation,
    *,
    access: ServerAccessControl,
    clock: Clock,
    recorder: AdminRecorder,
) -> SwitchChanged:
    """Turn a switch off for every process."""
    state = await access.set_switch(command.switch, False, reason=None, actor=invocation.user_id)
    recorded = await recorder.record(
        command, invocation, f"switch:{command.switch.value}", {"reason": None, "for_seconds": None}
    )
    return SwitchChanged(state=state, now=clock.now(), recorded=recorded)


async def switch_status(
    command: SwitchStatus, invocation: Invocation, *, access: ServerAccessControl, clock: Clock
) -> Switches:
    """One switch's state."""
    return Switches(states=(await access.switch_state(command.switch),), now=clock.now())


async def list_switches(
    command: ListSwitches, invocation: Invocation, *, access: ServerAccessControl, clock: Clock
) -> Switches:
    """Every switch's state."""
    states = tuple([await access.switch_state(switch) for switch in Switch])
    return Switches(states=states, now=clock.now())
