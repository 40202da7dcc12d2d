"""Specification of the offline console, driven in-process."""

from __future__ import annotations

import io

import pytest

from timmybot_bot.app.commands import Invocation
from timmybot_bot.app.failures import UNEXPECTED
from timmybot_bot.console.offline import LOCAL_OPERATOR, PROMPT, OfflineConsole
from timmybot_bot.runtime.bootstrap import Settings, bootstrap


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


async def test_search_without_a_platform_says_how_to_configure_one() -> None:
    status, out = await run_console("/search Drop It Like It's Hot\n")
    assert status == 0
    assert out.startswith("Search needs a music platform, and none is configured.")
    assert "TIMMYBOT_SPOTIFY_CLIENT_ID" in out


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
    _, out = await run_console("/playlist @everyone **now**\n")
    assert out == "Playlist name accepted: \uff20everyone \\*\\*now\\*\\*\n"


async def test_help_lists_every_command() -> None:
    _, out = await run_console("/help\n")
    for usage in ("/search <query>", "/playlist <name>", "/whoami", "/admin", "/help", "/quit"):
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


class TestIdentities:
    async def run_as(self, text: str, invocation: Invocation, **settings: object) -> str:
        out = io.StringIO()
        services = bootstrap(Settings(backend="memory", **settings))  # type: ignore[arg-type]
        console = OfflineConsole(
            services, invocation=invocation, stdin=io.StringIO(text), stdout=out, interactive=False
        )
        await console.run()
        return out.getvalue()

    async def test_whoami_names_the_identity(self) -> None:
        out = await self.run_as("/whoami\n", Invocation(guild_id=42, user_id=7), owner_ids={7})
        assert out == "You are user 7 (owner) in guild 42.\n"

    async def test_a_guild_that_is_not_allowlisted_is_denied_with_the_reason(self) -> None:
        out = await self.run_as("/search Halo\n", Invocation(guild_id=42, user_id=7))
        assert out == "Denied: This server is not authorized to use TimmyBot.\n"

    async def test_a_direct_message_is_denied_unless_allowed(self) -> None:
        out = await self.run_as("/search Halo\n", Invocation(guild_id=None, user_id=7))
        assert out.startswith("Denied: TimmyBot commands are not available in direct messages")

    async def test_an_allowlisted_guild_passes(self) -> None:
        out = await self.run_as(
            "/playlist Halo\n", Invocation(guild_id=42, user_id=7), allowed_guilds={42}
        )
        assert out == "Playlist name accepted: Halo\n"

    async def test_admin_commands_are_for_admin_only(self) -> None:
        out = await self.run_as(
            "/admin guild allow 43\n", Invocation(guild_id=42, user_id=7), allowed_guilds={42}
        )
        assert out == "Only TimmyBot owners and admins can use /admin.\n"

    async def test_an_owner_manages_the_allowlist_and_the_kill_switch(self) -> None:
        script = (
            "/admin guild allow 43\n/admin guild allow 43\n/admin guild list\n"
            "/admin killswitch on maintenance\n/admin killswitch status\n"
            "/admin guild remove 43\n/admin killswitch off\n/admin killswitch\n"
        )
        out = await self.run_as(script, Invocation(guild_id=42, user_id=7), owner_ids={7})
        lines = out.splitlines()
        assert lines[0] == "Guild 43 is now allowed."
        assert lines[1] == "Guild 43 was already allowed."
        assert lines[2] == "Allowed guilds: 43"
        assert lines[3] == "Kill switch ON: only owners can run commands."
        assert lines[4].startswith("Kill switch is ON since") and lines[4].endswith("maintenance")
        assert lines[5] == "Guild 43 was removed from the allowlist."
        assert lines[6] == "Kill switch OFF: commands are back."
        assert lines[7] == "Kill switch is off."

    async def test_the_kill_switch_stops_other_users(self) -> None:
        services = bootstrap(Settings(backend="memory", owner_ids={7}, allowed_guilds={42}))
        owner = OfflineConsole(
            services,
            invocation=Invocation(guild_id=42, user_id=7),
            stdin=io.StringIO("/admin killswitch on incident\n"),
            stdout=io.StringIO(),
            interactive=False,
        )
        await owner.run()
        user = Invocation(guild_id=42, user_id=8)
        reply = await OfflineConsole(services, invocation=user).handle_line("/search Halo")
        assert reply == "Denied: TimmyBot is paused by its operators. Please try again later."

    async def test_unbanning_needs_a_ban(self) -> None:
        out = await self.run_as("/admin guild unban 43\n", LOCAL_OPERATOR)
        assert out == "Guild 43 was not banned.\n"

    @pytest.mark.parametrize(
        "line",
        [
            "/admin",
            "/admin guild allow",
            "/admin guild allow abc",
            "/admin guild allow -5",
            "/admin guild allow 99999999999999999999999",
            "/admin killswitch sideways",
            "/admin incident declare P9 title",
            "/admin incident declare P1",
        ],
    )
    async def test_malformed_admin_commands_get_usage_not_a_crash(self, line: str) -> None:
        out = await self.run_as(line + "\n", LOCAL_OPERATOR)
        assert out.startswith(("Usage: /admin", "The guild must be", "Severity must be"))

    async def test_an_incident_without_a_visible_title_is_refused_not_a_crash(self) -> None:
        out = await self.run_as("/admin incident declare P1 \u200b\n", LOCAL_OPERATOR)
        assert out.startswith(("an incident needs a title", "Usage: /admin"))

    async def test_an_owner_declares_an_incident_and_sees_the_playbook(self) -> None:
        out = await self.run_as(
            "/admin incident declare P3 Typo in the welcome text\n", LOCAL_OPERATOR
        )
        assert "(P3, respond by" in out
        assert "ok   record: recorded for review" in out


async def test_a_reply_that_cannot_be_rendered_is_the_generic_error_and_the_console_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A bug in one reply's rendering (a stored value of an unexpected shape)
    # must not end the console with a traceback and skip the lines after it.
    from timmybot_bot.app import replies

    def broken(*args: object, **kwargs: object) -> str:
        raise TypeError("refresh_token=canary-rt-secret")

    monkeypatch.setattr(replies, "_switch_line", broken)
    with caplog.at_level("ERROR", logger="timmybot.commands"):
        status, out = await run_console("/admin killswitch status\n/playlist Halo\n")
    assert status == 0
    assert out.splitlines() == [UNEXPECTED, "Playlist name accepted: Halo"]
    assert "/admin: its reply could not be rendered: TypeError" in caplog.text
    assert "canary" not in caplog.text


async def test_a_value_error_from_a_store_is_the_generic_error_logged_without_its_text(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the domain's own refusals (an incident without a title) are
    # quoted; a ValueError from a store or a library may quote anything.
    from timmybot_core.services.incidents import IncidentResponseService

    async def broken(*args: object, **kwargs: object) -> object:
        raise ValueError("row 7: refresh_token=canary-rt-secret")

    monkeypatch.setattr(IncidentResponseService, "handle", broken)
    with caplog.at_level("ERROR", logger="timmybot.commands"):
        status, out = await run_console("/admin incident declare P3 disk\n/playlist Halo\n")
    assert status == 0
    assert out.splitlines() == [UNEXPECTED, "Playlist name accepted: Halo"]
    assert "/admin failed: ValueError at" in caplog.text
    assert "canary" not in caplog.text
