"""The bot's web server: the OAuth callback, health and metrics.

Routes:

* ``GET /oauth/callback``: completes an account link and answers with a
  small HTML page (every value HTML-escaped, no token in the page or in any
  URL it links to).
* ``GET /healthz``: readiness. JSON with every backend's state; HTTP 503
  when any is not ready. ``GET /healthz/live``: liveness, 200 while the
  process answers at all.
* ``GET /metrics``: the security metrics in the Prometheus text format when
  the Prometheus exporter is on (``TIMMYBOT_METRICS_EXPORTER=prometheus``),
  404 otherwise.

Bound to 127.0.0.1 by default. Every response carries the security headers
(a Content-Security-Policy that allows no script, ``no-store`` caching,
``nosniff``, no framing, no referrer). Request bodies are capped at 16 KiB,
every request has a time limit, and an unexpected error becomes a plain 500
page: no stack trace ever reaches a response. The access log is off,
because callback URLs carry OAuth codes.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final, Protocol

from aiohttp import web

from timmybot_bot.app.failures import describe
from timmybot_core.domain.errors import LinkError, OAuthError, StoreUnavailable
from timmybot_core.ports.access import Switch
from timmybot_core.services.linking import AccountLinkService

if TYPE_CHECKING:
    from timmybot_bot.runtime.bootstrap import Services

__all__ = [
    "CALLBACK_PATH",
    "HealthCheck",
    "MetricsSource",
    "WebServer",
    "build_app",
    "build_web_app",
    "health_checks",
]

_log = logging.getLogger("timmybot.web")

CALLBACK_PATH: Final = "/oauth/callback"
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}
MAX_REQUEST_BYTES: Final = 16 * 1024
REQUEST_TIMEOUT: Final = 15.0
HEALTH_CHECK_TIMEOUT: Final = 3.0
PROMETHEUS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
# RFC 6749 section 4.1.2.1.
_OAUTH_ERRORS: Final = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    }
)

HealthCheck = Callable[[], Awaitable[object]]
"""A readiness probe: returns (anything) when the backend answers, raises when not."""


class MetricsSource(Protocol):
    """What ``/metrics`` needs: the OpenTelemetry handle of the composition root."""

    @property
    def serves_prometheus(self) -> bool:
        """Whether :meth:`prometheus_text` has anything to serve."""
        ...

    def prometheus_text(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        ...


def _page(title: str, message: str, *, status: int) -> web.Response:
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:36em;margin:4em auto;padding:0 1em}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        "<p>You can close this page and go back to Discord.</p></body></html>"
    )
    return web.Response(text=body, status=status, content_type="text/html")


def build_app(
    links: AccountLinkService,
    *,
    health: Mapping[str, HealthCheck] | None = None,
    metrics: MetricsSource | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
    health_timeout: float = HEALTH_CHECK_TIMEOUT,
) -> web.Application:
    """Build the aiohttp application.

    Args:
        links: Completes account links on the callback.
        health: Readiness probes by component name, for ``/healthz``.
        metrics: Serves ``/metrics`` when it serves Prometheus text.
        request_timeout: Seconds a request may take before it is answered
            with 503.
        health_timeout: Seconds one readiness probe may take before its
            component counts as not ready.
    """
    checks = dict(health or {})

    async def callback(request: web.Request) -> web.Response:
        query = request.query
        if "error" in query:
            # The user pressed "deny", or the provider refused: nothing to
            # store. Only a known OAuth error code is shown, never free text.
            code = query.get("error", "")
            shown = code if code in _OAUTH_ERRORS else "an unknown error"
            return _page("Linking cancelled", f"The provider answered: {shown}.", status=400)
        state, code = query.get("state", ""), query.get("code", "")
        if not state or not code:
            return _page("Link failed", "The link is missing its state or code.", status=400)
        try:
            result = await links.complete(state, code)
        except LinkError as error:
            return _page("Link failed", str(error), status=400)
        except OAuthError as error:
            _log.warning("link completion failed at %s: %s", error.platform, type(error).__name__)
            return _page(
                "Link failed",
                f"{error.platform} could not be reached. Please try again with /link.",
                status=502,
            )
        except StoreUnavailable as error:
            _log.error("link completion failed: %s", error)
            return _page("Link failed", "TimmyBot could not save the link; try again.", status=503)
        return _page(
            "Account linked",
            f"Your {result.platform} account is now linked to TimmyBot.",
            status=200,
        )

    async def probe(name: str, check: HealthCheck) -> tuple[str, dict[str, object]]:
        try:
            async with asyncio.timeout(health_timeout):
                await check()
        except TimeoutError:
            return name, {"ready": False, "error": "timeout"}
        except Exception as error:  # noqa: BLE001 - a failing probe is "not ready", never a 500
            # The error's class only: messages may name files or hosts.
            _log.warning("health check %s failed: %s", name, type(error).__name__)
            return name, {"ready": False, "error": type(error).__name__}
        return name, {"ready": True}

    async def healthz(_: web.Request) -> web.Response:
        results = dict(
            await asyncio.gather(*(probe(name, check) for name, check in checks.items()))
        )
        ready = all(result["ready"] for result in results.values())
        return web.json_response(
            {
                "status": "ok" if ready else "degraded",
                "live": True,
                "ready": ready,
                "components": results,
            },
            status=200 if ready else 503,
        )

    async def live(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "live": True})

    async def metrics_page(_: web.Request) -> web.Response:
        if metrics is None or not metrics.serves_prometheus:
            raise web.HTTPNotFound(text="metrics are not exported here\n")
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.prometheus_text)
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            async with asyncio.timeout(request_timeout):
                return await handler(request)
        except web.HTTPException:
            raise
        except TimeoutError:
            _log.warning("request to %s timed out after %s s", request.path, request_timeout)
            return _page("Try again later", "TimmyBot took too long to answer.", status=503)
        except Exception as error:  # noqa: BLE001 - the last line of defence: no traceback leaves
            _log.error("unhandled error on %s: %s", request.path, describe(error))
            return _page("Something went wrong", "Please try again later.", status=500)

    async def security_headers(_: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # aiohttp names itself and its version otherwise.
        response.headers["Server"] = "TimmyBot"

    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[guard])
    app.on_response_prepare.append(security_headers)
    app.router.add_get(CALLBACK_PATH, callback)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/healthz/live", live)
    app.router.add_get("/metrics", metrics_page)
    return app


def health_checks(services: Services) -> dict[str, HealthCheck]:
    """Readiness probes for every backend ``services`` uses.

    Each one makes a small real read; none writes. An outage shows as that
    component not ready (and HTTP 503), whatever the backend.
    """

    async def access_store() -> object:
        return await services.access.switch_state(Switch.KILL_SWITCH)

    async def token_vault() -> object:
        return await services.vault.get(1)

    async def incident_store() -> object:
        return await services.incidents.recent(1)

    return {
        "access_store": access_store,
        "token_vault": token_vault,
        "incident_store": incident_store,
    }


def build_web_app(services: Services) -> web.Application:
    """Build the application over ``services``: callback, health of every backend, metrics."""
    return build_app(
        services.links, health=health_checks(services), metrics=services.metrics_source
    )


class WebServer:
    """Runs an application from :func:`build_app` on a host and port (127.0.0.1 by default)."""

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 8080) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def __repr__(self) -> str:
        return f"WebServer(host={self._host!r}, port={self.port or self._port})"

    async def start(self) -> None:
        """Start listening; ``port=0`` picks a free port (see :attr:`port`)."""
        # No access log: callback URLs carry OAuth codes.
        runner = web.AppRunner(
            self._app,
            access_log=None,
            shutdown_timeout=5,
            keepalive_timeout=15,
            handler_cancellation=True,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server  # aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening and release the port."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
