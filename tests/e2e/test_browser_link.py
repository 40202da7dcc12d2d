"""Linking an account in a real browser: headless Chromium against 127.0.0.1.

The URL comes from ``/link demo`` (through ``run_command``, as Discord and
the console call it). Chromium opens it on the demo OAuth provider, a
person's click approves, the provider redirects to the bot's own web
server, and the callback stores the tokens in the encrypted SQLite vault.
The page the browser ends on shows no token, no refresh token and no code.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run``
installs them when missing) and the ``selenium`` package (dev extra).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from pathlib import Path

import attrs
import pytest

from timmybot_bot.app.commands import Invocation
from timmybot_bot.console.lines import run_command
from timmybot_bot.demo.provider import DemoOAuthProvider
from timmybot_bot.runtime.bootstrap import Settings, bootstrap
from timmybot_bot.web.server import WebServer, build_web_app

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
USER = Invocation(user_id=7, guild_id=42)

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.frozen
class Visit:
    title: str
    url: str
    source: str


def browse_and_approve(url: str, profile: Path) -> Visit:
    """Open ``url`` in headless Chromium, press Approve, and wait for our callback page."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        wait = WebDriverWait(driver, 30)
        approve = wait.until(
            expected_conditions.element_to_be_clickable(
                (By.CSS_SELECTOR, "button[name=decision][value=approve]")
            )
        )
        approve.click()
        wait.until(expected_conditions.title_is("Account linked"))
        return Visit(title=driver.title, url=driver.current_url, source=driver.page_source)
    finally:
        driver.quit()


async def test_a_browser_links_an_account_and_the_page_shows_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Selenium must use the given driver, never download one.
    monkeypatch.setenv("SE_OFFLINE", "true")
    port = free_port()
    settings = Settings(
        backend="sqlite", data_dir=tmp_path / "var", web_port=port, allowed_guilds={42}
    )
    async with DemoOAuthProvider(redirect_uris=[settings.redirect_uri]) as demo:
        services = bootstrap(settings, extra_providers=[demo.oauth_provider()])
        web = WebServer(build_web_app(services), port=port)
        try:
            await services.open()
            await web.start()
            reply = await run_command(services, USER, "link", "demo")
            match = re.search(r"<(http[^>]+)>", reply.text)
            assert match, reply.text
            assert match.group(1).startswith(demo.base_url)

            # Selenium blocks: it runs on a thread while this loop serves both sites.
            visit = await asyncio.to_thread(
                browse_and_approve, match.group(1), tmp_path / "chromium-profile"
            )

            assert visit.title == "Account linked"
            assert visit.url.startswith(settings.redirect_uri)
            assert "Your demo account is now linked to TimmyBot." in visit.source
            record = await services.vault.get(USER.user_id)
            assert record is not None
            assert set(record.links) == {"demo"}
            tokens = record.links["demo"].tokens
            assert demo.is_valid_access_token(tokens.access_token)
            # What the browser shows carries none of the secrets the provider issued.
            issued = demo.issued_secrets()
            assert tokens.access_token in issued
            assert [secret for secret in issued if secret in visit.source] == []
        finally:
            await web.stop()
            await services.aclose()
