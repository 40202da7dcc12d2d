"""``python -m timmybot_bot``: start TimmyBot on the configured backend.

1. Read the settings: ``TIMMYBOT_*`` environment variables over an optional
   TOML file (``--config PATH`` or ``TIMMYBOT_CONFIG_FILE``). Every error
   names the setting and exits with status 2; no secret is printed.
   ``--check-config`` stops here and prints the settings.
2. Compose the services (``bootstrap``) and open every store at once, so a
   damaged or too-new database stops the start (status 1) instead of
   failing the first command.
3. With a Discord token, run the Discord bot; the web server and the
   scheduler start on hikari's ``StartingEvent`` and stop on its
   ``StoppingEvent``. Without one, start them and run the offline console.
4. On SIGTERM or SIGINT, stop cleanly (``timmybot_bot.runtime.shutdown``): no token
   refresh starts any more, the bot disconnects (or the console stops
   reading), the scheduler and web server stop, the refreshes in flight
   reach the vault (bounded), and the services close (HTTP session, stores,
   exporters, the audit trail's final digest). SIGTERM exits with status 0,
   SIGINT with 130; a second signal exits at once with 128 + its number.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import queue
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from timmybot_bot.app.commands import Invocation
from timmybot_bot.console.offline import LOCAL_OPERATOR, OfflineConsole
from timmybot_bot.runtime.background import Runtime, WebServerUnavailable
from timmybot_bot.runtime.bootstrap import Services, bootstrap, check_settings
from timmybot_bot.runtime.logs import configure_logging
from timmybot_bot.runtime.settings import ConfigurationError, Settings
from timmybot_bot.runtime.shutdown import GracefulStop, drain_refreshes, stopping_then
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.domain.snowflake import SnowflakeError, parse_snowflake
from timmybot_core.safety.text import strip_invisible

if TYPE_CHECKING:
    from timmybot_adapters.oauth import OAuthProvider
    from timmybot_bot.demo.provider import DemoOAuthProvider

__all__ = ["main"]

log = logging.getLogger("timmybot")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIGURATION = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m timmybot_bot",
        description=(
            "Run TimmyBot. Settings come from TIMMYBOT_* environment variables and an "
            "optional TOML file (see docs/configuration.md). With DISCORD_TOKEN set the bot "
            "joins Discord; without it the offline console starts and reads commands such "
            "as '/search <query>' from standard input."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="read settings from this TOML file (default: $TIMMYBOT_CONFIG_FILE, if set); "
        "environment variables override it",
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
        "--demo-provider-url",
        metavar="URL",
        help="link against a demo OAuth provider already serving at this loopback URL "
        "(platform 'demo'; for tests and bench/faults.py)",
    )
    parser.add_argument(
        "--user",
        type=_snowflake,
        metavar="ID",
        help="console: run commands as this user (default with --guild: user 1)",
    )
    return parser


def _snowflake(text: str) -> int:
    try:
        return parse_snowflake(text)
    except SnowflakeError:
        raise argparse.ArgumentTypeError(
            "must be a Discord ID (the digits 0-9, no leading zero, up to 2**64-1), "
            f"got {text[:40]!r}"
        ) from None


def _invocation(guild: int | None, user: int | None) -> Invocation:
    if guild is None and user is None:
        return LOCAL_OPERATOR
    return Invocation(
        guild_id=guild,
        user_id=user if user is not None else 1,
        source="console",
        at_terminal=True,
    )


def _fail(message: str, status: int) -> int:
    # One line, fit for a terminal: a file's key or a path named in the
    # message may hold a line break or an escape sequence.
    print(f"timmybot: {strip_invisible(message)}", file=sys.stderr)
    return status


class _StdinPump:
    """Lines of standard input, readable in a way shutdown can interrupt.

    A daemon thread reads the real stream; :meth:`readline` takes its lines
    from a queue, and :meth:`close` ends it with an end of input. A thread
    blocked on the terminal would otherwise keep the process alive after a
    SIGTERM until someone pressed Enter.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, name="timmybot-stdin", daemon=True).start()

    def _pump(self) -> None:
        try:
            while line := self._stream.readline():
                self._lines.put(line)
        except (OSError, ValueError):
            pass  # a closed or broken stream ends the input like EOF
        self._lines.put("")

    def readline(self) -> str:
        """Return the next line, or ``""`` at the end of input."""
        line = self._lines.get()
        if not line:
            self._lines.put("")  # every later call sees the end too
        return line

    def close(self) -> None:
        """End the input now."""
        self._lines.put("")

    def isatty(self) -> bool:
        """Tell whether the real stream is a terminal."""
        return self._stream.isatty()


async def _run_console(services: Services, args: argparse.Namespace, stop: GracefulStop) -> int:
    runtime = Runtime(services, web_required=False)
    pump = _StdinPump(sys.stdin)
    stop.install(pump.close, services)
    await runtime.start()
    try:
        console = OfflineConsole(
            services,
            invocation=_invocation(args.guild, args.user),
            stdin=pump,  # type: ignore[arg-type]  # readline() is all the console uses
            interactive=pump.isatty(),
        )
        status = await console.run()
    finally:
        services.tokens.stop_refreshing()
        await runtime.stop()
    return stop.status(status)


async def _run_discord(services: Services, stop: GracefulStop) -> int:
    # Imported here: hikari and lightbulb load only when the bot joins Discord.
    from timmybot_bot.discord import CommandClientFailed, build_discord_bot

    runtime = Runtime(services, web_required=True)
    bot = build_discord_bot(
        services, on_starting=runtime.start, on_stopping=stopping_then(services, runtime.stop)
    )
    closing: set[asyncio.Task[None]] = set()

    def close() -> None:
        task = asyncio.get_running_loop().create_task(bot.close())
        closing.add(task)
        task.add_done_callback(closing.discard)

    stop.install(close, services)
    try:
        await bot.run()
    except (WebServerUnavailable, CommandClientFailed) as error:
        return _fail(str(error), EXIT_FAILED)
    finally:
        # on_stopping normally did this already; a failed start may not have.
        services.tokens.stop_refreshing()
        await runtime.stop()
    return stop.status(EXIT_OK)


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    """Compose the services, open the stores, and run the bot or the console."""
    demo: DemoOAuthProvider | None = None
    extra: list[OAuthProvider] = []
    if args.demo_provider_url is not None or args.demo_provider:
        # Imported only here: nothing of the demo is loaded without a demo option.
        from timmybot_bot.demo.provider import DemoOAuthProvider, demo_provider_config

        if args.demo_provider_url is not None:
            try:
                extra.append(demo_provider_config(args.demo_provider_url, settings.redirect_uri))
            except ValueError as error:
                return _fail(
                    f"configuration error: --demo-provider-url: {error}", EXIT_CONFIGURATION
                )
        if args.demo_provider:
            demo = DemoOAuthProvider(redirect_uris=[settings.redirect_uri])
            await demo.start()
            extra.append(demo.oauth_provider())
    stop = GracefulStop()
    try:
        services = bootstrap(settings, extra_providers=extra)  # refusals: the except below
        try:
            try:
                await services.open()
            except StoreUnavailable as error:
                return _fail(f"cannot open the {settings.backend} stores: {error}", EXIT_FAILED)
            if demo is not None:
                print(
                    f"Demo OAuth provider on {demo.base_url}: /link demo prints a URL to open "
                    "in a browser; approve, and the callback completes the link.",
                    file=sys.stderr,
                )
            if settings.discord_token:
                return await _run_discord(services, stop)
            return await _run_console(services, args, stop)
        finally:
            # Refreshes in flight reach the vault before the HTTP session
            # and the stores close; a second signal exits at once instead.
            await drain_refreshes(services)
            await services.aclose()
            stop.uninstall()
    except ConfigurationError as error:
        return _fail(f"configuration error: {error}", EXIT_CONFIGURATION)
    finally:
        if demo is not None:
            await demo.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(config_file=args.config)
        # On Discord, JSON lines on stdout for the container's log driver; the
        # console keeps stdout for its replies.
        configure_logging(settings.log_level, json_lines=bool(settings.discord_token))
        check_settings(settings)
    except ConfigurationError as error:
        return _fail(f"configuration error: {error}", EXIT_CONFIGURATION)
    demo = args.demo_provider or args.demo_provider_url is not None
    if demo and settings.discord_token:
        demo_option = "--demo-provider" if args.demo_provider else "--demo-provider-url"
        # The demo provider's client secret is public by design: it must
        # never stand behind a bot real users reach, started here or not.
        return _fail(
            f"configuration error: DISCORD_TOKEN is set, and {demo_option} (whose client "
            "secret is public) runs only with the offline console; unset one of them",
            EXIT_CONFIGURATION,
        )
    if args.check_config:
        for key, value in settings.describe().items():
            # As timmybot-admin config check: a value (a path, a URL) may hold an
            # escape sequence, and this prints to the operator's terminal.
            print(f"{key} = {strip_invisible(value)}")
        print("configuration OK")
        return EXIT_OK
    try:
        return asyncio.run(_serve(settings, args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
