"""Specification of /search over a fake MusicCatalog, through run_command.

The catalog is an in-memory implementation of the port that records what it
was asked; tokens come from the real SecureTokenService over the memory
vault, with the in-memory OAuth provider of ``fake_oauth`` behind it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import any_text
from tests.unit.fake_oauth import FakeOAuthClient, unavailable
from timmybot_bot.app.commands import QUERY_LIMIT, Invocation
from timmybot_bot.app.search_results import (
    format_duration,
    render_results,
    safe_link,
    split_platform_option,
)
from timmybot_bot.console.lines import COMMANDS, run_command
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_core import (
    CatalogTrack,
    FakeClock,
    OAuthError,
    ProviderRateLimited,
    ReLinkRequired,
    ResponseSanitizer,
    SecurityEvent,
    SecurityEventType,
    Switch,
)
from timmybot_core.ports.catalog import DEFAULT_SEARCH_LIMIT, MusicCatalog

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
GUILD = 222_222_222_222_222_222
USER = 444_444_444_444_444_444
LIVE_MENTION = re.compile(r"@(everyone|here)|<@[!&]?\d+>|<#\d+>|</[^>]+:\d+>", re.IGNORECASE)
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
ANGLE_LINK = re.compile(r"<([^<>\s]*)>")


@attrs.frozen
class Call:
    platform: str
    query: str
    access_token: str
    limit: int


class FakeCatalog:
    """A MusicCatalog answering from a dict per platform; fails on demand; records calls."""

    def __init__(self, platforms: tuple[str, ...] = ("spotify",)) -> None:
        self._platforms = platforms
        self.tracks: dict[str, list[CatalogTrack]] = {}
        self.failures: list[Exception] = []
        self.calls: list[Call] = []

    def platforms(self) -> tuple[str, ...]:
        return self._platforms

    async def search(
        self, platform: str, query: str, *, access_token: str, limit: int = DEFAULT_SEARCH_LIMIT
    ) -> tuple[CatalogTrack, ...]:
        self.calls.append(Call(platform, query, access_token, limit))
        if self.failures:
            raise self.failures.pop(0)
        if platform not in self._platforms:
            raise OAuthError(f"search is not configured for {platform!r}", platform=platform)
        return tuple(self.tracks.get(platform, ())[:limit])


def track(
    title: str = "Halo", *artists: str, platform: str = "spotify", **fields: object
) -> CatalogTrack:
    values: dict[str, object] = {
        "duration": timedelta(minutes=3, seconds=41),
        "thumbnail_url": "https://i.scdn.co/image/ab67616d00001e02",
        "url": "https://open.spotify.com/track/0",
        **fields,
    }
    return CatalogTrack(platform=platform, title=title, artists=artists or ("Beyoncé",), **values)  # type: ignore[arg-type]


@attrs.define
class World:
    services: Services
    catalog: FakeCatalog
    oauth: FakeOAuthClient
    clock: FakeClock
    events: list[SecurityEvent]

    async def link(self, platform: str = "spotify") -> str:
        tokens = self.oauth.issue(platform)
        await self.services.tokens.store_user_tokens(USER, tokens)
        return tokens.access_token

    async def run(self, args: str) -> str:
        reply = await run_command(
            self.services, Invocation(guild_id=GUILD, user_id=USER), "search", args
        )
        return reply.text


async def make_world(platforms: tuple[str, ...] = ("spotify",)) -> World:
    clock = FakeClock(START)
    oauth = FakeOAuthClient(clock, platforms=platforms)
    catalog = FakeCatalog(platforms)
    services = bootstrap(
        Settings(backend="memory", allowed_guilds={GUILD}),
        clock=clock,
        oauth=oauth,
        catalog=catalog,
    )
    events: list[SecurityEvent] = []

    async def listen(event: SecurityEvent) -> None:
        events.append(event)

    services.security_log.subscribe(listen)
    return World(services, catalog, oauth, clock, events)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    built = await make_world()
    yield built
    await built.services.aclose()


def test_the_fake_catalog_is_a_music_catalog() -> None:
    assert isinstance(FakeCatalog(), MusicCatalog)


async def test_a_linked_user_gets_the_top_results_with_their_own_token(world: World) -> None:
    token = await world.link()
    world.catalog.tracks["spotify"] = [
        track("Halo", "Beyoncé"),
        track("Drop It Like It's Hot", "Snoop Dogg", "Pharrell Williams", duration=None),
    ]

    text = await world.run("  Halo  ")

    assert world.catalog.calls == [Call("spotify", "Halo", token, DEFAULT_SEARCH_LIMIT)]
    assert text.splitlines() == [
        'Top results on spotify for "Halo":',
        "1. **Halo** by Beyoncé (3:41)",
        "   listen: <https://open.spotify.com/track/0> · cover: <https://i.scdn.co/image/ab67616d00001e02>",
        "2. **Drop It Like It's Hot** by Snoop Dogg, Pharrell Williams",
        "   listen: <https://open.spotify.com/track/0> · cover: <https://i.scdn.co/image/ab67616d00001e02>",
    ]
    assert token not in text


async def test_no_results_is_said_plainly(world: World) -> None:
    await world.link()
    assert await world.run("Halo") == 'No tracks found on spotify for "Halo".'


async def test_a_rejected_query_is_a_security_event_and_reaches_no_platform(world: World) -> None:
    await world.link()

    text = await world.run("' OR '1'='1")

    assert text.startswith("Search rejected: Search query contains SQL injection")
    assert world.catalog.calls == []
    assert [event.type for event in world.events] == [SecurityEventType.VALIDATION_REJECTED]
    assert world.events[0].details["field"] == "search"


async def test_a_query_at_the_limit_is_searched_and_one_past_it_is_rejected(
    world: World,
) -> None:
    # Issue 14: the query limit is defined once, and it is the limit applied.
    await world.link()

    await world.run("a" * QUERY_LIMIT)
    text = await world.run("a" * (QUERY_LIMIT + 1))

    assert [call.query for call in world.catalog.calls] == ["a" * QUERY_LIMIT]
    assert text == f"Search rejected: Search query too long (max {QUERY_LIMIT} characters)"


async def test_an_empty_query_is_rejected_even_with_a_platform(world: World) -> None:
    await world.link()
    assert await world.run("platform:spotify   ") == (
        "Search rejected: Search query cannot be empty"
    )
    assert world.catalog.calls == []


async def test_an_unlinked_user_is_told_how_to_link(world: World) -> None:
    text = await world.run("Halo")
    assert (
        text
        == "Link a music account first with /link <platform> (one of: spotify), then search again."
    )
    assert world.catalog.calls == []


async def test_without_any_catalog_the_operator_setting_is_named() -> None:
    built = await make_world(platforms=())
    try:
        text = await built.run("Halo")
    finally:
        await built.services.aclose()
    assert "TIMMYBOT_SPOTIFY_CLIENT_ID" in text
    assert built.catalog.calls == []


async def test_a_link_that_needs_relinking_is_not_searched(world: World) -> None:
    await world.link()
    await world.services.tokens.mark_needs_relink(USER, "spotify")
    assert await world.run("Halo") == "Your spotify link has expired; link it again with /link."
    assert world.catalog.calls == []


async def test_an_expiring_token_is_refreshed_before_the_search(world: World) -> None:
    old = await world.link()
    world.clock.advance(timedelta(minutes=59))

    await world.run("Halo")

    assert world.oauth.refresh_calls == 1
    assert world.catalog.calls[0].access_token not in {old}
    assert world.catalog.calls[0].access_token in world.oauth.issued


class TestChoosingThePlatform:
    @pytest.fixture
    async def two(self) -> AsyncIterator[World]:
        built = await make_world(platforms=("spotify", "demo"))
        built.catalog.tracks = {
            "spotify": [track("Halo")],
            "demo": [track("Halo", platform="demo", url=None, thumbnail_url=None)],
        }
        yield built
        await built.services.aclose()

    async def test_the_only_linked_platform_is_searched(self, two: World) -> None:
        await two.link("demo")
        text = await two.run("Halo")
        assert [call.platform for call in two.catalog.calls] == ["demo"]
        assert text == 'Top results on demo for "Halo":\n1. **Halo** by Beyoncé (3:41)'

    async def test_with_several_links_the_first_is_searched_and_the_others_named(
        self, two: World
    ) -> None:
        await two.link("demo")
        await two.link("spotify")
        text = await two.run("Halo")
        assert [call.platform for call in two.catalog.calls] == ["spotify"]
        assert text.endswith("\nAdd platform:<name> to search demo instead.")

    async def test_platform_option_picks_one(self, two: World) -> None:
        demo_token = await two.link("demo")
        await two.link("spotify")
        text = await two.run("platform:DEMO Halo")
        assert two.catalog.calls == [Call("demo", "Halo", demo_token, DEFAULT_SEARCH_LIMIT)]
        assert text.startswith('Top results on demo for "Halo":')

    async def test_platform_option_for_an_unlinked_platform_says_link_it(self, two: World) -> None:
        await two.link("spotify")
        assert await two.run("platform:demo Halo") == "Link your demo account first with /link."
        assert two.catalog.calls == []

    @pytest.mark.parametrize("option", ["platform:deezer", "platform:<@1>"])
    async def test_an_unknown_platform_gets_the_usage(self, two: World, option: str) -> None:
        await two.link("spotify")
        assert await two.run(f"{option} Halo") == (
            "Usage: /search platform:<name> <query>, one of: spotify, demo."
        )
        assert two.catalog.calls == []

    async def test_platform_colon_space_is_a_query_not_an_option(self, two: World) -> None:
        # Issue 14: the query "platform: halo" is searched as typed.
        await two.link("spotify")
        await two.run("platform: Halo")
        assert two.catalog.calls[0].query == "platform: Halo"

    async def test_platform_inside_the_query_is_just_text(self, two: World) -> None:
        await two.link("spotify")
        await two.run("Halo platform:demo")
        assert two.catalog.calls[0].query == "Halo platform:demo"


class TestPlatformFailures:
    async def test_a_refused_token_is_refreshed_once_and_the_search_retried(
        self, world: World
    ) -> None:
        old = await world.link()
        world.catalog.tracks["spotify"] = [track()]
        world.catalog.failures.append(ReLinkRequired("HTTP 401", platform="spotify"))

        text = await world.run("Halo")

        assert world.oauth.refresh_calls == 1
        first, second = world.catalog.calls
        assert first.access_token == old
        assert second.access_token != old and second.access_token in world.oauth.issued
        assert text.startswith('Top results on spotify for "Halo":')

    async def test_a_token_refused_twice_asks_to_link_again(self, world: World) -> None:
        await world.link()
        world.catalog.failures += [
            ReLinkRequired("HTTP 401", platform="spotify"),
            ReLinkRequired("HTTP 401", platform="spotify"),
        ]
        text = await world.run("Halo")
        assert text == "Your spotify link has expired; link it again with /link."
        assert len(world.catalog.calls) == 2

    async def test_a_rejected_refresh_asks_to_link_again(self, world: World) -> None:
        await world.link()
        world.catalog.failures.append(ReLinkRequired("HTTP 401", platform="spotify"))
        world.oauth.valid_refresh.clear()  # the provider revoked the grant
        text = await world.run("Halo")
        assert text == "Your spotify link has expired; link it again with /link."
        assert len(world.catalog.calls) == 1
        record = await world.services.tokens.get_user_tokens(USER, force_fetch=True)
        assert record is not None and record.link("spotify").needs_relink  # type: ignore[union-attr]

    async def test_a_refused_token_while_refresh_is_paused_is_not_sent_again(
        self, world: World
    ) -> None:
        await world.link()
        await world.services.access.set_switch(
            Switch.REFRESH_PAUSED, True, reason="incident", actor=None
        )
        world.catalog.failures += [
            ReLinkRequired("HTTP 401", platform="spotify"),
            ReLinkRequired("HTTP 401", platform="spotify"),
        ]
        text = await world.run("Halo")
        # Refresh is paused, not the link expired: relinking is not the remedy.
        assert text == "Music accounts are paused for maintenance; try later."
        assert world.oauth.refresh_calls == 0
        assert len(world.catalog.calls) == 1  # the refused token was not sent again

    async def test_a_rate_limit_says_when_to_come_back(self, world: World) -> None:
        await world.link()
        world.catalog.failures.append(
            ProviderRateLimited("429", platform="spotify", retry_after=timedelta(seconds=6.2))
        )
        assert await world.run("Halo") == (
            "spotify is receiving too many searches; try again in 7 seconds."
        )

    async def test_an_unavailable_platform_is_a_short_reply(self, world: World) -> None:
        await world.link()
        world.catalog.failures.append(unavailable())
        assert await world.run("Halo") == "spotify is not answering right now; try again soon."


class TestHostileResults:
    async def test_mentions_markdown_and_bad_urls_are_defused(self, world: World) -> None:
        await world.link()
        world.catalog.tracks["spotify"] = [
            track(
                "@everyone **FREE** [nitro](https://evil.example) <@123456789012345678>",
                "@here",
                "<@&987654321098765432>",
                thumbnail_url="javascript:alert(1)",
                url="http://open.spotify.com/track/1",
            ),
            track(
                "\u202eevil\u200b http://evil.example/x",
                "Art\u200bist",
                thumbnail_url="https://127.0.0.1/internal.png",
                url="https://open.spotify.com/track/ok?x=<@123456789012345678>",
            ),
        ]

        text = await world.run("Halo")
        lines = text.splitlines()

        assert not LIVE_MENTION.search(text)
        assert lines[1] == (
            "1. **\uff20everyone \\*\\*FREE\\*\\* \\[nitro\\](https\u2236//evil.example) "
            "@123456789012345678** by \uff20here, @&987654321098765432 (3:41)"
        )
        assert lines[2] == "2. **evil http\u2236//evil.example/x** by Artist (3:41)"
        assert lines[3] == (
            "   listen: <https://open.spotify.com/track/ok?x=%3C%40123456789012345678%3E>"
        )
        assert "javascript" not in text and "http://" not in text and "127.0.0.1" not in text

    async def test_huge_results_keep_the_reply_within_discords_limit(self, world: World) -> None:
        await world.link()
        long_url = "https://open.spotify.com/track/" + "x" * 150
        world.catalog.tracks["spotify"] = [
            track("T" * 5000, *["A" * 3000] * 10, url=long_url, thumbnail_url=long_url)
            for _ in range(DEFAULT_SEARCH_LIMIT)
        ]
        text = await world.run("Halo")
        assert len(text) <= 2000
        lines = text.splitlines()[1:]
        # Each result is whole: a cut title and artist line, then both links.
        assert 1 <= len(lines) // 2 < DEFAULT_SEARCH_LIMIT
        for number, (entry, links) in enumerate(zip(lines[::2], lines[1::2], strict=True), 1):
            assert entry == f"{number}. **{'T' * 99}…** by {'A' * 99}… (3:41)"
            assert links == f"   listen: <{long_url}> · cover: <{long_url}>"

    async def test_results_that_do_not_fit_are_dropped_whole(self) -> None:
        sanitizer = ResponseSanitizer()
        many = [track("T" * 300, "A" * 300) for _ in range(10)]
        text = render_results(sanitizer, platform="spotify", query="q", tracks=many, limit=700)
        assert len(text) <= 700
        entries = [line for line in text.splitlines() if re.match(r"\d+\. ", line)]
        assert 0 < len(entries) < 10
        assert all(line.endswith("(3:41)") for line in entries)


def test_the_help_text_describes_the_real_search() -> None:
    (command,) = [command for command in COMMANDS if command.name == "search"]
    assert "platform:<name>" in command.summary


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("Halo", (None, "Halo")),
        ("platform:Spotify Halo", ("spotify", " Halo")),
        ("  platform:demo   Drop It", ("demo", "   Drop It")),
        ("platform: Halo", (None, "platform: Halo")),
        ("Halo platform:demo", (None, "Halo platform:demo")),
    ],
)
def test_split_platform_option(args: str, expected: tuple[str | None, str]) -> None:
    assert split_platform_option(args) == expected


@pytest.mark.parametrize(
    ("duration", "shown"),
    [
        (None, None),
        (timedelta(seconds=5), "0:05"),
        (timedelta(minutes=3, seconds=41, milliseconds=999), "3:41"),
        (timedelta(hours=1, minutes=2, seconds=3), "1:02:03"),
    ],
)
def test_format_duration(duration: timedelta | None, shown: str | None) -> None:
    assert format_duration(duration) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://i.scdn.co/image/ab", "https://i.scdn.co/image/ab"),
        ("https://x.example/a@everyone>b|c`d", "https://x.example/a%40everyone%3Eb%7Cc%60d"),
        ("https://x.example/%41", "https://x.example/%41"),
        ("https://x.example/é", "https://x.example/%C3%A9"),
        ("http://x.example/a", None),
        ("javascript:alert(1)", None),
        ("https://10.0.0.1/a", None),
        ("https://x.example/" + "a" * 400, None),
    ],
)
def test_safe_link(url: str, shown: str | None) -> None:
    assert safe_link(ResponseSanitizer(), url) == shown


# -- properties -----------------------------------------------------------------

urls = st.one_of(
    any_text,
    st.sampled_from(
        [
            "https://i.scdn.co/image/x",
            "http://i.scdn.co/image/x",
            "javascript:alert(1)",
            "https://x.example/@everyone",
            "https://x.example/a>@here<b",
            "data:text/html,x",
            "HTTP://X.EXAMPLE/",
            "ftp://x.example/",
        ]
    ),
    st.builds(lambda s: "https://x.example/" + s, any_text),
    st.builds(lambda s: "http://x.example/" + s, any_text),
)
# Provider text with link-shaped pieces mixed in: a title must never become a link.
LINKISH = ["http://", "ftp://", "HTTP://", "javascript:", "//", "evil.example", "www.", "a"]
provider_text = st.one_of(
    any_text,
    st.lists(st.one_of(st.sampled_from(LINKISH), any_text), max_size=6).map("".join),
)
tracks = st.lists(
    st.builds(
        CatalogTrack,
        platform=st.just("spotify"),
        title=provider_text,
        artists=st.lists(provider_text, max_size=4).map(tuple),
        album=st.none() | any_text,
        duration=st.none() | st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=24)),
        thumbnail_url=st.none() | urls,
        url=st.none() | urls,
    ),
    max_size=DEFAULT_SEARCH_LIMIT,
)


def assert_safe(text: str, *, http_allowed: bool) -> None:
    text.encode("utf-8")
    assert len(text) <= 2000
    assert not LIVE_MENTION.search(text)
    allowed = {"https", "http"} if http_allowed else {"https"}
    # Inside <...> Discord sees one link, so only its start counts; outside,
    # any "scheme://" would be a link of its own.
    for link in ANGLE_LINK.findall(text):
        assert link.split("://")[0] in allowed, text
    for match in SCHEME.finditer(ANGLE_LINK.sub("", text)):
        assert match.group(1) in allowed, text


@given(tracks=tracks, query=provider_text)
def test_rendered_results_never_hold_a_live_mention_or_a_non_https_url(
    tracks: list[CatalogTrack], query: str
) -> None:
    text = render_results(ResponseSanitizer(), platform="spotify", query=query, tracks=tracks)
    assert_safe(text, http_allowed=False)


@given(tracks=tracks, query=provider_text)
def test_with_http_allowed_only_http_and_https_appear(
    tracks: list[CatalogTrack], query: str
) -> None:
    text = render_results(
        ResponseSanitizer(allow_http=True), platform="spotify", query=query, tracks=tracks
    )
    assert_safe(text, http_allowed=True)
