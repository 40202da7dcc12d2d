"""An erasure killed half-way is finished by the clean-up: real processes, a real SIGKILL.

A worker process erases a user whose tokens are linked at a local OAuth
provider. The provider's revocation endpoint holds the request, so the
worker is caught inside the vault step: the request is journaled, the
audit trail says "erasure requested", the pending links are gone, the
tokens and preferences are still there. It is killed with SIGKILL. Then
another process runs the clean-up, which resumes the request: the tokens
are revoked and deleted, the preferences go, the audit trail records the
complete erasure, and the journal forgets the user.

A second case: the provider refuses the revocation. The tokens are still
deleted, and the erasure reports the vault step as failed (exit 1 from
``timmybot-admin user delete``).

A third case: the provider refuses the revocation, and the worker is
killed right after the tokens are deleted, before the vault step's outcome
is journaled. The failure was journaled before the delete, so the clean-up
still reports the grant as not revoked instead of a complete erasure.
"""

from __future__ import annotations

import http.server
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import offline_env, serving

ROOT = Path(__file__).resolve().parents[2]
USER = 345_678_901_234_567_890
RUN_LIMIT = 60

WORKER = r"""
import asyncio, json, os, signal, sys
from datetime import UTC, datetime, timedelta

from timmybot_bot.runtime.bootstrap import bootstrap
from timmybot_bot.demo.provider import demo_provider_config
from timmybot_bot.runtime.settings import Settings
from timmybot_core import OAuthTokens, PlatformLink, UserTokens

mode, data_dir, base, user = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


async def main():
    settings = Settings.from_env(
        {"TIMMYBOT_DATA_DIR": data_dir, "TIMMYBOT_METRICS_EXPORTER": "none"}
    )
    provider = demo_provider_config(base, None, name="demo", client_id="c", client_secret="s")
    services = bootstrap(settings, extra_providers=[provider])
    await services.open()
    try:
        now = datetime.now(UTC)
        if mode == "seed":
            tokens = OAuthTokens(
                platform="demo", access_token="canary-access-x", refresh_token="canary-refresh-x",
                scopes=("read",), expires_at=now + timedelta(days=1),
            )
            record = UserTokens.new(user, now=now).with_link(
                PlatformLink(tokens=tokens, linked_at=now), now=now
            )
            await services.vault.put(user, record, expected_version=None)
            await services.user_data.set_preference(user, "volume", 70, at=now)
            await services.links.begin(user, "demo")  # a pending link
            print("seeded", flush=True)
        elif mode in ("erase", "erase-die-after-delete"):
            if mode == "erase-die-after-delete":
                # SIGKILL right after the vault record is deleted, before the
                # vault step's outcome is journaled.
                delete = services.vault.delete

                async def delete_then_die(*args, **kwargs):
                    deleted = await delete(*args, **kwargs)
                    os.kill(os.getpid(), signal.SIGKILL)
                    return deleted

                services.vault.delete = delete_then_die
            print("erasing", flush=True)
            await services.retention.delete_user_data(user, "owner")
            print("erased", flush=True)
        elif mode == "cleanup":
            report = await services.retention.cleanup_expired_data()
            print(json.dumps(report.as_dict()), flush=True)
    finally:
        await services.aclose()


asyncio.run(main())
"""


class _Revocation(http.server.BaseHTTPRequestHandler):
    """``/revoke``: held (until released), refused (HTTP 400 ... 503), or accepted."""

    server: _Provider

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.server.received.append(self.path)
        self.server.arrived.set()
        if self.server.mode == "hold":
            self.server.release.wait(RUN_LIMIT)
        status = 503 if self.server.mode == "refuse" else 200
        body = b"{}"
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client was killed while held

    def log_message(self, format: str, *args: object) -> None:
        return


class _Provider(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Revocation)
        self.mode = "hold"
        self.received: list[str] = []
        self.arrived = threading.Event()
        self.release = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def provider() -> Iterator[_Provider]:
    server = _Provider()
    with serving(server):
        try:
            yield server
        finally:
            server.release.set()  # held handlers answer before the shutdown


def worker(mode: str, data_dir: Path, base: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, mode, str(data_dir), base, str(USER)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env(),
        cwd=ROOT,
    )


def finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=RUN_LIMIT)
    assert process.returncode == 0, err
    return out


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def holds_user(db: Path) -> list[str]:
    """The tables holding a row with the user's ID."""
    found = []
    for (table,) in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'"):
        columns = [row[1] for row in rows(db, f'PRAGMA table_info("{table}")')]
        if "user_id" in columns:
            count = rows(db, f"SELECT count(*) FROM \"{table}\" WHERE user_id LIKE '%{USER}'")  # noqa: S608
            if count[0][0]:
                found.append(str(table))
    return sorted(found)


def audit_actions(db: Path) -> list[str]:
    return [str(r[0]) for r in rows(db, "SELECT action FROM audit_records ORDER BY ts")]


def test_sigkill_during_erasure_then_the_clean_up_completes_it(
    tmp_path: Path, provider: _Provider
) -> None:
    data_dir = tmp_path / "var"
    db = data_dir / "timmybot.db"
    assert "seeded" in finish(worker("seed", data_dir, provider.base_url))
    assert holds_user(db) == ["link_states", "user_preferences", "vault_records"]

    erasing = worker("erase", data_dir, provider.base_url)
    try:
        # The worker is inside the vault step, waiting for the revocation.
        assert provider.arrived.wait(RUN_LIMIT), erasing.stderr
        erasing.send_signal(signal.SIGKILL)
        erasing.wait(timeout=RUN_LIMIT)
    finally:
        if erasing.poll() is None:
            erasing.kill()
            erasing.wait()
    assert erasing.returncode == -signal.SIGKILL

    # Half done, and known to be: the request is on record and pending.
    assert holds_user(db) == ["erasure_journal", "user_preferences", "vault_records"]
    assert "erasure.requested" in audit_actions(db)
    assert "erasure" not in audit_actions(db)
    (steps,) = rows(db, "SELECT steps FROM erasure_journal")
    assert set(json.loads(str(steps[0]))) == {"link_states"}

    provider.mode = "accept"
    provider.release.set()
    report = json.loads(finish(worker("cleanup", data_dir, provider.base_url)))

    assert report["erasures_resumed"] == 1
    assert report["failed"] == []
    assert holds_user(db) == []
    assert audit_actions(db).count("erasure") == 1
    assert rows(db, "SELECT count(*) FROM erasure_journal") == [(0,)]
    # Revoked at the provider before the tokens went: refresh and access token.
    assert provider.received.count("/revoke") >= 3
    # A second clean-up finds nothing left to resume.
    again = json.loads(finish(worker("cleanup", data_dir, provider.base_url)))
    assert again["erasures_resumed"] == 0


def test_a_refused_revocation_is_a_failed_step_and_exit_1(
    tmp_path: Path, provider: _Provider
) -> None:
    data_dir = tmp_path / "var"
    db = data_dir / "timmybot.db"
    assert "seeded" in finish(worker("seed", data_dir, provider.base_url))
    provider.mode = "refuse"
    started = time.monotonic()
    erasing = worker("erase", data_dir, provider.base_url)
    out, err = erasing.communicate(timeout=RUN_LIMIT)
    assert time.monotonic() - started < RUN_LIMIT
    # The worker lets DataDeletionError escape: the report names the vault.
    assert erasing.returncode == 1
    assert "erased" not in out
    assert "vault failed" in err
    assert "canary" not in out + err
    # Deleted here all the same, and nothing left pending to resume.
    assert holds_user(db) == []
    assert rows(db, "SELECT count(*) FROM erasure_journal") == [(0,)]
    [outcome] = rows(db, "SELECT details FROM audit_records WHERE action = 'erasure' ORDER BY ts")
    assert json.loads(str(outcome[0]))["failed"] == ["vault"]


def test_sigkill_after_an_unrevoked_delete_keeps_the_failed_revocation(
    tmp_path: Path, provider: _Provider
) -> None:
    data_dir = tmp_path / "var"
    db = data_dir / "timmybot.db"
    assert "seeded" in finish(worker("seed", data_dir, provider.base_url))
    provider.mode = "refuse"
    erasing = worker("erase-die-after-delete", data_dir, provider.base_url)
    try:
        erasing.wait(timeout=RUN_LIMIT)
    finally:
        if erasing.poll() is None:
            erasing.kill()
            erasing.wait()
    assert erasing.returncode == -signal.SIGKILL
    # Killed after the delete: the tokens are gone, the request is pending.
    assert holds_user(db) == ["erasure_journal", "user_preferences"]
    assert "erasure" not in audit_actions(db)

    provider.mode = "accept"
    report = json.loads(finish(worker("cleanup", data_dir, provider.base_url)))

    # The grant is still live at the platform: the resumed erasure says so
    # (not resumed to completion), and leaves nothing behind or pending.
    assert report["erasures_resumed"] == 0
    assert report["failed"] == []
    assert holds_user(db) == []
    assert rows(db, "SELECT count(*) FROM erasure_journal") == [(0,)]
    [outcome] = rows(db, "SELECT details FROM audit_records WHERE action = 'erasure' ORDER BY ts")
    details = json.loads(str(outcome[0]))
    assert details["outcome"] == "incomplete"
    assert details["failed"] == ["vault"]
