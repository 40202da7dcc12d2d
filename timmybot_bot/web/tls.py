"""TLS for the bot's own web server, for deployments without a TLS-terminating proxy.

With ``TIMMYBOT_WEB_TLS_CERT`` and ``TIMMYBOT_WEB_TLS_KEY`` the server speaks
HTTPS (TLS 1.2 at least, the ``ssl`` module's secure defaults; the context
is built by hand, so an ``SSLKEYLOGFILE`` in the environment cannot make
the process write the session keys of callbacks, which carry OAuth codes,
to disk). With
``TIMMYBOT_WEB_METRICS_CLIENT_CA`` as well, the server asks every client for
a certificate (optional at the handshake, so browsers on the callback are not
refused) and ``/metrics`` answers 403 unless the client presented one that
this CA issued: mutual TLS for the service that scrapes metrics.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from timmybot_bot.runtime.settings import ConfigurationError, Settings

__all__ = ["server_tls_context"]


def _load_error(name: str, path: Path, error: Exception) -> ConfigurationError:
    # The ssl module's messages name the problem, never the file's content.
    reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or "unreadable"
    return ConfigurationError(f"{name} {path} cannot be used: {reason}")


def server_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Return the web server's TLS context, or ``None`` for plain HTTP.

    Raises :class:`ConfigurationError` naming the setting when a file is
    missing, unreadable or not what it should be, or when the settings do
    not go together (a key without a certificate, a client CA without TLS).
    """
    cert, key = settings.web_tls_cert, settings.web_tls_key
    client_ca = settings.web_metrics_client_ca
    if cert is None:
        if key is not None:
            raise ConfigurationError("TIMMYBOT_WEB_TLS_KEY is set without TIMMYBOT_WEB_TLS_CERT")
        if client_ca is not None:
            raise ConfigurationError(
                "TIMMYBOT_WEB_METRICS_CLIENT_CA needs TIMMYBOT_WEB_TLS_CERT: client "
                "certificates only exist over TLS"
            )
        return None
    if key is None:
        raise ConfigurationError("TIMMYBOT_WEB_TLS_CERT is set without TIMMYBOT_WEB_TLS_KEY")
    # Not ssl.create_default_context: it obeys SSLKEYLOGFILE, which would write
    # every session key (and so every callback's OAuth code) to that file.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise _load_error("TIMMYBOT_WEB_TLS_CERT / TIMMYBOT_WEB_TLS_KEY", cert, error) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as error:
            raise _load_error("TIMMYBOT_WEB_METRICS_CLIENT_CA", client_ca, error) from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
