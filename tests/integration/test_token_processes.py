"""Four processes share one encrypted SQLite vault and race to refresh one user."""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import attrs
import pytest

from tests.integration.token_workers import refresh_race
from timmybot_bot.demo.provider import DemoOAuthProvider
from timmybot_bot.runtime.bootstrap import Settings, bootstrap

USER = 777_777_777_777_777_777
PROCESSES = 4


class ProviderThread:
    """The demo provider on its own event loop, so the test can block on processes."""

    def __init__(self, redirect_uri: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.provider = DemoOAuthProvider(redirect_uris=[redirect_uri], auto_approve=True)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> DemoOAuthProvider:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.provider.start(), self.loop).result(10)
        return self.provider

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.provider.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(backend="sqlite", data_dir=tmp_path / "var", vault_key=secrets.token_hex(32))


@pytest.fixture
def provider(settings: Settings) -> Iterator[DemoOAuthProvider]:
    with ProviderThread(settings.redirect_uri) as running:
        yield running


async def link_and_expire(settings: Settings, provider: DemoOAuthProvider) -> None:
    services = bootstrap(settings, extra_providers=[provider.oauth_provider()])
    try:
        start = await services.links.begin(USER, "demo")
        async with (
            aiohttp.ClientSession() as http,
            http.get(start.url, allow_redirects=False) as response,
        ):
            query = parse_qs(urlsplit(response.headers["Location"]).query)
        await services.links.complete(query["state"][0], query["code"][0])
        record = await services.vault.get(USER)
        assert record is not None
        link = record.links["demo"]
        now = services.clock.now()
        expired = attrs.evolve(
            link, tokens=attrs.evolve(link.tokens, expires_at=now - timedelta(seconds=1))
        )
        await services.vault.put(
            USER, record.with_link(expired, now=now), expected_version=record.version
        )
    finally:
        await services.aclose()


async def stored_refresh_token(settings: Settings, provider: DemoOAuthProvider) -> str:
    services = bootstrap(settings, extra_providers=[provider.oauth_provider()])
    try:
        record = await services.vault.get(USER)
        assert record is not None
        token = record.links["demo"].tokens.refresh_token
        assert token is not None
        return token
    finally:
        await services.aclose()


def test_every_refresh_token_is_presented_at_most_once(
    settings: Settings, provider: DemoOAuthProvider
) -> None:
    asyncio.run(link_and_expire(settings, provider))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(
            target=refresh_race,
            args=(
                str(settings.data_dir),
                settings.vault_key,
                provider.base_url,
                settings.redirect_uri,
                USER,
                barrier,
                results,
            ),
        )
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    errors = [report for report in reports if isinstance(report, str)]
    assert errors == []

    presented = provider.presented_refresh_tokens
    assert len(presented) == len(set(presented)), "a refresh token was presented twice"
    assert provider.refresh_calls == 1  # the claim let exactly one process refresh
    access_tokens = {token for report in reports for token in report}  # type: ignore[union-attr]
    assert all(provider.is_valid_access_token(token) for token in access_tokens)
    final = asyncio.run(stored_refresh_token(settings, provider))
    assert provider.is_valid_refresh_token(final)
