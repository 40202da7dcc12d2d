"""Start several worker processes and release them at the same instant.

Each worker is ``python -c SCRIPT barrier_dir index *args``; it touches
``ready-{index}`` in the barrier directory, waits for ``go``, does its work
and prints its report. Shared by the multi-process store tests.
"""

from __future__ import annotations

import contextlib
import os
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


def offline_env() -> dict[str, str]:
    """This process's environment without any ``TIMMYBOT_*`` setting or Discord token.

    A child started with it reads only what its test sets: the developer's
    or CI's own configuration never leaks in, and it never connects to Discord.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMMYBOT_")}
    env.pop("DISCORD_TOKEN", None)
    return env


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """Serve ``server`` on a thread of its own; shut it down and close it on exit."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def run_together(
    script: str,
    barrier: Path,
    args: Sequence[str],
    *,
    processes: int,
    env: Mapping[str, str] | None = None,
    start_timeout: float = 30,
    run_timeout: float = 60,
) -> list[tuple[str, str]]:
    """Run ``processes`` workers released together; return each one's (stdout, stderr)."""
    barrier.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(barrier), str(index), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
        )
        for index in range(processes)
    ]
    try:
        deadline = time.monotonic() + start_timeout
        while len(list(barrier.glob("ready-*"))) < processes:
            failed = [w for w in workers if w.poll() is not None]
            assert not failed, failed[0].communicate()[1]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.01)
        (barrier / "go").touch()
        outputs = []
        for worker in workers:
            out, err = worker.communicate(timeout=run_timeout)
            assert worker.returncode == 0, err
            outputs.append((out, err))
        return outputs
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
