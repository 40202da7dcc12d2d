"""Guilds and switches: allow, remove, unban, list; switches on, off, status, list."""

from __future__ import annotations

from datetime import datetime, timedelta

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
    "change_guild",
    "list_guilds",
    "set_switch",
    "switch_states",
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


async def change_guild(
    command: AllowGuild | RemoveGuild | UnbanGuild,
    invocation: Invocation,
    *,
    access: ServerAccessControl,
    recorder: AdminRecorder,
) -> GuildChanged:
    """Allowlist a guild (lifting any ban), take it off the allowlist, or lift its ban."""
    guild, actor = command.guild_id, invocation.user_id
    if isinstance(command, AllowGuild):
        changed = await access.allow_guild(guild, actor=actor)
    elif isinstance(command, RemoveGuild):
        changed = await access.remove_guild(guild, actor=actor)
    else:
        changed = await access.unban(guild, actor=actor)
    recorded = await recorder.record(command, invocation, f"guild:{guild}", {"changed": changed})
    return GuildChanged(
        guild_id=guild,
        changed=changed,
        recorded=recorded,
        # Removing a guild the settings allow changes nothing that lasts.
        configured=isinstance(command, RemoveGuild) and guild in access.settings.allowed_guilds,
    )


async def list_guilds(
    command: ListGuilds, invocation: Invocation, *, access: ServerAccessControl
) -> Guilds:
    """Return the allowed guilds and the active bans."""
    return Guilds(
        allowed=tuple(await access.list_allowed_guilds()),
        configured=access.settings.allowed_guilds,
        bans=tuple(await access.list_bans()),
    )


async def set_switch(
    command: SwitchOn | SwitchOff,
    invocation: Invocation,
    *,
    access: ServerAccessControl,
    sanitizer: ResponseSanitizer,
    clock: Clock,
    recorder: AdminRecorder,
) -> SwitchChanged:
    """Turn a switch on for every process, optionally for a while, or off."""
    reason: str | None = None
    duration: timedelta | None = None
    if isinstance(command, SwitchOn):
        reason = sanitizer.sanitize_string(command.reason or "") or None
        duration = command.duration
    state = await access.set_switch(
        command.switch,
        isinstance(command, SwitchOn),
        reason=reason,
        actor=invocation.user_id,
        duration=duration,
    )
    recorded = await recorder.record(
        command,
        invocation,
        f"switch:{command.switch.value}",
        {"reason": reason, "for_seconds": duration.total_seconds() if duration else None},
    )
    return SwitchChanged(state=state, now=clock.now(), recorded=recorded)


async def switch_states(
    command: SwitchStatus | ListSwitches,
    invocation: Invocation,
    *,
    access: ServerAccessControl,
    clock: Clock,
) -> Switches:
    """One switch's state (``SwitchStatus``), or every switch's."""
    asked = (command.switch,) if isinstance(command, SwitchStatus) else tuple(Switch)
    states = tuple([await access.switch_state(switch) for switch in asked])
    return Switches(states=states, now=clock.now())
