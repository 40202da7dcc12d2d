"""The aiohttp OAuth client against real HTTP(S) servers on 127.0.0.1.

Most tests talk to the demo provider; malformed and unusual answers come from
a scripted endpoint; TLS and pinning use an HTTPS demo provider whose
certificate is issued by a CA generated here.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.unit.conftest import USER, wire
from timmybot_adapters.memory import MemoryTokenVault
from timmybot_adapters.oauth import (
    KNOWN_OAUTH_ERRORS,
    AiohttpOAuthClient,
    OAuthProvider,
    PinnedSSLContext,
    discord,
    make_ssl_context,
    spotify,
)
from timmybot_bot.demo.provider import DemoOAuthProvider
from timmybot_core.domain.clock import FakeClock
from timmybot_core.domain.errors import (
    OAuthError,
    OAuthNotConfigured,
    ProviderUnavailable,
    RefreshOutcomeUnknown,
    ReLinkRequired,
)
from timmybot_core.domain.tokens import OAuthTokens
from timmybot_core.ports.oauth import OAuthClient
from timmybot_core.services.tokens import SecureTokenService

REDIRECT = "http://127.0.0.1:8765/oauth/callback"
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
async def provider() -> AsyncIterator[DemoOAuthProvider]:
    async with DemoOAuthProvider(redirect_uris=[REDIRECT], auto_approve=True) as running:
        yield running


@pytest.fixture
async def client(provider: DemoOAuthProvider) -> AsyncIterator[AiohttpOAuthClient]:
    async with AiohttpOAuthClient(
        [provider.oauth_provider()], timeout=timedelta(seconds=2), clock=FakeClock(START)
    ) as oauth:
        yield oauth


async def link(
    client: AiohttpOAuthClient,
    platform: str = "demo",
    *,
    state: str = "state-1",
    browser_ssl: ssl.SSLContext | bool = True,
) -> OAuthTokens:
    """Run the whole code flow: authorization URL, approval, callback, exchange."""
    verifier, challenge = pkce()
    url = client.authorization_url(
        platform, state=state, code_challenge=challenge, redirect_uri=REDIRECT
    )
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(url, allow_redirects=False, ssl=browser_ssl) as response,
    ):
        assert response.status == 302
        callback = parse_qs(urlsplit(response.headers["Location"]).query)
    assert callback["state"] == [state]
    return await client.exchange_code(
        platform, code=callback["code"][0], code_verifier=verifier, redirect_uri=REDIRECT
    )


# -- the code flow, refresh and revocation ---------------------------------


async def test_the_client_implements_the_port(client: AiohttpOAuthClient) -> None:
    assert isinstance(client, OAuthClient)
    assert client.platforms() == ("demo",)


async def test_full_code_flow(client: AiohttpOAuthClient, provider: DemoOAuthProvider) -> None:
    tokens = await link(client)
    assert tokens.platform == "demo"
    assert tokens.access_token in provider.issued_access_tokens
    assert tokens.refresh_token in provider.issued_refresh_tokens
    assert tokens.token_type == "Bearer"
    assert tokens.scopes == ("library-read", "profile")
    assert tokens.expires_at == START + timedelta(seconds=3600)
    assert provider.code_exchanges == 1


def test_authorization_url_is_complete_and_encoded() -> None:
    provider = OAuthProvider(
        name="music",
        authorize_url="https://auth.example/authorize?tenant=a",
        token_url="https://auth.example/token",
        client_id="client id&x",
        client_secret="canary-cs-url",
        scopes=("read", "write:all"),
        extra_authorize_params={"prompt": "consent"},
    )
    oauth = AiohttpOAuthClient([provider])
    _, challenge = pkce()
    redirect = "https://bot.example/cb?x=1&y=a b"
    url = oauth.authorization_url(
        "music", state="s/+=&?", code_challenge=challenge, redirect_uri=redirect
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://auth.example/authorize"
    assert " " not in url
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {
        "tenant": ["a"],
        "response_type": ["code"],
        "client_id": ["client id&x"],
        "redirect_uri": [redirect],
        "scope": ["read write:all"],
        "state": ["s/+=&?"],
        "code_challenge": [challenge],
        "code_challenge_method": ["S256"],
        "prompt": ["consent"],
    }
    assert "canary-cs-url" not in url
    with pytest.raises(ValueError, match="code challenge"):
        oauth.authorization_url("music", state="s", code_challenge="short", redirect_uri=redirect)
    with pytest.raises(ValueError, match="state"):
        oauth.authorization_url("music", state="", code_challenge=challenge, redirect_uri=redirect)
    with pytest.raises(ValueError, match="redirect URI"):
        oauth.authorization_url(
            "music", state="s", code_challenge=challenge, redirect_uri="/relative"
        )
    with pytest.raises(OAuthError, match="not configured"):
        oauth.authorization_url("nope", state="s", code_challenge=challenge, redirect_uri=redirect)


async def test_refresh_returns_the_rotated_token(
    client: AiohttpOAuthClient, provider: DemoOAuthProvider
) -> None:
    first = await link(client)
    assert first.refresh_token is not None
    second = await client.refresh("demo", refresh_token=first.refresh_token)
    assert second.refresh_token is not None
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert provider.is_valid_refresh_token(second.refresh_token)
    assert not provider.is_valid_refresh_token(first.refresh_token)
    assert provider.presented_refresh_tokens == (first.refresh_token,)


async def test_refresh_without_rotation_returns_no_refresh_token(
    client: AiohttpOAuthClient, provider: DemoOAuthProvider
) -> None:
    provider.rotate_refresh_tokens = False
    first = await link(client)
    assert first.refresh_token is not None
    second = await client.refresh("demo", refresh_token=first.refresh_token)
    assert second.refresh_token is None
    assert provider.is_valid_refresh_token(first.refresh_token)


async def test_revoke_at_a_provider_that_supports_it(
    client: AiohttpOAuthClient, provider: DemoOAuthProvider
) -> None:
    tokens = await link(client)
    assert tokens.refresh_token is not None
    assert await client.revoke("demo", token=tokens.refresh_token) is True
    assert not provider.is_valid_refresh_token(tokens.refresh_token)
    assert not provider.is_valid_access_token(tokens.access_token)
    with pytest.raises(ReLinkRequired):
        await client.refresh("demo", refresh_token=tokens.refresh_token)


async def test_revoke_without_a_revocation_endpoint_is_false() -> None:
    oauth = AiohttpOAuthClient([spotify("spotify-client", "canary-cs-spotify")])
    assert await oauth.revoke("spotify", token="canary-at-anything") is False
    await oauth.close()


async def test_public_clients_and_form_authentication(provider: DemoOAuthProvider) -> None:
    base = provider.oauth_provider()
    for config, secret in (
        (OAuthProvider(**{**_fields(base), "token_auth": "body"}), provider.client_secret),
        (OAuthProvider(**{**_fields(base), "client_secret": None}), None),
    ):
        provider.client_secret = secret
        async with AiohttpOAuthClient([config]) as oauth:
            tokens = await link(oauth)
            assert tokens.refresh_token is not None
            await oauth.refresh("demo", refresh_token=tokens.refresh_token)


def _fields(config: OAuthProvider) -> dict[str, Any]:
    return {
        "name": config.name,
        "authorize_url": config.authorize_url,
        "token_url": config.token_url,
        "revoke_url": config.revoke_url,
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "scopes": config.scopes,
        "token_auth": config.token_auth,
        "allow_insecure_http": config.allow_insecure_http,
    }


# -- error mapping ------------------------------------------------------------


async def test_a_spent_refresh_token_requires_relinking(
    client: AiohttpOAuthClient,
) -> None:
    first = await link(client)
    assert first.refresh_token is not None
    await client.refresh("demo", refresh_token=first.refresh_token)
    with pytest.raises(ReLinkRequired, match="invalid_grant") as caught:
        await client.refresh("demo", refresh_token=first.refresh_token)
    assert caught.value.platform == "demo"


async def test_invalid_grant_fault_requires_relinking(
    client: AiohttpOAuthClient, provider: DemoOAuthProvider
) -> None:
    tokens = await link(client)
    assert tokens.refresh_token is not None
    provider.faults.invalid_grant_for = "all"
    with pytest.raises(ReLinkRequired):
        await client.refresh("demo", refresh_token=tokens.refresh_token)


async def test_a_wrong_pkce_verifier_is_an_invalid_grant(client: AiohttpOAuthClient) -> None:
    _, challenge = pkce()
    url = client.authorization_url(
        "demo", state="s", code_challenge=challenge, redirect_uri=REDIRECT
    )
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(url, allow_redirects=False) as response,
    ):
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    with pytest.raises(ReLinkRequired):
        await client.exchange_code(
            "demo", code=code, code_verifier=pkce()[0], redirect_uri=REDIRECT
        )


async def test_500_is_provider_unavailable(
    client: AiohttpOAuthClient, provider: DemoOAuthProvider
) -> None:
    tokens = await link(client)
    assert tokens.refresh_token is not None
    provider.faults.fail_with_500 = 1
    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        await client.refresh("demo", refresh_token=tokens.refresh_token)
    refreshed = await client.refresh("demo", refresh_token=tokens.refresh_token)
    assert refreshed.refresh_token is not None


async def test_latency_beyond_the_timeout_is_provider_unavailable(
    provider: DemoOAuthProvider,
) -> None:
    async with AiohttpOAuthClient(
        [provider.oauth_provider()], timeout=timedelta(milliseconds=300)
    ) as oauth:
        tokens = await link(oauth)
        assert tokens.refresh_token is not None
        provider.faults.latency = 5
        started = time.perf_counter()
        # The request reached the provider: its outcome is unknown, not "down".
        with pytest.raises(RefreshOutcomeUnknown, match=r"did not answer within 0\.3 s"):
            await oauth.refresh("demo", refresh_token=tokens.refresh_token)
        assert time.perf_counter() - started < 2


async def test_a_connection_dropped_after_the_request_is_an_unknown_outcome(
    client: AiohttpOAuthClient, provider: DemoOAuthProvider
) -> None:
    tokens = await link(client)
    assert tokens.refresh_token is not None
    provider.faults.drop_connection = 1
    with pytest.raises(RefreshOutcomeUnknown, match="was sent") as caught:
        await client.refresh("demo", refresh_token=tokens.refresh_token)
    assert "canary" not in str(caught.value)


async def test_a_caller_session_without_the_trace_hook_is_judged_conservatively(
    provider: DemoOAuthProvider,
) -> None:
    async with aiohttp.ClientSession() as session:
        oauth = AiohttpOAuthClient([provider.oauth_provider()], session=session)
        tokens = await link(oauth)
        assert tokens.refresh_token is not None
        provider.faults.drop_connection = 1
        with pytest.raises(RefreshOutcomeUnknown):
            await oauth.refresh("demo", refresh_token=tokens.refresh_token)


async def test_connection_refused_is_provider_unavailable() -> None:
    stopped = DemoOAuthProvider(redirect_uris=[REDIRECT])
    await stopped.start()
    config = stopped.oauth_provider()
    await stopped.stop()
    async with AiohttpOAuthClient([config]) as oauth:
        # Refused before the request left: safe to retry, not "unknown".
        with pytest.raises(ProviderUnavailable, match="could not be reached") as caught:
            await oauth.refresh("demo", refresh_token="canary-rt-refused")
        assert not isinstance(caught.value, RefreshOutcomeUnknown)
        with pytest.raises(ProviderUnavailable):
            await oauth.revoke("demo", token="canary-at-refused")


async def test_a_refused_client_is_a_configuration_problem_naming_the_code(
    provider: DemoOAuthProvider,
) -> None:
    config = provider.oauth_provider()
    wrong = OAuthProvider(**{**_fields(config), "client_secret": "canary-cs-wrong"})
    async with AiohttpOAuthClient([wrong]) as oauth:
        with pytest.raises(OAuthError) as caught:
            await oauth.refresh("demo", refresh_token="canary-rt-whatever")
    error = caught.value
    assert type(error) is OAuthNotConfigured
    assert str(error) == (
        "demo: the provider refused this bot's client credentials (invalid_client); "
        "check the platform's client ID and client secret settings"
    )
    assert "canary" not in str(error)


async def test_unknown_platforms_are_refused(client: AiohttpOAuthClient) -> None:
    with pytest.raises(OAuthError, match="not configured for 'spotify'"):
        await client.refresh("spotify", refresh_token="canary-rt-x")
    with pytest.raises(OAuthError, match="that platform") as caught:
        await client.revoke("Bad Name!\n", token="canary-at-x")
    assert "\n" not in str(caught.value)


# -- a scripted endpoint for answers the demo provider never gives ------------


@dataclass
class Script:
    """One canned answer, and the requests received."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[dict[str, str], dict[str, str]]] = field(default_factory=list)

    def answer(self, status: int, payload: Any) -> None:
        self.status = status
        self.body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Script, OAuthProvider]]:
    script = Script()

    async def handler(request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        script.requests.append((form, dict(request.headers)))
        return web.Response(
            status=script.status,
            body=script.body,
            headers={"Content-Type": "application/json", **script.headers},
        )

    app = web.Application()
    app.router.add_post("/token", handler)
    app.router.add_post("/revoke", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    config = OAuthProvider(
        name="scripted",
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        revoke_url=f"{base}/revoke",
        client_id="scripted-client",
        client_secret="canary-cs-scripted",
        scopes=("one", "two"),
        allow_insecure_http=True,
    )
    try:
        yield script, config
    finally:
        await runner.cleanup()


GOOD = {
    "access_token": "canary-at-good",
    "token_type": "bearer",
    "expires_in": 60,
    "refresh_token": "canary-rt-good",
}


async def test_the_client_sends_what_rfc_6749_asks(
    scripted: tuple[Script, OAuthProvider],
) -> None:
    script, config = scripted
    script.answer(200, GOOD)
    async with AiohttpOAuthClient([config], clock=FakeClock(START)) as oauth:
        tokens = await oauth.exchange_code(
            "scripted", code="canary-code-1", code_verifier="v" * 43, redirect_uri=REDIRECT
        )
        await oauth.refresh("scripted", refresh_token="canary-rt-1")
        assert await oauth.revoke("scripted", token="canary-at-1") is True
    # Lower-case "bearer" is accepted; absent scope keeps the requested scopes.
    assert tokens.token_type == "Bearer"
    assert tokens.scopes == ("one", "two")
    assert tokens.expires_at == START + timedelta(seconds=60)
    forms = [form for form, _ in script.requests]
    assert forms == [
        {
            "grant_type": "authorization_code",
            "code": "canary-code-1",
            "redirect_uri": REDIRECT,
            "code_verifier": "v" * 43,
        },
        {"grant_type": "refresh_token", "refresh_token": "canary-rt-1"},
        {"token": "canary-at-1"},
    ]
    for _, headers in script.requests:
        scheme, _, encoded = headers["Authorization"].partition(" ")
        assert scheme == "Basic"
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        assert (unquote_plus(client_id), unquote_plus(secret)) == (
            "scripted-client",
            "canary-cs-scripted",
        )
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({**GOOD, "access_token": None}, "access_token is missing"),
        ({k: v for k, v in GOOD.items() if k != "access_token"}, "access_token is missing"),
        ({**GOOD, "access_token": ""}, "access_token is missing"),
        ({**GOOD, "access_token": "canary-at-with space"}, "access_token has an invalid"),
        ({**GOOD, "token_type": "mac"}, "token_type is not Bearer"),
        ({k: v for k, v in GOOD.items() if k != "token_type"}, "token_type is not Bearer"),
        ({**GOOD, "expires_in": -5}, "expires_in"),
        ({**GOOD, "expires_in": 0}, "expires_in"),
        ({**GOOD, "expires_in": "3600"}, "expires_in"),
        ({**GOOD, "expires_in": 3600.5}, "expires_in"),
        ({**GOOD, "expires_in": True}, "expires_in"),
        ({**GOOD, "expires_in": 10**30}, "expires_in"),
        ({k: v for k, v in GOOD.items() if k != "expires_in"}, "expires_in"),
        ({**GOOD, "scope": ["one"]}, "scope"),
        ({**GOOD, "refresh_token": ""}, "refresh_token is missing"),
        ({**GOOD, "refresh_token": 12}, "refresh_token is missing"),
        (["canary-at-in-a-list"], "not a JSON object"),
        (b"access_token=canary-at-form-encoded", "not JSON"),
        # A hostile endpoint: RecursionError, huge numbers, bytes that are not UTF-8.
        (b"[" * 60_000, "not JSON"),
        (b'{"access_token": ' + b"[" * 60_000, "not JSON"),
        (b'{"expires_in": ' + b"9" * 5000 + b"}", "not JSON"),
        (b'{"access_token": "\xff\xfe"}', "not JSON"),
        (b"\xff\xfe\x00{", "not JSON"),
        # Scopes: RFC 6749's grammar, with caps on length and count.
        ({**GOOD, "scope": "@everyone" * 3400}, "scope breaks"),
        ({**GOOD, "scope": " ".join(f"s{n}" for n in range(33))}, "scope breaks"),
        ({**GOOD, "scope": 'one "two"'}, "scope breaks"),
        ({**GOOD, "scope": "one\\two"}, "scope breaks"),
        ({**GOOD, "scope": "one\ttwo"}, "scope breaks"),
        ({**GOOD, "scope": "one  two"}, "scope breaks"),
        ({**GOOD, "scope": "caf\u00e9"}, "scope breaks"),
    ],
)
@pytest.mark.parametrize("grant", ["refresh", "code"])
async def test_malformed_token_responses_are_oauth_errors(
    scripted: tuple[Script, OAuthProvider], payload: Any, problem: str, grant: str
) -> None:
    script, config = scripted
    script.answer(200, payload)
    async with AiohttpOAuthClient([config]) as oauth:
        call = (
            oauth.refresh("scripted", refresh_token="canary-rt-sent")
            if grant == "refresh"
            else oauth.exchange_code(
                "scripted",
                code="canary-code-sent",
                redirect_uri="https://bot.example/cb",
                code_verifier="canary-verifier-" + "v" * 40,
            )
        )
        with pytest.raises(OAuthError, match=problem) as caught:
            await call
    error = caught.value
    # The endpoint answered 2xx, so it acted: after a refresh, the token it
    # was given may be spent (rotated), an unknown outcome, never a refusal
    # that lets the same token be presented again. A code is spent anyway.
    assert type(error) is (RefreshOutcomeUnknown if grant == "refresh" else OAuthError)
    assert str(error).startswith("scripted: the token endpoint sent a malformed response")
    assert "canary" not in str(error) and "canary" not in repr(error)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


async def test_a_hostile_error_body_maps_to_an_oauth_error(
    scripted: tuple[Script, OAuthProvider],
) -> None:
    script, config = scripted
    script.answer(400, b'{"error": ' + b"[" * 60_000)
    async with AiohttpOAuthClient([config]) as oauth:
        with pytest.raises(OAuthError) as caught:
            await oauth.exchange_code(
                "scripted", code="canary-code", code_verifier="v" * 43, redirect_uri=REDIRECT
            )
    assert "unknown_error" in str(caught.value)


async def test_scopes_within_the_grammar_and_caps_are_kept(
    scripted: tuple[Script, OAuthProvider],
) -> None:
    script, config = scripted
    script.answer(200, {**GOOD, "scope": "user-read-private @everyone identify"})
    async with AiohttpOAuthClient([config]) as oauth:
        tokens = await oauth.refresh("scripted", refresh_token="canary-rt-x")
    assert tokens.scopes == ("@everyone", "identify", "user-read-private")


async def test_a_token_response_with_scope_and_no_refresh_token(
    scripted: tuple[Script, OAuthProvider],
) -> None:
    script, config = scripted
    script.answer(
        200, {"access_token": "canary-at-x", "token_type": "Bearer", "expires_in": 5, "scope": ""}
    )
    async with AiohttpOAuthClient([config]) as oauth:
        tokens = await oauth.refresh("scripted", refresh_token="canary-rt-x")
    assert tokens.refresh_token is None
    assert tokens.scopes == ()


@pytest.mark.parametrize(
    ("status", "payload", "kind", "message"),
    [
        (400, {"error": "invalid_grant"}, ReLinkRequired, "invalid_grant"),
        (401, {"error": "invalid_grant"}, ReLinkRequired, "invalid_grant"),
        (400, {"error": "invalid_scope"}, OAuthError, r"HTTP 400, invalid_scope"),
        (
            400,
            {"error": "canary-made-up-code", "error_description": "canary-at-leak"},
            OAuthError,
            r"HTTP 400, unknown_error",
        ),
        (400, {"error": ["invalid_grant"]}, OAuthError, "unknown_error"),
        (400, b"<html>canary-at-html</html>", OAuthError, "unknown_error"),
        (403, {}, OAuthError, r"HTTP 403, unknown_error"),
        (400, {"error": "temporarily_unavailable"}, ProviderUnavailable, "temporarily"),
        (429, {"error": "slow_down"}, ProviderUnavailable, "HTTP 429"),
        (500, {"error": "invalid_grant"}, ProviderUnavailable, "HTTP 500"),
        (503, b"", ProviderUnavailable, "HTTP 503"),
        (302, b"", OAuthError, "redirect"),
    ],
)
async def test_error_answers_are_mapped(
    scripted: tuple[Script, OAuthProvider],
    status: int,
    payload: Any,
    kind: type[OAuthError],
    message: str,
) -> None:
    script, config = scripted
    script.answer(status, payload)
    if status == 302:
        script.headers = {"Location": "http://127.0.0.1:9/elsewhere"}
    async with AiohttpOAuthClient([config]) as oauth:
        for call in (
            oauth.refresh("scripted", refresh_token="canary-rt-x"),
            oauth.revoke("scripted", token="canary-at-x"),
        ):
            with pytest.raises(kind, match=message) as caught:
                await call
            assert type(caught.value) is kind
            assert "canary" not in str(caught.value)
            assert caught.value.platform == "scripted"
    assert len(script.requests) == 2  # redirects are not followed


def test_the_error_allowlist_is_rfc_6749_and_7009() -> None:
    assert "invalid_grant" in KNOWN_OAUTH_ERRORS
    assert "unsupported_token_type" in KNOWN_OAUTH_ERRORS
    assert all(code.isidentifier() and code.islower() for code in KNOWN_OAUTH_ERRORS)


@pytest.mark.parametrize(
    ("status", "kind"), [(200, RefreshOutcomeUnknown), (400, OAuthError), (503, OAuthError)]
)
async def test_an_oversized_answer_is_refused(
    scripted: tuple[Script, OAuthProvider], status: int, kind: type[OAuthError]
) -> None:
    script, config = scripted
    script.answer(status, {**GOOD, "error": "invalid_grant", "padding": "x" * 100_000})
    async with AiohttpOAuthClient([config]) as oauth:
        with pytest.raises(OAuthError, match="too large") as caught:
            await oauth.refresh("scripted", refresh_token="canary-rt-x")
    # A 2xx the client cannot read is an unknown outcome (the token may be
    # rotated); an error answer means the provider did not act.
    assert type(caught.value) is kind


# -- sessions ---------------------------------------------------------------------


async def test_the_client_closes_only_its_own_session(
    scripted: tuple[Script, OAuthProvider],
) -> None:
    script, config = scripted
    script.answer(200, GOOD)
    async with aiohttp.ClientSession() as shared:
        oauth = AiohttpOAuthClient([config], session=shared)
        await oauth.refresh("scripted", refresh_token="canary-rt-x")
        await oauth.close()
        assert not shared.closed
    own = AiohttpOAuthClient([config])
    async with own:
        await own.refresh("scripted", refresh_token="canary-rt-x")
        session = own._session
        assert session is not None
    assert session.closed


def test_constructor_checks() -> None:
    config = discord("123", "canary-cs-discord")
    with pytest.raises(ValueError, match="two OAuth providers"):
        AiohttpOAuthClient([config, config])
    with pytest.raises(ValueError, match="positive"):
        AiohttpOAuthClient([config], timeout=timedelta(0))
    with pytest.raises(ValueError, match="min_tls"):
        AiohttpOAuthClient([config], min_tls="1.1")  # type: ignore[arg-type]


# -- transport security -----------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "version"),
    [("1.2", ssl.TLSVersion.TLSv1_2), ("1.3", ssl.TLSVersion.TLSv1_3)],
)
def test_the_tls_context_verifies_and_sets_the_minimum_version(
    setting: Any, version: ssl.TLSVersion
) -> None:
    oauth = AiohttpOAuthClient([discord("123", "canary-cs-d")], min_tls=setting)
    for context in (oauth.ssl_context("discord"), make_ssl_context(setting)):
        assert context.minimum_version == version
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.options & ssl.OP_NO_RENEGOTIATION


def test_pinned_providers_get_their_own_context() -> None:
    pin = "AB:" * 31 + "AB"
    pinned = spotify("client", None, pins=[pin])
    oauth = AiohttpOAuthClient([pinned, discord("123", "canary-cs-d")])
    context = oauth.ssl_context("spotify")
    assert isinstance(context, PinnedSSLContext)
    assert context.pins == frozenset({"ab" * 32})
    assert make_ssl_context(pins=[pin]).pins == context.pins
    with pytest.raises(ValueError, match="SHA-256"):
        make_ssl_context(pins=["sha1:abcd"])
    assert context is not oauth.ssl_context("discord")
    assert oauth.ssl_context("discord").verify_mode == ssl.CERT_REQUIRED


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1, and one for another name."""

    ca_file: Path
    server: ssl.SSLContext
    server_tls12_only: ssl.SSLContext
    other_name: ssl.SSLContext
    pin: str
    other_pin: str


def _certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    names: list[x509.GeneralName],
    directory: Path,
    stem: str,
) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pin = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    return cert_path, key_path, pin


def _server_context(cert: Path, key: Path, *, tls12_only: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if tls12_only:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "timmybot test CA")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert, key, pin = _certificate(
        ca_key,
        ca_name,
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        directory,
        "loopback",
    )
    other_cert, other_key, other_pin = _certificate(
        ca_key, ca_name, [x509.DNSName("other.invalid")], directory, "other"
    )
    return Pki(
        ca_file=ca_file,
        server=_server_context(cert, key),
        server_tls12_only=_server_context(cert, key, tls12_only=True),
        other_name=_server_context(other_cert, other_key),
        pin=pin,
        other_pin=other_pin,
    )


@pytest.fixture
async def https_provider(pki: Pki) -> AsyncIterator[DemoOAuthProvider]:
    provider = DemoOAuthProvider(redirect_uris=[REDIRECT], auto_approve=True)
    await provider.start(ssl_context=pki.server)
    try:
        yield provider
    finally:
        await provider.stop()


def _pinned(provider: DemoOAuthProvider, *pins: str) -> OAuthProvider:
    return OAuthProvider(**{**_fields(provider.oauth_provider()), "pins": frozenset(pins)})


async def test_https_with_a_trusted_ca_and_no_pin(
    pki: Pki, https_provider: DemoOAuthProvider
) -> None:
    assert https_provider.base_url.startswith("https://127.0.0.1:")
    # A cafile replaces the system trust store: only the test CA is trusted.
    assert make_ssl_context(cafile=pki.ca_file).cert_store_stats()["x509_ca"] == 1
    async with AiohttpOAuthClient([_pinned(https_provider)], cafile=pki.ca_file) as oauth:
        tokens = await link(oauth, browser_ssl=make_ssl_context(cafile=pki.ca_file))
        assert tokens.refresh_token is not None
        await oauth.refresh("demo", refresh_token=tokens.refresh_token)


async def test_a_correct_pin_passes_among_several(
    pki: Pki, https_provider: DemoOAuthProvider
) -> None:
    for pins in ((pki.pin,), (pki.other_pin, pki.pin)):
        config = _pinned(https_provider, *pins)
        async with AiohttpOAuthClient([config], cafile=pki.ca_file, min_tls="1.3") as oauth:
            tokens = await link(oauth, browser_ssl=make_ssl_context(cafile=pki.ca_file))
            assert tokens.refresh_token is not None
            await oauth.refresh("demo", refresh_token=tokens.refresh_token)


async def test_a_wrong_pin_fails_before_anything_is_sent(
    pki: Pki, https_provider: DemoOAuthProvider
) -> None:
    config = _pinned(https_provider, pki.other_pin)
    async with AiohttpOAuthClient([config], cafile=pki.ca_file) as oauth:
        with pytest.raises(OAuthError, match="certificate check failed") as caught:
            await oauth.refresh("demo", refresh_token="canary-rt-pinned")
        with pytest.raises(OAuthError, match="certificate check failed"):
            await oauth.revoke("demo", token="canary-at-pinned")
    assert type(caught.value) is OAuthError  # not retryable
    assert "pin mismatch" in str(caught.value)
    assert https_provider.token_calls == 0
    assert https_provider.revoke_calls == 0


async def test_a_pin_never_replaces_certificate_verification(
    pki: Pki, https_provider: DemoOAuthProvider
) -> None:
    # The right pin, but the CA is not trusted (the system store is used).
    async with AiohttpOAuthClient([_pinned(https_provider, pki.pin)]) as oauth:
        with pytest.raises(OAuthError, match="certificate check failed") as caught:
            await oauth.refresh("demo", refresh_token="canary-rt-untrusted")
    assert type(caught.value) is OAuthError
    assert https_provider.token_calls == 0


async def test_a_certificate_for_another_name_fails_even_when_pinned(pki: Pki) -> None:
    provider = DemoOAuthProvider(redirect_uris=[REDIRECT])
    await provider.start(ssl_context=pki.other_name)
    try:
        config = _pinned(provider, pki.other_pin)
        async with AiohttpOAuthClient([config], cafile=pki.ca_file) as oauth:
            with pytest.raises(OAuthError, match="certificate check failed"):
                await oauth.refresh("demo", refresh_token="canary-rt-other")
        assert provider.token_calls == 0
    finally:
        await provider.stop()


async def test_tls_13_only_refuses_a_tls_12_server(pki: Pki) -> None:
    provider = DemoOAuthProvider(redirect_uris=[REDIRECT], auto_approve=True)
    await provider.start(ssl_context=pki.server_tls12_only)
    try:
        config = _pinned(provider)
        async with AiohttpOAuthClient([config], cafile=pki.ca_file, min_tls="1.3") as oauth:
            # asyncio's TLS server resets the connection rather than sending
            # its protocol_version alert, so this one reads as a network error.
            with pytest.raises(OAuthError):
                await oauth.refresh("demo", refresh_token="canary-rt-tls12")
        assert provider.token_calls == 0
        async with AiohttpOAuthClient([config], cafile=pki.ca_file, min_tls="1.2") as oauth:
            await link(oauth, browser_ssl=make_ssl_context(cafile=pki.ca_file))
    finally:
        await provider.stop()


async def test_a_failed_tls_handshake_is_not_retryable(provider: DemoOAuthProvider) -> None:
    # https to a plain-http server: the handshake itself fails.
    fields = _fields(provider.oauth_provider())
    fields["token_url"] = fields["token_url"].replace("http://", "https://")
    async with AiohttpOAuthClient([OAuthProvider(**fields)]) as oauth:
        with pytest.raises(
            OAuthError, match="TLS handshake with the token endpoint failed"
        ) as caught:
            await oauth.refresh("demo", refresh_token="canary-rt-plain")
    assert type(caught.value) is OAuthError


# -- provider configuration ---------------------------------------------------------


def _config(**overrides: Any) -> OAuthProvider:
    values: dict[str, Any] = {
        "name": "music",
        "authorize_url": "https://auth.example/authorize",
        "token_url": "https://auth.example/token",
        "revoke_url": "https://auth.example/revoke",
        "client_id": "client",
        "client_secret": "canary-cs-config",
    }
    values.update(overrides)
    return OAuthProvider(**values)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_http_only_on_loopback_and_only_when_asked(host: str) -> None:
    urls = {
        "authorize_url": f"http://{host}:9/authorize",
        "token_url": f"http://{host}:9/token",
        "revoke_url": f"http://{host}:9/revoke",
    }
    with pytest.raises(ValueError, match="must use https"):
        _config(**urls)
    assert _config(**urls, allow_insecure_http=True).token_url == urls["token_url"]


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/token",
        "http://10.0.0.1/token",
        "http://127.0.0.2/token",
        "http://localhost.example.com/token",
        "http://[::2]/token",
    ],
)
def test_plain_http_is_refused_elsewhere_even_when_asked(url: str) -> None:
    with pytest.raises(ValueError, match="plain http is refused"):
        _config(token_url=url, allow_insecure_http=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Spotify"}, "platform name"),
        ({"name": "../x"}, "platform name"),
        ({"token_url": "ftp://auth.example/token"}, "absolute https"),
        ({"token_url": "/token"}, "absolute https"),
        ({"token_url": "https://user:pw@auth.example/token"}, "credentials"),
        ({"token_url": "https://auth.example/token?x=1"}, "query"),
        ({"authorize_url": "https://auth.example/a#frag"}, "fragment"),
        ({"client_id": ""}, "client ID"),
        ({"client_secret": ""}, "client secret"),
        ({"scopes": ("a b",)}, "scope"),
        ({"scopes": ('"quoted"',)}, "scope"),
        ({"token_auth": "digest"}, "token_auth"),
        ({"pins": frozenset({"abc"})}, "SHA-256"),
        ({"extra_authorize_params": {"redirect_uri": "https://evil.example"}}, "set by the client"),
        ({"extra_authorize_params": {"code_challenge_method": "plain"}}, "set by the client"),
    ],
)
def test_provider_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


def test_presets_follow_the_public_documentation() -> None:
    sp = spotify("spotify-id", "canary-cs-spotify")
    assert sp.authorize_url == "https://accounts.spotify.com/authorize"
    assert sp.token_url == "https://accounts.spotify.com/api/token"
    assert sp.revoke_url is None and not sp.supports_revocation
    assert sp.scopes == ("user-read-private",)
    assert sp.token_auth == "basic"
    assert spotify("spotify-id", None, scopes=("streaming",)).scopes == ("streaming",)
    dc = discord("1234", "canary-cs-discord")
    assert dc.authorize_url == "https://discord.com/oauth2/authorize"
    assert dc.token_url == "https://discord.com/api/oauth2/token"
    assert dc.revoke_url == "https://discord.com/api/oauth2/token/revoke"
    assert dc.scopes == ("identify",)
    assert _config(scopes="a b a").scopes == ("a", "b")


def test_presets_read_scopes_and_pins_as_the_provider_does() -> None:
    # A space-separated string of scopes and a single pin string, as
    # OAuthProvider itself takes them (not one scope or pin per character).
    pin = "ab" * 32
    for preset in (spotify, discord):
        provider = preset("id", None, scopes="streaming user-read-private", pins=pin)
        assert provider.scopes == ("streaming", "user-read-private")
        assert provider.pins == frozenset({pin})


# -- secrets never leak ----------------------------------------------------------------


async def test_no_secret_reaches_an_exception_a_repr_or_a_log(
    caplog: pytest.LogCaptureFixture,
    provider: DemoOAuthProvider,
    scripted: tuple[Script, OAuthProvider],
) -> None:
    caplog.set_level(logging.DEBUG)
    script, scripted_config = scripted
    config = provider.oauth_provider()
    oauth = AiohttpOAuthClient([config, scripted_config])
    seen: list[object] = [oauth, config, scripted_config, provider, provider.faults]
    verifier = "canary-verifier-" + "v" * 40

    async def failing(call: Any) -> None:
        with pytest.raises(OAuthError) as caught:
            await call
        seen.extend([caught.value, caught.value.__cause__, caught.value.__context__])

    tokens = await link(oauth)
    seen.append(tokens)
    assert tokens.refresh_token is not None
    rotated = await oauth.refresh("demo", refresh_token=tokens.refresh_token)
    seen.append(rotated)
    await failing(oauth.refresh("demo", refresh_token=tokens.refresh_token))  # spent
    await failing(
        oauth.exchange_code(
            "demo", code="canary-code-bad", code_verifier=verifier, redirect_uri=REDIRECT
        )
    )
    provider.faults.fail_with_500 = 1
    await failing(oauth.refresh("demo", refresh_token="canary-rt-500"))
    provider.faults.drop_connection = 1
    await failing(oauth.revoke("demo", token="canary-at-dropped"))
    for status, payload in (
        (400, {"error": "canary-at-in-error", "error_description": "canary-rt-desc"}),
        (200, {"access_token": "canary-at-x", "token_type": "mac", "expires_in": 1}),
        (200, b"canary-at-not-json"),
        (401, {"error": "invalid_client"}),
    ):
        script.answer(status, payload)
        await failing(oauth.refresh("scripted", refresh_token="canary-rt-scripted"))
    await oauth.close()

    secrets_seen = (
        *provider.issued_secrets(),
        "canary-cs-scripted",
        verifier,
        "canary-rt-",
        "canary-at-",
        "canary-code-",
        "canary-cs-",
    )
    texts = [str(item) for item in seen] + [repr(item) for item in seen]
    texts.append(caplog.text)
    for text in texts:
        for secret in secrets_seen:
            assert secret not in text, (secret, text)
    assert "platform=demo endpoint=token status=200" in caplog.text


async def test_presets_say_whether_a_refresh_token_may_be_presented_again(
    provider: DemoOAuthProvider,
) -> None:
    # Spotify keeps the previous refresh token usable; Discord rotates and
    # invalidates it; the demo provider revokes the grant on reuse.
    assert spotify("id", "canary-cs-x").refresh_retry_safe
    assert not discord("id", "canary-cs-x").refresh_retry_safe
    assert not provider.oauth_provider().refresh_retry_safe
    provider.rotate_refresh_tokens = False
    assert provider.oauth_provider().refresh_retry_safe
    async with AiohttpOAuthClient([spotify("id", None), discord("id2", "canary-cs-y")]) as oauth:
        assert oauth.refresh_retry_safe("spotify")
        assert not oauth.refresh_retry_safe("discord")
        assert not oauth.refresh_retry_safe("tidal")  # not configured: never safe
        with pytest.raises(OAuthNotConfigured):
            await oauth.refresh("tidal", refresh_token="canary-rt-x")


async def test_a_malformed_refresh_answer_never_gets_its_token_presented_again(
    scripted: tuple[Script, OAuthProvider],
) -> None:
    # The provider rotated the token and answered 2xx with a field we refuse
    # (a string expires_in is common in the wild): the token is spent there.
    script, config = scripted
    script.answer(200, {**GOOD, "expires_in": "3600"})
    w = wire()
    vault = MemoryTokenVault()
    async with AiohttpOAuthClient([config], clock=w.clock) as oauth:
        tokens = SecureTokenService(
            vault=vault, oauth=oauth, security_log=w.security_log, metrics=w.metrics, clock=w.clock
        )
        await tokens.store_user_tokens(
            USER,
            OAuthTokens(
                platform="scripted",
                access_token="canary-at-0",
                refresh_token="canary-rt-0",
                scopes=("one",),
                expires_at=w.clock.now() + timedelta(minutes=1),
            ),
        )
        for _ in range(2):
            with pytest.raises(ReLinkRequired, match="malformed answer"):
                await tokens.refresh(USER, "scripted", within=timedelta(hours=1))
    assert [form["refresh_token"] for form, _ in script.requests] == ["canary-rt-0"]
    record = await vault.get(USER)
    assert record is not None
    link = record.link("scripted")
    assert link is not None and link.needs_relink
