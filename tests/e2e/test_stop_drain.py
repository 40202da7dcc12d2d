"""A stop during the token rotation, with the real entry point and real signals.

The provider (a ``DemoOAuthProvider`` in this test process, on 127.0.0.1)
rotates each refresh token first and answers late, as real providers do
under load: a process that exits between the two loses the rotated token.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import attrs
import pytest

from tests.integration.processes import offline_env
from timmybot_adapters.oauth import AiohttpOAuthClient
from timmybot_bot.demo.provider import DemoOAuthProvider
from timmybot_bot.runtime.bootstrap import bootstrap
from timmybot_bot.runtime.scheduler import JOB_ROTATION
from timmybot_bot.runtime.settings import Settings
from timmybot_core import PlatformLink, UserTokens, pkce_challenge

ROOT = Path(__file__).resolve().parents[2]
FIRST_USER = 300_000_000_000_000_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define
class Bed:
    provider: DemoOAuthProvider
    env: dict[str, str]
    refresh_tokens: dict[int, str] = attrs.field(factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    async def link(self, users: int) -> None:
        """Link ``users`` users through the provider; make the rotation owed at start."""
        oauth = AiohttpOAuthClient([self.provider.oauth_provider()])
        redirect = self.settings.redirect_uri
        issued = []
        async with aiohttp.ClientSession() as http:
            for _ in range(users):
                verifier = secrets.token_urlsafe(48)
                url = oauth.authorization_url(
                    "demo",
                    state="s",
                    code_challenge=pkce_challenge(verifier),
                    redirect_uri=redirect,
                )
                async with http.get(url, allow_redirects=False) as response:
                    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
                issued.append(
                    await oauth.exchange_code(
                        "demo", code=code, code_verifier=verifier, redirect_uri=redirect
                    )
                )
        await oauth.close()
        services = bootstrap(self.settings)
        await services.open()
        now = services.clock.now()
        for offset, tokens in enumerate(issued):
            user_id = FIRST_USER + offset
            record = UserTokens.new(user_id, now=now).with_link(
                PlatformLink(tokens=tokens, linked_at=now), now=now
            )
            await services.vault.put(user_id, record, expected_version=None)
            self.refresh_tokens[user_id] = tokens.refresh_token or ""
        await services.access_store.record_job_run(JOB_ROTATION, now - timedelta(days=1))
        await services.aclose()

    async def bot(self, log: Path) -> asyncio.subprocess.Process:
        with log.open("wb") as stderr:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "timmybot_bot",
                "--demo-provider-url",
                self.provider.base_url,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env=self.env,
                cwd=ROOT,
            )

    async def refresh_calls(self, count: int, process: asyncio.subprocess.Process) -> None:
        for _ in range(1200):
            if self.provider.refresh_calls >= count:
                return
            assert process.returncode is None, "the bot exited before rotating"
            await asyncio.sleep(0.025)
        raise AssertionError("the rotation did not start")

    async def records(self) -> dict[int, PlatformLink]:
        services = bootstrap(self.settings)
        try:
            links = {}
            for user_id in self.refresh_tokens:
                record = await services.vault.get(user_id)
                assert record is not None
                link = record.link("demo")
                assert link is not None
                links[user_id] = link
            return links
        finally:
            await services.aclose()

    def in_flight(self) -> int:
        presented = set(self.provider.presented_refresh_tokens)
        return sum(1 for token in presented if self.provider.answered_at(token) is None)


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[Bed]:
    env = offline_env()
    env.update(
        TIMMYBOT_BACKEND="sqlite",
        TIMMYBOT_DATA_DIR=str(tmp_path / "var"),
        TIMMYBOT_WEB_PORT=str(free_port()),
        TIMMYBOT_ROTATION_SCHEDULE="* * * * *",
        TIMMYBOT_OAUTH_TIMEOUT="3",
        TIMMYBOT_TOKEN_CLAIM_TIMEOUT="11",
        TIMMYBOT_LOG_LEVEL="WARNING",
    )
    provider = DemoOAuthProvider(
        redirect_uris=[Settings.from_env(env).redirect_uri], auto_approve=True
    )
    await provider.start()
    try:
        yield Bed(provider=provider, env=env)
    finally:
        await provider.stop()


async def test_sigterm_during_rotation_drains_every_refresh_in_flight(
    bed: Bed, tmp_path: Path
) -> None:
    await bed.link(40)
    bed.provider.faults.answer_delay = 1.0  # rotated at once, answered a second later
    log = tmp_path / "bot.log"
    process = await bed.bot(log)
    await bed.refresh_calls(8, process)
    in_flight = bed.in_flight()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert in_flight > 0
    links = await bed.records()
    lost = [
        user
        for user, link in links.items()
        if link.needs_relink
        or link.refresh_claim is not None
        or not bed.provider.is_valid_refresh_token(link.tokens.refresh_token or "")
    ]
    assert lost == []
    refreshed = [user for user, link in links.items() if link.refreshed_at is not None]
    # Every refresh that reached the provider was drained into the vault; no
    # refresh started after the signal.
    assert len(refreshed) == bed.provider.refresh_calls
    assert len(refreshed) < len(links)
    assert bed.provider.presented_twice == frozenset()
    text = log.read_text()
    assert "SIGTERM received" in text
    assert f"{len(refreshed)} token refresh(es) in flight drained, 0 cut off" in text


async def test_a_second_signal_stops_at_once(bed: Bed, tmp_path: Path) -> None:
    await bed.link(16)
    bed.provider.faults.answer_delay = 2.5  # within the 3 s OAuth timeout: the drain waits
    log = tmp_path / "bot.log"
    process = await bed.bot(log)
    await bed.refresh_calls(16, process)
    process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert process.returncode is None  # draining: waiting for the late answers
    process.send_signal(signal.SIGTERM)
    status = await asyncio.wait_for(process.wait(), 30)
    assert status == 128 + signal.SIGTERM
    assert "received again: stopping at once" in log.read_text()
    # It did not wait for the answers: none was sent, none was stored, and
    # the cut-off refreshes left their claims, the marker that their tokens
    # may be spent, for whichever process comes next.
    assert bed.in_flight() == 16
    links = await bed.records()
    assert all(link.refreshed_at is None for link in links.values())
    assert all(link.refresh_claim is not None for link in links.values())
