"""The HTTP transport the OAuth client and the catalog share: TLS contexts and the session."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Mapping
from datetime import timedelta
from hashlib import sha256
from types import TracebackType
from typing import ClassVar, Final, Literal, Self

import aiohttp

from timmybot_adapters.oauth.providers import normalize_pins

__all__ = ["MinTLS", "OwnedSession", "PinnedSSLContext", "make_ssl_context"]

MinTLS = Literal["1.2", "1.3"]
_TLS_VERSIONS: Final[Mapping[str, ssl.TLSVersion]] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class _PinnedSSLObject(ssl.SSLObject):
    """Checks the peer certificate against the context's pins once the handshake is done."""

    def do_handshake(self) -> None:
        super().do_handshake()
        context = self.context
        pins = context.pins if isinstance(context, PinnedSSLContext) else frozenset()
        if not pins:
            return
        der = self.getpeercert(binary_form=True)
        if der is None or sha256(der).hexdigest() not in pins:
            # A CertificateError: asyncio fails the handshake, aiohttp raises
            # ClientConnectorCertificateError, and nothing has been sent.
            raise ssl.SSLCertVerificationError("certificate pin mismatch")


class PinnedSSLContext(ssl.SSLContext):
    """A client TLS context that also checks SHA-256 pins of the peer certificate.

    ``pins`` (hex SHA-256 of the DER certificate) is checked after the normal
    chain and hostname verification succeeded; any pin matches. Empty pins
    means no pinning.
    """

    sslobject_class = _PinnedSSLObject
    pins: frozenset[str] = frozenset()


def make_ssl_context(
    min_tls: MinTLS = "1.2",
    *,
    cafile: str | os.PathLike[str] | None = None,
    pins: Iterable[str] = (),
) -> PinnedSSLContext:
    """Build the client TLS context the OAuth client uses.

    Certificate and hostname verification are always on; ``min_tls`` sets the
    lowest TLS version; ``cafile`` (PEM) *replaces* the system trust store;
    ``pins`` adds SHA-256 certificate pinning.
    """
    if min_tls not in _TLS_VERSIONS:
        raise ValueError("min_tls is '1.2' or '1.3'")
    context = PinnedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = _TLS_VERSIONS[min_tls]
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    # Renegotiation could swap the certificate after the pin was checked.
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    if cafile is not None:
        context.load_verify_locations(cafile=os.fspath(cafile))
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.pins = normalize_pins(pins)
    return context


class OwnedSession:
    """Holds an aiohttp session: a given one is left open, one made here is closed.

    Subclasses set ``USER_AGENT`` and call :meth:`_init_transport` in
    ``__init__``. The session is made on first use, with no
    cookie jar: the adapters talk to APIs, never keep cookies.
    """

    USER_AGENT: ClassVar[str]
    _timeout: aiohttp.ClientTimeout
    _timeout_seconds: float
    _min_tls: MinTLS
    _contexts: dict[str, PinnedSSLContext]
    _session: aiohttp.ClientSession | None
    _owns_session: bool

    def _init_transport(
        self,
        *,
        what: str,
        timeout: timedelta,
        min_tls: MinTLS,
        session: aiohttp.ClientSession | None,
        cafile: str | os.PathLike[str] | None,
        pins: Mapping[str, frozenset[str]],
    ) -> None:
        """Set the timeout, one TLS context per platform (pinned where it has pins), the session."""
        seconds = timeout.total_seconds()
        if seconds <= 0:
            raise ValueError(f"the {what} timeout must be positive")
        self._timeout_seconds = seconds
        self._timeout = aiohttp.ClientTimeout(total=seconds, connect=seconds)
        self._min_tls = min_tls
        base = make_ssl_context(min_tls, cafile=cafile)
        self._contexts = {
            name: make_ssl_context(min_tls, cafile=cafile, pins=platform_pins)
            if platform_pins
            else base
            for name, platform_pins in pins.items()
        }
        self._session = session
        self._owns_session = session is None

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

    def _trace_configs(self) -> list[aiohttp.TraceConfig]:
        """Return the trace hooks of a session made here (none by default)."""
        return []

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
                headers={"Accept": "application/json", "User-Agent": self.USER_AGENT},
                trace_configs=self._trace_configs(),
            )
            self._owns_session = True
        return self._session
