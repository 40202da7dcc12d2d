"""The example bot, started as docs/integrate.md says, refuses a bad start in one line.

A new bot author's first run is often without a token, or with a typo in a
setting: the example must then say what is wrong as TimmyBot itself does (one
line naming the setting or the file, status 2), never a traceback, and a
start without a token must leave no data directory behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from timmybot_bot.integrate import Settings, compose

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "guarded_bot.py"


def _start(data_dir: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TIMMYBOT_", "DISCORD_"))
    }
    env.update(TIMMYBOT_DATA_DIR=str(data_dir), **variables)
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        cwd=data_dir.parent,
        timeout=60,
        check=False,
    )


def test_without_a_token_it_says_so_and_creates_nothing(tmp_path: Path) -> None:
    result = _start(tmp_path / "var")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "juke: configuration error: DISCORD_TOKEN is not set: Juke needs its bot token"
    ]
    assert result.stdout == ""
    assert not (tmp_path / "var").exists()


def test_a_malformed_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    result = _start(tmp_path / "var", DISCORD_TOKEN="canary-token", TIMMYBOT_BACKEND="postgres")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "juke: configuration error: TIMMYBOT_BACKEND must be one of memory, sqlite, aws "
        "(got 'postgres')"
    ]
    assert "canary" not in result.stderr


def test_a_key_file_others_can_read_is_one_line_naming_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    compose(Settings(data_dir=data_dir), guard=True, vault=True, audit=True)
    key = data_dir / "keys" / "vault.key"
    key.chmod(0o644)
    result = _start(data_dir, DISCORD_TOKEN="canary-token")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("juke: configuration error: key file ")
    assert str(key) in line
    assert "Traceback" not in result.stderr
