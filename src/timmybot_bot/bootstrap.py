"""The composition root: the one place where adapters are wired into services.

Everything else in the bot receives the :class:`Services` it needs; nothing
below this module picks an adapter or reads the environment.
"""

from __future__ import annotations

import attrs

from timmybot_bot.settings import Settings
from timmybot_core import (
    Clock,
    InputValidator,
    ResponseSanitizer,
    SystemClock,
    ValidationPolicy,
)

__all__ = ["Services", "Settings", "bootstrap"]


@attrs.frozen(kw_only=True)
class Services:
    """The services the bot's commands, console and web server use."""

    settings: Settings
    clock: Clock
    validator: InputValidator
    sanitizer: ResponseSanitizer


def _policy(settings: Settings) -> ValidationPolicy:
    if settings.validation_policy == "strict":
        return ValidationPolicy.strict()
    return ValidationPolicy.default()


def bootstrap(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Build the services for ``settings``.

    ``clock`` replaces the system clock (tests pass a ``FakeClock``). The
    services built so far hold no state, so every backend composes the same
    way; stateful services join here with their adapters per backend.
    """
    return Services(
        settings=settings,
        clock=clock if clock is not None else SystemClock(),
        validator=InputValidator(_policy(settings)),
        sanitizer=ResponseSanitizer(allow_http=settings.allow_http_urls),
    )
