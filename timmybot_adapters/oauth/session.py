"""The HTTP transport the OAuth client and the catalog share: TLS contexts and the session."""

from __future__ import annotations

import json
import os
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from hashlib import sha256
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, NoReturn, Protocol, Self, TypeVar

import aiohttp

from timmybot_adapters.oauth.providers import normalize_pins
from timmybot_core.domain.errors import OAuthError, ProviderUnavailable
from timmybot_core.domain.tokens import valid_platform

__all__ = ["MinTLS", "OwnedSession", "PinnedSSLContext", "make_ssl_context"]

MinTLS = Literal["1.2", "1.3"]
_TLS_VERSIONS: Final[Mapping[str, ssl.TLSVersion]] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
#: What :func:`load_json` returns for a body that is not JSON (``None`` is JSON's ``null``).
NOT_JSON: Final = object()
_MAX_TOKEN_LENGTH: Final = 8192
# Visible ASCII only: a token goes into an HTTP header.
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")


class _Endpoint(Protocol):  # an OAuthProvider or a CatalogApi
    @property
    def name(self) -> str: ...

    @property
    def pins(self) -> frozenset[str]: ...


_E = TypeVar("_E", bound=_Endpoint)


def is_header_token(value: object) -> bool:
    """Tell whether ``value`` is a token fit for an HTTP header (1 to 8192 visible ASCII)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_TOKEN_LENGTH
        and _TOKEN_CHARS.match(value) is not None
    )


def load_json(body: bytes) -> Any:
    """Return the decoded ``body``, or :data:`NOT_JSON`: never raises, whatever the body.

    A hostile endpoint's answer may nest 60,000 ``[`` (``RecursionError``),
    hold a 5,000-digit number (``ValueError``) or not be UTF-8; all of
    these are "not JSON". Nothing is raised from in here, because the
    decode error holds the body (``doc``).
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError, MemoryError):
        return NOT_JSON


def json_object(body: bytes, name: str, kind: str) -> dict[str, Any]:
    """Return ``body`` decoded as a JSON object; raise :func:`malformed` if it is not one."""
    data = load_json(body)
    if data is NOT_JSON:
        malformed(name, kind, "not JSON")
    if not isinstance(data, dict):
        malformed(name, kind, "not a JSON object")
    return data


def malformed(name: str, kind: str, problem: str) -> NoReturn:
    """Raise :class:`OAuthError`: ``name``'s ``kind`` endpoint sent a malformed answer."""
    raise OAuthError(
        f"{name}: the {kind} endpoint sent a malformed response ({problem})", platform=name
    )


def not_configured(platform: str, what: str, error: type[OAuthError]) -> NoReturn:
    """Raise ``error``: ``what`` is not configured for ``platform`` (named only if a slug)."""
    try:
        name = valid_platform(platform)
    except ValueError:
        raise error(f"{what} is not configured for that platform", platform="unknown") from None
    raise error(f"{what} is not configured for {name!r}", platform=name)


async def read_bounded(
    response: aiohttp.ClientResponse,
    *,
    limit: int,
    too_large: str,
    platform: str,
    error: type[OAuthError] = OAuthError,
) -> bytes:
    """Return the body, or raise ``error`` (``too_large``) past ``limit`` bytes.

    Both the declared length and the bytes that arrive count: a server may
    declare nothing, or send more than it declared.
    """
    length = response.content_length
    if length is not None and length > limit:
        raise error(too_large, platform=platform)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(16384):
        size += len(chunk)
        if size > limit:
            raise error(too_large, platform=platform)
        chunks.append(chunk)
    return b"".join(chunks)


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
    #: Whether a failed certificate check names the TLS library's reason.
    CERTIFICATE_DETAIL: ClassVar[bool] = False
    _timeout: aiohttp.ClientTimeout
    _timeout_seconds: float
    _min_tls: MinTLS
    _contexts: dict[str, PinnedSSLContext]
    _session: aiohttp.ClientSession | None
    _owns_session: bool

    def _init_transport(
        self,
        endpoints: Sequence[_E],
        *,
        what: str,
        named: str,
        timeout: timedelta,
        min_tls: MinTLS,
        session: aiohttp.ClientSession | None,
        cafile: str | os.PathLike[str] | None,
    ) -> dict[str, _E]:
        """Set the timeout, one TLS context per platform (pinned where it has pins), the session.

        Return ``endpoints`` by name; two of one name are refused
        (``named`` says what they are, in the message).
        """
        by_name: dict[str, _E] = {}
        for endpoint in endpoints:
            if endpoint.name in by_name:
                raise ValueError(f"two {named} are named {endpoint.name!r}")
            by_name[endpoint.name] = endpoint
        seconds = timeout.total_seconds()
        if seconds <= 0:
            raise ValueError(f"the {what} timeout must be positive")
        self._timeout_seconds = seconds
        self._timeout = aiohttp.ClientTimeout(total=seconds, connect=seconds)
        self._min_tls = min_tls
        base = make_ssl_context(min_tls, cafile=cafile)
        self._contexts = {
            name: make_ssl_context(min_tls, cafile=cafile, pins=endpoint.pins)
            if endpoint.pins
            else base
            for name, endpoint in by_name.items()
        }
        self._session = session
        self._owns_session = session is None
        return by_name

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

    async def _send(
        self,
        method: str,
        url: str,
        endpoint: _Endpoint,
        kind: str,
        *,
        limit: int,
        read_errors: bool,
        unreadable: type[OAuthError] = OAuthError,
        **request: Any,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send one request to ``endpoint``'s ``kind`` endpoint; return the answer and its body.

        The body is read (at most ``limit`` bytes) for a 2xx answer, and for
        any other one with ``read_errors``; otherwise it is empty. No redirect
        is followed. Every transport failure becomes an :class:`OAuthError`
        naming the platform and ``kind``, never the request; a 2xx body too
        large to read raises ``unreadable`` (the endpoint did act).
        """
        name = endpoint.name
        phase: dict[str, bool] = {"traced": False, "sent": False}
        try:
            async with self._http().request(
                method,
                url,
                ssl=self._contexts[name],
                timeout=self._timeout,
                allow_redirects=False,
                trace_request_ctx=phase,
                **request,
            ) as response:
                body = b""
                succeeded = 200 <= response.status < 300
                if read_errors or succeeded:
                    body = await read_bounded(
                        response,
                        limit=limit,
                        too_large=f"{name}: the {kind} endpoint's answer is too large",
                        platform=name,
                        error=unreadable if succeeded else OAuthError,
                    )
        except OAuthError:
            raise
        except aiohttp.ClientConnectorCertificateError as error:
            detail = ""
            if self.CERTIFICATE_DETAIL:
                reason = getattr(error.certificate_error, "verify_message", None)
                detail = f" ({reason or error.certificate_error})"
            raise OAuthError(
                f"{name}: certificate check failed at the {kind} endpoint{detail}", platform=name
            ) from None
        except aiohttp.ServerFingerprintMismatch:
            raise OAuthError(
                f"{name}: certificate check failed at the {kind} endpoint (pin mismatch)",
                platform=name,
            ) from None
        except aiohttp.ClientSSLError:
            raise OAuthError(
                f"{name}: the TLS handshake with the {kind} endpoint failed", platform=name
            ) from None
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
            self._raise_transport(name, kind, error, phase)
        except aiohttp.ClientError as error:
            # ClientResponseError and kin carry the request headers (the
            # credentials, a bearer token) in their repr: never chain them.
            raise OAuthError(
                f"{name}: the {kind} request failed ({type(error).__name__})", platform=name
            ) from None
        return response, body

    def _raise_transport(
        self, name: str, kind: str, error: BaseException, phase: Mapping[str, bool]
    ) -> NoReturn:
        """Raise :class:`ProviderUnavailable` for a timeout or a broken connection."""
        what = (
            f"did not answer within {self._timeout_seconds:g} s"
            if isinstance(error, TimeoutError)
            else f"could not be reached ({type(error).__name__})"
        )
        raise ProviderUnavailable(f"{name}: the {kind} endpoint {what}", platform=name) from None

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
