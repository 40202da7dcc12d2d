"""The public callback under attack, over real sockets on 127.0.0.1.

No stranger can raise an incident or fill the audit trail; each client
address is rate limited; HEAD never completes a link; the page names the
account linked (masked); no request byte ever reaches a log line; TLS and
client certificates for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from timmybot_bot.app.commands import Invocation
from timmybot_bot.console.lines import run_command
from timmybot_bot.demo.provider import DemoOAuthProvider
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_bot.runtime.settings import ConfigurationError
from timmybot_bot.web.clients import ClientRateLimiter, client_address, parse_networks
from timmybot_bot.web.server import SECURITY_HEADERS, WebServer, build_app, build_web_app
from timmybot_bot.web.tls import server_tls_context
from timmybot_core import AuditKind, FakeClock, Switch
from timmybot_core.domain.events import SecurityEventType
from timmybot_core.ports.access import Ban
from timmybot_core.services.refusals import RefusalLedger

START = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
CANARY = "plantedcanary7f3a"
USER = Invocation(user_id=123_456_789_012_345_678, guild_id=42)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_security_headers(headers: object) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name  # type: ignore[attr-defined]
    assert headers.get("Server") == "TimmyBot"  # type: ignore[attr-defined]


@attrs.define
class Site:
    services: Services
    web: WebServer
    clock: FakeClock


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    clock = FakeClock(START)
    services = bootstrap(Settings(backend="memory", web_callback_rate_limit=1000), clock=clock)
    web = WebServer(build_web_app(services), port=0)
    await web.start()
    try:
        yield Site(services=services, web=web, clock=clock)
    finally:
        await web.stop()
        await services.aclose()


@pytest.mark.parametrize(
    "query",
    [
        "state=" + "A" * 43 + "&code=x",  # well-shaped, unknown
        "state=short&code=x",  # malformed
        "state=" + "B" * 43,  # no code
    ],
)
async def test_40_bogus_callbacks_leave_every_switch_off_and_declare_nothing(
    site: Site, query: str
) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(40):
            async with http.get(f"{site.web.base_url}/oauth/callback?{query}") as response:
                assert response.status == 400
    services = site.services
    for switch in Switch:
        assert not (await services.access.switch_state(switch)).on, switch
    assert await services.incidents.recent(10) == []
    assert list(services.alarms.raised) == []
    assert services.suspicion.level() == 0
    assert services.metrics.snapshot().auth_failures == {}
    assert not [
        e
        for e in services.security_log.recent(500)
        if e.type is SecurityEventType.AUTHENTICATION_ATTEMPT
    ]
    # One audit record for the window, with the count: not 40 rows.
    site.clock.advance(services.links.refusals.window)
    assert await services.links.refusals.flush_due() == 1
    page = await services.audit.get_audit_history(
        START - dt.timedelta(days=1), START + dt.timedelta(days=1), kind=AuditKind.SECURITY
    )
    refused = [r for r in page.records if r.action == "REQUESTS_REFUSED"]
    assert len(refused) == 1
    assert refused[0].details["count"] == 40
    assert len(page.records) == 1


async def test_repeated_denials_from_a_banned_guild_are_one_record_per_window(
    site: Site,
) -> None:
    services = site.services
    guild = 987_654_321
    await services.access_store.place_ban(
        Ban(guild_id=guild, until=START + dt.timedelta(hours=1), reason="test", placed_at=START),
        now=START,
    )
    for _ in range(50):
        decision = await services.access.check(guild, 5, "search")
        assert not decision.allowed
    assert not [
        e
        for e in services.security_log.recent(500)
        if e.type is SecurityEventType.UNAUTHORIZED_ACCESS
    ]
    await services.links.refusals.flush()
    (event,) = [
        e for e in services.security_log.recent(500) if e.type is SecurityEventType.REQUESTS_REFUSED
    ]
    assert event.details["count"] == 50
    assert event.details["reason"] == "guild_banned"
    assert event.guild is not None  # pseudonymous, but the guild is named
    assert list(services.alarms.raised) == []


async def test_refusal_windows_are_recorded_apart() -> None:
    clock = FakeClock(START)
    services = bootstrap(Settings(backend="memory"), clock=clock)
    try:
        ledger = RefusalLedger(security_log=services.security_log, clock=clock)
        for _ in range(3):
            await ledger.refuse(source="oauth_callback", reason="unknown")
        clock.advance(ledger.window)
        await ledger.refuse(source="oauth_callback", reason="unknown")  # closes the first window
        await ledger.flush()
        counts = [
            int(e.details["count"] or 0)
            for e in services.security_log.recent(50)
            if e.type is SecurityEventType.REQUESTS_REFUSED
        ]
        assert sorted(counts) == [1, 3]
    finally:
        await services.aclose()


# -- rate limit -------------------------------------------------------------------


@attrs.define
class Ticks:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_callback_answers_429_past_the_limit_per_client(site: Site) -> None:
    ticks = Ticks()
    app = build_app(site.services.links, callback_rate_limit=3, rate_clock=ticks)
    web = WebServer(app, port=0)
    await web.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{web.base_url}/oauth/callback?state={'A' * 43}&code=x"
            statuses = []
            for _ in range(5):
                async with http.get(url) as response:
                    statuses.append(response.status)
                    last = response
            assert statuses == [400, 400, 400, 429, 429]
            assert int(last.headers["Retry-After"]) >= 1
            assert_security_headers(last.headers)
            ticks.now += 60  # the bucket refills
            async with http.get(url) as response:
                assert response.status == 400
    finally:
        await web.stop()
    assert site.services.metrics.snapshot().auth_failures == {}


def test_forwarded_for_is_believed_only_from_a_configured_proxy() -> None:
    proxies = parse_networks("127.0.0.1, 10.0.0.0/8")
    # From a stranger, the header is the stranger's own words.
    assert client_address("203.0.113.9", ["198.51.100.1"], proxies) == "203.0.113.9"
    assert client_address("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"
    # From our proxy, the right-most hop that is not a proxy is the client.
    assert client_address("127.0.0.1", ["198.51.100.1, 10.1.2.3"], proxies) == "198.51.100.1"
    # A hop the client wrote left of the real one changes nothing.
    assert client_address("127.0.0.1", ["1.2.3.4", "198.51.100.1"], proxies) == "198.51.100.1"
    # A garbled hop: stop at the last address we could vouch for.
    assert client_address("127.0.0.1", ["198.51.100.1, junk"], proxies) == "127.0.0.1"
    with pytest.raises(ValueError, match="not an IP address"):
        parse_networks("10.0.0.0/8, proxy.example")


def test_a_hop_with_a_port_and_a_proxy_in_mapped_form_are_understood() -> None:
    proxies = parse_networks("10.0.0.0/8")
    # Some proxies (Azure Application Gateway) write the client's port too;
    # refusing such a hop would put every client in the proxy's one bucket.
    assert client_address("10.0.0.1", ["198.51.100.1:5555"], proxies) == "198.51.100.1"
    assert client_address("10.0.0.1", ["[2001:db8::7]:5555"], proxies) == "2001:db8::7"
    assert client_address("10.0.0.1", ["198.51.100.1:port"], proxies) == "10.0.0.1"
    assert client_address("10.0.0.1", ["198.51.100.1:"], proxies) == "10.0.0.1"
    # Peers are compared unmapped, so a proxy network written mapped must be too.
    mapped = parse_networks("::ffff:10.0.0.0/104")
    assert mapped == parse_networks("10.0.0.0/8")
    assert client_address("::ffff:10.0.0.1", ["203.0.113.5"], mapped) == "203.0.113.5"


async def test_a_trusted_proxy_gives_each_client_its_own_bucket(site: Site) -> None:
    app = build_app(
        site.services.links,
        callback_rate_limit=1,
        trusted_proxies=parse_networks("127.0.0.1"),
        rate_clock=Ticks(),
    )
    web = WebServer(app, port=0)
    await web.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{web.base_url}/oauth/callback?state={'A' * 43}&code=x"
            seen = []
            for client in ("198.51.100.1", "198.51.100.2", "198.51.100.1"):
                async with http.get(url, headers={"X-Forwarded-For": client}) as response:
                    seen.append(response.status)
            assert seen == [400, 400, 429]
    finally:
        await web.stop()


def test_ipv6_clients_share_a_bucket_per_64() -> None:
    limiter = ClientRateLimiter(1, clock=Ticks())
    assert limiter.allow("2001:db8:1:2::1") == 0.0
    assert limiter.allow("2001:db8:1:2::ffff") > 0  # same /64
    assert limiter.allow("2001:db8:1:3::1") == 0.0


def test_a_flood_of_addresses_cannot_push_out_a_limited_clients_bucket() -> None:
    # One holder of 2001:db8:1::/48 spends its /64's bucket, then sends from
    # 10,000 more of its /64s: the table is full, yet its bucket stays.
    ticks = Ticks()
    limiter = ClientRateLimiter(1, clock=ticks)
    assert limiter.allow("2001:db8:1::1") == 0.0
    for subnet in range(1, 10_001):
        ticks.now += 0.001
        limiter.allow(f"2001:db8:1:{subnet:x}::1")
    assert limiter.allow("2001:db8:1::1") > 0
    # A new address while every bucket is still refilling waits for the
    # oldest; once the buckets have refilled, new addresses take their place.
    assert limiter.allow("198.51.100.7") > 0
    ticks.now += 60.0
    assert limiter.allow("198.51.100.7") == 0.0
    assert limiter.allow("198.51.100.7") > 0


# -- HEAD, the masked account ----------------------------------------------------------


@pytest.fixture
async def linking(tmp_path: Path) -> AsyncIterator[tuple[Services, WebServer, DemoOAuthProvider]]:
    port = free_port()
    settings = Settings(backend="memory", web_port=port, allowed_guilds={42})
    demo = DemoOAuthProvider(redirect_uris=[settings.redirect_uri], auto_approve=True)
    await demo.start()
    services = bootstrap(settings, extra_providers=[demo.oauth_provider()])
    web = WebServer(build_web_app(services), port=port)
    await web.start()
    try:
        yield services, web, demo
    finally:
        await web.stop()
        await services.aclose()
        await demo.stop()


async def _callback_url(services: Services, http: aiohttp.ClientSession) -> str:
    reply = await run_command(services, USER, "link", "demo")
    match = re.search(r"<(http[^>]+)>", reply.text)
    assert match, reply.text
    async with http.get(match.group(1), allow_redirects=False) as response:
        assert response.status in (302, 303), response.status
        return response.headers["Location"]


async def test_head_never_completes_a_link_and_the_page_names_the_account_masked(
    linking: tuple[Services, WebServer, DemoOAuthProvider],
) -> None:
    services, _, _ = linking
    async with aiohttp.ClientSession() as http:
        callback = await _callback_url(services, http)
        async with http.head(callback) as response:
            assert response.status == 405
            assert_security_headers(response.headers)
        assert await services.vault.get(USER.user_id) is None
        async with http.get(callback) as response:  # the state is still good
            body = await response.text()
            assert response.status == 200, body
    assert await services.vault.get(USER.user_id) is not None
    last_four = str(USER.user_id)[-4:]
    assert f"•{last_four}" in body
    assert str(USER.user_id) not in body


# -- no request data in any log -----------------------------------------------------------


@pytest.fixture
def every_log_line() -> Iterator[io.StringIO]:
    """Everything any logger writes, at every level, with tracebacks."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), timeout=10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        # A request line over 8,190 bytes with a planted code.
        f"GET /oauth/callback?code={CANARY}&state={'x' * 9000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        # A header over 8,190 bytes with a planted bearer token.
        f"GET /healthz/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {CANARY}{'y' * 9000}\r\n\r\n",
        # Not HTTP at all.
        f"{CANARY} nonsense\r\n\r\n",
        # A malformed header line.
        f"GET /healthz/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX {CANARY}\r\n\r\n",
    ],
)
async def test_a_refused_request_leaves_no_request_bytes_in_any_log(
    site: Site, every_log_line: io.StringIO, request_bytes: str
) -> None:
    assert site.web.port is not None
    answer = await _raw(site.web.port, request_bytes.encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 400 ", head), head[:80]
    headers = dict(
        line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line
    )
    assert_security_headers(headers)
    assert "python" not in headers["Server"].lower()
    assert CANARY.encode() not in answer
    assert b"xxxxxxxx" not in body and b"yyyyyyyy" not in body
    logged = every_log_line.getvalue()
    assert CANARY not in logged
    assert "xxxxxxxx" not in logged and "yyyyyyyy" not in logged
    assert "Traceback" not in logged
    assert "refused a request at the HTTP layer: 400" in logged


async def test_our_own_log_lines_name_the_route_not_the_path(
    every_log_line: io.StringIO,
) -> None:
    @attrs.define
    class Crashing:
        refusals: object = None

        async def complete(self, state: str, code: str) -> object:
            raise RuntimeError(CANARY)

    web = WebServer(build_app(Crashing()), port=0)  # type: ignore[arg-type]
    await web.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{web.base_url}/oauth/callback?state={CANARY}&code={CANARY}") as response,
        ):
            assert response.status == 500
    finally:
        await web.stop()
    logged = every_log_line.getvalue()
    assert "unhandled error on /oauth/callback: RuntimeError" in logged
    assert CANARY not in logged


# -- TLS, client certificates for /metrics ------------------------------------------


@attrs.frozen
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    other_cert: Path
    other_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name, issuer_key = issuer if issuer is not None else (_name(subject), key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_cert, ca_key = _issue("timmybot test CA", None, ca=True)
    other_ca_cert, other_ca_key = _issue("someone else's CA", None, ca=True)
    server = _write(
        tmp_path / "server.pem", *_issue("localhost", (ca_cert.subject, ca_key), server=True)
    )
    client = _write(tmp_path / "client.pem", *_issue("scraper", (ca_cert.subject, ca_key)))
    other = _write(
        tmp_path / "other.pem", *_issue("stranger", (other_ca_cert.subject, other_ca_key))
    )
    ca = tmp_path / "ca.pem"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return Pki(
        ca=ca,
        cert=server,
        key=server.with_suffix(".key"),
        client_cert=client,
        client_key=client.with_suffix(".key"),
        other_cert=other,
        other_key=other.with_suffix(".key"),
    )


@attrs.define
class PrometheusText:
    serves_prometheus: bool = True

    def prometheus_text(self) -> bytes:
        return b"# TYPE timmybot_security_unauthorized_access_total counter\n"


async def test_tls_is_served_and_metrics_needs_a_client_certificate(site: Site, pki: Pki) -> None:
    settings = Settings(
        backend="memory",
        web_tls_cert=pki.cert,
        web_tls_key=pki.key,
        web_metrics_client_ca=pki.ca,
    )
    context = server_tls_context(settings)
    assert context is not None
    app = build_app(site.services.links, metrics=PrometheusText(), metrics_client_certificates=True)
    web = WebServer(app, host="127.0.0.1", port=0, ssl_context=context)
    await web.start()
    assert web.base_url.startswith("https://127.0.0.1:")
    url = f"https://localhost:{web.port}"

    def client(cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        if cert is not None:
            ctx.load_cert_chain(cert, key)
        return ctx

    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz/live", ssl=client()) as response:
                assert response.status == 200  # no certificate needed here
            async with http.get(f"{url}/metrics", ssl=client()) as response:
                assert response.status == 403
                assert_security_headers(response.headers)
            async with http.get(
                f"{url}/metrics", ssl=client(pki.client_cert, pki.client_key)
            ) as response:
                assert response.status == 200
                assert b"timmybot_security" in await response.read()
            # A certificate from another CA fails the handshake itself.
            with pytest.raises(aiohttp.ClientError):
                async with http.get(
                    f"{url}/metrics", ssl=client(pki.other_cert, pki.other_key)
                ) as response:
                    await response.read()
    finally:
        await web.stop()


async def test_the_tls_server_never_writes_session_keys_to_sslkeylogfile(
    site: Site, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ssl.create_default_context obeys SSLKEYLOGFILE: every session key, and so
    # every callback's OAuth code, could be decrypted from a capture.
    keylog = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    context = server_tls_context(
        Settings(backend="memory", web_tls_cert=pki.cert, web_tls_key=pki.key)
    )
    assert context is not None
    assert context.keylog_filename is None
    web = WebServer(build_app(site.services.links), port=0, ssl_context=context)
    await web.start()
    assert web.port is not None
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # by hand: no key log of its own
    client.load_verify_locations(cafile=str(pki.ca))
    try:
        reader, writer = await asyncio.open_connection(
            "localhost", web.port, ssl=client, server_hostname="localhost"
        )
        try:
            writer.write(
                b"GET /healthz/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            answer = await asyncio.wait_for(reader.read(), timeout=10)
        finally:
            writer.close()
    finally:
        await web.stop()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert not keylog.exists()


def test_tls_settings_that_do_not_go_together_name_the_setting(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="TIMMYBOT_WEB_TLS_KEY is set without"):
        server_tls_context(Settings(web_tls_key=pki.key))
    with pytest.raises(ConfigurationError, match="TIMMYBOT_WEB_METRICS_CLIENT_CA needs"):
        server_tls_context(Settings(web_metrics_client_ca=pki.ca))
    with pytest.raises(ConfigurationError, match="TIMMYBOT_WEB_TLS_CERT"):
        server_tls_context(Settings(web_tls_cert=tmp_path / "missing.pem", web_tls_key=pki.key))
    with pytest.raises(ConfigurationError, match="TIMMYBOT_WEB_TLS_CERT / TIMMYBOT_WEB_TLS_KEY"):
        server_tls_context(Settings(web_tls_cert=pki.cert, web_tls_key=pki.client_key))


async def test_the_ledger_keeps_bounded_keys_and_folds_the_rest() -> None:
    clock = FakeClock(START)
    services = bootstrap(Settings(backend="memory"), clock=clock)
    try:
        ledger = RefusalLedger(security_log=services.security_log, clock=clock, max_keys=3)
        for guild in range(1, 11):
            await ledger.refuse(source="access", reason="guild_banned", guild_id=guild)
        assert ledger.pending() == 10
        assert await ledger.flush() <= 4  # three guilds, and one key for the rest
        events = [
            e
            for e in services.security_log.recent(50)
            if e.type is SecurityEventType.REQUESTS_REFUSED
        ]
        assert sum(int(e.details["count"] or 0) for e in events) == 10
        assert any(e.guild is None for e in events)
    finally:
        await services.aclose()
