"""The Spotify Web API catalog against the demo provider's /v1/search on 127.0.0.1.

Real aiohttp on both sides: the demo provider issues the access tokens
through the real code flow, checks them on every search, and serves
Spotify-shaped answers, hostile tracks and scripted failures.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import re
import secrets
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.unit.test_search_command import assert_safe
from timmybot_adapters.oauth import AiohttpOAuthClient, OAuthProvider, discord, spotify
from timmybot_adapters.oauth.catalog import (
    DEFAULT_RETRY_AFTER,
    MAX_RETRY_AFTER,
    MAX_SEARCH_RESPONSE_BYTES,
    SPOTIFY_API_BASE,
    CatalogApi,
    SpotifyWebApiCatalog,
    catalog_api_for,
    spotify_api,
)
from timmybot_bot.app.commands import Invocation
from timmybot_bot.app.search_results import render_results
from timmybot_bot.console.lines import run_command
from timmybot_bot.demo.provider import (
    DEMO_TRACKS,
    DemoOAuthProvider,
    SearchAnswer,
    hostile_tracks,
    spotify_track,
)
from timmybot_bot.runtime.bootstrap import Settings, bootstrap
from timmybot_core import (
    FakeClock,
    InputValidator,
    MusicCatalog,
    OAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
    RateLimit,
    ReLinkRequired,
    ResponseSanitizer,
)
from timmybot_core.domain.tokens import OAuthTokens

REDIRECT = "http://127.0.0.1:8765/oauth/callback"
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
GUILD = 222_222_222_222_222_222
USER = 444_444_444_444_444_444


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def link_tokens(
    provider: DemoOAuthProvider,
    clock: FakeClock,
    *,
    config: OAuthProvider | None = None,
    cafile: Path | None = None,
) -> OAuthTokens:
    """Run the real code flow against the provider and return the tokens it issued."""
    async with AiohttpOAuthClient(
        [config or provider.oauth_provider()], clock=clock, cafile=cafile
    ) as oauth:
        verifier, challenge = pkce()
        url = oauth.authorization_url(
            "demo", state="s", code_challenge=challenge, redirect_uri=REDIRECT
        )
        browser_ssl = ssl.create_default_context(cafile=cafile) if cafile else True
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(url, allow_redirects=False, ssl=browser_ssl) as response,
        ):
            code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
        return await oauth.exchange_code(
            "demo", code=code, code_verifier=verifier, redirect_uri=REDIRECT
        )


@attrs.define
class Stage:
    provider: DemoOAuthProvider
    catalog: SpotifyWebApiCatalog
    clock: FakeClock
    token: str


@pytest.fixture
async def stage() -> AsyncIterator[Stage]:
    clock = FakeClock(START)
    async with DemoOAuthProvider(redirect_uris=[REDIRECT], auto_approve=True, clock=clock) as demo:
        api = catalog_api_for(demo.oauth_provider())
        assert api is not None
        async with SpotifyWebApiCatalog([api], timeout=timedelta(seconds=2), clock=clock) as cat:
            yield Stage(demo, cat, clock, (await link_tokens(demo, clock)).access_token)


# -- the happy path ---------------------------------------------------------------


async def test_the_adapter_implements_the_port(stage: Stage) -> None:
    assert isinstance(stage.catalog, MusicCatalog)
    assert stage.catalog.platforms() == ("demo",)


async def test_a_search_returns_parsed_tracks(stage: Stage) -> None:
    (halo,) = await stage.catalog.search("demo", "halo", access_token=stage.token)

    assert halo.platform == "demo"
    assert halo.title == "Halo"
    assert halo.artists == ("Beyoncé",)
    assert halo.album == "I Am... Sasha Fierce"
    assert halo.duration == timedelta(milliseconds=261_640)
    assert halo.thumbnail_url == "https://i.scdn.co/image/demo"
    assert halo.url == "https://open.spotify.com/track/demo2"
    assert stage.provider.search_requests == [{"q": "halo", "type": "track", "limit": "5"}]


async def test_the_limit_is_sent_and_respected(stage: Stage) -> None:
    stage.provider.tracks = [spotify_track(f"Song {n}", track_id=f"s{n}") for n in range(30)]
    found = await stage.catalog.search("demo", "song", access_token=stage.token, limit=3)
    assert [track.title for track in found] == ["Song 0", "Song 1", "Song 2"]
    assert stage.provider.search_requests[-1]["limit"] == "3"


async def test_the_query_reaches_the_provider_exactly(stage: Stage) -> None:
    query = "Drop It Like It's Hot & more/?#=+%"
    await stage.catalog.search("demo", query, access_token=stage.token)
    assert stage.provider.search_requests[-1]["q"] == query


@pytest.mark.parametrize(
    "query",
    [
        "halo \U0001fae8",  # SHAKING FACE, Unicode 15: unassigned to Python 3.11's database
        "halo \uf8ff",  # private use: the Apple logo, typed on every Mac
    ],
)
async def test_text_python_does_not_know_reaches_the_provider(stage: Stage, query: str) -> None:
    # The validator accepts these; the adapter refused them as "not one
    # printable line", and /search answered a length error to a short query.
    assert InputValidator().validate_search_query(query).value == query
    await stage.catalog.search("demo", query, access_token=stage.token)
    assert stage.provider.search_requests[-1]["q"] == query


async def test_the_thumbnail_is_the_smallest_image_fit_for_one(stage: Stage) -> None:
    track = spotify_track("Sized")
    track["album"]["images"] = [
        {"url": "https://i.example/640", "width": 640},
        {"url": "https://i.example/300", "width": 300},
        {"url": "https://i.example/64", "width": 64},
    ]
    unsized = spotify_track("Unsized")
    unsized["album"]["images"] = [
        {"url": "https://i.example/first"},
        {"url": "https://i.example/2"},
    ]
    stage.provider.tracks = [track, unsized]
    sized, first = await stage.catalog.search("demo", "sized", access_token=stage.token)
    assert sized.thumbnail_url == "https://i.example/300"
    assert first.thumbnail_url == "https://i.example/first"


async def test_spotify_null_items_are_skipped(stage: Stage) -> None:
    body = {"tracks": {"items": [None, spotify_track("Halo"), 7, "x"]}}
    stage.provider.search_answers.append(SearchAnswer(body=json.dumps(body).encode()))
    found = await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert [track.title for track in found] == ["Halo"]


# -- hostile answers ------------------------------------------------------------------


async def test_hostile_tracks_are_parsed_without_crashing_and_bounded(stage: Stage) -> None:
    stage.provider.tracks = hostile_tracks()
    found = await stage.catalog.search("demo", "hostile", access_token=stage.token, limit=10)

    assert len(found) == len(hostile_tracks())
    for track in found:
        assert len(track.title) <= 1000
        assert len(track.artists) <= 10
        assert all(len(artist) <= 1000 for artist in track.artists)
        assert track.duration is None or timedelta(0) < track.duration <= timedelta(hours=24)
    odd, missing = found[4], found[5]
    assert (odd.title, odd.artists, odd.thumbnail_url, odd.url, odd.duration) == (
        "",
        (),
        None,
        None,
        None,
    )
    assert (missing.title, missing.artists, missing.thumbnail_url) == ("", (), None)
    assert found[2].duration is None  # negative
    assert found[3].duration is None  # absurd
    assert found[3].thumbnail_url is None  # longer than any URL may be


async def test_hostile_tracks_render_safely(stage: Stage) -> None:
    stage.provider.tracks = hostile_tracks()
    found = await stage.catalog.search("demo", "hostile", access_token=stage.token, limit=10)
    text = render_results(ResponseSanitizer(), platform="demo", query="hostile", tracks=found)
    assert_safe(text, http_allowed=False)
    for attack in ("javascript", "169.254", "127.0.0.1", "data:", "\u202e", "\u200b", "<@"):
        assert attack not in text
    assert "Unknown title" in text and "Unknown artist" in text


# -- errors -------------------------------------------------------------------------


async def test_a_token_the_provider_never_issued_requires_relinking(stage: Stage) -> None:
    with pytest.raises(ReLinkRequired, match=r"HTTP 401") as caught:
        await stage.catalog.search("demo", "halo", access_token="canary-at-forged")
    assert caught.value.platform == "demo"
    assert "canary" not in str(caught.value)


async def test_an_expired_token_requires_relinking(stage: Stage) -> None:
    stage.clock.advance(timedelta(hours=2))
    with pytest.raises(ReLinkRequired):
        await stage.catalog.search("demo", "halo", access_token=stage.token)


async def test_a_rate_limit_is_honoured_without_calling_again(stage: Stage) -> None:
    stage.provider.search_answers.append(SearchAnswer(status=429, headers={"Retry-After": "7"}))

    with pytest.raises(ProviderRateLimited) as caught:
        await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert caught.value.retry_after == timedelta(seconds=7)
    assert isinstance(caught.value, ProviderUnavailable)

    stage.clock.advance(timedelta(seconds=5))
    with pytest.raises(ProviderRateLimited) as again:
        await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert again.value.retry_after == timedelta(seconds=2)
    assert stage.provider.search_calls == 1  # failed fast, no request

    stage.clock.advance(timedelta(seconds=2))
    assert await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert stage.provider.search_calls == 2


async def test_a_clock_set_back_does_not_stretch_a_rate_limit(stage: Stage) -> None:
    stage.provider.search_answers.append(SearchAnswer(status=429, headers={"Retry-After": "7"}))
    with pytest.raises(ProviderRateLimited):
        await stage.catalog.search("demo", "halo", access_token=stage.token)

    # NTP steps the wall clock back a day: the wait stays the 7 s asked for,
    # not a day and 7 s.
    stage.clock.set(START - timedelta(days=1))
    assert stage.catalog.rate_limited_for("demo") == timedelta(seconds=7)
    with pytest.raises(ProviderRateLimited) as again:
        await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert again.value.retry_after == timedelta(seconds=7)
    assert stage.provider.search_calls == 1

    stage.clock.advance(timedelta(seconds=7))
    assert await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert stage.provider.search_calls == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, DEFAULT_RETRY_AFTER),
        ("soon", DEFAULT_RETRY_AFTER),
        ("0", timedelta(seconds=1)),
        ("-3", DEFAULT_RETRY_AFTER),
        ("99999999", MAX_RETRY_AFTER),
        # Longer than timedelta or int() take: still a (very long) delay, not "unreadable".
        ("99999999999", MAX_RETRY_AFTER),
        ("9" * 5000, MAX_RETRY_AFTER),
        ("0000000000007", timedelta(seconds=7)),
        ("http-date", timedelta(seconds=30)),
    ],
)
async def test_retry_after_forms_and_bounds(
    stage: Stage, header: str | None, expected: timedelta
) -> None:
    if header == "http-date":
        header = format_datetime(START + timedelta(seconds=30), usegmt=True)
    headers = {"Retry-After": header} if header is not None else {}
    stage.provider.search_answers.append(SearchAnswer(status=429, headers=headers))
    with pytest.raises(ProviderRateLimited) as caught:
        await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert caught.value.retry_after == expected
    assert stage.catalog.rate_limited_for("demo") == expected


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_worth_retrying(stage: Stage, status: int) -> None:
    stage.provider.search_answers.append(SearchAnswer(status=status, body=b"<html>oops</html>"))
    with pytest.raises(ProviderUnavailable, match=f"HTTP {status}") as caught:
        await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert type(caught.value) is ProviderUnavailable
    assert "oops" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (403, {}, "refused the request (HTTP 403)"),
        (400, {}, "refused the request (HTTP 400)"),
        (302, {"Location": "https://evil.example/"}, "redirect (302); not followed"),
    ],
)
async def test_other_answers_are_plain_oauth_errors(
    stage: Stage, status: int, headers: dict[str, str], message: str
) -> None:
    stage.provider.search_answers.append(SearchAnswer(status=status, headers=headers))
    with pytest.raises(OAuthError, match=re.escape(message)) as caught:
        await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert type(caught.value) is OAuthError


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_answer_is_refused(stage: Stage, chunked: bool) -> None:
    body = b'{"tracks": {"items": [], "pad": "' + b"x" * MAX_SEARCH_RESPONSE_BYTES + b'"}}'
    stage.provider.search_answers.append(SearchAnswer(body=body, chunked=chunked))
    with pytest.raises(OAuthError, match="too large"):
        await stage.catalog.search("demo", "halo", access_token=stage.token)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>not json canary-body</html>", "not JSON"),
        (b"\xff\xfe\x00garbage canary-body", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # nesting beyond the recursion limit
        (b'["canary-body"]', "not a JSON object"),
        (b'{"albums": {"items": []}}', "no tracks object"),
        (b'{"tracks": ["canary-body"]}', "no tracks object"),
        (b'{"tracks": {"items": {"0": "canary-body"}}}', "tracks.items is not a list"),
        (b'{"tracks": {"items": [{"duration_ms": 1' + b"0" * 5000 + b"}]}}", "not JSON"),
    ],
)
async def test_malformed_answers_are_oauth_errors_without_the_body(
    stage: Stage, body: bytes, problem: str
) -> None:
    stage.provider.search_answers.append(SearchAnswer(body=body))
    with pytest.raises(OAuthError, match="malformed") as caught:
        await stage.catalog.search("demo", "halo", access_token=stage.token)
    assert problem in str(caught.value)
    assert "canary-body" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


async def test_a_slow_answer_times_out(stage: Stage) -> None:
    api = catalog_api_for(stage.provider.oauth_provider())
    assert api is not None
    stage.provider.search_answers.append(SearchAnswer(delay=2.0))
    async with SpotifyWebApiCatalog([api], timeout=timedelta(seconds=0.3)) as quick:
        with pytest.raises(ProviderUnavailable, match=r"did not answer within 0\.3 s"):
            await quick.search("demo", "halo", access_token=stage.token)


async def test_connection_refused_is_unavailable() -> None:
    async with DemoOAuthProvider() as demo:
        api = catalog_api_for(demo.oauth_provider())
    assert api is not None
    async with SpotifyWebApiCatalog([api]) as catalog:
        with pytest.raises(ProviderUnavailable, match="could not be reached"):
            await catalog.search("demo", "halo", access_token="canary-at-x")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"query": ""}, ValueError, "cannot be empty"),
        ({"query": "   "}, ValueError, "cannot be empty"),
        ({"query": "a\nb"}, ValueError, "one line"),
        ({"query": "a" * 501}, ValueError, "at most 500"),
        ({"limit": 0}, ValueError, "from 1 to 10"),
        ({"limit": 11}, ValueError, "from 1 to 10"),
        ({"limit": True}, ValueError, "from 1 to 10"),
        ({"access_token": ""}, OAuthError, "access token is empty"),
        ({"access_token": "canary-at-x\r\nX-Injected: 1"}, OAuthError, "invalid characters"),
        ({"platform": "spotify"}, OAuthError, "not configured for 'spotify'"),
        ({"platform": "Not A Slug"}, OAuthError, "not configured for that platform"),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    stage: Stage, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    call: dict[str, Any] = {
        "platform": "demo",
        "query": "halo",
        "access_token": stage.token,
        "limit": 5,
        **kwargs,
    }
    with pytest.raises(error, match=message) as caught:
        await stage.catalog.search(
            call["platform"], call["query"], access_token=call["access_token"], limit=call["limit"]
        )
    assert "canary" not in str(caught.value)
    assert stage.provider.search_calls == 0


async def test_no_token_reaches_a_log_line_an_error_or_a_repr(
    stage: Stage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="timmybot")
    seen: list[str] = [repr(stage.catalog)]
    await stage.catalog.search("demo", "halo", access_token=stage.token)
    answers = [
        SearchAnswer(status=429, headers={"Retry-After": "1"}),
        SearchAnswer(status=500),
        SearchAnswer(body=b"nope"),
    ]
    for answer in answers:
        stage.clock.advance(timedelta(seconds=2))
        stage.provider.search_answers.append(answer)
        with pytest.raises(OAuthError) as caught:
            await stage.catalog.search("demo", "halo", access_token=stage.token)
        seen += [str(caught.value), repr(caught.value)]
    stage.clock.advance(timedelta(hours=2))
    with pytest.raises(ReLinkRequired) as expired:
        await stage.catalog.search("demo", "halo", access_token=stage.token)
    seen += [str(expired.value), repr(expired.value)]
    seen += [record.getMessage() for record in caplog.records]
    assert stage.token.startswith("canary-at-")
    assert not [line for line in seen if "canary" in line]


# -- transport security ---------------------------------------------------------------


@attrs.frozen
class Tls:
    ca_file: Path
    server: ssl.SSLContext
    pin: str


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    directory = tmp_path_factory.mktemp("catalog-pki")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "catalog test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "leaf.pem", "leaf.key"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    pin = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    return Tls(ca_file=ca_file, server=server, pin=pin)


async def test_https_search_verifies_the_certificate_and_checks_pins(tls: Tls) -> None:
    clock = FakeClock(START)
    demo = DemoOAuthProvider(redirect_uris=[REDIRECT], auto_approve=True, clock=clock)
    await demo.start(ssl_context=tls.server)
    try:
        config = attrs.evolve(demo.oauth_provider(), allow_insecure_http=False)
        token = (await link_tokens(demo, clock, config=config, cafile=tls.ca_file)).access_token
        pinned = CatalogApi(name="demo", api_base_url=demo.base_url, pins={tls.pin})
        async with SpotifyWebApiCatalog([pinned], cafile=tls.ca_file, clock=clock) as catalog:
            assert await catalog.search("demo", "halo", access_token=token)

        wrong = CatalogApi(name="demo", api_base_url=demo.base_url, pins={"ab" * 32})
        async with SpotifyWebApiCatalog([wrong], cafile=tls.ca_file, clock=clock) as catalog:
            with pytest.raises(OAuthError, match="certificate check failed") as caught:
                await catalog.search("demo", "halo", access_token=token)
        assert type(caught.value) is OAuthError

        untrusted = CatalogApi(name="demo", api_base_url=demo.base_url)
        async with SpotifyWebApiCatalog([untrusted], clock=clock) as catalog:
            with pytest.raises(OAuthError, match="certificate check failed"):
                await catalog.search("demo", "halo", access_token=token)
        assert demo.search_calls == 1  # nothing was sent to an unverified server
    finally:
        await demo.stop()


# -- configuration --------------------------------------------------------------------


def test_catalog_apis_follow_the_oauth_providers() -> None:
    spotify_catalog = catalog_api_for(spotify("client-id", None))
    assert spotify_catalog == spotify_api()
    assert spotify_catalog is not None
    assert spotify_catalog.search_url == SPOTIFY_API_BASE + "/v1/search"
    assert spotify_api(pins="ab" * 32).pins == frozenset({"ab" * 32})  # one pin, not 64 letters
    assert spotify_catalog.market == "from_token"
    assert catalog_api_for(discord("client-id", None)) is None
    demo = catalog_api_for(
        OAuthProvider(
            name="demo",
            authorize_url="http://127.0.0.1:9/authorize",
            token_url="http://127.0.0.1:9/token",
            client_id="c",
            allow_insecure_http=True,
        )
    )
    assert demo == CatalogApi(
        name="demo", api_base_url="http://127.0.0.1:9", allow_insecure_http=True
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"api_base_url": "http://api.example"}, "must use https"),
        ({"api_base_url": "http://api.example", "allow_insecure_http": True}, "only 127.0.0.1"),
        ({"api_base_url": "ftp://api.example"}, "absolute https URL"),
        ({"api_base_url": "https://user:pw@api.example"}, "credentials"),
        ({"api_base_url": "https://api.example/?x=1"}, "query or fragment"),
        ({"market": "germany"}, "ISO 3166-1"),
        ({"pins": {"not-a-pin"}}, "SHA-256"),
        ({"name": "Spotify!"}, "platform name"),
    ],
)
def test_catalog_api_validation(fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"name": "spotify", "api_base_url": "https://api.example", **fields}
    with pytest.raises(ValueError, match=message):
        CatalogApi(**values)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="two catalog APIs"):
        SpotifyWebApiCatalog([spotify_api(), spotify_api()])
    with pytest.raises(ValueError, match="positive"):
        SpotifyWebApiCatalog([spotify_api()], timeout=timedelta(0))


async def test_the_catalog_closes_only_its_own_session() -> None:
    async with aiohttp.ClientSession() as session:
        catalog = SpotifyWebApiCatalog([spotify_api()], session=session)
        await catalog.close()
        assert not session.closed


# -- through the bot --------------------------------------------------------------------


async def test_search_command_against_the_demo_provider(tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with DemoOAuthProvider(redirect_uris=[REDIRECT], auto_approve=True, clock=clock) as demo:
        services = bootstrap(
            Settings(
                backend="memory",
                data_dir=tmp_path,
                allowed_guilds={GUILD},
                # Room for the provider's own 429 below: our limit would refuse first.
                rate_limit_provider_command=RateLimit(limit=10, window=30),
            ),
            clock=clock,
            extra_providers=[demo.oauth_provider()],
        )
        try:
            assert services.catalog.platforms() == ("demo",)
            invocation = Invocation(guild_id=GUILD, user_id=USER)
            unlinked = await run_command(services, invocation, "search", "halo")
            assert unlinked.text.startswith("Link a music account first with /link <platform>")

            tokens = await link_tokens(demo, clock)
            await services.tokens.store_user_tokens(USER, tokens)

            reply = await run_command(services, invocation, "search", "halo")
            assert reply.text.splitlines() == [
                'Top results on demo for "halo":',
                "1. **Halo** by Beyoncé (4:21)",
                "   listen: <https://open.spotify.com/track/demo2> · "
                "cover: <https://i.scdn.co/image/demo>",
            ]

            demo.tracks = hostile_tracks()
            hostile = await run_command(services, invocation, "search", "hostile")
            assert hostile.text.startswith('Top results on demo for "hostile":')
            assert_safe(hostile.text, http_allowed=False)
            assert tokens.access_token not in reply.text + hostile.text

            demo.search_answers.append(SearchAnswer(status=429, headers={"Retry-After": "30"}))
            busy = await run_command(services, invocation, "search", "halo")
            assert busy.text == "demo is receiving too many searches; try again in 30 seconds."
        finally:
            await services.aclose()
    assert DEMO_TRACKS[1]["name"] == "Halo"  # the demo catalog itself is left unchanged
