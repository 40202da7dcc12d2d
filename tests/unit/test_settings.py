"""Specification of Settings.from_env and the composition root."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from timmybot_bot.runtime.settings import ConfigurationError, Settings, listens_everywhere


def test_defaults_run_the_embedded_sqlite_backend() -> None:
    settings = Settings.from_env({})
    assert settings.backend == "sqlite"
    assert settings.data_dir == Path("var")
    assert settings.validation_policy == "default"
    assert settings.discord_token is None


def test_values_are_read_from_timmybot_variables() -> None:
    settings = Settings.from_env(
        {
            "TIMMYBOT_BACKEND": "Memory",
            "TIMMYBOT_DATA_DIR": "/tmp/tb",
            "TIMMYBOT_VALIDATION_POLICY": "strict",
            "TIMMYBOT_ALLOW_HTTP_URLS": "yes",
            "TIMMYBOT_LOG_LEVEL": "debug",
            "PATH": "/usr/bin",
        }
    )
    assert settings.backend == "memory"
    assert settings.data_dir == Path("/tmp/tb")
    assert settings.validation_policy == "strict"
    assert settings.allow_http_urls is True
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TIMMYBOT_BACKEND", "postgres", "TIMMYBOT_BACKEND must be one of memory, sqlite, aws"),
        ("TIMMYBOT_ALLOW_HTTP_URLS", "maybe", "TIMMYBOT_ALLOW_HTTP_URLS must be true or false"),
        ("TIMMYBOT_VALIDATION_POLICY", "lax", "TIMMYBOT_VALIDATION_POLICY must be one of"),
        ("TIMMYBOT_DATA_DIR", "  ", "TIMMYBOT_DATA_DIR must be a directory path"),
        ("TIMMYBOT_LOG_LEVEL", "loud", "TIMMYBOT_LOG_LEVEL must be one of"),
    ],
)
def test_malformed_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({variable: value})


def test_unknown_variables_are_typos_and_get_a_suggestion() -> None:
    with pytest.raises(
        ConfigurationError, match="TIMMYBOT_BAKEND \\(did you mean TIMMYBOT_BACKEND\\?\\)"
    ):
        Settings.from_env({"TIMMYBOT_BAKEND": "memory"})


def test_the_discord_token_is_never_shown() -> None:
    token = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"
    settings = Settings.from_env({"DISCORD_TOKEN": token})
    assert settings.discord_token == token
    assert token not in repr(settings)
    assert token not in str(settings.describe())
    assert settings.describe()["discord_token"] == "set"


def test_an_empty_token_is_an_error_not_a_silent_offline_start() -> None:
    with pytest.raises(ConfigurationError, match="DISCORD_TOKEN is set but empty"):
        Settings.from_env({"DISCORD_TOKEN": " "})


def test_a_bad_value_is_quoted_but_a_bad_token_is_not() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"TIMMYBOT_BACKEND": "nope"})
    assert "'nope'" in str(caught.value)


def test_access_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "TIMMYBOT_OWNER_IDS": "80351110224678912, 80351110224678913",
            "TIMMYBOT_ALLOWED_GUILDS": "197038439483310086",
            "TIMMYBOT_ALLOW_DMS": "on",
            "TIMMYBOT_ATTEMPT_LIMIT": "5",
            "TIMMYBOT_ATTEMPT_WINDOW": "30m",
            "TIMMYBOT_BAN_DURATION": "1h30m",
            "TIMMYBOT_LOCKDOWN_DURATION": "7200",
            "TIMMYBOT_METRICS_EXPORTER": "emf",
        }
    )
    assert settings.owner_ids == {80351110224678912, 80351110224678913}
    assert settings.allowed_guilds == {197038439483310086}
    assert settings.allow_direct_messages is True
    assert settings.attempt_limit == 5
    assert settings.attempt_window == timedelta(minutes=30)
    assert settings.ban_duration == timedelta(minutes=90)
    assert settings.lockdown_duration == timedelta(hours=2)
    assert settings.metrics_exporter == "emf"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TIMMYBOT_OWNER_IDS", "123, abc", "TIMMYBOT_OWNER_IDS must be Discord IDs"),
        ("TIMMYBOT_ALLOWED_GUILDS", "0", "TIMMYBOT_ALLOWED_GUILDS must be Discord IDs"),
        ("TIMMYBOT_ALLOWED_GUILDS", str(2**64), "TIMMYBOT_ALLOWED_GUILDS must be Discord IDs"),
        ("TIMMYBOT_ATTEMPT_LIMIT", "0", "TIMMYBOT_ATTEMPT_LIMIT must be a whole number"),
        ("TIMMYBOT_ATTEMPT_LIMIT", "ten", "TIMMYBOT_ATTEMPT_LIMIT must be a whole number"),
        ("TIMMYBOT_BAN_DURATION", "1 hour", "TIMMYBOT_BAN_DURATION must be a duration"),
        ("TIMMYBOT_BAN_DURATION", "0s", "TIMMYBOT_BAN_DURATION must be at least one second"),
        ("TIMMYBOT_METRICS_EXPORTER", "statsd", "TIMMYBOT_METRICS_EXPORTER must be one of"),
    ],
)
def test_malformed_access_settings_name_the_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({variable: value})


def test_the_pseudonym_key_is_never_shown() -> None:
    key = "ab" * 32
    settings = Settings.from_env({"TIMMYBOT_PSEUDONYM_KEY": key})
    assert key not in repr(settings)
    assert key not in str(settings.describe())


@pytest.mark.parametrize(
    "host",
    [
        "0",
        "0.0.0.0",
        "0.0",
        "000.0.0.0",
        "0x0",
        "::",
        "::0",
        "0:0:0:0:0:0:0:0",
        "[::]",
        "::ffff:0.0.0.0",
        "::0.0.0.0",
        "",
    ],
)
def test_every_unspecified_form_listens_everywhere(host: str) -> None:
    assert listens_everywhere(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "10.0.0.1", "fe80::1"])
def test_definite_hosts_do_not_listen_everywhere(host: str) -> None:
    assert not listens_everywhere(host)


def test_an_ipv6_web_host_is_bracketed_in_the_redirect_uri() -> None:
    settings = Settings.from_env({"TIMMYBOT_WEB_HOST": "::1", "TIMMYBOT_WEB_PORT": "8080"})
    assert settings.redirect_uri == "http://[::1]:8080/oauth/callback"


@pytest.mark.parametrize(
    "url",
    [
        "https://bot.example.com#frag",
        "https://bot.example.com/?next=1",
        "https://bot.example.com/base#x",
        "https://bot.example.com:99999",
        "https://[::1",
    ],
)
def test_a_public_url_the_redirect_uri_cannot_be_built_on_is_refused(url: str) -> None:
    # The redirect URI is the URL with /oauth/callback appended: after a
    # query or a fragment that is no path, and the OAuth client refused the
    # fragment only when /link ran (with --demo-provider, at start-up).
    with pytest.raises(ConfigurationError, match=r"^TIMMYBOT_PUBLIC_URL must be the URL users'"):
        Settings.from_env({"TIMMYBOT_PUBLIC_URL": url})


@pytest.mark.parametrize(
    "url", ["https://bot.example.com", "http://127.0.0.1:8080/", "https://[::1]:8443/tb"]
)
def test_a_public_url_with_a_host_port_and_path_is_kept(url: str) -> None:
    settings = Settings.from_env({"TIMMYBOT_PUBLIC_URL": url})
    assert settings.redirect_uri == url.rstrip("/") + "/oauth/callback"
