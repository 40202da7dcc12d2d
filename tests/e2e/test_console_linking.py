"""A person links an account from the offline console with --demo-provider.

The console runs as a real process; the test plays the browser: it opens the
printed URL, reads the approval page, presses Approve, and follows the
redirect to the console's own callback server.
"""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from pathlib import Path

import aiohttp

from tests.integration.processes import offline_env

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def read_until(stream: asyncio.StreamReader, pattern: str) -> str:
    seen = ""
    async with asyncio.timeout(30):
        while not re.search(pattern, seen):
            line = await stream.readline()
            if not line:
                raise AssertionError(f"output ended before {pattern!r}: {seen!r}")
            seen += line.decode()
    return seen


async def test_link_through_the_approval_page(tmp_path: Path) -> None:
    env = offline_env()
    env.update(TIMMYBOT_DATA_DIR=str(tmp_path / "var"), TIMMYBOT_WEB_PORT=str(free_port()))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "timmybot_bot",
        "--demo-provider",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert process.stdin and process.stdout and process.stderr
    try:
        process.stdin.write(b"/link demo\n")
        await process.stdin.drain()
        printed = await read_until(process.stdout, r"<http[^>]+>")
        url = re.search(r"<(http[^>]+)>", printed).group(1)  # type: ignore[union-attr]

        async with aiohttp.ClientSession() as browser:
            async with browser.get(url) as page:
                html = await page.text()
                assert page.status == 200
                assert "Approve" in html
            fields = dict(re.findall(r'name="(request|csrf)" value="([^"]+)"', html))
            approve = url.split("/authorize")[0] + "/authorize/approve"
            async with browser.post(approve, data={**fields, "decision": "approve"}) as landed:
                body = await landed.text()
                assert landed.status == 200, body
                assert "Account linked" in body
                assert "canary-" not in body
                assert landed.headers["Content-Security-Policy"].startswith("default-src 'none'")

        process.stdin.write(b"/linked\n/quit\n")
        await process.stdin.drain()
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert "demo: active" in out.decode()
        assert process.returncode == 0
        assert "canary-" not in printed + out.decode() + err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
