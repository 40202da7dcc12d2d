"""TokenRotationService: the daily job that refreshes tokens before they expire.

It walks every user with bounded concurrency, refreshes links expiring
within the window, marks links the provider rejects (``invalid_grant``) as
needing re-linking instead of retrying them forever, retries transient
failures with exponential backoff, and sends one summary alert per run
when anything failed, not one per user.

A run never dies half-way: whatever one user's refresh raises (a bug, a
``RecursionError`` from a hostile answer) is counted as that link's failure
and the run goes on; the token service has released the link's claim. A
platform this process has no provider for (or whose client credentials the
provider refuses) is a configuration problem, counted apart: it is not an
authentication failure and raises no incident.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import attrs

from timmybot_core.domain.clock import Clock
from timmybot_core.domain.errors import (
    AlertDeliveryError,
    NotLinked,
    OAuthError,
    OAuthNotConfigured,
    ProviderUnavailable,
    RefreshPaused,
    ReLinkRequired,
    StoreUnavailable,
    VersionConflict,
)
from timmybot_core.ports.alerts import Alert, Alerter, Severity
from timmybot_core.services.tokens import SecureTokenService

__all__ = ["RotationReport", "RotationSettings", "TokenRotationService"]

_log = logging.getLogger("timmybot.rotation")


@attrs.frozen(kw_only=True)
class RotationSettings:
    """How a rotation run behaves."""

    concurrency: int = 16
    attempts: int = 3
    backoff: timedelta = timedelta(seconds=0.5)


@attrs.frozen(kw_only=True)
class RotationReport:
    """What a run did, counted per link (user and platform)."""

    users: int = 0
    refreshed: int = 0
    unchanged: int = 0
    needs_relink: int = 0
    failed: int = 0
    #: Links whose platform is not configured in this process (no provider,
    #: or client credentials refused): a configuration problem, not auth.
    misconfigured: int = 0
    paused: bool = False
    #: The run stopped early: the process is stopping, or the users could
    #: not all be listed.
    incomplete: bool = False

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-serializable form."""
        return attrs.asdict(self)


@attrs.define
class _Tally:
    users: int = 0
    refreshed: int = 0
    unchanged: int = 0
    needs_relink: int = 0
    newly_relinked: int = 0
    failed: int = 0
    misconfigured: int = 0
    unconfigured_platforms: set[str] = attrs.field(factory=set)
    paused: bool = False
    incomplete: bool = False


class TokenRotationService:
    """Refreshes every user's expiring tokens."""

    def __init__(
        self,
        *,
        tokens: SecureTokenService,
        alerter: Alerter,
        clock: Clock,
        settings: RotationSettings | None = None,
        paused: Callable[[], Awaitable[bool]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._tokens = tokens
        self._alerter = alerter
        self._clock = clock
        self._settings = settings if settings is not None else RotationSettings()
        self._paused = paused
        self._sleep = sleep

    async def rotate_expiring(self, within: timedelta = timedelta(hours=24)) -> RotationReport:
        """Refresh every link expiring within ``within``; return the counts."""
        if self._paused is not None and await self._paused():
            _log.warning("token rotation skipped: refresh is paused")
            return RotationReport(paused=True)
        tally = _Tally()
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=self._settings.concurrency * 4)

        async def worker() -> None:
            while (user_id := await queue.get()) is not None:
                try:
                    await self._rotate_user(user_id, within, tally)
                except Exception as error:  # noqa: BLE001 - one user never ends the run
                    tally.failed += 1
                    _log.error("token rotation: a user failed (%s)", type(error).__name__)

        workers = [asyncio.create_task(worker()) for _ in range(self._settings.concurrency)]
        try:
            try:
                async for user_id in self._tokens.vault.user_ids():
                    if self._tokens.stopping:
                        tally.incomplete = True
                        break
                    await queue.put(user_id)
            except Exception as error:  # noqa: BLE001 - report what was done, alert once
                tally.incomplete = True
                _log.error("token rotation: listing the users failed (%s)", type(error).__name__)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        except BaseException:
            # Cancelled: the scheduler lost the job's lease (the next holder may
            # be running already) or is stopping. Start no more refreshes, not
            # even for the users already queued. A refresh in flight still goes
            # on to its vault write (the token service shields it, and its claim
            # keeps it safe); no worker waits for it.
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        # The report's fields are the tally's counts; its working sets stay behind.
        report = RotationReport(
            **{field.name: getattr(tally, field.name) for field in attrs.fields(RotationReport)}
        )
        _log.info("token rotation: %s", report.as_dict())
        if tally.unconfigured_platforms:
            _log.error(
                "token rotation: configuration problem: no usable OAuth provider for %s in "
                "this process (check the platform's client ID and secret settings)",
                ", ".join(sorted(tally.unconfigured_platforms)),
            )
        if tally.failed or tally.newly_relinked or tally.misconfigured or tally.incomplete:
            await self._summary_alert(report, tally)
        return report

    async def _rotate_user(self, user_id: int, within: timedelta, tally: _Tally) -> None:
        tally.users += 1
        try:
            record = await self._tokens.get_user_tokens(user_id, force_fetch=True)
        except StoreUnavailable:
            tally.failed += 1
            return
        if record is None:
            return
        for platform, link in record.links.items():
            if link.needs_relink:
                tally.needs_relink += 1
            elif tally.paused or not link.tokens.expires_within(self._clock.now(), within):
                tally.unchanged += 1
            else:
                await self._rotate_link(user_id, platform, within, tally)

    async def _rotate_link(
        self, user_id: int, platform: str, within: timedelta, tally: _Tally
    ) -> None:
        delay = self._settings.backoff.total_seconds()
        for attempt in range(1, self._settings.attempts + 1):
            try:
                outcome = await self._tokens.refresh(user_id, platform, within=within)
            except ReLinkRequired:
                tally.needs_relink += 1
                tally.newly_relinked += 1
                return
            except NotLinked:
                return  # unlinked meanwhile
            except RefreshPaused:
                # An incident paused refresh during the run, or the process is
                # stopping: stop refreshing, report what was done.
                if self._tokens.stopping:
                    tally.incomplete = True
                else:
                    tally.paused = True
                tally.unchanged += 1
                return
            except (ProviderUnavailable, StoreUnavailable, VersionConflict):
                if attempt == self._settings.attempts:
                    tally.failed += 1
                    return
                await self._sleep(delay)
                delay *= 2
                continue
            except OAuthNotConfigured:
                tally.misconfigured += 1
                tally.unconfigured_platforms.add(platform)
                return
            except OAuthError:
                tally.failed += 1
                return
            except Exception as error:  # noqa: BLE001 - one link never ends the run
                # The token service released the claim; the user is counted.
                tally.failed += 1
                _log.error("token rotation: a refresh failed (%s)", type(error).__name__)
                return
            if outcome.refreshed:
                tally.refreshed += 1
            else:
                tally.unchanged += 1
            return

    async def _summary_alert(self, report: RotationReport, tally: _Tally) -> None:
        details: dict[str, str | int | float | bool | None] = {
            "users": report.users,
            "refreshed": report.refreshed,
            "failed": report.failed,
            "newly_need_relink": tally.newly_relinked,
        }
        if tally.misconfigured:
            details["misconfigured"] = tally.misconfigured
            details["unconfigured_platforms"] = ",".join(sorted(tally.unconfigured_platforms))
        if report.incomplete:
            details["incomplete"] = True
        try:
            await self._alerter.send(
                Alert(
                    severity=Severity.P2,
                    title="Token rotation finished with failures",
                    at=self._clock.now(),
                    details=details,
                )
            )
        except (AlertDeliveryError, OSError) as error:
            _log.error("rotation summary alert failed: %s", type(error).__name__)
