"""The test-only Discord API URL: off by default, loopback only, credentials never echoed."""

from __future__ import annotations

import pytest

from timmybot_bot.runtime.settings import ConfigurationError, Settings


def test_off_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.test_discord_api_url is None
    assert settings.describe()["test_discord_api_url"] == "(Discord)"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/api/v10", "http://127.9.9.9:1/api", "https://[::1]:9/api/v10/"]
)
def test_loopback_urls_are_accepted_and_shown(url: str) -> None:
    settings = Settings.from_env({"TIMMYBOT_TEST_DISCORD_API_URL": url})
    assert settings.test_discord_api_url == url.rstrip("/")
    assert settings.describe()["test_discord_api_url"].endswith("(TESTS ONLY)")


@pytest.mark.parametrize(
    "url",
    [
        "https://discord.com/api/v10",
        "http://localhost:8080/api",  # a name can resolve anywhere
        "http://10.0.0.1/api",
        "http://192.168.1.1/api",
        "http://0.0.0.0:80/",
        "ftp://127.0.0.1/",
        "http://127.0.0.1:99999/",
        "127.0.0.1:8080",
        "",
    ],
)
def test_anything_else_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^TIMMYBOT_TEST_DISCORD_API_URL is for tests"):
        Settings.from_env({"TIMMYBOT_TEST_DISCORD_API_URL": url})


def test_credentials_in_the_url_are_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"TIMMYBOT_TEST_DISCORD_API_URL": "http://bot:hunter2@127.0.0.1/"})
    assert "hunter2" not in str(caught.value)
    assert "a URL with credentials" in str(caught.value)
