"""The console scripts without the extras, and ``--version``, as real processes.

An install without the ``bot`` and ``local`` extras is simulated by a
``sitecustomize`` on ``PYTHONPATH`` that puts a meta-path finder first which
refuses hikari, lightbulb, aiohttp and cryptography (as an environment
without them would: ``ModuleNotFoundError``). The scripts run are the real
ones that pip generated from ``[project.scripts]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from timmybot_bot import entry_points

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

BLOCKER = """
import sys

BLOCKED = {blocked!r}


class RefuseExtras:
    # First on sys.meta_path: the named packages are simply not installed.
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, RefuseExtras)
"""


def run_script(
    tmp_path: Path, script: str, *args: str, blocked: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=blocked))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TIMMYBOT_", "DISCORD_"))
    }
    env["PYTHONPATH"] = str(site)
    env["TIMMYBOT_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [str(BIN / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_the_scripts_point_at_the_entry_modules() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {
        "timmybot": "timmybot_bot.entry_points:bot",
        "timmybot-admin": "timmybot_bot.entry_points:admin",
    }


@pytest.mark.parametrize(
    ("script", "args", "status"),
    [
        ("timmybot", (), 2),
        ("timmybot", ("--check-config",), 2),
        ("timmybot-admin", ("--help",), 3),
        ("timmybot-admin", ("audit", "verify"), 3),
    ],
)
def test_without_the_extras_one_line_names_them(
    tmp_path: Path, script: str, args: tuple[str, ...], status: int
) -> None:
    blocked = ("hikari", "lightbulb", "aiohttp", "cryptography")
    result = run_script(tmp_path, script, *args, blocked=blocked)
    assert result.returncode == status
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{script}: needs the bot,local extras (install with: pip install 'timmybot[bot,local]')"
    ]
    assert "Traceback" not in result.stderr


def test_one_missing_extra_is_named_alone(tmp_path: Path) -> None:
    result = run_script(tmp_path, "timmybot-admin", "--help", blocked=("cryptography",))
    assert result.returncode == 3
    assert result.stderr.strip() == (
        "timmybot-admin: needs the local extra (install with: pip install 'timmybot[local]')"
    )


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    # The simulation must fail the way a missing package does, or the tests above prove nothing.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=("hikari",)))
    result = subprocess.run(
        [sys.executable, "-c", "import hikari"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize("script", ["timmybot", "timmybot-admin"])
@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_needs_no_extra(tmp_path: Path, script: str, flag: str) -> None:
    blocked = ("hikari", "lightbulb", "aiohttp", "cryptography")
    result = run_script(tmp_path, script, flag, blocked=blocked)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{script} {entry_points.version()}\n"
    assert entry_points.version() == "0.1.0"


def test_with_the_extras_the_real_commands_run(tmp_path: Path) -> None:
    result = run_script(tmp_path, "timmybot-admin", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: timmybot-admin" in result.stdout
    result = run_script(tmp_path, "timmybot", "--check-config")
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("configuration OK")
