"""``python -m timmybot_bot``: start TimmyBot on the configured backend."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from timmybot_bot.bootstrap import Services, bootstrap, check_settings
from timmybot_bot.commands import Invocation
from timmybot_bot.console import LOCAL_OPERATOR, OfflineConsole
from timmybot_bot.settings import MAX_SNOWFLAKE, ConfigurationError, Settings

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
    parser.add_argument(
        "--guild",
        type=_snowflake,
        metavar="ID",
        help="console: run commands as if in this guild (default: the local operator, "
        "whom the access guard does not stop)",
    )
    parser.add_argument(
        "--user",
        type=_snowflake,
        metavar="ID",
        help="console: run commands as this user (default with --guild: user 1)",
    )
    return parser


def _snowflake(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_SNOWFLAKE:
        raise argparse.ArgumentTypeError(f"must be a Discord ID (a positive integer), got {text!r}")
    return int(text)


def _invocation(guild: int | None, user: int | None) -> Invocation:
    if guild is None and user is None:
        return LOCAL_OPERATOR
    return Invocation(guild_id=guild, user_id=user if user is not None else 1)


async def _serve(services: Services, invocation: Invocation) -> int:
    try:
        return await OfflineConsole(services, invocation=invocation).run()
    finally:
        await services.aclose()


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
        try:
            check_settings(settings)
        except ConfigurationError as error:
            print(f"timmybot: configuration error: {error}", file=sys.stderr)
            return 2
        for key, value in settings.describe().items():
            print(f"{key} = {value}")
        print("configuration OK")
        return 0
    try:
        services = bootstrap(settings)
    except ConfigurationError as error:
        print(f"timmybot: configuration error: {error}", file=sys.stderr)
        return 2
    if settings.discord_token:
        # The Discord gateway client is composed in a later milestone; say so
        # rather than pretend to connect.
        log.warning(
            "DISCORD_TOKEN is set, but this build has no Discord client yet; "
            "starting the offline console instead"
        )
    try:
        return asyncio.run(_serve(services, _invocation(args.guild, args.user)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
