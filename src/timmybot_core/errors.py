"""The root of the project's exceptions."""

from __future__ import annotations

__all__ = ["TimmyBotError"]


class TimmyBotError(Exception):
    """Base class of every error raised on purpose by timmybot.

    Messages are written for the operator or user who reads them, and never
    contain a secret.
    """
