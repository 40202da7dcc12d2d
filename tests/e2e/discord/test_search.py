"""/search on Discord against the demo provider's Spotify-shaped search endpoint (127.0.0.1).

The user links through the demo provider's real OAuth endpoints, then
searches from Discord; the bot calls ``GET /v1/search`` with the user's
access token and shows the tracks. Hostile track data must reach Discord
neutralized, and no token may ever reach it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import Harness, MakeBot, only, settings
from timmybot_bot.demo.provider import DemoOAuthProvider, hostile_tracks


@pytest.fixture
async def demo() -> AsyncIterator[DemoOAuthProvider]:
    async with DemoOAuthProvider(
        redirect_uris=[settings().redirect_uri], auto_approve=True
    ) as provider:
        yield provider


async def link(bot: Harness) -> None:
    """/link on Discord, approve at the provider, complete the callback's work."""
    sent = only(await bot.slash("link", p.string("platform", "demo")))
    url = re.search(r"<(http[^>]+)>", sent.content or "").group(1)  # type: ignore[union-attr]
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, allow_redirects=False) as response,
    ):
        assert response.status in (302, 303), await response.text()
        callback = parse_qs(urlsplit(response.headers["Location"]).query)
    await bot.services.links.complete(callback["state"][0], callback["code"][0])


def leaked(bot: Harness, demo: DemoOAuthProvider) -> list[str]:
    sent = " ".join(str(request.body) for request in bot.discord.history)
    return [secret for secret in demo.issued_secrets() if secret in sent]


async def test_search_shows_the_top_tracks_of_the_linked_platform(
    make_bot: MakeBot, demo: DemoOAuthProvider
) -> None:
    bot = await make_bot(providers=[demo.oauth_provider()])
    query = p.string("query", "Drop It Like It's Hot")

    unlinked = only(await bot.slash("search", query))
    assert (unlinked.content or "").startswith("Link a music account first with /link")
    assert demo.search_calls == 0

    await link(bot)
    found = only(await bot.slash("search", query))
    assert found.ephemeral
    text = found.content or ""
    assert text.startswith('Top results on demo for "Drop It Like It')
    assert "Snoop Dogg" in text
    assert demo.search_requests[-1]["q"] == "Drop It Like It's Hot"
    assert leaked(bot, demo) == []


async def test_hostile_track_data_reaches_discord_neutralized(
    make_bot: MakeBot, demo: DemoOAuthProvider
) -> None:
    demo.tracks = hostile_tracks()
    bot = await make_bot(providers=[demo.oauth_provider()])
    await link(bot)
    found = only(await bot.slash("search", p.string("query", "hostile")))
    text = found.content or ""
    assert text.startswith('Top results on demo for "hostile"')
    for attack in ("@everyone", "@here", "<@", "<#", "</", "\u202e", "\u200b", "javascript:"):
        assert attack not in text, attack
    # No masked link survives: its bracket is escaped and its scheme broken.
    assert not re.search(r"(?<!\\)\]\(", text)
    assert "https://evil.example" not in text
    assert found.message["allowed_mentions"] == {"parse": []}
    assert leaked(bot, demo) == []
