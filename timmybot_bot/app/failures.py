"""The one table from a failure to the user's message, the log line and the exit code.

Discord and the console show ``message``, ``timmybot-admin`` prints it and
exits with ``exit_code``, and all log at ``log_level`` with :func:`describe`:
exception classes and code locations, never messages, which can quote a
secret (a hikari HTTP error quotes the webhook URL holding the interaction token).
"""

from __future__ import annotations

import logging
import math
import os
import traceback
from collections.abc import Callable
from typing import Final

import attrs

from timmybot_core import (
    AccessDecision,
    LinkError,
    NotLinked,
    OAuthError,
    RateVerdict,
    RefreshPaused,
    ReLinkRequired,
    StoreUnavailable,
    TimmyBotError,
)
from timmybot_core.domain.errors import DomainValueError

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FAILURES",
    "UNEXPECTED",
    "AccessDenied",
    "Failure",
    "NotAdmin",
    "OperationFailed",
    "RateLimited",
    "RateLimitedAgain",
    "UsageError",
    "describe",
    "failure_for",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 3

UNEXPECTED: Final = (
    "Something went wrong on TimmyBot's side. The operators can see it in the logs; "
    "please try again later."
)


class UsageError(Exception):
    """A command asks for something that cannot be done as written; the message says how."""


class OperationFailed(Exception):
    """The operation ran and failed; the message says how."""


class AccessDenied(Exception):
    """The guard refused a command; ``decision.message`` says why."""

    def __init__(self, decision: AccessDecision) -> None:
        super().__init__(decision.reason.value)
        self.decision = decision


class NotAdmin(Exception):
    """An admin command from someone who is neither owner nor admin."""

    def __init__(self, command: str) -> None:
        super().__init__(command)
        self.command = command


class RateLimited(Exception):
    """The rate limiter refused a command; ``verdict.retry_after`` says for how long."""

    def __init__(self, verdict: RateVerdict) -> None:
        super().__init__(verdict.scope)
        self.verdict = verdict

    @property
    def seconds(self) -> int:
        """The wait, in whole seconds (at least 1)."""
        return max(1, math.ceil(self.verdict.retry_after))

    @staticmethod
    def raise_for(verdict: RateVerdict) -> None:
        """Raise for a refused ``verdict``: ``RateLimitedAgain`` once the member was told."""
        if not verdict.allowed:
            raise (RateLimited if verdict.first else RateLimitedAgain)(verdict)


class RateLimitedAgain(RateLimited):
    """A later refusal of the same episode: the member was already told (answered quietly)."""


@attrs.frozen(kw_only=True)
class Failure:
    """How one kind of failure reads: to the user, in the log, as an exit code."""

    message: Callable[[BaseException], str]
    exit_code: int = EXIT_FAILED
    #: ``None``: expected, not logged; else the level it is logged at.
    log_level: int | None = None
    #: Whether ``message`` quotes the error's own text (escape it before showing).
    quotes_error: bool = False
    #: Shown nowhere if it can be helped: Discord leaves the interaction
    #: unanswered (unless it was deferred already), the console prints nothing.
    quiet: bool = False


def _platform(error: BaseException) -> str:
    return str(getattr(error, "platform", "the platform"))


_WHAT_IS_LIMITED: Final = {
    "command": "uses of this command",
    "user": "commands",
    "guild": "commands in this server",
}


def _slow_down(error: RateLimited) -> str:
    verdict, rate = error.verdict, error.verdict.rate
    if rate is None or verdict.scope not in _WHAT_IS_LIMITED:
        return f"Slow down: try again in {error.seconds} s."
    limited = _WHAT_IS_LIMITED[verdict.scope]
    return (
        f"Slow down ({rate.limit} {limited} per {rate.window:g} s): try again in {error.seconds} s."
    )


# Most specific first: the first row whose class matches is the failure.
FAILURES: Final[tuple[tuple[type[BaseException], Failure], ...]] = (
    (AccessDenied, Failure(message=lambda e: f"Denied: {e.decision.message}")),  # type: ignore[attr-defined]
    (NotAdmin, Failure(message=lambda e: f"Only TimmyBot owners and admins can use /{e.command}.")),  # type: ignore[attr-defined]
    (RateLimitedAgain, Failure(message=_slow_down, quiet=True)),  # type: ignore[arg-type]
    (RateLimited, Failure(message=_slow_down)),  # type: ignore[arg-type]
    (UsageError, Failure(message=str, exit_code=EXIT_USAGE)),
    (OperationFailed, Failure(message=str)),
    # From domain constructors (an incident with an empty title): our own
    # message, escaped anyway since it may quote a value. Not every
    # ValueError: a store's or a library's text is no message for the user
    # and may quote anything; it is unexpected, logged by type and place.
    (DomainValueError, Failure(message=str, exit_code=EXIT_USAGE, quotes_error=True)),
    (NotLinked, Failure(message=lambda e: f"Link your {_platform(e)} account first with /link.")),
    (
        ReLinkRequired,
        Failure(
            message=lambda e: f"Your {_platform(e)} link has expired; link it again with /link."
        ),
    ),
    (LinkError, Failure(message=str)),
    (
        RefreshPaused,
        Failure(message=lambda e: "Music accounts are paused for maintenance; try later."),
    ),
    (
        OAuthError,
        Failure(
            message=lambda e: f"{_platform(e)} is not answering right now; try again soon.",
            log_level=logging.WARNING,
        ),
    ),
    (
        StoreUnavailable,
        Failure(
            message=lambda e: "A TimmyBot store is unavailable right now; try again soon.",
            log_level=logging.WARNING,
        ),
    ),
    (
        TimmyBotError,
        Failure(
            message=lambda e: "TimmyBot could not finish that right now; please try again soon.",
            log_level=logging.WARNING,
        ),
    ),
)

_UNEXPECTED_FAILURE: Final = Failure(message=lambda e: UNEXPECTED, log_level=logging.ERROR)


def failure_for(error: BaseException) -> Failure:
    """Return how ``error`` reads; an unknown one is unexpected (logged as an error)."""
    return next((f for kind, f in FAILURES if isinstance(error, kind)), _UNEXPECTED_FAILURE)


def describe(error: BaseException) -> str:
    """One log-safe line: the exception types of the chain and where each was raised.

    ``"ErrorClass at file.py:12 in f <- Cause at other.py:40 in g"``; an
    HTTP error's status and code are kept, messages never.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        where = ""
        if frames:
            last = frames[-1]
            where = f" at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"
        code = getattr(current, "code", None)
        status = getattr(current, "status", None)
        extra = ""
        if isinstance(code, int) or isinstance(status, int):
            extra = f" (status {status}, code {code})"
        parts.append(f"{type(current).__name__}{extra}{where}")
        current = current.__cause__ or current.__context__
    return " <- ".join(parts)
