"""DataRetentionService: erasure, export, and clean-up of expired data.

The three data-protection duties of the seed's ``DataRetentionService``:

- :meth:`~DataRetentionService.delete_user_data` erases everything keyed by
  one user (tokens, revoked at the platforms first; preferences; pending
  links; any extra store registered with the service). Audit records, the
  security log and incident evidence stay: they hold keyed pseudonyms only,
  and are kept under legitimate interest (see ``docs/privacy.md``). A store
  that fails does not stop the others; the call then raises
  :class:`~timmybot_core.domain.errors.DataDeletionError` naming it, and a second
  call finishes the job, since every step is idempotent.
- :meth:`~DataRetentionService.export_user_data` returns the user's data as
  JSON data (``docs/schemas/user-export.schema.json``): linked platforms
  with scopes and dates but never a token, preferences, the security and
  privacy events about them, and the data statement of
  :mod:`timmybot_core.domain.classification`.
- :meth:`~DataRetentionService.cleanup_expired_data` purges what has
  expired: attempt counts and bans, link states, vault records left with no
  linked platform, and audit records past the retention period unless an
  incident's retention hold covers them.

Both user requests are recorded in the audit trail (kind ``privacy``).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, runtime_checkable

import attrs

from timmybot_core.domain.classification import DEFAULT_AUDIT_RETENTION, data_statement
from timmybot_core.domain.clock import Clock
from timmybot_core.domain.errors import DataDeletionError, VaultIntegrityError
from timmybot_core.domain.tokens import PlatformLink
from timmybot_core.ports.access import AccessPolicyStore
from timmybot_core.ports.audit import AuditRecord
from timmybot_core.ports.incidents import IncidentStore, RetentionHold
from timmybot_core.ports.link_states import LinkStateStore
from timmybot_core.ports.user_data import UserDataStore, check_user_id
from timmybot_core.services.tokens import SecureTokenService

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "CleanupReport",
    "DataRetentionService",
    "DeletionReport",
    "ErasureReport",
    "HostUserData",
    "PrivacyAuditTrail",
    "Requester",
    "RetentionSettings",
    "UserDataEraser",
]

EXPORT_FORMAT: Final = "timmybot.user-export"
EXPORT_VERSION: Final = 1

_log = logging.getLogger("timmybot.retention")


class Requester(enum.StrEnum):
    """Who asked for an erasure, after Red-DiscordBot's request types."""

    USER = "user"
    """The user asked for their own data to go (``/privacy delete``)."""
    OWNER = "owner"
    """A bot owner erased a user's data (for example on a request by mail)."""
    DISCORD_DELETED_USER = "discord_deleted_user"
    """Discord told the bot that the account was deleted."""


@runtime_checkable
class PrivacyAuditTrail(Protocol):
    """What this service needs of the audit trail (``AuditTrailService`` has it)."""

    async def record_privacy_request(
        self,
        *,
        user_id: int,
        action: str,
        requester: str,
        details: Mapping[str, object] | None = None,
    ) -> AuditRecord:
        """Append a privacy request about ``user_id`` (stored under its pseudonym)."""
        ...

    async def events_about(self, user_id: int, *, limit: int = 1000) -> list[AuditRecord]:
        """Return the security and privacy records about ``user_id``, newest first."""
        ...

    async def prune_expired(
        self, *, now: datetime, retention: timedelta, holds: Sequence[RetentionHold]
    ) -> int:
        """Prune records older than ``now - retention`` that no hold covers; return how many."""
        ...


@runtime_checkable
class UserDataEraser(Protocol):
    """Any other store keyed by the user, registered so erasure reaches it too."""

    @property
    def name(self) -> str:
        """The store's name in reports and errors (no spaces)."""
        ...

    async def erase_user(self, user_id: int) -> int:
        """Delete everything of ``user_id``; return how many items. Idempotent."""
        ...


@runtime_checkable
class HostUserData(Protocol):
    """A store of the host bot's own that takes part in the user's rights.

    After Red-DiscordBot's end-user data API (``red_get_data_for_user`` and
    ``red_delete_data_for_user``): a bot that embeds TimmyBot passes its
    stores keyed by the Discord user to :class:`DataRetentionService`
    (``participants=``), and ``/privacy export`` includes what
    :meth:`export_user` returns under ``host_data[name]``, while
    ``/privacy delete`` calls :meth:`erase_user` and lists the store in the
    erasure's per-store report.
    """

    @property
    def name(self) -> str:
        """The store's name in exports, reports and errors (letters, digits, ``_``, ``-``)."""
        ...

    async def export_user(self, user_id: int) -> Mapping[str, Any]:
        """Return everything this store keeps about ``user_id``, as JSON-compatible data."""
        ...

    async def erase_user(self, user_id: int) -> int:
        """Delete everything of ``user_id``; return how many items. Idempotent."""
        ...


_STORE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@attrs.frozen(kw_only=True)
class RetentionSettings:
    """How long things are kept.

    Attributes:
        audit_retention: audit records older than this are pruned, unless an
            incident's retention hold covers them (``TIMMYBOT_AUDIT_RETENTION``).
        attempt_window: the access guard's attempt window; older attempts
            are purged.
        orphan_grace: a vault record with no linked platform is removed once
            it has not changed for this long (a link being written right
            now is left alone).
        export_event_limit: the most audit events one export includes.
    """

    audit_retention: timedelta = DEFAULT_AUDIT_RETENTION
    attempt_window: timedelta = timedelta(hours=1)
    orphan_grace: timedelta = timedelta(hours=1)
    export_event_limit: int = 1000

    def __attrs_post_init__(self) -> None:
        for name in ("audit_retention", "attempt_window"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.orphan_grace < timedelta(0):
            raise ValueError("orphan_grace must not be negative")
        if self.export_event_limit < 1:
            raise ValueError("export_event_limit must be at least 1")


@attrs.frozen(kw_only=True)
class DeletionReport:
    """What erasure did in one store.

    ``deleted`` counts items (linked platforms, preferences, link states);
    ``ok`` is ``False`` when the store failed, and ``detail`` then names the
    error's type. A detail never holds a token or the user's ID.
    """

    store: str
    deleted: int = 0
    ok: bool = True
    detail: str = ""


@attrs.frozen(kw_only=True)
class ErasureReport:
    """The outcome of one erasure request: a :class:`DeletionReport` per store."""

    requester: Requester
    completed_at: datetime
    stores: tuple[DeletionReport, ...]
    audit_event_id: str | None = None
    """The audit record of the request; ``None`` if it could not be recorded."""

    @property
    def ok(self) -> bool:
        """Whether every store was erased and the request recorded."""
        return all(report.ok for report in self.stores)

    @property
    def failed(self) -> tuple[str, ...]:
        """The stores that failed, in the order they were tried."""
        return tuple(report.store for report in self.stores if not report.ok)

    @property
    def deleted(self) -> int:
        """Items deleted across every store."""
        return sum(report.deleted for report in self.stores)

    def store(self, name: str) -> DeletionReport:
        """Return the report of the store called ``name``."""
        for report in self.stores:
            if report.store == name:
                return report
        raise KeyError(name)

    def as_text(self) -> str:
        """Return the report as lines for a person to read."""
        lines = []
        for report in self.stores:
            state = "ok  " if report.ok else "FAIL"
            detail = f" ({report.detail})" if report.detail else ""
            lines.append(f"{state} {report.store}: {report.deleted} deleted{detail}")
        return "\n".join(lines)


@attrs.frozen(kw_only=True)
class CleanupReport:
    """What one clean-up run removed, and which steps failed."""

    attempts: int = 0
    bans: int = 0
    switches: int = 0
    link_states: int = 0
    orphaned_vault_records: int = 0
    audit_records: int = 0
    failed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every step ran."""
        return not self.failed

    @property
    def total(self) -> int:
        """Everything removed."""
        return (
            self.attempts
            + self.bans
            + self.switches
            + self.link_states
            + self.orphaned_vault_records
            + self.audit_records
        )

    def as_dict(self) -> dict[str, object]:
        """Return the counts as JSON data."""
        return {
            "attempts": self.attempts,
            "bans": self.bans,
            "switches": self.switches,
            "link_states": self.link_states,
            "orphaned_vault_records": self.orphaned_vault_records,
            "audit_records": self.audit_records,
            "failed": list(self.failed),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _json(value: object) -> Any:
    # Audit details are JSON data already, in read-only mappings; copy them
    # into plain containers json.dumps accepts.
    if isinstance(value, Mapping):
        return {str(key): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _link_json(link: PlatformLink) -> dict[str, Any]:
    # Deliberately field by field: nothing of OAuthTokens but the public
    # facts, so a token can never slip into an export.
    tokens = link.tokens
    return {
        "platform": tokens.platform,
        "scopes": list(tokens.scopes),
        "token_type": tokens.token_type,
        "access_token_expires_at": tokens.expires_at.isoformat(),
        "linked_at": link.linked_at.isoformat(),
        "refreshed_at": _iso(link.refreshed_at),
        "needs_relink": link.needs_relink,
    }


def _event_json(record: AuditRecord) -> dict[str, Any]:
    # The actor (an admin's pseudonym) is someone else's data, and the
    # chain fields mean nothing to the user: neither is exported.
    return {
        "event_id": record.event_id,
        "timestamp": record.timestamp.isoformat(),
        "kind": record.kind.value,
        "action": record.action,
        "resource": record.resource,
        "source": record.source,
        "details": _json(record.details),
    }


_Step = Callable[[int], Awaitable[DeletionReport]]


class DataRetentionService:
    """Erases, exports and cleans up users' data.

    Args:
        tokens: the token service (vault and its cache; revokes at providers).
        user_data: users' preferences.
        link_states: pending account links.
        access_store: attempt counts, bans and switches to purge.
        incidents: where retention holds are kept.
        audit: the audit trail (records requests, lists a user's events,
            prunes old records).
        clock: the time.
        settings: retention periods.
        erasers: other stores keyed by the user, erased too.
        participants: the host bot's stores (:class:`HostUserData`),
            exported and erased with the rest.
    """

    def __init__(
        self,
        *,
        tokens: SecureTokenService,
        user_data: UserDataStore,
        link_states: LinkStateStore,
        access_store: AccessPolicyStore,
        incidents: IncidentStore,
        audit: PrivacyAuditTrail,
        clock: Clock,
        settings: RetentionSettings | None = None,
        erasers: Sequence[UserDataEraser] = (),
        participants: Sequence[HostUserData] = (),
    ) -> None:
        self._tokens = tokens
        self._user_data = user_data
        self._link_states = link_states
        self._access = access_store
        self._incidents = incidents
        self._audit = audit
        self._clock = clock
        self._settings = settings if settings is not None else RetentionSettings()
        for participant in participants:
            if not isinstance(participant, HostUserData):
                raise TypeError(
                    f"{type(participant).__name__} is not a HostUserData store "
                    "(it needs name, export_user and erase_user)"
                )
            if not participant.name or not set(participant.name) <= _STORE_NAME:
                raise ValueError(
                    f"a host store's name must be letters, digits, '_' or '-' "
                    f"(got {participant.name!r})"
                )
        self._participants = tuple(participants)
        # A participant is erased like any other store keyed by the user.
        self._erasers = (*tuple(erasers), *self._participants)
        names = [name for name, _ in self._steps()] + ["audit"]
        if len(set(names)) != len(names):
            raise ValueError(f"every erased store needs its own name (got {names})")

    @property
    def settings(self) -> RetentionSettings:
        """The retention periods."""
        return self._settings

    # -- erasure ---------------------------------------------------------------------

    def _steps(self) -> list[tuple[str, _Step]]:
        # Pending links first: once they are gone, no link started before the
        # request can complete and write new tokens after the vault is erased.
        steps: list[tuple[str, _Step]] = [
            ("link_states", self._erase_link_states),
            ("vault", self._erase_tokens),
            ("preferences", self._erase_preferences),
        ]
        for eraser in self._erasers:
            steps.append((eraser.name, self._extra(eraser)))
        return steps

    async def _erase_link_states(self, user_id: int) -> DeletionReport:
        return DeletionReport(
            store="link_states", deleted=await self._link_states.delete_user(user_id)
        )

    async def _erase_tokens(self, user_id: int) -> DeletionReport:
        try:
            platforms = await self._tokens.delete_user(user_id)
        except VaultIntegrityError:
            # The record cannot be read, so its tokens cannot be revoked; it
            # still goes (a damaged record is of no use to anyone).
            removed = await self._tokens.vault.delete(user_id)
            self._tokens.invalidate(user_id)
            return DeletionReport(
                store="vault",
                deleted=int(removed),
                detail="the record was unreadable: deleted without revoking at the platform",
            )
        detail = f"revoked where supported: {', '.join(platforms)}" if platforms else ""
        return DeletionReport(store="vault", deleted=len(platforms), detail=detail)

    async def _erase_preferences(self, user_id: int) -> DeletionReport:
        return DeletionReport(
            store="preferences", deleted=await self._user_data.delete_user(user_id)
        )

    def _extra(self, eraser: UserDataEraser) -> _Step:
        async def erase(user_id: int) -> DeletionReport:
            return DeletionReport(store=eraser.name, deleted=await eraser.erase_user(user_id))

        return erase

    async def delete_user_data(self, user_id: int, requester: Requester | str) -> ErasureReport:
        """Erase everything keyed by ``user_id``; return what each store did.

        Tokens are revoked at their platform where it supports revocation
        (a failed revocation is logged and does not stop the deletion), then
        deleted from the vault and this process's cache. Other processes'
        caches forget them within their cache age (60 seconds by default).
        Audit records are kept: they hold pseudonyms only. The request is
        recorded in the audit trail.

        Raises:
            DataDeletionError: a store failed, or the request could not be
                recorded; ``failed`` names them and every other store was
                erased. Calling again finishes the job.
            ValueError: ``user_id`` or ``requester`` is not valid.

        """
        user = check_user_id(user_id)
        who = Requester(requester)
        reports: list[DeletionReport] = []
        for name, step in self._steps():
            try:
                reports.append(await step(user))
            except Exception as error:  # noqa: BLE001 - one store failing must not spare the others
                _log.warning("erasure: the %s store failed (%s)", name, type(error).__name__)
                reports.append(DeletionReport(store=name, ok=False, detail=type(error).__name__))
        failed = [report.store for report in reports if not report.ok]
        event_id: str | None = None
        try:
            record = await self._audit.record_privacy_request(
                user_id=user,
                action="erasure",
                requester=who.value,
                details={
                    "outcome": "incomplete" if failed else "complete",
                    "deleted": {report.store: report.deleted for report in reports},
                    "failed": failed,
                },
            )
            event_id = record.event_id
        except Exception as error:  # noqa: BLE001 - reported as the audit store failing
            _log.warning("erasure: the request could not be recorded (%s)", type(error).__name__)
            reports.append(DeletionReport(store="audit", ok=False, detail=type(error).__name__))
        report = ErasureReport(
            requester=who,
            completed_at=self._clock.now(),
            stores=tuple(reports),
            audit_event_id=event_id,
        )
        if not report.ok:
            names = ", ".join(report.failed)
            raise DataDeletionError(
                f"the erasure is incomplete: {names} failed; every other store was erased. "
                "Run it again to finish.",
                failed=report.failed,
                report=report,
            )
        _log.info("erasure requested by %s: %d items deleted", who.value, report.deleted)
        return report

    # -- export ----------------------------------------------------------------------

    async def export_user_data(
        self, user_id: int, requester: Requester | str = Requester.USER
    ) -> dict[str, Any]:
        """Return everything kept about ``user_id`` as JSON data, and record the request.

        The shape is ``docs/schemas/user-export.schema.json``. Linked
        platforms carry their scopes and dates, never a token. Raises
        ``StoreUnavailable`` (``VaultUnavailable``) when a store cannot
        answer: an export is complete or not given at all.
        """
        user = check_user_id(user_id)
        who = Requester(requester)
        record = await self._tokens.get_user_tokens(user, force_fetch=True)
        links = [_link_json(link) for link in record.links.values()] if record else []
        preferences = await self._user_data.get_preferences(user)
        events = await self._audit.events_about(user, limit=self._settings.export_event_limit)
        host_data = {
            participant.name: _json(dict(await participant.export_user(user)))
            for participant in self._participants
        }
        export: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "generated_at": self._clock.now().isoformat(),
            "user_id": str(user),
            "linked_platforms": links,
            "preferences": {
                preference.key: {
                    "value": preference.value,
                    "updated_at": preference.updated_at.isoformat(),
                }
                for preference in preferences
            },
            "events": [_event_json(event) for event in events],
            "data_statement": data_statement(audit_retention=self._settings.audit_retention),
        }
        if self._participants:
            export["host_data"] = host_data
        await self._audit.record_privacy_request(
            user_id=user,
            action="export",
            requester=who.value,
            details={
                "linked_platforms": len(links),
                "preferences": len(preferences),
                "events": len(events),
            }
            | ({"host_data": sorted(host_data)} if host_data else {}),
        )
        return export

    # -- clean-up --------------------------------------------------------------------

    async def cleanup_expired_data(self) -> CleanupReport:
        """Remove expired data from every store; return the counts.

        Each step runs even if another fails; a failed step is named in
        ``failed`` and logged. Audit records are pruned only once the
        retention holds have been read: if they cannot be, nothing is
        pruned, since a held record must never go.
        """
        now = self._clock.now()
        counts: dict[str, int] = {}
        failed: list[str] = []

        async def run(name: str, step: Callable[[], Awaitable[None]]) -> None:
            try:
                await step()
            except Exception as error:  # noqa: BLE001 - one failed step must not stop the rest
                _log.warning("clean-up: %s failed (%s)", name, type(error).__name__)
                failed.append(name)

        async def access() -> None:
            purged = await self._access.purge_expired(now=now, window=self._settings.attempt_window)
            counts.update(attempts=purged.attempts, bans=purged.bans, switches=purged.switches)

        async def link_states() -> None:
            counts["link_states"] = await self._link_states.purge_expired(now=now)

        async def orphans() -> None:
            counts["orphaned_vault_records"] = await self._purge_orphans(now)

        async def audit() -> None:
            holds = await self._incidents.list_holds()
            counts["audit_records"] = await self._audit.prune_expired(
                now=now, retention=self._settings.audit_retention, holds=holds
            )

        await run("access", access)
        await run("link_states", link_states)
        await run("vault", orphans)
        await run("audit", audit)
        report = CleanupReport(**counts, failed=tuple(failed))
        _log.info(
            "clean-up removed %d expired items%s",
            report.total,
            f"; failed: {', '.join(failed)}" if failed else "",
        )
        return report

    async def _purge_orphans(self, now: datetime) -> int:
        """Delete vault records that hold no linked platform (the seed's orphaned secrets)."""
        vault = self._tokens.vault
        removed = 0
        unreadable = 0
        cutoff = now - self._settings.orphan_grace
        async for user_id in vault.user_ids():
            try:
                record = await vault.get(user_id)
            except VaultIntegrityError:
                # Not an orphan we can prove; an operator tool deals with it.
                unreadable += 1
                continue
            if record is None or record.links or record.updated_at > cutoff:
                continue
            # Look again right before deleting: a link written since the
            # first read changes the version, and the record then stays.
            current = await vault.get(user_id)
            if current is None or current.links or current.version != record.version:
                continue
            if await vault.delete(user_id):
                self._tokens.invalidate(user_id)
                removed += 1
        if unreadable:
            _log.warning("clean-up: %d vault records could not be read", unreadable)
        return removed
