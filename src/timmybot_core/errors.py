"""The root of the project's exceptions."""

from __future__ import annotations

__all__ = ["AlertDeliveryError", "StoreUnavailable", "TimmyBotError"]


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
