"""The offline console as a user starts it: a real process reading a pipe."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.processes import offline_env

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = offline_env()
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Every run gets its own data directory: tests never touch ./var.
    monkeypatch.setenv("E2E_DATA_DIR", str(tmp_path / "var"))
    return tmp_path / "var"


def run_bot(stdin: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env.setdefault("TIMMYBOT_DATA_DIR", os.environ["E2E_DATA_DIR"])
    return subprocess.run(
        [sys.executable, "-m", "timmybot_bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(**env),
        cwd=ROOT,
        check=False,
    )


def test_accepts_a_real_title_and_exits_zero_at_end_of_input() -> None:
    done = run_bot("/playlist Drop It Like It's Hot\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Playlist name accepted: Drop It Like It's Hot\n"


def test_prints_the_reason_of_a_rejection() -> None:
    done = run_bot("/search <script>alert(1)</script>\n")
    assert done.returncode == 0
    assert done.stdout == "Search rejected: Search query contains an HTML <script> element\n"


def test_a_guild_that_is_not_allowlisted_is_denied_with_the_reason() -> None:
    done = run_bot("/whoami\n/search Halo\n", "--guild", "42", "--user", "7")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "You are user 7 in guild 42.",
        "Denied: This server is not authorized to use TimmyBot.",
    ]


def test_sqlite_state_persists_between_runs(data_dir: Path) -> None:
    run_bot("/admin guild allow 42\n")
    done = run_bot("/playlist Halo\n", "--guild", "42", "--user", "7")
    assert done.stdout == "Playlist name accepted: Halo\n"
    assert (data_dir / "timmybot.db").exists()


def test_a_bad_identity_option_is_a_usage_error() -> None:
    done = run_bot("", "--guild", "abc")
    assert done.returncode == 2
    assert "must be a Discord ID" in done.stderr


def test_a_configuration_error_names_the_variable_and_exits_2() -> None:
    done = run_bot("", TIMMYBOT_BACKEND="oracle")
    assert done.returncode == 2
    assert "TIMMYBOT_BACKEND must be one of memory, sqlite, aws" in done.stderr
    assert done.stdout == ""


def test_check_config_never_prints_the_token() -> None:
    token = "canary-discord-token-0123456789"
    done = run_bot("", "--check-config", DISCORD_TOKEN=token)
    assert done.returncode == 0
    assert "configuration OK" in done.stdout
    assert token not in done.stdout + done.stderr


def test_check_config_prints_no_escape_sequence_a_setting_holds(data_dir: Path) -> None:
    # The same cleaning as timmybot-admin config check: a value reaches the
    # terminal without its control, escape and bidi characters.
    hostile = f"{data_dir}\x1b[2J\r\x1b]0;owned\x07\u202eend"
    done = run_bot("", "--check-config", TIMMYBOT_DATA_DIR=hostile)
    assert done.returncode == 0, done.stderr
    shown = [line for line in done.stdout.splitlines() if line.startswith("data_dir = ")]
    assert shown == [f"data_dir = {data_dir}[2J ]0;ownedend"]
    assert not set(done.stdout) & {"\x1b", "\x07", "\u202e", "\r"}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_answers_on_a_pipe() -> None:
    venv_python = ROOT / ".venv" / "bin" / "python"
    if not venv_python.exists():
        pytest.skip("make run manages .venv; this checkout has none yet")
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "run"],
        input="/help\n/search\n",
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # With no settings at all: the console, on the SQLite backend under ./var.
    assert done.stdout.startswith("Commands:\n")
    assert "/search <query>" in done.stdout
    assert "/quit" in done.stdout
    assert "Search rejected: Search query cannot be empty" in done.stdout
    assert (ROOT / "var" / "timmybot.db").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TIMMYBOT_ALLOWED_GUILDS", "²"),
        ("TIMMYBOT_OWNER_IDS", "١٢٣"),
        ("TIMMYBOT_WEB_PORT", "٨٠"),
        ("TIMMYBOT_ATTEMPT_LIMIT", "𝟷"),
        ("TIMMYBOT_BAN_DURATION", "١h"),
    ],
)
def test_a_look_alike_number_is_a_configuration_error_not_a_traceback(
    variable: str, value: str
) -> None:
    done = run_bot("", "--check-config", **{variable: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"timmybot: configuration error: {variable}")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("host", ["0", "::0", "0.0", "0:0:0:0:0:0:0:0", "[::]", "0x0"])
def test_every_unspecified_address_needs_a_public_url(host: str) -> None:
    done = run_bot("", "--check-config", TIMMYBOT_WEB_HOST=host)
    assert done.returncode == 2
    assert "TIMMYBOT_PUBLIC_URL is needed" in done.stderr


def test_the_demo_provider_is_refused_beside_a_discord_token() -> None:
    token = "canary-discord-token-0123456789"
    done = run_bot("", "--demo-provider", DISCORD_TOKEN=token)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("timmybot: configuration error: DISCORD_TOKEN is set")
    assert token not in done.stderr + done.stdout


def test_a_demo_provider_url_is_refused_beside_a_discord_token() -> None:
    # The same public client secret as --demo-provider: --check-config shows the
    # refusal without connecting to Discord.
    token = "canary-discord-token-0123456789"
    done = run_bot(
        "",
        "--check-config",
        "--demo-provider-url",
        "http://127.0.0.1:9",
        DISCORD_TOKEN=token,
    )
    assert done.returncode == 2, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("timmybot: configuration error: DISCORD_TOKEN is set")
    assert "--demo-provider-url" in lines[0]
    assert token not in done.stderr + done.stdout


@pytest.mark.parametrize("args", [(), ("--check-config",)])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TIMMYBOT_SPOTIFY_CLIENT_ID", "c" * 257),
        ("TIMMYBOT_DISCORD_CLIENT_ID", "client\x1bid"),
    ],
)
def test_a_client_id_the_provider_refuses_is_a_configuration_error(
    args: tuple[str, ...], variable: str, value: str
) -> None:
    # The settings take any text; the OAuth provider refuses it when the
    # services are built. That must be the configuration status and one
    # line naming the setting, at start-up and in --check-config alike.
    done = run_bot("", *args, **{variable: value})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"timmybot: configuration error: {variable}")
    assert value not in done.stderr
    assert done.stdout == ""


def test_check_config_reports_what_start_up_would_refuse() -> None:
    done = run_bot("", "--check-config", TIMMYBOT_WEB_HOST="0.0.0.0")
    assert done.returncode == 2
    assert "TIMMYBOT_PUBLIC_URL is needed" in done.stderr


def test_the_rate_limit_shows_the_wait_and_a_second_process_shares_it() -> None:
    # One minute's window: the processes' start-up time cannot end it.
    limit = {"TIMMYBOT_RATE_LIMIT_COMMAND": "3/1m"}
    run_bot("/admin guild allow 42\n")
    member = ("--guild", "42", "--user", "7")

    first = run_bot("/playlist Halo\n" * 6, *member, **limit)
    second = run_bot("/playlist Halo\n/whoami\n", *member, **limit)

    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    lines = first.stdout.splitlines()
    assert lines[:3] == ["Playlist name accepted: Halo"] * 3
    # Told once, with the wait; the two refusals after it print nothing.
    (refusal,) = lines[3:]
    assert re.fullmatch(
        r"Slow down \(3 uses of this command per 60 s\): try again in ([1-9]|[1-5][0-9]|60) s\.",
        refusal,
    )
    # The other process counts in the same window: refused at once, told once.
    assert re.fullmatch(
        r"Slow down \(3 uses of this command per 60 s\): try again in [0-9]+ s\.",
        second.stdout.splitlines()[0],
    )
    assert second.stdout.splitlines()[1] == "You are user 7 in guild 42."


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TIMMYBOT_RATE_LIMIT_COMMAND", "5"),
        ("TIMMYBOT_RATE_LIMIT_USER", "0/1m"),
        ("TIMMYBOT_RATE_LIMIT_GUILD", "5000/1m"),
        ("TIMMYBOT_RATE_LIMIT_PROVIDER_COMMAND", "3/2d"),
        ("TIMMYBOT_RATE_LIMIT_FAIL_MODE", "maybe"),
    ],
)
def test_a_bad_rate_limit_is_one_line_naming_the_setting(variable: str, value: str) -> None:
    done = run_bot("", "--check-config", **{variable: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"timmybot: configuration error: {variable}")
