"""The bot's web server: the OAuth callback, health and metrics.

Routes:

* ``GET /oauth/callback``: completes an account link and answers with a
  small HTML page (every value HTML-escaped, no token in the page or in any
  URL it links to) naming the Discord account linked, masked (``•••…1234``),
  so someone who opened another person's link sees it is not theirs. Only
  ``GET``: a ``HEAD`` (link-preview scanners) is 405 and never uses up a
  state. Each client address has a rate limit (429 past it, with
  ``Retry-After``); refusals of made-up, expired or replayed states are
  counted, one record per reason and window, and never raise an alarm.
* ``GET /healthz``: readiness. JSON with every backend's state; HTTP 503
  when any is not ready. ``GET /healthz/live``: liveness, 200 while the
  process answers at all.
* ``GET /metrics``: the security metrics in the Prometheus text format when
  the Prometheus exporter is on (``TIMMYBOT_METRICS_EXPORTER=prometheus``),
  404 otherwise; with a client CA configured, 403 unless the client
  presented a certificate it issued (see :mod:`timmybot_bot.web.tls`).

Bound to 127.0.0.1 by default. Every response carries the security headers
(a Content-Security-Policy that allows no script, ``no-store`` caching,
``nosniff``, no framing, no referrer). Request bodies are capped at 16 KiB,
every request has a time limit, and an unexpected error becomes a plain 500
page: no stack trace ever reaches a response. The access log is off,
because callback URLs carry OAuth codes.

A link completion, once started, runs to its end even when its request is
cancelled (the browser went away, the time limit, a stop): cut off between
spending the state and storing the tokens, the state would be spent and the
provider's tokens neither stored nor revoked. The server keeps the
completions in flight and a stop waits for them, up to the link budget
(:func:`link_budget`), which the time limit is never shorter than.

No log line of the web stack holds request data: our own lines name the
route template, never the path or query; aiohttp's protocol layer (a request
line or header over 8,190 bytes, a malformed request) is replaced by
:class:`_QuietRequestHandler`, which logs the error's class only and answers
with our security headers, ``Server: TimmyBot`` and a fixed body, never
aiohttp's message quoting the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

import attrs
from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler

from timmybot_bot.runtime.shutdown import drain_budget
from timmybot_bot.web.clients import ClientRateLimiter, IPNetwork, client_address
from timmybot_core.domain.errors import (
    LinkError,
    OAuthError,
    OAuthNotConfigured,
    StoreUnavailable,
    VersionConflict,
)
from timmybot_core.ports.access import Switch
from timmybot_core.services.linking import AccountLinkService, LinkResult

if TYPE_CHECKING:
    from datetime import timedelta

    from timmybot_bot.integrate.composition import PrometheusSource
    from timmybot_bot.runtime.bootstrap import Services
    from timmybot_bot.runtime.settings import Settings

__all__ = [
    "CALLBACK_PATH",
    "HealthCheck",
    "WebServer",
    "build_app",
    "build_web_app",
    "health_checks",
    "link_budget",
]

_log = logging.getLogger("timmybot.web")
# aiohttp's protocol-level events, reduced to fixed text and an error class.
_http_log = logging.getLogger("timmybot.web.http")

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
# link_budget() of the default settings (TIMMYBOT_OAUTH_TIMEOUT 10 s).
LINK_TIMEOUT: Final = 25.0
HEALTH_CHECK_TIMEOUT: Final = 3.0
CALLBACK_RATE_LIMIT: Final = 30  # requests per minute per client address
REFUSAL_FLUSH_INTERVAL: Final = 10.0
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


def link_budget(settings: Settings) -> timedelta:
    """How long one link completion may take once its state is spent.

    The code exchange (one provider call; it is never retried), the vault
    write, and, when the vault fails, the revocation of the issued tokens
    (one provider call: both tokens at once): what a refresh in flight may
    take too, so the stop's drain budget.
    """
    return drain_budget(settings)


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


def _route(request: web.BaseRequest) -> str:
    """Return the matched route's template (fixed text, never the request's path)."""
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    canonical = getattr(resource, "canonical", None)
    return canonical if isinstance(canonical, str) else "(no route)"


def build_app(
    links: AccountLinkService,
    *,
    health: Mapping[str, HealthCheck] | None = None,
    metrics: PrometheusSource | None = None,
    request_timeout: float | None = None,
    link_timeout: float = LINK_TIMEOUT,
    health_timeout: float = HEALTH_CHECK_TIMEOUT,
    callback_rate_limit: int = CALLBACK_RATE_LIMIT,
    trusted_proxies: Sequence[IPNetwork] = (),
    metrics_client_certificates: bool = False,
    rate_clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """Build the aiohttp application.

    Args:
        links: Completes account links on the callback.
        health: Readiness probes by component name, for ``/healthz``.
        metrics: Serves ``/metrics`` when it serves Prometheus text.
        request_timeout: Seconds a request may take before it is answered
            with 503; by default :data:`REQUEST_TIMEOUT`, or ``link_timeout``
            when that is longer, so that a callback is answered with its
            outcome. A link completion outlives its request either way.
        link_timeout: Seconds a link completion may take (:func:`link_budget`);
            a stop waits this long for the completions in flight, then
            cancels them.
        health_timeout: Seconds one readiness probe may take before its
            component counts as not ready.
        callback_rate_limit: Callback requests per minute per client
            address (an IPv6 client by its /64); 429 past it.
        trusted_proxies: Peers whose ``X-Forwarded-For`` names the client.
        metrics_client_certificates: ``/metrics`` answers only a client that
            presented a verified TLS certificate (403 otherwise).
        rate_clock: The rate limiter's monotonic clock (tests).
    """
    checks = dict(health or {})
    limiter = ClientRateLimiter(callback_rate_limit, clock=rate_clock)
    proxies = tuple(trusted_proxies)
    time_limit = (
        request_timeout if request_timeout is not None else max(REQUEST_TIMEOUT, link_timeout)
    )
    completions: set[asyncio.Task[LinkResult]] = set()

    async def complete(state: str, code: str) -> LinkResult:
        # Shielded: once the state is spent, cancelling the request (the
        # browser went away, the time limit, a stop) must not cut the
        # exchange and the vault write (or the revocation) short.
        task = asyncio.get_running_loop().create_task(links.complete(state, code))
        completions.add(task)
        task.add_done_callback(completions.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_finished_alone)
            raise

    def _finished_alone(task: asyncio.Task[LinkResult]) -> None:
        # Nobody awaits it any more. The service recorded refusals and
        # failures itself; anything else is a bug, logged by class only.
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            _log.info("a link completed after its request was gone")
        elif not isinstance(error, (LinkError, OAuthError, StoreUnavailable, VersionConflict)):
            _log.error(
                "link completion failed after its request was gone: %s", type(error).__name__
            )

    async def finish_links(_: web.Application) -> None:
        # At a stop, before the handlers are cancelled and the stores close:
        # the completions in flight store (or revoke) their tokens.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + link_timeout
        while completions and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(completions), timeout=left)
        if completions:
            cut = list(completions)
            for task in cut:
                task.cancel()
            await asyncio.gather(*cut, return_exceptions=True)
            _log.warning("stop: %d link completion(s) cut off after %g s", len(cut), link_timeout)

    async def callback(request: web.Request) -> web.Response:
        client = client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), proxies
        )
        wait = limiter.allow(client)
        if wait > 0:
            await links.refusals.refuse(source="oauth_callback", reason="rate_limited")
            response = _page(
                "Too many requests", "Wait a minute, then start again with /link.", status=429
            )
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        query = request.query
        if "error" in query:
            # The user pressed "deny", or the provider refused: nothing to
            # store. Only a known OAuth error code is shown, never free text.
            code = query.get("error", "")
            shown = code if code in _OAUTH_ERRORS else "an unknown error"
            return _page("Linking cancelled", f"The provider answered: {shown}.", status=400)
        state, code = query.get("state", ""), query.get("code", "")
        if not state or not code:
            await links.refusals.refuse(source="oauth_callback", reason="missing_state_or_code")
            return _page("Link failed", "The link is missing its state or code.", status=400)
        try:
            result = await complete(state, code)
        except LinkError as error:
            return _page("Link failed", str(error), status=400)
        except OAuthNotConfigured as error:
            _log.error("link completion: %s is not configured in this process", error.platform)
            return _page(
                "Link failed",
                "Linking this platform is not available right now. Please tell the bot's "
                "operators.",
                status=503,
            )
        except OAuthError as error:
            _log.warning("link completion failed at %s: %s", error.platform, type(error).__name__)
            return _page(
                "Link failed",
                f"{error.platform} could not be reached. Please try again with /link.",
                status=502,
            )
        except (StoreUnavailable, VersionConflict) as error:
            _log.error("link completion failed: %s", error)
            # The state is spent (and tokens issued are revoked): reloading
            # this page cannot succeed, only a new /link can.
            return _page(
                "Link failed",
                "TimmyBot could not save the link. Start again with /link.",
                status=503,
            )
        return _page(
            "Account linked",
            f"Your {result.platform} account is now linked to TimmyBot. It is linked to "
            f"the Discord account with the ID {result.masked_user}. If that is not your "
            "Discord account, someone else's link was opened: tell them, and they can "
            "/unlink it.",
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
        results = dict(await asyncio.gather(*itertools.starmap(probe, checks.items())))
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

    async def metrics_page(request: web.Request) -> web.Response:
        if metrics_client_certificates and not _verified_client(request):
            raise web.HTTPForbidden(text="a client certificate is required\n")
        if metrics is None or not metrics.serves_prometheus:
            raise web.HTTPNotFound(text="metrics are not exported here\n")
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.prometheus_text)
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            async with asyncio.timeout(time_limit):
                return await handler(request)
        except web.HTTPException:
            raise
        except TimeoutError:
            _log.warning("request to %s timed out after %s s", _route(request), time_limit)
            return _page("Try again later", "TimmyBot took too long to answer.", status=503)
        except Exception as error:  # noqa: BLE001 - the last line of defence: no traceback leaves
            # The class only: a message may quote what the request carried.
            _log.error("unhandled error on %s: %s", _route(request), type(error).__name__)
            return _page("Something went wrong", "Please try again later.", status=500)

    async def security_headers(_: web.Request, response: web.StreamResponse) -> None:
        _add_security_headers(response)

    async def flush_refusals(_: web.Application) -> AsyncIterator[None]:
        # Windows of refusals end without a new request; write them anyway.
        async def loop() -> None:
            while True:
                await asyncio.sleep(REFUSAL_FLUSH_INTERVAL)
                try:
                    await links.refusals.flush_due()
                except Exception as error:  # noqa: BLE001 - retried on the next tick
                    _log.warning("could not record refused requests: %s", type(error).__name__)

        task = asyncio.get_running_loop().create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[guard])
    app.on_response_prepare.append(security_headers)
    app.cleanup_ctx.append(flush_refusals)
    app.on_shutdown.append(finish_links)
    # No HEAD: aiohttp would answer it from the GET handler, completing the link.
    app.router.add_get(CALLBACK_PATH, callback, allow_head=False)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/healthz/live", live)
    app.router.add_get("/metrics", metrics_page)
    return app


def _add_security_headers(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # aiohttp names itself, Python and their versions otherwise.
    response.headers[hdrs.SERVER] = "TimmyBot"


def _verified_client(request: web.BaseRequest) -> bool:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    # With CERT_OPTIONAL the handshake already refused an unverifiable
    # certificate: a peer certificate here is one our client CA issued.
    return isinstance(ssl_object, ssl.SSLObject) and bool(ssl_object.getpeercert())


class _QuietRequestHandler(RequestHandler):
    """aiohttp's protocol handler, minus the request data in its logs and errors.

    Its own ``handle_error`` logs an ERROR traceback whose message quotes
    the first bytes of an oversized request line or header (codes, bearer
    tokens), and answers with that message and ``Server: Python/... aiohttp``
    but none of our headers. Here the log line is the error's class and the
    status, and the answer is a fixed body with our headers.
    """

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """Log a protocol-level failure: the error's class, nothing from the request."""
        error = kw.get("exc_info")
        name = type(error).__name__ if isinstance(error, BaseException) else "error"
        _http_log.warning("HTTP protocol error: %s", name)

    def log_debug(self, *args: Any, **kw: Any) -> None:
        """Drop aiohttp's debug lines, which may hold request data."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer a request aiohttp could not parse or route, without quoting it."""
        level = logging.ERROR if status >= 500 else logging.INFO
        _http_log.log(
            level, "refused a request at the HTTP layer: %s (%s)", status, type(exc).__name__
        )
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; the connection is closed")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        response = web.Response(status=status, text=f"{status} {phrase}\n")
        _add_security_headers(response)
        response.force_close()
        return response


class _QuietServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class _QuietAppRunner(web.AppRunner):
    """An AppRunner whose connections use :class:`_QuietRequestHandler`."""

    async def _make_server(self) -> web.Server:
        # aiohttp has no public hook for the protocol class: rebuild the
        # server it made, with the same handler, factory and arguments.
        made = await super()._make_server()
        return _QuietServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


def health_checks(services: Services) -> dict[str, HealthCheck]:
    """Readiness probes for every backend ``services`` uses.

    Each one makes a small real read; none writes. An outage shows as that
    component not ready (and HTTP 503), whatever the backend.
    """
    return {
        "access_store": lambda: services.access.switch_state(Switch.KILL_SWITCH),
        "token_vault": lambda: services.vault.get(1),
        "incident_store": lambda: services.incidents.recent(1),
    }


def build_web_app(services: Services) -> web.Application:
    """Build the application over ``services``: callback, health of every backend, metrics.

    The time limit of a request is never shorter than a link completion may
    take under ``TIMMYBOT_OAUTH_TIMEOUT`` (:func:`link_budget`).
    """
    settings = services.settings
    return build_app(
        services.links,
        link_timeout=link_budget(settings).total_seconds(),
        health=health_checks(services),
        metrics=services.metrics_source,
        callback_rate_limit=settings.web_callback_rate_limit,
        trusted_proxies=settings.web_trusted_proxies,
        metrics_client_certificates=settings.web_metrics_client_ca is not None,
    )


@attrs.define(eq=False)
class WebServer:
    """Runs an application from :func:`build_app` on a host and port (127.0.0.1 by default)."""

    _app: web.Application
    _host: str = attrs.field(default="127.0.0.1", kw_only=True)
    _port: int = attrs.field(default=8080, kw_only=True)
    _ssl: ssl.SSLContext | None = attrs.field(default=None, kw_only=True, alias="ssl_context")
    _runner: web.AppRunner | None = attrs.field(default=None, init=False)
    port: int | None = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        return f"WebServer(host={self._host!r}, port={self.port or self._port})"

    async def start(self) -> None:
        """Start listening; ``port=0`` picks a free port (see :attr:`port`)."""
        # No access log: callback URLs carry OAuth codes.
        runner = _QuietAppRunner(
            self._app,
            access_log=None,
            shutdown_timeout=5,
            keepalive_timeout=15,
            handler_cancellation=True,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl)
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
        """``http(s)://host:port`` of the running server."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{'https' if self._ssl is not None else 'http'}://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening and release the port."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
