"""Settings from a TOML file, shards and job schedules."""

from __future__ import annotations

import os
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from timmybot_bot.runtime.schedules import CronSchedule
from timmybot_bot.runtime.settings import ConfigurationError, Settings

TOKEN = "canary-token-in-a-config-file.abc.def"


def write(tmp_path: Path, text: str, *, mode: int = 0o600, name: str = "timmybot.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def error_of(environ: dict[str, str], config_file: Path | None = None) -> str:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(environ, config_file=config_file)
    return str(caught.value)


# Reading the file


def test_file_values_become_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
backend = "memory"
data_dir = "~/timmybot-data"
allow_dms = true
attempt_limit = 5
attempt_window = "15m"
ban_duration = 7200
owner_ids = [111111111111111111, 222222222222222222]
web_port = 9000
rotation_schedule = "30 4 * * MON-FRI"
shard_ids = [0, 1]
shard_count = 4
""",
    )
    settings = Settings.from_env({}, config_file=path)
    assert settings.backend == "memory"
    assert settings.data_dir == Path("~/timmybot-data").expanduser()
    assert settings.allow_direct_messages is True
    assert settings.attempt_limit == 5
    assert settings.attempt_window == timedelta(minutes=15)
    assert settings.ban_duration == timedelta(hours=2)
    assert settings.owner_ids == {111111111111111111, 222222222222222222}
    assert settings.web_port == 9000
    assert settings.rotation_schedule == CronSchedule.parse("30 4 * * MON-FRI")
    assert settings.shard_ids == (0, 1)
    assert settings.shard_count == 4
    assert settings.config_file == path


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'backend = "memory"\nattempt_limit = 5\n')
    settings = Settings.from_env({"TIMMYBOT_ATTEMPT_LIMIT": "7"}, config_file=path)
    assert settings.attempt_limit == 7
    assert settings.backend == "memory"


def test_timmybot_config_file_names_the_file_and_config_wins_over_it(tmp_path: Path) -> None:
    from_variable = write(tmp_path, "attempt_limit = 3\n", name="a.toml")
    from_option = write(tmp_path, "attempt_limit = 4\n", name="b.toml")
    assert Settings.from_env({"TIMMYBOT_CONFIG_FILE": str(from_variable)}).attempt_limit == 3
    chosen = Settings.from_env(
        {"TIMMYBOT_CONFIG_FILE": str(from_variable)}, config_file=from_option
    )
    assert chosen.attempt_limit == 4
    assert chosen.config_file == from_option


def test_without_a_file_nothing_is_read() -> None:
    settings = Settings.from_env({})
    assert settings.config_file is None
    assert settings.describe()["config_file"] == "(none)"


def test_discord_token_in_the_file_and_the_environment_wins(tmp_path: Path) -> None:
    path = write(tmp_path, f'discord_token = "{TOKEN}"\n')
    assert Settings.from_env({}, config_file=path).discord_token == TOKEN
    assert Settings.from_env({"DISCORD_TOKEN": "env.token.x"}, config_file=path).discord_token == (
        "env.token.x"
    )


# What is wrong, named


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('attempt_limit = "10"', "attempt_limit in config file {path} must be an integer"),
        ("attempt_limit = 0", "attempt_limit in config file {path} must be a whole number"),
        ('allow_dms = "yes"', "allow_dms in config file {path} must be true or false"),
        ("allow_dms = 1", "allow_dms in config file {path} must be true or false"),
        ("backend = 3", "backend in config file {path} must be a string"),
        ('backend = "postgres"', "backend in config file {path} must be one of memory, sqlite"),
        ("owner_ids = 5", "owner_ids in config file {path} must be an array of integers"),
        ('owner_ids = ["5"]', "owner_ids in config file {path} must be an array of integers"),
        ("attempt_window = 1.5", "attempt_window in config file {path} must be a duration"),
        ("web_port = true", "web_port in config file {path} must be an integer"),
        (
            "[backend]\nx = 1",
            "backend in config file {path} must be a string (in quotes) (got a table)",
        ),
        (
            'cleanup_schedule = "0 25 * * *"',
            "cleanup_schedule in config file {path} must be a cron",
        ),
    ],
)
def test_a_wrong_value_names_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text + "\n")
    assert message.format(path=path) in error_of({}, path)


@pytest.mark.parametrize(
    "key", ["data_dir", "audit_digest_dir", "web_tls_cert", "web_metrics_client_ca", "web_host"]
)
def test_a_nul_character_in_a_path_or_host_names_the_key(tmp_path: Path, key: str) -> None:
    # TOML's \u0000 escape is the one way to get a NUL into a setting; a path
    # or a host holding one made the start fail with a ValueError traceback.
    path = write(tmp_path, f'{key} = "a\\u0000b"\n')
    assert error_of({}, path).startswith(f"{key} in config file {path} must be a ")


def test_an_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, 'validaton_policy = "strict"\nfoo = 1\n')
    message = error_of({}, path)
    assert f"config file {path}: unknown setting foo, validaton_policy" in message
    assert "(did you mean validation_policy?)" in message
    assert "known: " in message
    assert "config_file" not in message.split("known: ")[1].split(", ")


def test_the_file_cannot_name_another_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'config_file = "/etc/other.toml"\n')
    assert "config_file cannot be set inside a config file" in error_of({}, path)


def test_a_missing_file_a_directory_and_bad_toml_are_errors(tmp_path: Path) -> None:
    assert f"config file {tmp_path / 'nope.toml'} does not exist" in error_of(
        {}, tmp_path / "nope.toml"
    )
    assert "is not a regular file" in error_of({}, tmp_path)
    broken = write(tmp_path, f'discord_token = "{TOKEN}\n')
    message = error_of({}, broken)
    assert re.search(r"is not valid TOML: .*line 1", message)
    assert TOKEN not in message


@pytest.mark.parametrize("nesting", ["[" * 5000 + "]" * 5000, "{a = " * 5000 + "1" + "}" * 5000])
def test_a_file_nested_too_deeply_is_an_error_not_a_recursion(tmp_path: Path, nesting: str) -> None:
    path = write(tmp_path, f"owner_ids = {nesting}\n")
    assert error_of({}, path) == f"config file {path} is not valid TOML: nested too deeply"


def test_an_empty_config_file_variable_asks_for_a_file_not_a_directory() -> None:
    assert error_of({"TIMMYBOT_CONFIG_FILE": " "}) == (
        "TIMMYBOT_CONFIG_FILE must be a file path (got an empty value)"
    )


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "timmybot.toml"
    os.mkfifo(fifo)
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(error_of({}, fifo)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():
        # Opened without O_NONBLOCK, it waits for a writer: be that writer.
        with open(fifo, "wb"):
            pass
        reader.join(timeout=10)
        pytest.fail("reading a FIFO as the config file waited for a writer")
    assert errors == [f"config file {fifo} is not a regular file"]


def test_the_variable_names_a_missing_file_too(tmp_path: Path) -> None:
    message = error_of({"TIMMYBOT_CONFIG_FILE": str(tmp_path / "gone.toml")})
    assert "gone.toml does not exist" in message


# Secrets in the file


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_file_with_secrets_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, f'discord_token = "{TOKEN}"\nvault_key = "{"ab" * 32}"\n', mode=mode)
    message = error_of({}, path)
    assert "holds secrets (discord_token, vault_key)" in message
    assert f"mode {mode:04o}" in message
    assert f"chmod 600 {path}" in message
    assert TOKEN not in message


def test_a_readable_file_without_secrets_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, 'backend = "memory"\n', mode=0o644)
    assert Settings.from_env({}, config_file=path).backend == "memory"


def test_a_secret_of_the_wrong_type_is_reported_without_its_value(tmp_path: Path) -> None:
    path = write(tmp_path, "pseudonym_key = 123456789\n")
    message = error_of({}, path)
    assert "pseudonym_key in config file" in message
    assert "123456789" not in message


def test_describe_and_repr_hide_file_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, f'discord_token = "{TOKEN}"\n')
    settings = Settings.from_env({}, config_file=path)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.describe())
    assert settings.describe()["config_file"] == str(path)


# Shards


def test_shards_default_to_discords_choice() -> None:
    settings = Settings.from_env({})
    assert settings.shard_ids is None
    assert settings.shard_count is None


@pytest.mark.parametrize(
    ("ids", "expected"),
    [("0", (0,)), ("3, 1,2", (1, 2, 3)), ("0-3", (0, 1, 2, 3)), ("4-5,0", (0, 4, 5))],
)
def test_shard_ids_are_numbers_and_ranges(ids: str, expected: tuple[int, ...]) -> None:
    settings = Settings.from_env({"TIMMYBOT_SHARD_IDS": ids, "TIMMYBOT_SHARD_COUNT": "8"})
    assert settings.shard_ids == expected
    assert settings.shard_count == 8
    assert settings.describe()["shard_ids"] == ",".join(map(str, expected))


def test_a_shard_count_alone_runs_every_shard_here() -> None:
    settings = Settings.from_env({"TIMMYBOT_SHARD_COUNT": "2"})
    assert settings.shard_ids is None
    assert settings.shard_count == 2


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TIMMYBOT_SHARD_IDS": "0,1"}, "TIMMYBOT_SHARD_IDS needs TIMMYBOT_SHARD_COUNT"),
        (
            {"TIMMYBOT_SHARD_IDS": "0,4", "TIMMYBOT_SHARD_COUNT": "4"},
            "TIMMYBOT_SHARD_IDS lists shard 4, but TIMMYBOT_SHARD_COUNT is 4: shards are "
            "numbered 0 to 3",
        ),
        ({"TIMMYBOT_SHARD_IDS": "x", "TIMMYBOT_SHARD_COUNT": "4"}, "TIMMYBOT_SHARD_IDS must be"),
        ({"TIMMYBOT_SHARD_IDS": "-1", "TIMMYBOT_SHARD_COUNT": "4"}, "TIMMYBOT_SHARD_IDS must be"),
        ({"TIMMYBOT_SHARD_IDS": "3-1", "TIMMYBOT_SHARD_COUNT": "4"}, "goes backwards"),
        ({"TIMMYBOT_SHARD_IDS": " ", "TIMMYBOT_SHARD_COUNT": "4"}, "at least one shard"),
        ({"TIMMYBOT_SHARD_COUNT": "0"}, "TIMMYBOT_SHARD_COUNT must be a whole number"),
    ],
)
def test_shard_settings_are_checked_together(environ: dict[str, str], message: str) -> None:
    assert message in error_of(environ)


def test_shard_errors_name_where_each_value_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, "shard_count = 2\n")
    message = error_of({"TIMMYBOT_SHARD_IDS": "5"}, path)
    assert f"TIMMYBOT_SHARD_IDS lists shard 5, but shard_count (in {path}) is 2" in message


def test_settings_built_directly_check_shards_too() -> None:
    with pytest.raises(ConfigurationError, match="shard_ids needs shard_count"):
        Settings(shard_ids=(0,))


# Schedules


def test_the_jobs_run_at_two_and_three_utc_by_default() -> None:
    settings = Settings.from_env({})
    assert str(settings.rotation_schedule) == "0 2 * * *"
    assert str(settings.cleanup_schedule) == "0 3 * * *"
    assert settings.describe()["rotation_schedule"] == "0 2 * * * (UTC)"


def test_schedules_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"TIMMYBOT_ROTATION_SCHEDULE": "15 */6 * * *", "TIMMYBOT_CLEANUP_SCHEDULE": "@weekly"}
    )
    assert str(settings.rotation_schedule) == "15 */6 * * *"
    assert str(settings.cleanup_schedule) == "@weekly"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("61 2 * * *", "out of range"),
        ("0 2 * *", "5 fields"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_a_bad_schedule_names_the_variable_and_the_problem(value: str, problem: str) -> None:
    message = error_of({"TIMMYBOT_ROTATION_SCHEDULE": value})
    assert message.startswith("TIMMYBOT_ROTATION_SCHEDULE must be a cron expression (UTC): ")
    assert problem in message


def test_schedules_may_be_given_as_text_in_code() -> None:
    assert Settings(cleanup_schedule="0 4 * * *").cleanup_schedule == CronSchedule.parse(
        "0 4 * * *"
    )


def test_rate_limits_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'rate_limit_command = "2/30s"\nrate_limit_provider_fail_mode = "open"\n')

    settings = Settings.from_env({"TIMMYBOT_RATE_LIMIT_GUILD": " 50 / 1h30m "}, config_file=path)

    assert (settings.rate_limit_command.limit, settings.rate_limit_command.window) == (2, 30.0)
    assert (settings.rate_limit_guild.limit, settings.rate_limit_guild.window) == (50, 5400.0)
    assert settings.rate_limit_provider_fail_mode == "open"
    assert settings.rate_limit_fail_mode == "open"  # the default
    assert settings.describe()["rate_limit_user"] == "20 per 60s"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("5", "a count from 1 to 1000, '/' and a window"),
        ("1001/1m", "a count from 1 to 1000"),
        ("٥/10s", "a count from 1 to 1000"),
        ("5/1.5s", "must be a duration"),
        ("5/2d", "at most 1d"),
    ],
)
def test_a_bad_rate_limit_names_the_setting(raw: str, says: str) -> None:
    message = error_of({"TIMMYBOT_RATE_LIMIT_USER": raw})
    assert message.startswith("TIMMYBOT_RATE_LIMIT_USER")
    assert says in message


def test_a_rate_limit_in_the_file_must_be_a_string(tmp_path: Path) -> None:
    message = error_of({}, write(tmp_path, "rate_limit_user = 5\n"))
    assert message.startswith("rate_limit_user in config file") and "a string" in message
