"""A link exchanging its code while another process erases the user cannot complete after it.

Real processes on one SQLite file, a local OAuth provider on 127.0.0.1. The
"web" process begins a link and completes it: its state is taken, and the
provider's token endpoint holds the code exchange. Meanwhile the "bot"
process erases the user, to the end: the pending link is already spent, and
the vault has nothing yet. Then the provider answers: the tokens the web
process stores must go again (the erasure's barrier, written before its
first step, says it came after the link began), be revoked at the provider,
and the user be told why. A link begun after the erasure completes.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import offline_env, serving

ROOT = Path(__file__).resolve().parents[2]
USER = 456_789_012_345_678_901
RUN_LIMIT = 60

WORKER = r"""
import asyncio, json, sys
from urllib.parse import parse_qs, urlsplit

from timmybot_bot.demo.provider import demo_provider_config
from timmybot_bot.runtime.bootstrap import bootstrap
from timmybot_bot.runtime.settings import Settings
from timmybot_core.domain.errors import LinkError

mode, data_dir, base, user = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


async def main():
    settings = Settings.from_env(
        {"TIMMYBOT_DATA_DIR": data_dir, "TIMMYBOT_METRICS_EXPORTER": "none"}
    )
    provider = demo_provider_config(
        base, None, name="demo", client_id="c", client_secret="s", scopes=("read",)
    )
    services = bootstrap(settings, extra_providers=[provider])
    await services.open()
    try:
        if mode == "link":
            start = await services.links.begin(user, "demo")
            state = parse_qs(urlsplit(start.url).query)["state"][0]
            try:
                result = await services.links.complete(state, "code-from-the-provider")
            except LinkError as error:
                print(json.dumps({"refused": error.reason, "message": str(error)}), flush=True)
            else:
                print(json.dumps({"linked": result.platform}), flush=True)
        elif mode == "erase":
            report = await services.retention.delete_user_data(user, "user")
            print(json.dumps({"ok": report.ok}), flush=True)
        elif mode == "vault":
            record = await services.vault.get(user)
            print(json.dumps(sorted(record.links) if record else None), flush=True)
    finally:
        await services.aclose()


asyncio.run(main())
"""


class _Endpoints(http.server.BaseHTTPRequestHandler):
    """``/token``: issues fresh tokens, held until released; ``/revoke``: records the token."""

    server: _Provider

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = self.rfile.read(length).decode()
        if self.path.endswith("/token"):
            self.server.exchanging.set()
            if self.server.hold:
                self.server.release.wait(RUN_LIMIT)
            with self.server.lock:
                self.server.issued += 1
                serial = self.server.issued
            body = json.dumps(
                {
                    "access_token": f"canary-access-{serial}",
                    "refresh_token": f"canary-refresh-{serial}",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "scope": "read",
                }
            ).encode()
        else:
            with self.server.lock:
                self.server.revoked.append(form)
            body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class _Provider(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Endpoints)
        self.hold = True
        self.lock = threading.Lock()
        self.issued = 0
        self.revoked: list[str] = []
        self.exchanging = threading.Event()
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


def finish(process: subprocess.Popen[str]) -> object:
    out, err = process.communicate(timeout=RUN_LIMIT)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_a_link_completing_in_another_process_during_an_erasure_is_withdrawn(
    tmp_path: Path, provider: _Provider
) -> None:
    data_dir = tmp_path / "var"
    linking = worker("link", data_dir, provider.base_url)
    try:
        # The web process has taken its state and waits for the provider.
        assert provider.exchanging.wait(RUN_LIMIT), linking.stderr
        assert finish(worker("erase", data_dir, provider.base_url)) == {"ok": True}
    finally:
        provider.release.set()
    outcome = finish(linking)

    assert isinstance(outcome, dict)
    assert outcome["refused"] == "erased"
    assert "data deletion request" in outcome["message"]
    assert finish(worker("vault", data_dir, provider.base_url)) is None
    revoked = "\n".join(provider.revoked)
    assert "canary-access-1" in revoked
    assert "canary-refresh-1" in revoked

    # A link begun after the erasure is the user's new choice: it stays.
    provider.hold = False
    assert finish(worker("link", data_dir, provider.base_url)) == {"linked": "demo"}
    assert finish(worker("vault", data_dir, provider.base_url)) == ["demo"]
