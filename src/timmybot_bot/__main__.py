"""``python -m timmybot_bot``: start TimmyBot on the configured backend."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from timmybot_bot.bootstrap import bootstrap
from timmybot_bot.console import OfflineConsole
from timmybot_bot.settings import ConfigurationError, Settings

__all__ = ["main"]

log = logging.getLogger("timmybot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m timmybot_bot",
        description=(
            "Run TimmyBot. Settings come from TIMMYBOT_* environment variables "
            "(see docs/configuration.md). Without DISCORD_TOKEN the offline "
            "console starts and reads commands such as '/search <query>' from "
            "standard input."
        ),
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the settings, print them (secrets hidden) and exit",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigurationError as error:
        print(f"timmybot: configuration error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.check_config:
        for key, value in settings.describe().items():
            print(f"{key} = {value}")
        print("configuration OK")
        return 0
    services = bootstrap(settings)
    if settings.discord_token:
        # The Discord gateway client is composed in a later milestone; say so
        # rather than pretend to connect.
        log.warning(
            "DISCORD_TOKEN is set, but this build has no Discord client yet; "
            "starting the offline console instead"
        )
    try:
        return asyncio.run(OfflineConsole(services).run())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
