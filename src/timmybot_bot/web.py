"""The bot's web server: the OAuth callback and health.

Bound to 127.0.0.1 by default. The callback answers with a small HTML page:
every value HTML-escaped, a Content-Security-Policy that allows no script
at all, ``no-store`` caching, and no token in the page or in any URL it
links to. Errors never show a stack trace.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from timmybot_core.errors import LinkError, OAuthError, StoreUnavailable
from timmybot_core.services.linking import AccountLinkService

__all__ = ["WebServer", "build_app"]

_log = logging.getLogger("timmybot.web")

CALLBACK_PATH: Final = "/oauth/callback"
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_MAX_REQUEST_BYTES: Final = 16 * 1024
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

HealthCheck = Callable[[], Awaitable[bool]]


def _page(title: str, message: str, *, status: int) -> web.Response:
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:36em;margin:4em auto;padding:0 1em}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
        "<p>You can close this page and go back to Discord.</p></body></html>"
    )
    return web.Response(
        text=body, status=status, content_type="text/html", headers=_SECURITY_HEADERS
    )


def build_app(
    links: AccountLinkService, *, health: dict[str, HealthCheck] | None = None
) -> web.Application:
    """Build the aiohttp application (callback and health routes)."""
    checks = health or {}

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
        except StoreUnavailable:
            _log.exception("link completion failed: store unavailable")
            return _page("Link failed", "TimmyBot could not save the link; try again.", status=503)
        return _page(
            "Account linked",
            f"Your {result.platform} account is now linked to TimmyBot.",
            status=200,
        )

    async def healthz(_: web.Request) -> web.Response:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = await check()
            except Exception:  # noqa: BLE001 - a failing check is "not ready", never a 500
                results[name] = False
        ready = all(results.values())
        return web.json_response(
            {"status": "ok" if ready else "degraded", "checks": results},
            status=200 if ready else 503,
            headers={"Cache-Control": "no-store"},
        )

    @web.middleware
    async def no_tracebacks(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001 - the last line of defence: no traceback leaves
            _log.exception("unhandled error on %s", request.path)
            return _page("Something went wrong", "Please try again later.", status=500)

    app = web.Application(client_max_size=_MAX_REQUEST_BYTES, middlewares=[no_tracebacks])
    app.router.add_get(CALLBACK_PATH, callback)
    app.router.add_get("/healthz", healthz)
    return app


class WebServer:
    """Runs :func:`build_app` on a host and port (127.0.0.1 by default)."""

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 8080) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        """Start listening; ``port=0`` picks a free port (see :attr:`port`)."""
        # No access log: callback URLs carry OAuth codes.
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
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
            await self._runner.cleanup()
            self._runner = None
