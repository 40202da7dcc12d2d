"""``make aws-local`` as a newcomer runs it: emulators, the stack, the console on aws."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_console_runs_admin_commands_on_the_emulated_stack(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIMMYBOT_", "AWS_"))}
    env.update(TIMMYBOT_OWNER_IDS="7", TIMMYBOT_WEB_PORT=str(free_port()))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "local" / "aws_local.py"),
            "--data-dir",
            str(tmp_path / "var"),
            "--",
            "--user",
            "7",
            "--guild",
            "42",
        ],
        input="/admin guild allow 42\n/search Halo\n/admin audit verify\n",
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stack timmybot-local deployed" in done.stderr
    lines = done.stdout.splitlines()
    assert "Guild 42 is now allowed." in lines
    [verdict] = [line for line in lines if line.startswith("audit log")]
    assert verdict.startswith("audit log clean")
    assert "digests compared with s3://timmybot-local-digests-" in verdict
    # The digest written at the console's end went to the locked bucket.
    assert "not copied to the digest anchor" not in done.stderr
