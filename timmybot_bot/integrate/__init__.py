"""TimmyBot's security for other hikari-lightbulb bots: compose, then install.

::

    from timmybot_bot.integrate import Integration, Settings, compose

    security = compose(Settings.from_env(), guard=True, vault=True, audit=True)
    integration = Integration(security, exempt=[Ping], bot_name="Juke")
    await integration.install(client)   # the guard on every command, fail closed
    # and hooks=[rate_limit_hook()] on the commands to rate-limit

See docs/integrate.md and examples/guarded_bot.py. Exports are lazy (PEP
562): importing this package loads neither hikari nor lightbulb until
:class:`Integration` is used, so ``bootstrap`` (which builds on
:func:`compose`) stays light for the offline console.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from timmybot_bot.discord.replies import ReplySender
    from timmybot_bot.integrate.composition import Security, compose
    from timmybot_bot.integrate.guard import rate_limit_hook
    from timmybot_bot.integrate.loaders import BrandedReplySender, Integration
    from timmybot_bot.runtime.settings import ConfigurationError, Settings
    from timmybot_core import HostUserData

__all__ = [
    "BrandedReplySender",
    "ConfigurationError",
    "HostUserData",
    "Integration",
    "ReplySender",
    "Security",
    "Settings",
    "compose",
    "rate_limit_hook",
]

_EXPORTS: dict[str, str] = {
    "BrandedReplySender": "timmybot_bot.integrate.loaders",
    "ConfigurationError": "timmybot_bot.runtime.settings",
    "HostUserData": "timmybot_core",
    "Integration": "timmybot_bot.integrate.loaders",
    "ReplySender": "timmybot_bot.discord.replies",
    "Security": "timmybot_bot.integrate.composition",
    "Settings": "timmybot_bot.runtime.settings",
    "compose": "timmybot_bot.integrate.composition",
    "rate_limit_hook": "timmybot_bot.integrate.guard",
}


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'timmybot_bot.integrate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
