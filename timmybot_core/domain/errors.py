"""The root of the project's exceptions."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timmybot_core.domain.erasure import ErasureReport

__all__ = [
    "AlertDeliveryError",
    "AuditConflict",
    "DataDeletionError",
    "DomainValueError",
    "LinkError",
    "NotLinked",
    "OAuthError",
    "OAuthNotConfigured",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "ReLinkRequired",
    "RefreshOutcomeUnknown",
    "RefreshPaused",
    "StoreUnavailable",
    "TimmyBotError",
    "VaultIntegrityError",
    "VaultUnavailable",
    "VersionConflict",
]


class TimmyBotError(Exception):
    """Base class of every error raised on purpose by timmybot.

    Messages are written for the operator or user who reads them, and never
    contain a secret.
    """


class DomainValueError(ValueError):
    """A value a domain constructor refuses (an incident without a title).

    The message is ours and written for the person who gave the value, so
    front-ends may show it (escaped: it can quote the value). Any other
    ``ValueError`` (a store's, a library's) is a failure, never shown.
    """


class StoreUnavailable(TimmyBotError):
    """A store could not answer (locked, unreachable, throttled, corrupt).

    Adapters raise this instead of their library's errors so that services
    can tell "the store is down" from "there is nothing there", and fail
    closed.
    """


class AlertDeliveryError(TimmyBotError):
    """An alert could not be delivered."""


class VaultUnavailable(StoreUnavailable):
    """The token vault could not answer: never read this as "no tokens"."""


class VaultIntegrityError(VaultUnavailable):
    """A stored token record failed its integrity check (tampered, moved, wrong key).

    The record is not returned: garbage tokens are worse than none.
    """


class VersionConflict(TimmyBotError):
    """A compare-and-set write lost: the record changed since it was read."""


class OAuthError(TimmyBotError):
    """An OAuth operation failed. ``platform`` names the provider; no token is ever included."""

    def __init__(self, message: str, *, platform: str) -> None:
        super().__init__(message)
        self.platform = platform


class ReLinkRequired(OAuthError):
    """The provider rejected the grant (``invalid_grant``): the user must link again."""


class ProviderUnavailable(OAuthError):
    """The provider failed in a way worth retrying (5xx, timeout, connection error)."""


class RefreshOutcomeUnknown(ProviderUnavailable):
    """The request left, then the answer was lost (read timeout, reset, our own cancellation).

    The provider may have rotated the refresh token: whether presenting it
    again is safe depends on the provider (its preset says). Not a plain
    "provider unavailable", which means the provider did not act.
    """


class OAuthNotConfigured(OAuthError):
    """The platform's provider cannot be used from this process: a configuration problem.

    The platform has no provider configured here, or the provider refused
    the bot's own client credentials (``invalid_client``: a missing or wrong
    client secret). It says nothing about the user, so it never counts as an
    authentication failure.
    """


class ProviderRateLimited(ProviderUnavailable):
    """The provider answered HTTP 429: wait ``retry_after`` before calling it again."""

    def __init__(self, message: str, *, platform: str, retry_after: timedelta) -> None:
        super().__init__(message, platform=platform)
        self.retry_after = retry_after


class LinkError(TimmyBotError):
    """An account-link callback was refused (unknown, expired, replayed or foreign state)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotLinked(TimmyBotError):
    """The user has not linked that platform."""

    def __init__(self, message: str, *, platform: str) -> None:
        super().__init__(message)
        self.platform = platform


class RefreshPaused(TimmyBotError):
    """Token refresh is paused (incident isolation) and the token has expired."""


class AuditConflict(TimmyBotError):
    """An audit record or digest would overwrite one already stored.

    The audit log is append-only: a writer never reuses a chain position, so
    this means two writers share an ID or someone wrote into the log.
    """


class DataDeletionError(TimmyBotError):
    """An erasure request could not reach every store.

    ``failed`` names the stores that failed (``vault``, ``preferences``,
    ``link_states``, ``audit``, ...); every other store was erased. Erasure
    is idempotent: running it again finishes the job. ``report`` holds what
    each store did (a :class:`~timmybot_core.domain.erasure.ErasureReport`).
    The message names stores only, never the user or their data.
    """

    def __init__(
        self, message: str, *, failed: tuple[str, ...], report: ErasureReport | None = None
    ) -> None:
        super().__init__(message)
        self.failed = failed
        self.report = report
