"""``python -m timmybot_bot``: start TimmyBot on the configured backend."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence

from timmybot_bot.bootstrap import Services, bootstrap, check_settings
from timmybot_bot.commands import Invocation
from timmybot_bot.console import LOCAL_OPERATOR, OfflineConsole
from timmybot_bot.demo_provider import DemoOAuthProvider
from timmybot_bot.settings import MAX_SNOWFLAKE, ConfigurationError, Settings
from timmybot_bot.web import WebServer, build_app
from timmybot_core import Switch

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
        "--demo-provider",
        action="store_true",
        help="console: start a local OAuth provider on 127.0.0.1 so /link demo can be "
        "tried end to end without the internet",
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


def _health(services: Services) -> dict[str, Callable[[], Awaitable[bool]]]:
    async def access() -> bool:
        await services.access.switch_state(Switch.KILL_SWITCH)
        return True

    async def vault() -> bool:
        await services.vault.get(1)
        return True

    return {"access_store": access, "vault": vault}


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    """Compose and run: demo provider (optional), services, web server, console."""
    demo: DemoOAuthProvider | None = None
    if args.demo_provider:
        demo = DemoOAuthProvider(redirect_uris=[settings.redirect_uri])
        await demo.start()
    try:
        services = bootstrap(
            settings, extra_providers=[demo.oauth_provider()] if demo is not None else ()
        )
    except ConfigurationError as error:
        print(f"timmybot: configuration error: {error}", file=sys.stderr)
        if demo is not None:
            await demo.stop()
        return 2
    web: WebServer | None = None
    try:
        if services.links.platforms():
            # The OAuth callback needs the web server; a busy port disables
            # linking, not the console.
            web = WebServer(
                build_app(services.links, health=_health(services)),
                host=settings.web_host,
                port=settings.web_port,
            )
            try:
                await web.start()
            except OSError as error:
                log.error(
                    "web server could not listen on %s:%s (%s); /link cannot complete",
                    settings.web_host,
                    settings.web_port,
                    error.strerror or type(error).__name__,
                )
                web = None
        if demo is not None:
            print(
                f"Demo OAuth provider on {demo.base_url}: /link demo prints a URL to open "
                "in a browser; approve, and the callback completes the link.",
                file=sys.stderr,
            )
        return await OfflineConsole(services, invocation=_invocation(args.guild, args.user)).run()
    finally:
        if web is not None:
            await web.stop()
        await services.aclose()
        if demo is not None:
            await demo.stop()


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
        check_settings(settings)
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
        return asyncio.run(_serve(settings, args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
