"""What runs beside the commands: the web server and the scheduler.

:class:`Runtime` starts both over one :class:`~timmybot_bot.runtime.bootstrap.Services`
and stops them again. The Discord bot starts it on hikari's ``StartingEvent``
and stops it on ``StoppingEvent``; the offline console starts it before
reading its first line.
"""

from __future__ import annotations

import contextlib
import logging

from timmybot_bot.runtime.bootstrap import Services
from timmybot_bot.runtime.data_dir import run_lock
from timmybot_bot.runtime.scheduler import Scheduler, build_jobs
from timmybot_bot.runtime.timers import Sleeper
from timmybot_bot.web.server import WebServer, build_web_app
from timmybot_bot.web.tls import server_tls_context

__all__ = ["Runtime", "WebServerUnavailable"]

_log = logging.getLogger("timmybot")


class WebServerUnavailable(RuntimeError):
    """The web server could not listen on its host and port."""


class Runtime:
    """The web server and the scheduler of one bot process.

    Args:
        services: What both run on.
        web_required: Whether a web server that cannot listen stops
            :meth:`start` (the Discord bot: OAuth callbacks and health
            checks depend on it) or is only logged (the offline console).
        sleeper: The scheduler's sleeper (tests pass a fake one).
        holder: The scheduler's lease holder name (default: host, process
            ID and a random tag).
    """

    def __init__(
        self,
        services: Services,
        *,
        web_required: bool = True,
        sleeper: Sleeper | None = None,
        holder: str | None = None,
    ) -> None:
        self._services = services
        self._web_required = web_required
        self._run_lock = contextlib.ExitStack()
        settings = services.settings
        self.web: WebServer | None = None
        self._web = WebServer(
            build_web_app(services),
            host=settings.web_host,
            port=settings.web_port,
            ssl_context=server_tls_context(settings),
        )
        self.scheduler = Scheduler(
            build_jobs(services),
            store=services.access_store,
            clock=services.clock,
            sleeper=sleeper,
            holder=holder,
        )

    def __repr__(self) -> str:
        return f"Runtime(web={self.web!r}, scheduler={self.scheduler!r})"

    async def start(self) -> None:
        """Seal abandoned audit writers, start the web server, then the scheduler.

        While it runs, the process holds the data directory's run lock
        (``vault rekey`` and ``doctor`` see a bot running).

        Raises:
            WebServerUnavailable: the web server cannot listen and
                ``web_required`` is true; nothing is left running.
        """
        settings = self._services.settings
        if settings.backend != "memory":
            self._run_lock.enter_context(run_lock(settings))
        await self._seal_abandoned_writers()
        try:
            await self._web.start()
        except OSError as error:
            reason = error.strerror or type(error).__name__
            message = (
                f"the web server cannot listen on {settings.web_host}:{settings.web_port} "
                f"({reason}); set TIMMYBOT_WEB_HOST / TIMMYBOT_WEB_PORT"
            )
            if self._web_required:
                raise WebServerUnavailable(message) from None
            _log.error("%s; /link cannot complete, /healthz and /metrics are off", message)
        else:
            self.web = self._web
            _log.info("web server on %s (/oauth/callback, /healthz, /metrics)", self._web.base_url)
        await self.scheduler.start()

    async def stop(self) -> None:
        """Stop the scheduler (cancelling a run in progress), then the web server."""
        await self.scheduler.stop()
        if self.web is not None:
            web, self.web = self.web, None
            await web.stop()
        self._run_lock.close()

    async def _seal_abandoned_writers(self) -> None:
        # A writer killed before its final digest left an unsigned tail.
        try:
            sealed = await self._services.audit.seal_abandoned()
        except Exception as error:  # noqa: BLE001 - the daily clean-up tries again
            _log.warning("could not seal abandoned audit writers (%s)", type(error).__name__)
            return
        if sealed:
            _log.warning("sealed %d abandoned audit writer(s)", sealed)
