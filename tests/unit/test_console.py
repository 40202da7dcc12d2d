"""Specification of the offline console, driven in-process."""

from __future__ import annotations

import io

from timmybot_bot.bootstrap import Settings, bootstrap
from timmybot_bot.console import PROMPT, OfflineConsole


async def run_console(text: str, *, interactive: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    console = OfflineConsole(
        bootstrap(Settings(backend="memory")),
        stdin=io.StringIO(text),
        stdout=out,
        interactive=interactive,
    )
    status = await console.run()
    return status, out.getvalue()


async def test_search_prints_the_accepted_value() -> None:
    status, out = await run_console("/search Drop It Like It's Hot\n")
    assert status == 0
    assert out == "Search accepted: Drop It Like It's Hot\n"


async def test_rejected_search_prints_the_reason() -> None:
    _, out = await run_console("/search ' OR '1'='1\n/search\n")
    assert out.splitlines() == [
        "Search rejected: Search query contains SQL injection "
        "(a quote followed by an OR/AND condition)",
        "Search rejected: Search query cannot be empty",
    ]


async def test_playlist_names_are_validated() -> None:
    _, out = await run_console("/playlist   Road   Trip  \n/playlist " + "x" * 101 + "\n")
    assert out.splitlines() == [
        "Playlist name accepted: Road Trip",
        "Playlist name rejected: Playlist name too long (max 100 characters)",
    ]


async def test_replies_are_safe_for_discord() -> None:
    _, out = await run_console("/search @everyone **now**\n")
    assert out == "Search accepted: \uff20everyone \\*\\*now\\*\\*\n"


async def test_help_lists_every_command() -> None:
    _, out = await run_console("/help\n")
    for usage in ("/search <query>", "/playlist <name>", "/help", "/quit"):
        assert usage in out


async def test_quit_stops_before_the_rest_of_the_input() -> None:
    status, out = await run_console("/quit\n/search Halo\n")
    assert (status, out) == (0, "")


async def test_unknown_commands_and_plain_text_get_guidance() -> None:
    _, out = await run_console("/nope\nhello\n\n")
    assert out.splitlines() == [
        "Unknown command /nope. Type /help for the list.",
        "Commands start with '/'. Type /help for the list.",
    ]


async def test_terminal_escape_sequences_from_input_never_reach_the_output() -> None:
    _, out = await run_console("/\x1b[31mred\x07\n/search \x1b]0;pwned\x07Halo\n")
    assert "\x1b" not in out and "\x07" not in out


async def test_interactive_mode_shows_a_banner_and_prompts() -> None:
    _, out = await run_console("/search Halo\n", interactive=True)
    assert out.startswith("TimmyBot offline console.")
    assert out.count(PROMPT) == 2
