"""The web server over real HTTP on 127.0.0.1: health, metrics, limits and errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_bot.web.server import (
    SECURITY_HEADERS,
    WebServer,
    build_app,
    build_web_app,
    health_checks,
)
from timmybot_core.domain.errors import StoreUnavailable

CANARY = "canary-secret-9b1e"

Serve = Callable[..., Awaitable[WebServer]]


@attrs.define
class ExplodingLinks:
    """An account-link service whose completion fails in a given way."""

    behaviour: str = "crash"

    async def complete(self, state: str, code: str) -> object:
        if self.behaviour == "hang":
            await asyncio.sleep(30)
        raise RuntimeError(f"internal detail {CANARY}")


@attrs.define
class FakeMetrics:
    serves_prometheus: bool = True

    def prometheus_text(self) -> bytes:
        return b"# TYPE timmybot_security_unauthorized_access_total counter\n"


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[WebServer] = []

    async def start(links: Any = None, **options: Any) -> WebServer:
        extra: Mapping[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = options.pop(
            "routes", {}
        )
        app = build_app(links if links is not None else ExplodingLinks(), **options)
        for path, handler in extra.items():
            app.router.add_post(path, handler)
        server = WebServer(app, port=0)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def assert_security_headers(response: aiohttp.ClientResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "aiohttp" not in response.headers.get("Server", "").lower()


# Health


async def test_healthz_is_200_with_every_component_ready(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    async def fine() -> None:
        return None

    server = await serve(health={"access_store": fine, "token_vault": fine})
    async with http.get(f"{server.base_url}/healthz") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == {
            "status": "ok",
            "live": True,
            "ready": True,
            "components": {"access_store": {"ready": True}, "token_vault": {"ready": True}},
        }
        assert_security_headers(response)


async def test_healthz_is_503_naming_the_component_that_is_down(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    async def fine() -> None:
        return None

    async def down() -> None:
        raise StoreUnavailable(f"sqlite database at /secret/path {CANARY} failed")

    async def stuck() -> None:
        await asyncio.sleep(30)

    server = await serve(
        health={"access_store": fine, "token_vault": down, "audit_log": stuck}, health_timeout=0.2
    )
    async with http.get(f"{server.base_url}/healthz") as response:
        body = await response.text()
        assert response.status == 503
        assert await response.json() == {
            "status": "degraded",
            "live": True,
            "ready": False,
            "components": {
                "access_store": {"ready": True},
                "token_vault": {"ready": False, "error": "StoreUnavailable"},
                "audit_log": {"ready": False, "error": "timeout"},
            },
        }
        assert CANARY not in body


async def test_liveness_answers_even_when_a_backend_is_down(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    async def down() -> None:
        raise StoreUnavailable("down")

    server = await serve(health={"token_vault": down})
    async with http.get(f"{server.base_url}/healthz/live") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "live": True}


async def test_the_services_health_checks_probe_the_real_stores(
    tmp_path: Path, serve: Serve, http: aiohttp.ClientSession
) -> None:
    services = bootstrap(Settings(backend="sqlite", data_dir=tmp_path / "var"))
    try:
        server = await serve(services.links, health=health_checks(services))
        async with http.get(f"{server.base_url}/healthz") as response:
            assert response.status == 200
            components = (await response.json())["components"]
            assert set(components) >= {"access_store", "token_vault", "incident_store"}
        # A database file that is not a database: every store is not ready.
        await services.aclose()
        (tmp_path / "var" / "timmybot.db").write_bytes(b"not a database" * 100)
        for suffix in ("-wal", "-shm"):
            (tmp_path / "var" / f"timmybot.db{suffix}").unlink(missing_ok=True)
        broken = bootstrap(Settings(backend="sqlite", data_dir=tmp_path / "var"))
        try:
            server = await serve(broken.links, health=health_checks(broken))
            async with http.get(f"{server.base_url}/healthz") as response:
                assert response.status == 503
                components = (await response.json())["components"]
                assert components["token_vault"]["ready"] is False
                assert components["incident_store"]["ready"] is False
        finally:
            await broken.aclose()
    finally:
        await services.aclose()


# Metrics


async def test_metrics_serves_prometheus_text_when_the_exporter_is_on(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    server = await serve(metrics=FakeMetrics())
    async with http.get(f"{server.base_url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "timmybot_security_unauthorized_access_total" in await response.text()
        assert_security_headers(response)


@pytest.mark.parametrize("metrics", [None, FakeMetrics(serves_prometheus=False)])
async def test_metrics_is_404_without_the_prometheus_exporter(
    serve: Serve, http: aiohttp.ClientSession, metrics: FakeMetrics | None
) -> None:
    server = await serve(metrics=metrics)
    async with http.get(f"{server.base_url}/metrics") as response:
        assert response.status == 404
        assert_security_headers(response)


async def test_metrics_from_the_real_opentelemetry_exporter(
    tmp_path: Path, serve: Serve, http: aiohttp.ClientSession
) -> None:
    services: Services = bootstrap(Settings(backend="memory", metrics_exporter="prometheus"))
    try:
        for _ in range(3):
            services.metrics.record_unauthorized_access()
        server = WebServer(build_web_app(services), port=0)
        await server.start()
        try:
            async with http.get(f"{server.base_url}/metrics") as response:
                assert response.status == 200
                text = await response.text()
                samples = [line for line in text.splitlines() if not line.startswith("#")]
                counted = [s for s in samples if s.startswith("timmybot_security_unauthorized")]
                assert len(counted) == 1
                assert counted[0].endswith(" 3.0")
        finally:
            await server.stop()
    finally:
        await services.aclose()


# Errors, limits, timeouts


async def test_an_unexpected_error_is_a_plain_500_page_without_a_trace(
    serve: Serve, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(ExplodingLinks("crash"))
    for accept in ("text/html", "*/*"):
        async with http.get(
            f"{server.base_url}/oauth/callback?state=s&code=c", headers={"Accept": accept}
        ) as response:
            body = await response.text()
            assert response.status == 500
            assert "Something went wrong" in body
            for leak in ("Traceback", "RuntimeError", CANARY, "File "):
                assert leak not in body
            assert_security_headers(response)
    assert CANARY not in caplog.text


async def test_a_request_that_takes_too_long_is_answered_503(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    server = await serve(ExplodingLinks("hang"), request_timeout=0.2, link_timeout=0.5)
    async with http.get(f"{server.base_url}/oauth/callback?state=s&code=c") as response:
        assert response.status == 503
        assert "took too long" in await response.text()


async def test_a_stop_cuts_off_a_link_completion_only_after_the_link_budget(
    serve: Serve, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(ExplodingLinks("hang"), request_timeout=0.2, link_timeout=0.5)
    async with http.get(f"{server.base_url}/oauth/callback?state=s&code=c") as response:
        assert response.status == 503
    # The request ended; its completion still runs, and the stop waits for it,
    # then gives up (bounded) and says so.
    await server.stop()
    assert "stop: 1 link completion(s) cut off after 0.5 s" in caplog.text
    assert CANARY not in caplog.text


async def test_a_body_over_16_kib_is_refused_413(serve: Serve, http: aiohttp.ClientSession) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    server = await serve(routes={"/echo": echo})
    async with http.post(f"{server.base_url}/echo", data=b"x" * 16 * 1024) as response:
        assert response.status == 200
        assert await response.text() == str(16 * 1024)
    async with http.post(f"{server.base_url}/echo", data=b"x" * (16 * 1024 + 1)) as response:
        assert response.status == 413
        assert_security_headers(response)


async def test_an_oversized_request_line_is_refused_without_a_trace(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    server = await serve()
    async with http.get(f"{server.base_url}/oauth/callback?state={'a' * 20000}") as response:
        assert response.status in (400, 414)
        assert "Traceback" not in await response.text()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("POST", "/healthz", 405), ("DELETE", "/oauth/callback", 405)],
)
async def test_unknown_routes_and_methods_carry_the_security_headers(
    serve: Serve, http: aiohttp.ClientSession, method: str, path: str, status: int
) -> None:
    server = await serve()
    async with http.request(method, f"{server.base_url}{path}") as response:
        assert response.status == status
        assert "Traceback" not in await response.text()
        assert_security_headers(response)


async def test_the_server_listens_on_loopback_by_default() -> None:
    server = WebServer(build_app(ExplodingLinks()), port=0)  # type: ignore[arg-type]
    await server.start()
    try:
        assert server.base_url.startswith("http://127.0.0.1:")
    finally:
        await server.stop()
