"""Account linking end to end over real HTTP on 127.0.0.1.

The demo OAuth provider approves, redirects the client to the bot's own web
server, the callback completes the link, and the tokens land in the
encrypted SQLite vault. Every secret the provider issued is then searched
for in everything the run produced.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import attrs
import pytest

from timmybot_bot.app.commands import Invocation
from timmybot_bot.console.lines import run_command
from timmybot_bot.demo.provider import DemoOAuthProvider
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_bot.web.server import WebServer, build_app

USER = Invocation(user_id=7, guild_id=42)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define
class Flow:
    services: Services
    demo: DemoOAuthProvider
    web: WebServer
    http: aiohttp.ClientSession
    seen: list[str]

    async def say(self, line: str, invocation: Invocation = USER) -> str:
        name, _, rest = line.lstrip("/").partition(" ")
        reply = await run_command(self.services, invocation, name, rest)
        self.seen.append(reply.text)
        return reply.text

    async def open(self, url: str) -> tuple[int, str, str]:
        async with self.http.get(url) as response:
            body = await response.text()
            # The page is ours; the URL the client visited is the provider's
            # redirect (the OAuth code is in it by design), not our output.
            self.seen.append(body)
            return response.status, body, str(response.url)

    def demo_lifetime(self):  # type: ignore[no-untyped-def]
        """A refresh window wide enough that the demo's tokens count as expiring."""
        from datetime import timedelta

        return timedelta(seconds=self.demo.expires_in + 60)

    async def link(self) -> str:
        reply = await self.say("/link demo")
        match = re.search(r"<(http[^>]+)>", reply)
        assert match, reply
        status, body, _ = await self.open(match.group(1))
        assert status == 200, body
        return body


@pytest.fixture
async def flow(tmp_path: Path) -> AsyncIterator[Flow]:
    port = free_port()
    settings = Settings(
        backend="sqlite", data_dir=tmp_path / "var", web_port=port, allowed_guilds={42}
    )
    demo = DemoOAuthProvider(redirect_uris=[settings.redirect_uri], auto_approve=True)
    await demo.start()
    services = bootstrap(settings, extra_providers=[demo.oauth_provider()])
    web = WebServer(build_app(services.links), port=port)
    await web.start()
    http = aiohttp.ClientSession()
    try:
        yield Flow(services=services, demo=demo, web=web, http=http, seen=[])
    finally:
        await http.close()
        await web.stop()
        await services.aclose()
        await demo.stop()


async def test_link_list_refresh_and_unlink(flow: Flow, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    page = await flow.link()
    assert "Account linked" in page
    assert "Content-Security-Policy" not in page  # a header, not page text
    record = await flow.services.vault.get(USER.user_id)
    assert record is not None
    assert set(record.links) == {"demo"}
    assert "demo: active" in await flow.say("/linked")

    access = await flow.services.tokens.get_valid_access_token(USER.user_id, "demo")
    assert flow.demo.is_valid_access_token(access)

    # Force a refresh through the real provider: the token "expires" now.
    await flow.services.tokens.refresh(USER.user_id, "demo", within=flow.demo_lifetime())
    refreshed = await flow.services.vault.get(USER.user_id)
    assert refreshed is not None
    new_refresh = refreshed.links["demo"].tokens.refresh_token
    assert new_refresh is not None
    assert flow.demo.is_valid_refresh_token(new_refresh)

    assert "unlinked" in await flow.say("/unlink demo")
    assert await flow.services.vault.get(USER.user_id) is None
    assert not flow.demo.is_valid_refresh_token(new_refresh)

    text = "\n".join(flow.seen) + caplog.text
    leaked = [secret for secret in flow.demo.issued_secrets() if secret in text]
    assert leaked == []


async def test_the_callback_refuses_a_replay_and_stores_nothing(flow: Flow) -> None:
    reply = await flow.say("/link demo")
    url = re.search(r"<(http[^>]+)>", reply).group(1)  # type: ignore[union-attr]
    # Approve once, but catch the redirect to reuse the callback URL.
    async with flow.http.get(url, allow_redirects=False) as response:
        callback = response.headers["Location"]
    status, body, _ = await flow.open(callback)
    assert status == 200
    await flow.services.tokens.unlink(USER.user_id, "demo")
    status, body, _ = await flow.open(callback)
    assert status == 400
    assert "already used" in body
    assert await flow.services.vault.get(USER.user_id) is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "missing its state or code"),
        ("?state=abc&code=def", "unknown"),
        ("?error=access_denied", "access_denied"),
        ("?error=%3Cscript%3Ealert(1)%3C/script%3E", "an unknown error"),
    ],
)
async def test_the_callback_answers_bad_requests_with_a_safe_page(
    flow: Flow, query: str, expected: str
) -> None:
    async with flow.http.get(f"{flow.web.base_url}/oauth/callback{query}") as response:
        body = await response.text()
        assert response.status == 400
        assert expected in body
        assert "<script>" not in body
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert response.headers["Cache-Control"] == "no-store"


async def test_200_concurrent_reads_of_an_expiring_token_refresh_once(flow: Flow) -> None:
    await flow.link()
    before = flow.demo.refresh_calls
    flow.demo.faults.latency = 0.05
    outcomes = await asyncio.gather(
        *(
            flow.services.tokens.refresh(USER.user_id, "demo", within=flow.demo_lifetime())
            for _ in range(200)
        )
    )
    assert flow.demo.refresh_calls == before + 1
    assert len({o.tokens.access_token for o in outcomes}) == 1


async def test_healthz_reports_ready(flow: Flow) -> None:
    async with flow.http.get(f"{flow.web.base_url}/healthz") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ok"


async def test_a_vault_failure_after_the_exchange_revokes_the_tokens_and_says_link_again(
    flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    from timmybot_core.domain.errors import VaultUnavailable
    from timmybot_core.domain.events import SecurityEventType

    async def broken(*_: object, **__: object) -> str:
        raise VaultUnavailable("the token vault is locked")

    flow.services.vault.put = broken  # type: ignore[method-assign]
    reply = await flow.say("/link demo")
    url = re.search(r"<(http[^>]+)>", reply).group(1)  # type: ignore[union-attr]
    status, body, _ = await flow.open(url)
    assert status == 503
    assert "could not save the link" in body
    assert "/link" in body
    assert flow.demo.code_exchanges == 1
    # The grant the provider issued is revoked, not left live with nothing holding it.
    issued = flow.demo.issued_refresh_tokens
    assert issued
    assert not [token for token in issued if flow.demo.is_valid_refresh_token(token)]
    assert not [t for t in flow.demo.issued_access_tokens if flow.demo.is_valid_access_token(t)]
    events = flow.services.security_log.recent(50)
    (failed,) = [e for e in events if e.type is SecurityEventType.STORE_UNAVAILABLE]
    assert failed.details["store"] == "token_vault"
    assert not [e for e in events if e.type is SecurityEventType.AUTHENTICATION_ATTEMPT]
    assert flow.services.metrics.snapshot().auth_failures == {}
    text = "\n".join(flow.seen) + caplog.text
    assert [secret for secret in flow.demo.issued_secrets() if secret in text] == []


async def approved_callback(flow: Flow) -> str:
    """Run /link and approve at the provider; return the callback URL, not yet opened."""
    reply = await flow.say("/link demo")
    url = re.search(r"<(http[^>]+)>", reply).group(1)  # type: ignore[union-attr]
    async with flow.http.get(url, allow_redirects=False) as response:
        return response.headers["Location"]


async def linked_tokens(flow: Flow, within: float = 5.0) -> str | None:
    """Wait (bounded) for the demo link to reach the vault; return its refresh token."""
    for _ in range(int(within / 0.05)):
        record = await flow.services.vault.get(USER.user_id)
        if record is not None and "demo" in record.links:
            return record.links["demo"].tokens.refresh_token
        await asyncio.sleep(0.05)
    return None


@pytest.mark.parametrize("slow", ["provider", "vault"])
async def test_a_browser_that_goes_away_mid_callback_still_gets_its_link_stored(
    flow: Flow, slow: str
) -> None:
    callback = await approved_callback(flow)
    if slow == "provider":
        flow.demo.faults.latency = 0.5
    else:
        put = flow.services.vault.put

        async def slow_put(*args: object, **kwargs: object) -> str:
            await asyncio.sleep(0.5)
            return await put(*args, **kwargs)  # type: ignore[arg-type]

        flow.services.vault.put = slow_put  # type: ignore[method-assign]
    # The browser closes the connection while the state is spent and the
    # exchange (or the vault write) is under way: the server cancels the handler.
    with pytest.raises(TimeoutError):
        async with flow.http.get(callback, timeout=aiohttp.ClientTimeout(total=0.15)):
            pass
    refresh = await linked_tokens(flow)
    assert refresh is not None, "the spent state's tokens never reached the vault"
    assert flow.demo.is_valid_refresh_token(refresh)
    live = [t for t in flow.demo.issued_refresh_tokens if flow.demo.is_valid_refresh_token(t)]
    assert live == [refresh]


async def test_a_stop_after_the_browser_went_away_waits_for_the_link_to_be_stored(
    flow: Flow,
) -> None:
    callback = await approved_callback(flow)
    flow.demo.faults.latency = 0.8
    with pytest.raises(TimeoutError):
        async with flow.http.get(callback, timeout=aiohttp.ClientTimeout(total=0.15)):
            pass
    # The request is gone, its completion is not: the stop waits for it
    # before the stores close under it.
    await flow.web.stop()
    record = await flow.services.vault.get(USER.user_id)
    assert record is not None
    assert "demo" in record.links
    refresh = record.links["demo"].tokens.refresh_token
    assert refresh is not None
    assert flow.demo.is_valid_refresh_token(refresh)


async def test_the_callback_time_limit_covers_what_the_oauth_timeout_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from timmybot_bot.web import server

    # A stand-in for the 15 s limit against a TIMMYBOT_OAUTH_TIMEOUT above it:
    # the general limit is shorter than one provider call may take.
    monkeypatch.setattr(server, "REQUEST_TIMEOUT", 0.2)
    port = free_port()
    settings = Settings(
        backend="memory", web_port=port, allowed_guilds={42}, oauth_timeout=timedelta(seconds=2)
    )
    async with DemoOAuthProvider(redirect_uris=[settings.redirect_uri], auto_approve=True) as demo:
        services = bootstrap(settings, extra_providers=[demo.oauth_provider()])
        web = WebServer(server.build_web_app(services), port=port)
        await web.start()
        try:
            async with aiohttp.ClientSession() as http:
                flow = Flow(services=services, demo=demo, web=web, http=http, seen=[])
                callback = await approved_callback(flow)
                demo.faults.latency = 0.5  # within the OAuth timeout, beyond the general limit
                async with http.get(callback) as response:
                    body = await response.text()
                    assert response.status == 200, body
                    assert "Account linked" in body
        finally:
            await web.stop()
            await services.aclose()
