"""One typed command per use case, and who runs it (:class:`Invocation`).

A front-end builds a command from its typed options (a guild ID is an
``int``, a switch a :class:`~timmybot_core.Switch`, never a command line)
and hands it to the :class:`~timmybot_bot.app.messagebus.MessageBus`. Class
variables say what the bus checks first (``guarded``: the access guard;
``admin_only``: owners, admin roles and the local operator only), the fixed
audit ``action`` its handler records, ``guard_name``, the name the guard,
the rate limiter and the security log know it by, and ``spends_quota``
(it calls a music provider: the stricter rate limit and failure mode).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import ClassVar, Final

import attrs

from timmybot_bot.runtime.vault_rekey import RekeyPlan, Report
from timmybot_core import AuditKind, AuditLog, Severity, Switch, ValidationPolicy

__all__ = [
    "QUERY_LIMIT",
    "AdminCommand",
    "AllowGuild",
    "CheckPlaylistName",
    "Command",
    "DeclareIncident",
    "EraseMyData",
    "EraseUserData",
    "ExportMyData",
    "ExportUserData",
    "Invocation",
    "LinkAccount",
    "ListGuilds",
    "ListSwitches",
    "OwnDataCommand",
    "PrivacyInfo",
    "QueryAudit",
    "RekeyVault",
    "RemoveGuild",
    "RequestErasure",
    "RotateAuditKey",
    "RunRotation",
    "SearchTracks",
    "ShowLinks",
    "SwitchOff",
    "SwitchOn",
    "SwitchStatus",
    "UnbanGuild",
    "UnlinkAccount",
    "VerifyAudit",
    "WhoAmI",
]

#: The longest ``/search`` query, in characters. It is the validator's own
#: limit (after normalization), read here rather than written again, so that
#: Discord's option never lets through a query the validator then calls too
#: long; the console has no limit of its own and meets the validator's.
QUERY_LIMIT: Final = ValidationPolicy.default().max_search_length


def _id_set(values: Iterable[int]) -> frozenset[int]:
    return frozenset(values)


@attrs.frozen(kw_only=True)
class Invocation:
    """Who runs a command, and where.

    ``guild_id`` is ``None`` in a direct message. ``source`` says where the
    command came from (``discord``, ``console``, ``cli``) for the audit trail.
    ``trusted_operator`` marks the person at the offline console's terminal
    with no identity chosen: they run the bot's machine, so the guard does
    not apply to them. ``at_terminal`` marks a caller at this machine's
    terminal (console, ``timmybot-admin``): their operating-system account
    is recorded, as a pseudonym, with what they change.
    """

    user_id: int
    guild_id: int | None = None
    role_ids: frozenset[int] = attrs.field(factory=frozenset, converter=_id_set)
    source: str = "discord"
    trusted_operator: bool = False
    at_terminal: bool = False


@attrs.frozen(kw_only=True)
class Command:
    """A use case asked for; subclasses hold its typed arguments."""

    guarded: ClassVar[bool] = True
    admin_only: ClassVar[bool] = False
    action: ClassVar[str | None] = None
    guard_name: ClassVar[str] = "admin"
    spends_quota: ClassVar[bool] = False


@attrs.frozen(kw_only=True)
class AdminCommand(Command):
    """A command only owners, admin roles and the local operator may run."""

    admin_only: ClassVar[bool] = True


@attrs.frozen(kw_only=True)
class OwnDataCommand(Command):
    """A command on the caller's own data: not guarded (a user's rights do not depend on it)."""

    guarded: ClassVar[bool] = False
    guard_name: ClassVar[str] = "privacy"


# -- music accounts ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SearchTracks(Command):
    """``/search``: the top tracks for ``query`` on a linked platform (``None``: the first)."""

    guard_name: ClassVar[str] = "search"
    spends_quota: ClassVar[bool] = True
    query: str
    platform: str | None = None


@attrs.frozen(kw_only=True)
class CheckPlaylistName(Command):
    """``/playlist``: validate a playlist name and show the cleaned value."""

    guard_name: ClassVar[str] = "playlist"
    name: str


@attrs.frozen(kw_only=True)
class WhoAmI(Command):
    """``/whoami``: the identity commands run as."""

    guarded: ClassVar[bool] = False
    guard_name: ClassVar[str] = "whoami"


@attrs.frozen(kw_only=True)
class LinkAccount(Command):
    """``/link``: start linking a music account (an authorization URL)."""

    guard_name: ClassVar[str] = "link"
    spends_quota: ClassVar[bool] = True
    platform: str


@attrs.frozen(kw_only=True)
class ShowLinks(Command):
    """``/linked``: the platforms the caller linked."""

    guard_name: ClassVar[str] = "linked"


@attrs.frozen(kw_only=True)
class UnlinkAccount(Command):
    """``/unlink``: revoke and delete a linked account's tokens."""

    guard_name: ClassVar[str] = "unlink"
    platform: str


# -- the caller's own data (not guarded: a user's rights do not depend on it) --------


@attrs.frozen(kw_only=True)
class PrivacyInfo(OwnDataCommand):
    """``/privacy info``: what is kept about the caller, and why."""


@attrs.frozen(kw_only=True)
class ExportMyData(OwnDataCommand):
    """``/privacy export``: a copy of the caller's data."""


@attrs.frozen(kw_only=True)
class RequestErasure(OwnDataCommand):
    """``/privacy delete``: ask the caller to confirm the erasure of their data."""


@attrs.frozen(kw_only=True)
class EraseMyData(OwnDataCommand):
    """The confirmed ``/privacy delete``: erase the caller's data."""


# -- guilds and switches (admins) ------------------------------------------------------


@attrs.frozen(kw_only=True)
class AllowGuild(AdminCommand):
    """Allowlist a guild and lift any ban on it."""

    action: ClassVar[str | None] = "guild.allow"
    guild_id: int


@attrs.frozen(kw_only=True)
class RemoveGuild(AdminCommand):
    """Take a guild off the run-time allowlist."""

    action: ClassVar[str | None] = "guild.remove"
    guild_id: int


@attrs.frozen(kw_only=True)
class UnbanGuild(AdminCommand):
    """Lift a guild's ban and forget its attempts."""

    action: ClassVar[str | None] = "guild.unban"
    guild_id: int


@attrs.frozen(kw_only=True)
class ListGuilds(AdminCommand):
    """The allowed guilds and the active bans."""


@attrs.frozen(kw_only=True)
class SwitchOn(AdminCommand):
    """Turn a process-wide switch on, optionally for a while."""

    action: ClassVar[str | None] = "switch.on"
    switch: Switch
    reason: str | None = None
    duration: timedelta | None = None


@attrs.frozen(kw_only=True)
class SwitchOff(AdminCommand):
    """Turn a process-wide switch off."""

    action: ClassVar[str | None] = "switch.off"
    switch: Switch


@attrs.frozen(kw_only=True)
class SwitchStatus(AdminCommand):
    """Whether one switch is on, and why."""

    switch: Switch


@attrs.frozen(kw_only=True)
class ListSwitches(AdminCommand):
    """Every switch and why it is on."""


# -- incidents, audit, tokens (admins) --------------------------------------------------


@attrs.frozen(kw_only=True)
class DeclareIncident(AdminCommand):
    """Declare an incident and run its severity's playbook."""

    action: ClassVar[str | None] = "incident.declare"
    severity: Severity
    title: str
    description: str = ""


@attrs.frozen(kw_only=True)
class QueryAudit(AdminCommand):
    """One page of audit records, newest first."""

    start: datetime
    end: datetime
    kind: AuditKind | None = None
    action_name: str | None = None
    admin_id: int | None = None
    limit: int = 10
    cursor: str | None = None
    #: Asked as "the latest records" (``/admin audit recent``) rather than a search.
    recent: bool = False


@attrs.frozen(kw_only=True)
class VerifyAudit(AdminCommand):
    """Check every chain and digest; problems between ``start`` and ``end`` are reported."""

    start: datetime | None = None
    end: datetime | None = None
    #: Wraps the log verification reads (a front-end's progress bar); not part of what is asked.
    observe: Callable[[AuditLog], AuditLog] | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class RotateAuditKey(AdminCommand):
    """A new audit signing key; the old public key stays in the ring."""

    action: ClassVar[str | None] = "audit.rotate_key"


@attrs.frozen(kw_only=True)
class RunRotation(AdminCommand):
    """Refresh every token that expires within ``within``."""

    action: ClassVar[str | None] = "rotation.run"
    within: timedelta = timedelta(hours=24)


@attrs.frozen(kw_only=True)
class RekeyVault(AdminCommand):
    """Move the SQLite vault to the new key of ``plan`` (stopped processes only)."""

    action: ClassVar[str | None] = "vault.rekey"
    plan: RekeyPlan = attrs.field(repr=False)
    batch: int = 100
    #: Progress of each phase, for a front-end's progress bar; not part of what is asked.
    report: Report | None = attrs.field(default=None, eq=False, repr=False)


# -- a user's data, on their behalf (owners) ------------------------------------------


@attrs.frozen(kw_only=True)
class ExportUserData(AdminCommand):
    """Everything kept about a user (never a token), exported as the owner."""

    action: ClassVar[str | None] = "user.export"
    user_id: int
    to_file: bool = False


@attrs.frozen(kw_only=True)
class EraseUserData(AdminCommand):
    """Erase a user's tokens, preferences and pending links, as the owner."""

    action: ClassVar[str | None] = "user.delete"
    user_id: int
