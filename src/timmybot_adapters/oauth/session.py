"""The aiohttp session the OAuth client and the catalog share the handling of."""

from __future__ import annotations

from types import TracebackType
from typing import ClassVar, Self

import aiohttp

__all__ = ["OwnedSession"]


class OwnedSession:
    """Holds an aiohttp session: a given one is left open, one made here is closed.

    Subclasses set ``USER_AGENT`` and, in ``__init__``, ``self._timeout``,
    ``self._session`` (the given session or ``None``) and
    ``self._owns_session``. The session is made on first use, with no
    cookie jar: the adapters talk to APIs, never keep cookies.
    """

    USER_AGENT: ClassVar[str]
    _timeout: aiohttp.ClientTimeout
    _session: aiohttp.ClientSession | None
    _owns_session: bool

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if it was made here (a given session is left open)."""
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
                headers={"Accept": "application/json", "User-Agent": self.USER_AGENT},
            )
            self._owns_session = True
        return self._session
