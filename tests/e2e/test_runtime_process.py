"""The bot process as an operator runs it: web server, signals, broken databases, config files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import offline_env

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = offline_env()
    env["TIMMYBOT_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A running console bot with its stdin left open, and its web server's base URL."""
    port = free_port()
    env = environment(
        tmp_path / "var",
        TIMMYBOT_WEB_PORT=str(port),
        TIMMYBOT_METRICS_EXPORTER="prometheus",
        TIMMYBOT_LOG_LEVEL="INFO",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "timmybot_bot"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if get(f"{base}/healthz/live")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the web server did not come up"
            time.sleep(0.05)
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_the_running_bot_serves_health_and_metrics(
    bot: tuple[subprocess.Popen[str], str],
) -> None:
    _, base = bot
    status, body, headers = get(f"{base}/healthz")
    assert status == 200
    report = json.loads(body)
    assert report["ready"] is True
    assert {"access_store", "token_vault", "incident_store"} <= set(report["components"])
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, body, headers = get(f"{base}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"timmybot_security_suspicious_activity" in body


@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signal_stops_the_bot_cleanly(
    bot: tuple[subprocess.Popen[str], str], sig: signal.Signals, status: int
) -> None:
    process, base = bot
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("/whoami\n")
    process.stdin.flush()
    # The bot is serving: it answered. Its input stays open, as on a terminal.
    assert process.stdout.readline().startswith("You are")
    process.send_signal(sig)
    out, err = process.communicate(timeout=30)
    assert process.returncode == status, err
    assert out == ""
    assert f"{sig.name} received: shutting down" in err
    assert "Traceback" not in err
    with pytest.raises(urllib.error.URLError, match="refused"):
        get(f"{base}/healthz/live")  # the web server is gone


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "timmybot_bot", *args],
        input="/help\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(tmp_path / "var", TIMMYBOT_WEB_PORT="0", **env)
        | {"TIMMYBOT_PUBLIC_URL": "http://127.0.0.1:9"},
        cwd=ROOT,
        check=False,
    )


def test_a_damaged_database_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir(mode=0o700)
    database = tmp_path / "var" / "timmybot.db"
    database.write_bytes(b"this is not a database, and never was " * 200)
    os.chmod(database, 0o600)
    done = run(tmp_path)
    assert done.returncode == 1
    assert "timmybot: cannot open the sqlite stores:" in done.stderr
    assert "SQLITE_NOTADB" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_settings_come_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "timmybot.toml"
    config.write_text('backend = "memory"\nrotation_schedule = "30 1 * * *"\n')
    done = run(tmp_path, "--config", str(config), "--check-config")
    assert done.returncode == 0, done.stderr
    assert "backend = memory\n" in done.stdout
    assert "rotation_schedule = 30 1 * * * (UTC)\n" in done.stdout
    assert f"config_file = {config}\n" in done.stdout


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("timmybot.toml", '"web\\nport" = 1\n'),
        ("timmybot.toml", '"web\\u001b[2Jport" = 1\n'),
        ("new\nline.toml", None),
    ],
)
def test_a_configuration_error_is_one_line_whatever_the_file_holds(
    tmp_path: Path, name: str, text: str | None
) -> None:
    # A file's key or its path can hold a line break or a terminal escape;
    # the error still has to be the one line (no escape) a supervisor logs.
    config = tmp_path / name
    if text is not None:
        config.write_text(text)
    done = run(tmp_path, "--check-config", "--config", str(config))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("timmybot: configuration error: config file ")
    assert "\x1b" not in done.stderr
    assert done.stdout == ""


def test_a_config_file_that_leaks_its_secrets_is_refused(tmp_path: Path) -> None:
    token = "canary-token.in-a.world-readable-file"
    config = tmp_path / "timmybot.toml"
    config.write_text(f'discord_token = "{token}"\n')
    os.chmod(config, 0o644)
    done = run(tmp_path, "--check-config", TIMMYBOT_CONFIG_FILE=str(config))
    assert done.returncode == 2
    assert "holds secrets (discord_token)" in done.stderr
    assert token not in done.stdout + done.stderr


def test_a_bad_schedule_is_refused_naming_the_setting(tmp_path: Path) -> None:
    done = run(tmp_path, TIMMYBOT_CLEANUP_SCHEDULE="0 3 * *")
    assert done.returncode == 2
    assert "TIMMYBOT_CLEANUP_SCHEDULE must be a cron expression (UTC)" in done.stderr
    assert done.stdout == ""


def test_with_a_discord_token_the_discord_bot_is_built_and_never_prints_it(
    tmp_path: Path,
) -> None:
    token = "canary-not-shaped-like-a-token"
    done = run(tmp_path, DISCORD_TOKEN=token)
    assert done.returncode == 2
    assert "DISCORD_TOKEN is not shaped like a Discord bot token" in done.stderr
    assert token not in done.stdout + done.stderr


def test_a_claim_timeout_a_refresh_could_outlast_is_refused_naming_both_settings(
    tmp_path: Path,
) -> None:
    done = run(tmp_path, TIMMYBOT_OAUTH_TIMEOUT="20", TIMMYBOT_TOKEN_CLAIM_TIMEOUT="30")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("timmybot: configuration error: TIMMYBOT_TOKEN_CLAIM_TIMEOUT")
    assert "TIMMYBOT_OAUTH_TIMEOUT" in line
    assert done.stdout == ""
    assert run(tmp_path, "--check-config", TIMMYBOT_OAUTH_TIMEOUT="12").returncode == 0
