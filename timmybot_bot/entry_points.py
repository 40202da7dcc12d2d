"""The console scripts ``timmybot`` and ``timmybot-admin``: check the install, then run.

``pip install timmybot`` installs the core alone (attrs); the bot and the
operator CLI need the ``bot`` extra (hikari, lightbulb, aiohttp) and the
``local`` extra (cryptography). Without them, importing the real entry
points would end in a ``ModuleNotFoundError`` traceback. These functions
import nothing beyond the standard library until they have checked that the
extras are there; a missing one is reported as one line naming the extra
and the command to install it, with the configuration exit status of the
command (2 for ``timmybot``, 3 for ``timmybot-admin``).

``--version`` (or ``-V``) as the first argument prints the version and needs
no extra.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["REQUIRED_EXTRAS", "admin", "bot", "missing_extras", "version"]

DISTRIBUTION = "timmybot"
# Each extra the scripts need, with the modules that tell whether it is installed.
REQUIRED_EXTRAS: dict[str, tuple[str, ...]] = {
    "bot": ("hikari", "lightbulb", "aiohttp", "croniter"),
    "local": ("cryptography",),
}
_EXIT_BOT_CONFIGURATION = 2  # timmybot_bot.runtime.main.EXIT_CONFIGURATION
_EXIT_ADMIN_CONFIGURATION = 3  # timmybot_bot.cli.commands.EXIT_CONFIG


def version() -> str:
    """Return the installed distribution's version (the package's own without metadata)."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from timmybot_core import __version__

        return __version__


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        # A finder may refuse the name outright; either way it cannot load.
        return False


def missing_extras() -> list[str]:
    """Return the extras, of those the scripts need, that are not installed."""
    return [
        extra
        for extra, modules in REQUIRED_EXTRAS.items()
        if not all(_installed(module) for module in modules)
    ]


def _preflight(prog: str, argv: Sequence[str], status: int) -> int | None:
    """Answer ``--version`` or a missing extra; ``None`` when the real command may run."""
    if argv[:1] in (["--version"], ["-V"]):
        print(f"{prog} {version()}")
        return 0
    missing = missing_extras()
    if missing:
        extras = ",".join(missing)
        print(
            f"{prog}: needs the {extras} extra{'s' if len(missing) > 1 else ''} "
            f"(install with: pip install '{DISTRIBUTION}[{extras}]')",
            file=sys.stderr,
        )
        return status
    return None


def bot(argv: Sequence[str] | None = None) -> int:
    """Run ``timmybot`` (``python -m timmybot_bot``) once the install has what it needs."""
    args = list(sys.argv[1:] if argv is None else argv)
    early = _preflight("timmybot", args, _EXIT_BOT_CONFIGURATION)
    if early is not None:
        return early
    from timmybot_bot.runtime.main import main

    return main(args)


def admin(argv: Sequence[str] | None = None) -> int:
    """Run ``timmybot-admin`` once the install has what it needs."""
    args = list(sys.argv[1:] if argv is None else argv)
    early = _preflight("timmybot-admin", args, _EXIT_ADMIN_CONFIGURATION)
    if early is not None:
        return early
    from timmybot_bot.cli.main import main

    return main(args)
