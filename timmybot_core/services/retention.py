"""DataRetentionService: erasure, export, and clean-up of expired data.

The three data-protection duties of the seed's ``DataRetentionService``:

- :meth:`~DataRetentionService.delete_user_data` erases everything keyed by
  one user (tokens, revoked at the platforms first; preferences; pending
  links; any extra store registered with the service). Audit records, the
  security log and incident evidence stay: they hold keyed pseudonyms only,
  and are kept under legitimate interest (see ``docs/privacy.md``). A store
  that fails does not stop the others; the call then raises
  :class:`~timmybot_core.domain.errors.DataDeletionError` naming it, and a second
  call finishes the job, since every step is idempotent. With an
  :class:`~timmybot_core.ports.erasure.ErasureJournal`, the request is
  journaled: recorded (journal and audit trail) before the first store is
  touched, each store's outcome recorded as it is known, complete only at
  the end; the clean-up resumes a request a crash left pending. A token
  whose revocation at its platform failed is still deleted, and the step
  is reported as failed.
- :meth:`~DataRetentionService.export_user_data` returns the user's data as
  JSON data (``docs/schemas/user-export.schema.json``): linked platforms
  with scopes and dates but never a token, preferences, the security and
  privacy events about them, and the data statement of
  :mod:`timmybot_core.domain.classification`.
- :meth:`~DataRetentionService.cleanup_expired_data` purges what has
  expired: attempt counts and bans, link states, vault records left with no
  linked platform, and audit records past the retention period unless an
  incident's retention hold covers them; it also finishes pending erasures
  and seals abandoned audit writers.

Both user requests are recorded in the audit trail (kind ``privacy``).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

import attrs

from timmybot_core.domain.classification import DEFAULT_AUDIT_RETENTION, data_statement
from timmybot_core.domain.clock import Clock
from timmybot_core.domain.erasure import DeletionReport, ErasureReport, Requester
from timmybot_core.domain.errors import (
    DataDeletionError,
    StoreUnavailable,
    VaultIntegrityError,
    VersionConflict,
)
from timmybot_core.domain.tokens import PlatformLink
from timmybot_core.ports.access import AccessPolicyStore
from timmybot_core.ports.audit import AuditRecord
from timmybot_core.ports.erasure import ErasureEntry, ErasureJournal, ErasureStep
from timmybot_core.ports.incidents import IncidentStore
from timmybot_core.ports.link_states import ERASURE_BARRIER_TTL, LinkStateStore
from timmybot_core.ports.user_data import UserDataStore, check_user_id
from timmybot_core.services.audit import AuditTrailService
from timmybot_core.services.tokens import SecureTokenService

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "CleanupReport",
    "DataRetentionService",
    "DeletionReport",
    "ErasureReport",
    "HostUserData",
    "Requester",
    "RetentionSettings",
    "UserDataEraser",
]

EXPORT_FORMAT: Final = "timmybot.user-export"
EXPORT_VERSION: Final = 1

_log = logging.getLogger("timmybot.retention")
_T = TypeVar("_T")


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
class HostUserData(UserDataEraser, Protocol):
    """A store of the host bot's own that takes part in the user's rights.

    After Red-DiscordBot's end-user data API (``red_get_data_for_user`` and
    ``red_delete_data_for_user``): a bot that embeds TimmyBot passes its
    stores keyed by the Discord user to :class:`DataRetentionService`
    (``participants=``), and ``/privacy export`` includes what
    :meth:`export_user` returns under ``host_data[name]``, while
    ``/privacy delete`` calls :meth:`erase_user` and lists the store in the
    erasure's per-store report. Its ``name`` (letters, digits, ``_``, ``-``)
    is also its key in exports.
    """

    async def export_user(self, user_id: int) -> Mapping[str, Any]:
        """Return everything this store keeps about ``user_id``, as JSON data.

        Mappings with text keys, lists, text, finite numbers, booleans and
        ``None``; anything else fails the export (``StoreUnavailable``).
        """
        ...


# How deep a host store's export may nest: far beyond any real data, and
# short of Python's recursion limit (a structure that holds itself).
_HOST_DEPTH: Final = 100

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
        export_event_limit: no longer used: an export includes every audit
            event about the user (the audit retention bounds them), since an
            export is complete or not given at all. Kept, and still checked,
            so that settings naming it construct as before.
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
class CleanupReport:
    """What one clean-up run removed, and which steps failed."""

    attempts: int = 0
    bans: int = 0
    switches: int = 0
    link_states: int = 0
    orphaned_vault_records: int = 0
    audit_records: int = 0
    erasures_resumed: int = 0
    writers_sealed: int = 0
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
        return {**attrs.asdict(self), "failed": list(self.failed)}


_AUDIT_FAILED: Final = DeletionReport(
    store="audit", ok=False, detail="the request could not be recorded before erasing"
)


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


def _host_problem(value: object, depth: int = 0) -> str | None:
    """Say why ``value`` is not JSON data (``None`` if it is); never quotes the value."""
    if depth > _HOST_DEPTH:
        return f"it nests deeper than {_HOST_DEPTH} levels (or refers to itself)"
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        # json.dumps writes NaN and Infinity, which no JSON reader accepts.
        return None if math.isfinite(value) else "it holds a number that is not finite"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "it holds text that is not valid Unicode (a lone surrogate)"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"it holds a key of type {type(key).__name__}, not text"
            problem = _host_problem(key, depth + 1) or _host_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list | tuple):
        return next(
            (p for p in (_host_problem(item, depth + 1) for item in value) if p is not None), None
        )
    return f"it holds a {type(value).__name__}, which is not JSON data"


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
        "refreshed_at": None if link.refreshed_at is None else link.refreshed_at.isoformat(),
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


def _unrevoked(platforms: Sequence[str], unrevoked: Sequence[str]) -> DeletionReport:
    # Deleted here all the same; the grant lives on at the platform until
    # the user removes it there, so the step failed.
    return DeletionReport(
        store="vault",
        deleted=len(platforms),
        ok=False,
        detail=f"deleted, but revocation failed at {', '.join(unrevoked)}: "
        "remove the app's access in that platform's account settings",
    )


def _counted(store: str, erase: Callable[[int], Awaitable[int]]) -> _Step:
    """Return a step that reports how many items ``erase`` deleted from ``store``."""

    async def step(user_id: int) -> DeletionReport:
        return DeletionReport(store=store, deleted=await erase(user_id))

    return step


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
        journal: where erasure requests are journaled (without one, a
            request a crash interrupts is not resumed: tests only).
        sealer: seals abandoned audit writers during clean-up.
    """

    def __init__(
        self,
        *,
        tokens: SecureTokenService,
        user_data: UserDataStore,
        link_states: LinkStateStore,
        access_store: AccessPolicyStore,
        incidents: IncidentStore,
        audit: AuditTrailService,
        clock: Clock,
        settings: RetentionSettings | None = None,
        erasers: Sequence[UserDataEraser] = (),
        participants: Sequence[HostUserData] = (),
        journal: ErasureJournal | None = None,
        sealer: AuditTrailService | None = None,
    ) -> None:
        self._tokens = tokens
        self._journal = journal
        self._sealer = sealer
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

    def _steps(self, entry: ErasureEntry | None = None) -> list[tuple[str, _Step]]:
        # Pending links first, and their erasure barrier before anything: a
        # link already past its state (exchanging its code) reads the barrier
        # after storing its tokens, and withdraws them, when the vault step
        # ran before they were stored.
        steps: list[tuple[str, _Step]] = [
            ("link_states", self._erase_link_states),
            ("vault", lambda user_id: self._erase_tokens(user_id, entry)),
            ("preferences", _counted("preferences", self._user_data.delete_user)),
        ]
        for eraser in self._erasers:
            steps.append((eraser.name, _counted(eraser.name, eraser.erase_user)))
        return steps

    async def _erase_link_states(self, user_id: int) -> DeletionReport:
        # No barrier, no step: a failure here fails the step, and a run
        # again writes it before erasing the rest.
        now = self._clock.now()
        await self._link_states.add_erasure_barrier(
            user_id, erased_at=now, until=now + ERASURE_BARRIER_TTL
        )
        deleted = await self._link_states.delete_user(user_id)
        return DeletionReport(store="link_states", deleted=deleted)

    async def _erase_tokens(self, user_id: int, entry: ErasureEntry | None) -> DeletionReport:
        unrevoked: list[str] = []

        async def journal_unrevoked(platforms: list[str]) -> None:
            # Journaled before the delete: a crash right after it would
            # otherwise leave an empty vault and no trace of the grant still
            # live at the platform. A resume runs this step again all the
            # same (a crash may have come before the delete).
            if entry is not None:
                await self._journal_step(entry, "vault", _unrevoked(platforms, unrevoked))

        try:
            platforms = await self._tokens.delete_user(
                user_id, unrevoked=unrevoked, before_delete=journal_unrevoked
            )
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
        if unrevoked:
            return _unrevoked(platforms, unrevoked)
        detail = f"revoked where supported: {', '.join(platforms)}" if platforms else ""
        return DeletionReport(store="vault", deleted=len(platforms), detail=detail)

    async def delete_user_data(self, user_id: int, requester: Requester | str) -> ErasureReport:
        """Erase everything keyed by ``user_id``; return what each store did.

        Revocation, the audit records kept and the journal are as the module
        docs say. Tokens leave this process's cache at once, other processes'
        caches within their cache age (60 seconds by default).

        Raises:
            DataDeletionError: a store failed, or the request could not be
                recorded; ``failed`` names them and every other store was
                erased. Calling again finishes the job.
            ValueError: ``user_id`` or ``requester`` is not valid.

        """
        user = check_user_id(user_id)
        who = Requester(requester)
        earlier = await self._pending_of(user)
        if earlier is not None:
            # A request of this user is pending (a crash, a failed store):
            # this one finishes it rather than starting a second. Every step
            # runs again (each is idempotent): the user asks now, and what was
            # stored since the earlier run (a platform linked again) must go too.
            # It is a request of its own all the same: recorded as such, with
            # its own requester (an owner's or Discord's request picking up
            # the user's must not be logged as the user's).
            _log.info("erasure: resuming request %s", earlier.request_id)
            resumed = attrs.evolve(earlier, requester=who.value)
            requested = await self._record_requested(resumed)
            return await self._carry_out(
                resumed, extra=() if requested else (_AUDIT_FAILED,), redo=True
            )
        entry = ErasureEntry(
            request_id=str(uuid.uuid4()),
            user_id=user,
            requester=who.value,
            requested_at=self._clock.now(),
        )
        if self._journal is not None:
            try:
                await self._journal.begin(entry)
            except Exception as error:  # noqa: BLE001 - nothing was touched: say so and stop
                _log.warning("erasure: the journal failed (%s)", type(error).__name__)
                report = ErasureReport(
                    requester=who,
                    completed_at=self._clock.now(),
                    stores=(
                        DeletionReport(store="journal", ok=False, detail=type(error).__name__),
                    ),
                )
                raise DataDeletionError(
                    "the erasure could not start: its journal is unavailable; nothing was "
                    "erased. Try again.",
                    failed=report.failed,
                    report=report,
                ) from None
        requested = await self._record_requested(entry)
        return await self._carry_out(entry, extra=() if requested else (_AUDIT_FAILED,))

    async def _journaled(self, call: Callable[[ErasureJournal], Awaitable[_T]]) -> _T | None:
        """Run ``call`` on the journal, if there is one; a failure is logged and gives ``None``."""
        if self._journal is None:
            return None
        try:
            return await call(self._journal)
        except Exception as error:  # noqa: BLE001 - each caller says why a failure can wait
            _log.warning("erasure: the journal failed (%s)", type(error).__name__)
            return None

    async def _pending_of(self, user_id: int) -> ErasureEntry | None:
        # A journal failing here is reported by begin(), which comes next.
        pending = await self._journaled(lambda journal: journal.pending(limit=1000))
        return next((entry for entry in pending or () if entry.user_id == user_id), None)

    async def _record_requested(self, entry: ErasureEntry) -> bool:
        """Write "erasure requested" to the audit trail; ``False`` if it failed."""
        try:
            await self._audit.record_privacy_request(
                user_id=entry.user_id,
                action="erasure.requested",
                requester=entry.requester,
                details={"request_id": entry.request_id},
            )
        except Exception as error:  # noqa: BLE001 - the journal has it; the final record says
            _log.warning("erasure: the request could not be recorded (%s)", type(error).__name__)
            return False
        return True

    async def _carry_out(
        self, entry: ErasureEntry, *, extra: Sequence[DeletionReport] = (), redo: bool = False
    ) -> ErasureReport:
        """Run every step not yet done (every step, with ``redo``), record each outcome, and finish.

        A grant recorded as not revoked at its platform stays a failed step
        when a run again finds nothing left: it is still live there.
        """
        reports: list[DeletionReport] = []
        for name, step in self._steps(entry):
            recorded = entry.steps.get(name)
            # A vault step recorded as not revoked runs again: it is recorded
            # before the tokens are deleted, and a crash may have come between.
            if recorded is not None and recorded.ok and not redo:
                reports.append(
                    DeletionReport(
                        store=name, deleted=recorded.deleted, ok=recorded.ok, detail=recorded.detail
                    )
                )
                continue
            try:
                outcome = await step(entry.user_id)
            except Exception as error:  # noqa: BLE001 - one store failing must not spare the others
                _log.warning("erasure: the %s store failed (%s)", name, type(error).__name__)
                outcome = DeletionReport(store=name, ok=False, detail=type(error).__name__)
            if recorded is not None and recorded.final and outcome.ok:
                outcome = attrs.evolve(
                    outcome,
                    ok=False,
                    deleted=outcome.deleted + recorded.deleted,
                    detail=recorded.detail,
                )
            reports.append(outcome)
            await self._journal_step(entry, name, outcome)
        reports.extend(extra)
        failed = [report.store for report in reports if not report.ok]
        event_id: str | None = None
        try:
            record = await self._audit.record_privacy_request(
                user_id=entry.user_id,
                action="erasure",
                requester=entry.requester,
                details={
                    "request_id": entry.request_id,
                    "outcome": "incomplete" if failed else "complete",
                    "deleted": {report.store: report.deleted for report in reports},
                    "failed": failed,
                },
            )
            event_id = record.event_id
        except Exception as error:  # noqa: BLE001 - reported as the audit store failing
            _log.warning("erasure: the outcome could not be recorded (%s)", type(error).__name__)
            reports.append(DeletionReport(store="audit", ok=False, detail=type(error).__name__))
        report = ErasureReport(
            requester=Requester(entry.requester),
            completed_at=self._clock.now(),
            stores=tuple(reports),
            audit_event_id=event_id,
            request_id=entry.request_id if self._journal is not None else None,
        )
        if not report.retry_helps:
            # Done, or failed only where running it again cannot help; else it
            # stays pending: the clean-up (or a new request) tries again. A
            # finish that fails is finished again by the next clean-up.
            await self._journaled(lambda journal: journal.finish(entry.request_id))
        if not report.ok:
            names = ", ".join(report.failed)
            if report.retry_helps:
                advice = "every other store was erased. Run it again to finish."
            else:
                advice = (
                    "everything is erased here, but a grant could not be revoked at its "
                    "platform: remove the app's access in that platform's account settings."
                )
            raise DataDeletionError(
                f"the erasure is incomplete: {names} failed; {advice}",
                failed=report.failed,
                report=report,
            )
        _log.info("erasure requested by %s: %d items deleted", entry.requester, report.deleted)
        return report

    async def _journal_step(self, entry: ErasureEntry, name: str, report: DeletionReport) -> None:
        # A vault whose tokens went but could not be revoked cannot be
        # mended by running the step again (there is nothing left to revoke).
        final = not report.ok and report.final
        step = ErasureStep(ok=report.ok, deleted=report.deleted, detail=report.detail, final=final)
        # A step not journaled is redone on resume, harmlessly.
        await self._journaled(lambda journal: journal.record_step(entry.request_id, name, step))

    async def resume_pending_erasures(self) -> int:
        """Carry out every erasure a crash or a failed store left pending; return how many finished.

        Steps already done are not run again (but for a vault step recorded
        as not revoked, which may have been cut short before its delete);
        the audit trail gets the final record as for a new request.
        """
        if self._journal is None:
            return 0
        finished = 0
        for entry in await self._journal.pending():
            _log.warning("erasure: resuming request %s", entry.request_id)
            try:
                await self._carry_out(entry)
            except DataDeletionError as error:
                _log.warning("erasure: request %s is still incomplete: %s", entry.request_id, error)
                continue
            finished += 1
        return finished

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
        # Every event, page by page: a capped list would be a partial export
        # that does not say so.
        events = await self._audit.events_about(user, limit=None)
        host_data = {
            participant.name: await self._host_export(participant, user)
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

    @staticmethod
    async def _host_export(participant: HostUserData, user_id: int) -> dict[str, Any]:
        """Return a host store's export, checked to be JSON data before anything is recorded."""
        data = await participant.export_user(user_id)
        problem = (
            _host_problem(data)
            if isinstance(data, Mapping)
            else f"it is a {type(data).__name__}, not a mapping"
        )
        if problem is not None:
            # A user's file must be JSON that any reader accepts; the store's
            # data is not quoted (it is the user's).
            raise StoreUnavailable(
                f"host store {participant.name!r}: export_user returned data that is not "
                f"JSON ({problem}); no export was given"
            )
        return {key: _json(item) for key, item in data.items()}

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

        async def erasures() -> None:
            counts["erasures_resumed"] = await self.resume_pending_erasures()

        async def seal() -> None:
            if self._sealer is not None:
                counts["writers_sealed"] = await self._sealer.seal_abandoned()

        await run("erasures", erasures)
        await run("access", access)
        await run("link_states", link_states)
        await run("vault", orphans)
        await run("audit", audit)
        await run("audit_seal", seal)
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
            # first read changes the version, and the record then stays. The
            # delete checks the version too: a link written after this look
            # (the web server's process) must not be deleted with it.
            current = await vault.get(user_id)
            if current is None or current.links or current.version != record.version:
                continue
            try:
                deleted = await vault.delete(user_id, expected_version=current.version)
            except VersionConflict:
                continue
            if deleted:
                self._tokens.invalidate(user_id)
                removed += 1
        if unreadable:
            _log.warning("clean-up: %d vault records could not be read", unreadable)
        return removed
