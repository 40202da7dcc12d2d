"""Specification of Settings.from_env and the composition root."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from timmybot_bot.bootstrap import Services, Settings, bootstrap
from timmybot_bot.settings import ConfigurationError
from timmybot_core import FakeClock, SystemClock


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


@pytest.mark.parametrize("backend", ["memory", "sqlite", "aws"])
def test_bootstrap_composes_every_backend(backend: str) -> None:
    services = bootstrap(Settings(backend=backend))  # type: ignore[arg-type]
    assert isinstance(services, Services)
    assert services.validator.validate_search_query("Halo").value == "Halo"
    assert services.sanitizer.for_discord("@here") == "\uff20here"
    assert isinstance(services.clock, SystemClock)


def test_bootstrap_uses_the_given_clock_and_policy() -> None:
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    services = bootstrap(Settings(validation_policy="strict", allow_http_urls=True), clock=clock)
    assert services.clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    assert not services.validator.validate_search_query("Drop It Like It's Hot").ok
    assert services.sanitizer.validate_url("http://example.com/") == "http://example.com/"
