"""The root of the project's exceptions."""

from __future__ import annotations

__all__ = [
    "AlertDeliveryError",
    "LinkError",
    "NotLinked",
    "OAuthError",
    "ProviderUnavailable",
    "ReLinkRequired",
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
