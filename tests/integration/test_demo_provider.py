"""The demo OAuth provider's own behaviour, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from timmybot_bot.demo.provider import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_SCOPES,
    DemoOAuthProvider,
    demo_provider_config,
)
from timmybot_core.domain.clock import FakeClock

REDIRECT = "http://127.0.0.1:8765/oauth/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic(client_id: str = DEMO_CLIENT_ID, secret: str = DEMO_CLIENT_SECRET) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def provider() -> AsyncIterator[DemoOAuthProvider]:
    async with DemoOAuthProvider(redirect_uris=[REDIRECT], auto_approve=True) as running:
        yield running


def authorize_query(challenge: str, **overrides: str) -> dict[str, str]:
    query = {
        "response_type": "code",
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": " ".join(DEMO_SCOPES),
        "state": "state-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    query.update(overrides)
    return query


async def get_code(http: aiohttp.ClientSession, provider: DemoOAuthProvider, challenge: str) -> str:
    async with http.get(
        f"{provider.base_url}/authorize",
        params=authorize_query(challenge),
        allow_redirects=False,
    ) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["state-123"]
    return query["code"][0]


async def token_call(
    http: aiohttp.ClientSession,
    provider: DemoOAuthProvider,
    form: dict[str, str],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"{provider.base_url}/token", data=form, headers=basic() if headers is None else headers
    ) as response:
        return response.status, await response.json()


async def linked(http: aiohttp.ClientSession, provider: DemoOAuthProvider) -> dict[str, Any]:
    verifier, challenge = pkce()
    code = await get_code(http, provider, challenge)
    status, body = await token_call(
        http,
        provider,
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
        },
    )
    assert status == 200, body
    return body


async def refresh_call(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider, token: str
) -> tuple[int, dict[str, Any]]:
    return await token_call(http, provider, {"grant_type": "refresh_token", "refresh_token": token})


# -- binding ---------------------------------------------------------------


async def test_binds_to_loopback_only() -> None:
    provider = DemoOAuthProvider()
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            await provider.start(host=host)
    with pytest.raises(RuntimeError):
        _ = provider.base_url
    url = await provider.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert provider.base_url == url
        with pytest.raises(RuntimeError, match="already running"):
            await provider.start()
    finally:
        await provider.stop()
        await provider.stop()  # idempotent


# -- authorization endpoint -----------------------------------------------


async def test_authorize_redirects_with_code_and_state(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    _, challenge = pkce()
    code = await get_code(http, provider, challenge)
    assert code.startswith("canary-code-")
    assert provider.issued_codes == (code,)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"client_id": "someone-else"}, "Unknown client"),
        ({"redirect_uri": "http://127.0.0.1:9999/evil"}, "not registered"),
        ({"redirect_uri": REDIRECT + "/extra"}, "not registered"),
    ],
)
async def test_authorize_never_redirects_to_an_unregistered_place(
    http: aiohttp.ClientSession,
    provider: DemoOAuthProvider,
    override: dict[str, str],
    message: str,
) -> None:
    _, challenge = pkce()
    async with http.get(
        f"{provider.base_url}/authorize",
        params=authorize_query(challenge, **override),
        allow_redirects=False,
    ) as response:
        assert response.status == 400
        assert "Location" not in response.headers
        assert message in await response.text()


async def test_authorize_refuses_a_repeated_parameter(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    _, challenge = pkce()
    query = urlencode(authorize_query(challenge)) + "&redirect_uri=" + REDIRECT
    async with http.get(
        f"{provider.base_url}/authorize?{query}", allow_redirects=False
    ) as response:
        assert response.status == 400


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"scope": "profile admin"}, "invalid_scope"),
        ({"state": ""}, "invalid_request"),
    ],
)
async def test_authorize_reports_bad_requests_to_the_client(
    http: aiohttp.ClientSession,
    provider: DemoOAuthProvider,
    override: dict[str, str],
    error: str,
) -> None:
    _, challenge = pkce()
    async with http.get(
        f"{provider.base_url}/authorize",
        params=authorize_query(challenge, **override),
        allow_redirects=False,
    ) as response:
        assert response.status == 302
        query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == [error]
    assert "code" not in query
    assert provider.issued_codes == ()


HOSTILE = '"><script>alert(1)</script>'


async def test_approval_page_escapes_everything_and_sets_a_strict_csp(
    http: aiohttp.ClientSession,
) -> None:
    hostile_redirect = "http://127.0.0.1:8765/cb?next=" + HOSTILE
    async with DemoOAuthProvider(
        client_id="client" + HOSTILE,
        redirect_uris=[hostile_redirect],
        scopes=("profile", "<img/src=x/onerror=alert(2)>"),
    ) as provider:
        _, challenge = pkce()
        query = authorize_query(
            challenge,
            client_id="client" + HOSTILE,
            redirect_uri=hostile_redirect,
            scope="profile <img/src=x/onerror=alert(2)>",
        )
        async with http.get(
            f"{provider.base_url}/authorize", params=query, allow_redirects=False
        ) as response:
            assert response.status == 200
            page = await response.text()
            headers = response.headers
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&lt;img/src=x" in page
    assert "Approve" in page and 'action="/authorize/approve"' in page
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self' http://127.0.0.1:8765" in csp
    assert "script-src" not in csp  # nothing beyond default-src 'none'
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"].startswith("text/html")


def hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))


async def approval_form(http: aiohttp.ClientSession, provider: DemoOAuthProvider) -> dict[str, str]:
    _, challenge = pkce()
    async with http.get(
        f"{provider.base_url}/authorize", params=authorize_query(challenge)
    ) as response:
        assert response.status == 200
        fields = hidden_fields(await response.text())
    assert set(fields) == {"request", "csrf"}
    return fields


async def test_approve_redirects_once_with_a_code(http: aiohttp.ClientSession) -> None:
    async with DemoOAuthProvider(redirect_uris=[REDIRECT]) as provider:
        fields = await approval_form(http, provider)
        approve = {**fields, "decision": "approve"}
        async with http.post(
            f"{provider.base_url}/authorize/approve", data=approve, allow_redirects=False
        ) as response:
            assert response.status == 302
            query = parse_qs(urlsplit(response.headers["Location"]).query)
        assert query["state"] == ["state-123"]
        assert query["code"][0] in provider.issued_codes
        # The form is single use.
        async with http.post(
            f"{provider.base_url}/authorize/approve", data=approve, allow_redirects=False
        ) as response:
            assert response.status == 400
            assert "Location" not in response.headers
        assert len(provider.issued_codes) == 1


async def test_approve_needs_the_form_token_and_honours_deny(
    http: aiohttp.ClientSession,
) -> None:
    async with DemoOAuthProvider(redirect_uris=[REDIRECT]) as provider:
        fields = await approval_form(http, provider)
        forged = {"request": fields["request"], "csrf": "guess", "decision": "approve"}
        async with http.post(
            f"{provider.base_url}/authorize/approve", data=forged, allow_redirects=False
        ) as response:
            assert response.status == 400
        fields = await approval_form(http, provider)
        async with http.post(
            f"{provider.base_url}/authorize/approve",
            data={**fields, "decision": "deny"},
            allow_redirects=False,
        ) as response:
            assert response.status == 302
            query = parse_qs(urlsplit(response.headers["Location"]).query)
        assert query == {"error": ["access_denied"], "state": ["state-123"]}
        assert provider.issued_codes == ()


# -- token endpoint: authorization code -----------------------------------


async def test_code_exchange_issues_canary_tokens(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    body = await linked(http, provider)
    assert body["access_token"].startswith("canary-at-")
    assert body["refresh_token"].startswith("canary-rt-")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == " ".join(DEMO_SCOPES)
    assert provider.is_valid_access_token(body["access_token"])
    assert provider.is_valid_refresh_token(body["refresh_token"])
    assert provider.code_exchanges == 1


async def test_pkce_is_verified_and_a_failed_attempt_spends_the_code(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    verifier, challenge = pkce()
    code = await get_code(http, provider, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": pkce()[0],  # someone else's verifier
    }
    assert await token_call(http, provider, form) == (400, {"error": "invalid_grant"})
    form["code_verifier"] = verifier
    assert await token_call(http, provider, form) == (400, {"error": "invalid_grant"})
    assert provider.issued_access_tokens == ()


async def test_a_code_is_single_use_and_its_replay_revokes_the_grant(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    verifier, challenge = pkce()
    code = await get_code(http, provider, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    status, first = await token_call(http, provider, form)
    assert status == 200
    assert await token_call(http, provider, form) == (400, {"error": "invalid_grant"})
    assert not provider.is_valid_access_token(first["access_token"])
    assert not provider.is_valid_refresh_token(first["refresh_token"])


async def test_a_code_lives_sixty_seconds(http: aiohttp.ClientSession) -> None:
    clock = FakeClock(datetime.now(UTC))
    async with DemoOAuthProvider(
        redirect_uris=[REDIRECT], auto_approve=True, clock=clock
    ) as provider:
        verifier, challenge = pkce()
        code = await get_code(http, provider, challenge)
        clock.advance(timedelta(seconds=61))
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        assert await token_call(http, provider, form) == (400, {"error": "invalid_grant"})


async def test_the_redirect_uri_must_match_the_authorization(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    verifier, challenge = pkce()
    code = await get_code(http, provider, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT + "x",
        "code_verifier": verifier,
    }
    assert await token_call(http, provider, form) == (400, {"error": "invalid_grant"})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(secret="wrong"),
        basic(client_id="intruder"),
        {"Authorization": "Bearer something"},
        {"Authorization": "Basic !!!not-base64"},
    ],
)
async def test_the_token_endpoint_authenticates_the_client(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider, headers: dict[str, str]
) -> None:
    body = await linked(http, provider)
    status, answer = await token_call(
        http,
        provider,
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=headers,
    )
    assert (status, answer) == (401, {"error": "invalid_client"})
    assert provider.is_valid_refresh_token(body["refresh_token"])


async def test_token_refuses_a_repeated_parameter(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    body = await linked(http, provider)
    form = f"grant_type=refresh_token&refresh_token={body['refresh_token']}&scope=profile"
    async with http.post(
        f"{provider.base_url}/token",
        data=form + "&scope=profile",
        headers={**basic(), "Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        assert (response.status, await response.json()) == (400, {"error": "invalid_request"})
    assert provider.is_valid_refresh_token(body["refresh_token"])


async def test_client_credentials_in_the_form_are_accepted_but_not_twice(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    body = await linked(http, provider)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
    }
    assert (await token_call(http, provider, form, headers=basic()))[0] == 401
    status, _ = await token_call(http, provider, form, headers={})
    assert status == 200


async def test_a_public_client_sends_only_its_id(http: aiohttp.ClientSession) -> None:
    async with DemoOAuthProvider(
        redirect_uris=[REDIRECT], auto_approve=True, client_secret=None
    ) as provider:
        verifier, challenge = pkce()
        code = await get_code(http, provider, challenge)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": DEMO_CLIENT_ID,
        }
        status, _ = await token_call(http, provider, form, headers={})
        assert status == 200
        assert provider.issued_secrets() == (
            *provider.issued_access_tokens,
            *provider.issued_refresh_tokens,
            *provider.issued_codes,
        )


async def test_unknown_grant_types_and_bad_forms_are_refused(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    assert await token_call(http, provider, {"grant_type": "password"}) == (
        400,
        {"error": "unsupported_grant_type"},
    )
    async with http.post(
        f"{provider.base_url}/token", json={"grant_type": "refresh_token"}, headers=basic()
    ) as response:
        assert response.status == 400
        assert await response.json() == {"error": "invalid_request"}


# -- token endpoint: refresh with rotation --------------------------------


async def test_refresh_rotates_and_a_spent_token_is_refused(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    first = await linked(http, provider)
    status, second = await refresh_call(http, provider, first["refresh_token"])
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"].startswith("canary-at-")
    assert not provider.is_valid_refresh_token(first["refresh_token"])
    assert provider.is_valid_refresh_token(second["refresh_token"])
    assert provider.refresh_calls == 1
    assert provider.presented_refresh_tokens == (first["refresh_token"],)

    # Reuse: refused, and the whole family is revoked (default).
    assert await refresh_call(http, provider, first["refresh_token"]) == (
        400,
        {"error": "invalid_grant"},
    )
    assert not provider.is_valid_refresh_token(second["refresh_token"])
    assert not provider.is_valid_access_token(second["access_token"])
    assert list(provider.presented_refresh_tokens) == [first["refresh_token"]] * 2


async def test_reuse_can_leave_the_family_alone(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    provider.revoke_family_on_reuse = False
    first = await linked(http, provider)
    _, second = await refresh_call(http, provider, first["refresh_token"])
    assert (await refresh_call(http, provider, first["refresh_token"]))[0] == 400
    assert provider.is_valid_refresh_token(second["refresh_token"])


async def test_refresh_without_rotation_keeps_the_token(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    provider.rotate_refresh_tokens = False
    first = await linked(http, provider)
    for _ in range(3):
        status, body = await refresh_call(http, provider, first["refresh_token"])
        assert status == 200
        assert "refresh_token" not in body
    assert provider.is_valid_refresh_token(first["refresh_token"])


async def test_refresh_can_narrow_but_not_widen_the_scope(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    first = await linked(http, provider)
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    assert await token_call(http, provider, {**form, "scope": "admin"}) == (
        400,
        {"error": "invalid_scope"},
    )
    status, body = await token_call(http, provider, {**form, "scope": "profile"})
    assert status == 200
    assert body["scope"] == "profile"


async def test_an_unknown_refresh_token_is_an_invalid_grant(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    assert await refresh_call(http, provider, "canary-rt-made-up") == (
        400,
        {"error": "invalid_grant"},
    )


# -- revocation -------------------------------------------------------------


async def revoke_call(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider, token: str, **headers: str
) -> int:
    async with http.post(
        f"{provider.base_url}/revoke", data={"token": token}, headers=headers or basic()
    ) as response:
        return response.status


async def test_revoking_a_refresh_token_revokes_the_grant(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    body = await linked(http, provider)
    assert await revoke_call(http, provider, body["refresh_token"]) == 200
    assert not provider.is_valid_refresh_token(body["refresh_token"])
    assert not provider.is_valid_access_token(body["access_token"])
    assert provider.revoked_tokens == (body["refresh_token"],)
    assert (await refresh_call(http, provider, body["refresh_token"]))[0] == 400


async def test_revoking_an_access_token_keeps_the_refresh_token(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    body = await linked(http, provider)
    assert await revoke_call(http, provider, body["access_token"]) == 200
    assert not provider.is_valid_access_token(body["access_token"])
    assert provider.is_valid_refresh_token(body["refresh_token"])


async def test_revocation_answers_unknown_tokens_and_checks_the_client(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    assert await revoke_call(http, provider, "canary-at-unknown") == 200
    body = await linked(http, provider)
    assert await revoke_call(http, provider, body["refresh_token"], **basic(secret="no")) == 401
    assert provider.is_valid_refresh_token(body["refresh_token"])
    assert provider.revoke_calls == 2


# -- fault modes --------------------------------------------------------------


async def test_latency_delays_token_calls(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    body = await linked(http, provider)
    provider.faults.latency = 0.2
    started = time.perf_counter()
    status, _ = await refresh_call(http, provider, body["refresh_token"])
    assert status == 200
    assert time.perf_counter() - started >= 0.2


async def test_fail_with_500_for_the_next_calls_then_recover(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    body = await linked(http, provider)
    provider.faults.fail_with_500 = 2
    for _ in range(2):
        assert await refresh_call(http, provider, body["refresh_token"]) == (
            500,
            {"error": "server_error"},
        )
    # The failed calls did not spend the token.
    assert provider.is_valid_refresh_token(body["refresh_token"])
    assert (await refresh_call(http, provider, body["refresh_token"]))[0] == 200
    assert provider.refresh_calls == 3
    assert len(provider.presented_refresh_tokens) == 3


async def test_fail_with_500_always(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    body = await linked(http, provider)
    provider.faults.fail_with_500 = "always"
    for _ in range(3):
        assert (await refresh_call(http, provider, body["refresh_token"]))[0] == 500
    assert await revoke_call(http, provider, body["refresh_token"]) == 500
    provider.faults.reset()
    assert (await refresh_call(http, provider, body["refresh_token"]))[0] == 200


async def test_invalid_grant_for_chosen_tokens_or_all(
    http: aiohttp.ClientSession, provider: DemoOAuthProvider
) -> None:
    one, two = await linked(http, provider), await linked(http, provider)
    provider.faults.invalid_grant_for = {one["refresh_token"]}
    assert (await refresh_call(http, provider, one["refresh_token"]))[0] == 400
    assert provider.is_valid_refresh_token(one["refresh_token"])  # not spent
    status, rotated = await refresh_call(http, provider, two["refresh_token"])
    assert status == 200
    provider.faults.invalid_grant_for = "all"
    assert await refresh_call(http, provider, rotated["refresh_token"]) == (
        400,
        {"error": "invalid_grant"},
    )


async def test_drop_connection(http: aiohttp.ClientSession, provider: DemoOAuthProvider) -> None:
    body = await linked(http, provider)
    provider.faults.drop_connection = 1
    with pytest.raises(aiohttp.ClientConnectionError):
        await refresh_call(http, provider, body["refresh_token"])
    assert provider.is_valid_refresh_token(body["refresh_token"])
    assert (await refresh_call(http, provider, body["refresh_token"]))[0] == 200


async def test_a_slow_call_does_not_hold_up_stop() -> None:
    provider = DemoOAuthProvider(redirect_uris=[REDIRECT], auto_approve=True)
    await provider.start()
    provider.faults.latency = 30
    async with aiohttp.ClientSession() as http:
        call = asyncio.create_task(refresh_call(http, provider, "canary-rt-x"))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        await provider.stop()
        assert time.perf_counter() - started < 5
        with pytest.raises(aiohttp.ClientError):
            await call


# -- client configuration -------------------------------------------------------


async def test_demo_provider_config_matches_the_running_provider(
    provider: DemoOAuthProvider,
) -> None:
    config = demo_provider_config(provider.base_url, REDIRECT)
    assert config.name == "demo"
    assert config.token_url == f"{provider.base_url}/token"
    assert config.authorize_url == f"{provider.base_url}/authorize"
    assert config.revoke_url == f"{provider.base_url}/revoke"
    assert config.client_id == DEMO_CLIENT_ID
    assert config.client_secret == DEMO_CLIENT_SECRET
    assert config.allow_insecure_http
    assert provider.oauth_provider() == config
    assert DEMO_CLIENT_SECRET not in repr(config)
    assert DEMO_CLIENT_SECRET not in repr(provider)
    with pytest.raises(ValueError, match="redirect URI"):
        demo_provider_config(provider.base_url, "not a url")
    with pytest.raises(ValueError, match="plain http is refused"):
        demo_provider_config("http://192.0.2.1:8080", REDIRECT)
