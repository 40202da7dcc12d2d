"""One function that builds only the parts of TimmyBot's security a bot asks for.

:func:`compose` is the composition for other bots, and TimmyBot's own
:func:`~timmybot_bot.runtime.bootstrap.bootstrap` builds its security parts with it
too. Ask for any of:

``guard``
    :class:`~timmybot_core.ServerAccessControl` over the access store: the
    allowlist, counted attempts, bans, the kill switch and lockdown; and the
    command rate limits, :class:`~timmybot_core.RateLimiter`, over the
    rate-limit store.
``vault``
    the token vault and :class:`~timmybot_core.SecureTokenService` (needs an
    OAuth client: pass ``oauth=``, or the one built from the settings'
    providers is used).
``audit``
    the tamper-evident :class:`~timmybot_core.AuditTrailService`, signed with
    the Ed25519 key TimmyBot keeps under ``data_dir/keys``.
``privacy``
    :class:`~timmybot_core.DataRetentionService` (export, erasure, clean-up),
    with the host bot's own stores (``host_data=``) taking part; it needs the
    other three, which it brings in.

Always built, being small and needed by every part: the clock, the
sanitizer, the pseudonymizer, the security log, the suspicion meter, the
metrics, the refusal ledger and the alerter. The backend is the settings' (``sqlite``, the
embedded default; ``aws``; or ``memory``). Key files are handled as TimmyBot
handles them (:mod:`timmybot_bot.runtime.data_dir`): on a first start the data
directory, its database, its key files (0600) and its identity are created;
later, a missing or replaced one stops the start. A key set in the settings
wins. Only the stores of the parts asked for are built and opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Final, Protocol

import attrs

from timmybot_adapters.log import LoggingAlerter
from timmybot_adapters.memory import (
    MemoryAccessPolicyStore,
    MemoryAuditLog,
    MemoryErasureJournal,
    MemoryIncidentStore,
    MemoryLinkStateStore,
    MemoryRateLimitStore,
    MemorySecurityMetrics,
    MemoryTokenVault,
    MemoryUserDataStore,
)
from timmybot_bot.runtime import data_dir
from timmybot_bot.runtime.audit_keys import audit_keys
from timmybot_bot.runtime.keys import key_id_for, load_or_create_key, parse_key
from timmybot_bot.runtime.logs import MessageOnly
from timmybot_bot.runtime.settings import ConfigurationError, Settings, listens_everywhere
from timmybot_bot.runtime.vault_rekey import check_record_keys, running_vault_keys
from timmybot_bot.web.tls import server_tls_context
from timmybot_core import (
    AccessPolicyStore,
    AccessSettings,
    Alerter,
    AuditLog,
    AuditSettings,
    AuditTrailService,
    Clock,
    DataRetentionService,
    ErasureJournal,
    HostUserData,
    IncidentStore,
    LinkStateStore,
    OAuthClient,
    Pseudonymizer,
    RateLimiter,
    RateLimitSettings,
    RateLimitStore,
    ResponseSanitizer,
    RetentionSettings,
    SecureTokenService,
    SecurityAuditLogger,
    SecurityMetrics,
    ServerAccessControl,
    SuspicionMeter,
    Switch,
    SystemClock,
    TokenSettings,
    TokenVault,
    UserDataStore,
)
from timmybot_core.services.refusals import RefusalLedger

if TYPE_CHECKING:
    from timmybot_adapters.aws import AwsClients, AwsConfig, TableNames
    from timmybot_adapters.oauth import OAuthProvider
    from timmybot_adapters.sqlite import SqliteDatabase
    from timmybot_adapters.sqlite.crypto import VaultKeys
    from timmybot_core.ports.digest_anchor import DigestAnchor
    from timmybot_core.ports.refresh_leases import RefreshLeases

__all__ = [
    "METRICS_CLOSE_BUDGET",
    "VAULT_WRITE_BUDGET",
    "Closer",
    "PrometheusSource",
    "Security",
    "aws_config",
    "build_oauth_client",
    "check_claim_timeout",
    "check_settings",
    "close_all",
    "compose",
    "oauth_providers",
]

Closer = Callable[[], Awaitable[object]]

#: How long the metrics exporter may take to send its last export at a stop.
METRICS_CLOSE_BUDGET: Final = timedelta(seconds=2)

_log = logging.getLogger(__name__)


async def close_all(closers: Sequence[Closer]) -> None:
    """Run every closer, last created first; then raise the first failure, if any.

    One closer failing (an exporter that cannot flush) must not skip the
    rest: the audit trail's last digest and the database close come after.
    """
    failures: list[Exception] = []
    for close in reversed(closers):
        try:
            await close()
        except Exception as error:  # noqa: BLE001 - re-raised once every closer ran
            _log.error("closing %s failed (%s)", _name_of(close), type(error).__name__)
            failures.append(error)
    if failures:
        raise failures[0]


def _name_of(close: Closer) -> str:
    owner = getattr(close, "__self__", None)
    return type(owner).__name__ if owner is not None else getattr(close, "__qualname__", "?")


class PrometheusSource(Protocol):
    """What the web server needs to serve ``/metrics`` (the OpenTelemetry handle)."""

    @property
    def serves_prometheus(self) -> bool:
        """Whether :meth:`prometheus_text` has anything to serve."""
        ...

    def prometheus_text(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        ...


@attrs.frozen(kw_only=True)
class Security:
    """What :func:`compose` built. A part that was not asked for is ``None``.

    Call :meth:`open` once at start-up (it opens the stores, so a damaged
    database stops the start) and :meth:`aclose` at the end (the audit trail
    writes its final signed digest; stores and exporters close).
    """

    settings: Settings
    clock: Clock
    sanitizer: ResponseSanitizer
    pseudonymizer: Pseudonymizer = attrs.field(repr=False)
    security_log: SecurityAuditLogger
    suspicion: SuspicionMeter
    metrics: SecurityMetrics
    metrics_source: PrometheusSource | None = None
    alerter: Alerter
    #: Unauthenticated refusals, counted per reason and window (never alarms).
    refusals: RefusalLedger
    access: ServerAccessControl | None = None
    #: The command rate limits (built with the guard).
    limiter: RateLimiter | None = None
    access_store: AccessPolicyStore | None = attrs.field(default=None, repr=False)
    incident_store: IncidentStore | None = attrs.field(default=None, repr=False)
    vault: TokenVault | None = None
    tokens: SecureTokenService | None = None
    link_states: LinkStateStore | None = attrs.field(default=None, repr=False)
    user_data: UserDataStore | None = attrs.field(default=None, repr=False)
    audit: AuditTrailService | None = None
    privacy: DataRetentionService | None = None
    openers: tuple[Closer, ...] = attrs.field(default=(), repr=False)
    closers: tuple[Closer, ...] = attrs.field(default=(), repr=False)
    _run_lock: contextlib.ExitStack = attrs.field(
        factory=contextlib.ExitStack, init=False, repr=False, eq=False
    )

    async def open(self) -> None:
        """Open every store now (SQLite: create or upgrade its tables).

        From here until :meth:`aclose`, the process holds the data
        directory's run lock, as TimmyBot's own bot does: a host bot is a
        bot process too, and ``timmybot-admin vault rekey`` (which refuses
        while one runs) and ``doctor`` must see it. Unseen, a rekey would
        leave it reading every record under a key it does not have.
        """
        if self.settings.backend != "memory":
            self._run_lock.enter_context(data_dir.run_lock(self.settings))
        try:
            for open_store in self.openers:
                await open_store()
        except BaseException:
            self._run_lock.close()
            raise

    async def aclose(self) -> None:
        """Close stores and flush exporters, last created first (see :func:`close_all`)."""
        try:
            await close_all(self.closers)
        finally:
            # Only once the stores stopped writing: a rekey may then begin.
            self._run_lock.close()


def aws_config(settings: Settings) -> tuple[AwsConfig, TableNames]:
    """Check the ``aws`` settings and return the client configuration and table names."""
    from timmybot_adapters.aws import AwsConfig, TableNames
    from timmybot_adapters.aws.alerts import check_topic_arn
    from timmybot_adapters.aws.vault import check_secret_prefix

    try:
        check_secret_prefix(settings.aws_secret_prefix)
        if settings.aws_alert_topic_arn is not None:
            check_topic_arn(settings.aws_alert_topic_arn)
        config = AwsConfig(
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            dynamodb_endpoint_url=settings.aws_dynamodb_endpoint_url,
            connect_timeout=settings.aws_connect_timeout.total_seconds(),
            read_timeout=settings.aws_read_timeout.total_seconds(),
            max_attempts=settings.aws_max_attempts,
        )
    except ValueError as error:
        raise ConfigurationError(f"TIMMYBOT_BACKEND=aws: {error}") from None
    key = settings.aws_kms_key_id
    if key is None or key.startswith("alias/aws/") or ":alias/aws/" in key:
        # Without it, Secrets Manager would silently use the AWS-managed
        # aws/secretsmanager key, which the stack's IAM policy refuses anyway.
        raise ConfigurationError(
            "TIMMYBOT_AWS_KMS_KEY_ID must name the customer-managed KMS key (the stack's "
            "KeyArn output) on TIMMYBOT_BACKEND=aws"
            + ("" if key is None else f", not the AWS-managed {key}")
        )
    return config, TableNames.with_prefix(settings.aws_table_prefix)


def oauth_providers(settings: Settings, extra: Sequence[OAuthProvider]) -> list[OAuthProvider]:
    """Return ``extra`` and the OAuth providers the settings configure (Spotify, Discord)."""
    from timmybot_adapters.oauth import discord, spotify

    providers = list(extra)
    for platform, build, client_id, secret in (
        ("SPOTIFY", spotify, settings.spotify_client_id, settings.spotify_client_secret),
        ("DISCORD", discord, settings.discord_client_id, settings.discord_client_secret),
    ):
        if not client_id:
            continue
        try:
            providers.append(build(client_id, secret))
        except ValueError as error:
            # The provider refuses the client ID (too long, not printable):
            # a setting's error, not a traceback at start-up. No value is
            # quoted: the message says what is wrong without it.
            raise ConfigurationError(f"TIMMYBOT_{platform}_CLIENT_ID: {error}") from None
    return providers


def check_settings(settings: Settings) -> None:
    """Raise ``ConfigurationError`` for anything that would make start-up fail.

    Has no side effects (creates no directory or key file), so
    ``--check-config`` can call it.
    """
    if settings.backend == "aws":
        aws_config(settings)
    if settings.pseudonym_key is not None:
        parse_key("TIMMYBOT_PSEUDONYM_KEY", settings.pseudonym_key)
    if settings.vault_key is not None:
        parse_key("TIMMYBOT_VAULT_KEY", settings.vault_key, exact=32)
    if settings.audit_signing_key is not None:
        parse_key("TIMMYBOT_AUDIT_SIGNING_KEY", settings.audit_signing_key, exact=32)
    if settings.backend != "memory":
        for name in ("pseudonym", "vault"):
            key_file = settings.data_dir / "keys" / f"{name}.key"
            if key_file.exists():
                load_or_create_key(key_file, purpose=name)
    if settings.public_url is None and (
        settings.web_port == 0 or listens_everywhere(settings.web_host)
    ):
        raise ConfigurationError(
            "TIMMYBOT_PUBLIC_URL is needed when TIMMYBOT_WEB_HOST listens on every interface "
            "or TIMMYBOT_WEB_PORT is 0: browsers must reach a definite callback address"
        )
    server_tls_context(settings)  # the files load, and the settings go together
    if settings.spotify_client_id or settings.discord_client_id:
        oauth_providers(settings, ())  # the providers accept the client IDs
    for platform, client_id, secret in (
        ("SPOTIFY", settings.spotify_client_id, settings.spotify_client_secret),
        ("DISCORD", settings.discord_client_id, settings.discord_client_secret),
    ):
        if secret and not client_id:
            raise ConfigurationError(
                f"TIMMYBOT_{platform}_CLIENT_SECRET is set without TIMMYBOT_{platform}_CLIENT_ID"
            )
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise ConfigurationError(f"TIMMYBOT_DATA_DIR {settings.data_dir} is not a directory")
    check_claim_timeout(settings)
    # A used directory whose database, keys or ring do not match, or whose
    # modes are too open, is refused (docs/operations.md, recovery); so are
    # vault records under a key that is not there (a lost staged or retired key).
    data_dir.check(settings)
    check_record_keys(settings)


#: What a refresh's vault write may take, on top of its provider calls.
VAULT_WRITE_BUDGET: Final = timedelta(seconds=5)


def check_claim_timeout(settings: Settings) -> None:
    """Refuse a claim timeout that a live refresh could outlast.

    A refresh holds its claim for at most two provider calls (one immediate
    retry after an unknown outcome, where the preset allows it) and its
    vault write. A shorter claim timeout would let another process take over
    a claim whose holder is still waiting for the provider's answer.
    """
    if settings.oauth_timeout <= timedelta(0):
        raise ConfigurationError("TIMMYBOT_OAUTH_TIMEOUT must be positive")
    needed = 2 * settings.oauth_timeout + VAULT_WRITE_BUDGET
    if settings.token_claim_timeout < needed:
        raise ConfigurationError(
            f"TIMMYBOT_TOKEN_CLAIM_TIMEOUT ({settings.token_claim_timeout}) must be at least "
            f"twice TIMMYBOT_OAUTH_TIMEOUT ({settings.oauth_timeout}) plus "
            f"{VAULT_WRITE_BUDGET.total_seconds():g} s for the vault write ({needed})"
        )


def _pseudonymizer(settings: Settings) -> Pseudonymizer:
    if settings.pseudonym_key is not None:
        key = parse_key("TIMMYBOT_PSEUDONYM_KEY", settings.pseudonym_key)
    elif settings.backend == "memory":
        # Nothing persists with the memory backend, so neither need pseudonyms.
        key = secrets.token_bytes(32)
    else:
        key = load_or_create_key(settings.data_dir / "keys" / "pseudonym.key", purpose="pseudonym")
    return Pseudonymizer(key=key, key_id=key_id_for(key, "p"))


def _metrics(
    settings: Settings, closers: list[Closer]
) -> tuple[SecurityMetrics, PrometheusSource | None]:
    if settings.metrics_exporter == "none":
        return MemorySecurityMetrics(), None
    # Imported here: OpenTelemetry is an optional extra, needed only when used.
    from timmybot_adapters.otel import OtelSecurityMetrics, build_meter_provider

    handle = build_meter_provider(
        settings.metrics_exporter,
        export_interval=settings.metrics_interval,
        # stdout carries the console's replies; exporters that print use stderr
        # (where container log drivers pick up EMF lines too).
        stream=sys.stderr,
    )

    async def shutdown() -> None:
        # Off the event loop and within its share of the stop's close budget
        # (5 s for everything): an exporter whose endpoint never answers
        # would otherwise hold the stop for the SDK's 30 s.
        await asyncio.to_thread(handle.shutdown, METRICS_CLOSE_BUDGET)

    closers.append(shutdown)
    return OtelSecurityMetrics(handle.meter_provider), handle


def _vault_key(settings: Settings) -> bytes:
    if settings.vault_key is not None:
        return parse_key("TIMMYBOT_VAULT_KEY", settings.vault_key, exact=32)
    return load_or_create_key(settings.data_dir / "keys" / "vault.key", purpose="vault")


class _Backend:
    """The settings' backend, building each store (and its keys) on first request only."""

    def __init__(self, settings: Settings, openers: list[Closer], closers: list[Closer]) -> None:
        self._settings = settings
        self._openers = openers
        self._closers = closers
        self._built: dict[str, object] = {}
        self._db: SqliteDatabase | None = None
        self._keys: VaultKeys | None = None
        self._aws: AwsClients | None = None

    # -- shared resources, created once ---------------------------------------

    def _database(self) -> SqliteDatabase:
        if self._db is None:
            from timmybot_adapters.sqlite import SqliteDatabase

            self._db = SqliteDatabase(self._settings.data_dir / "timmybot.db")
            self._closers.append(self._db.close)
        return self._db

    def _vault_keys(self) -> VaultKeys:
        if self._keys is None:
            # The current key, plus retired keys (records not yet moved) and
            # a staged key (a rekey in progress encrypts new records with it).
            self._keys = running_vault_keys(self._settings, _vault_key(self._settings))
        return self._keys

    def _clients(self) -> AwsClients:
        if self._aws is None:
            from timmybot_adapters.aws import AwsClients
            from timmybot_adapters.aws.tables import check_tables

            config, tables = aws_config(self._settings)
            # Building the clients is lazy: no AWS call, no credential lookup here.
            aws = AwsClients(config)
            self._aws = aws
            self._closers.append(aws.aclose)

            async def open_aws() -> None:
                # Fails at start-up, with the table's name, if a table is
                # missing, not active, or the role may not describe it.
                await check_tables(aws, tables)
                _attach_log_groups(self._settings, aws, self._closers)

            self._openers.append(open_aws)
        return self._aws

    def _table(self, name: str) -> str:
        return str(getattr(aws_config(self._settings)[1], name))

    def _once(self, name: str, build: Callable[[], object]) -> object:
        if name not in self._built:
            self._built[name] = build()
        return self._built[name]

    # -- the stores -------------------------------------------------------------

    def _store(self, name: str) -> object:
        """Build (once) the store ``name`` of :data:`_STORES` on the settings' backend."""

        def build() -> object:
            spec = _STORES[name]
            backend = self._settings.backend
            if backend == "memory":
                return spec.memory()
            if backend == "sqlite":
                import timmybot_adapters.sqlite

                cls = getattr(timmybot_adapters.sqlite, spec.sqlite)
                db = self._database()
                extra = {"keys": self._vault_keys()} if spec.encrypted else {}
                self._openers.append(lambda: cls.open(db, **extra))
                return cls(db, **extra)
            import timmybot_adapters.aws

            cls = getattr(timmybot_adapters.aws, spec.aws)
            return cls(self._clients(), self._table(spec.table))

        return self._once(name, build)

    def access(self) -> AccessPolicyStore:
        """Return the access store: attempts, bans, switches, the allowlist."""
        return self._store("access")  # type: ignore[return-value]

    def rate_limits(self) -> RateLimitStore:
        """Return the rate-limit store (sliding windows shared by every process)."""
        return self._store("rate_limits")  # type: ignore[return-value]

    def incidents(self) -> IncidentStore:
        """Return the incident store (also where retention holds are kept)."""
        return self._store("incidents")  # type: ignore[return-value]

    def link_states(self) -> LinkStateStore:
        """Return the pending account links (encrypted PKCE verifiers on SQLite)."""
        return self._store("link_states")  # type: ignore[return-value]

    def audit(self) -> AuditLog:
        """Return the audit log the trail writes to."""
        return self._store("audit")  # type: ignore[return-value]

    def user_data(self) -> UserDataStore:
        """Return users' preferences."""
        return self._store("user_data")  # type: ignore[return-value]

    def erasures(self) -> ErasureJournal:
        """Return the erasure journal (a request a crash interrupts is resumed)."""
        return self._store("erasures")  # type: ignore[return-value]

    def vault(self) -> TokenVault:
        """Return the token vault (AES-256-GCM on SQLite; Secrets Manager on AWS)."""
        return self._once("vault", self._build_vault)  # type: ignore[return-value]

    def _build_vault(self) -> object:
        settings = self._settings
        if settings.backend == "memory":
            return MemoryTokenVault()
        if settings.backend == "sqlite":
            from timmybot_adapters.sqlite import SqliteTokenVault

            db, keys = self._database(), self._vault_keys()
            self._openers.append(lambda: SqliteTokenVault.open(db, keys))
            return SqliteTokenVault(db, keys)
        from timmybot_adapters.aws import SecretsManagerTokenVault

        return SecretsManagerTokenVault(
            self._clients(),
            prefix=settings.aws_secret_prefix,
            kms_key_id=settings.aws_kms_key_id,
            replica_regions=settings.aws_replica_regions,
        )

    def refresh_leases(self) -> RefreshLeases | None:
        """Return where refresh claims live apart from the vault (aws: the access table).

        ``None`` elsewhere: the memory and SQLite vaults keep the claim in the
        record, where a write costs nothing; on Secrets Manager every write is
        a secret version, so the claim is a DynamoDB lease and a refresh is
        one ``PutSecretValue``.
        """
        if self._settings.backend != "aws":
            return None

        def build() -> object:
            from timmybot_adapters.aws import DynamoRefreshLeases

            return DynamoRefreshLeases(self._clients(), self._table("access"))

        return self._once("refresh_leases", build)  # type: ignore[return-value]

    def digest_anchor(self) -> DigestAnchor | None:
        """Return where digests are also copied: S3 Object Lock on AWS, else a digest directory."""
        settings = self._settings
        if settings.backend == "aws" and settings.aws_digest_bucket is not None:
            from timmybot_adapters.aws.anchor import S3DigestAnchor

            return S3DigestAnchor(
                self._clients(), settings.aws_digest_bucket, retention=settings.audit_retention
            )
        if settings.audit_digest_dir is None:
            return None
        from timmybot_adapters.sqlite.digest_directory import DirectoryDigestAnchor

        return DirectoryDigestAnchor(settings.audit_digest_dir)

    def alerter(self) -> Alerter:
        """Return SNS when a topic is configured on the ``aws`` backend, else the log."""
        topic = self._settings.aws_alert_topic_arn
        if self._settings.backend == "aws" and topic is not None:
            from timmybot_adapters.aws import SnsAlerter

            return SnsAlerter(self._clients(), topic_arn=topic)
        return LoggingAlerter()


@attrs.frozen
class _StoreSpec:
    """One store on each backend: the memory class, the SQLite and AWS class names."""

    memory: Callable[[], object]
    sqlite: str
    aws: str
    table: str  # the DynamoDB table (a field of TableNames)
    encrypted: bool = False  # the SQLite store encrypts with the vault keys


_STORES: Final = {
    "access": _StoreSpec(
        memory=MemoryAccessPolicyStore,
        sqlite="SqliteAccessPolicyStore",
        aws="DynamoAccessPolicyStore",
        table="access",
    ),
    "incidents": _StoreSpec(
        memory=MemoryIncidentStore,
        sqlite="SqliteIncidentStore",
        aws="DynamoIncidentStore",
        table="incidents",
    ),
    "link_states": _StoreSpec(
        memory=MemoryLinkStateStore,
        sqlite="SqliteLinkStateStore",
        aws="DynamoLinkStateStore",
        table="link_states",
        encrypted=True,
    ),
    "audit": _StoreSpec(
        memory=MemoryAuditLog, sqlite="SqliteAuditLog", aws="DynamoAuditLog", table="audit"
    ),
    "user_data": _StoreSpec(
        memory=MemoryUserDataStore,
        sqlite="SqliteUserDataStore",
        aws="DynamoUserDataStore",
        table="user_data",
        encrypted=True,
    ),
    # The rate-limit and erasure journal items live in the access table.
    "rate_limits": _StoreSpec(
        memory=MemoryRateLimitStore,
        sqlite="SqliteRateLimitStore",
        aws="DynamoRateLimitStore",
        table="access",
    ),
    "erasures": _StoreSpec(
        memory=MemoryErasureJournal,
        sqlite="SqliteErasureJournal",
        aws="DynamoErasureJournal",
        table="access",
    ),
}
"""The stores built the same way on every backend (the vault is built apart)."""


def _attach_log_groups(settings: Settings, aws: AwsClients, closers: list[Closer]) -> None:
    """Send the security and audit log lines to their CloudWatch Logs groups, if configured.

    By default the lines reach CloudWatch through the container's log driver
    (JSON lines on stdout, see :mod:`timmybot_bot.runtime.logs`); a group set
    here ships them directly as well, with watchtower, where no driver does.
    Done when the stores open: the handler starts a sender thread. Its closer
    flushes what is left.
    """
    import watchtower

    for group, logger_name in (
        (settings.aws_security_log_group, "timmybot.security"),
        (settings.aws_audit_log_group, "timmybot.audit"),
    ):
        if group is None:
            continue
        handler = watchtower.CloudWatchLogHandler(
            log_group_name=group,
            log_stream_name=f"{{machine_name}}/{logger_name}/{{process_id}}",
            boto3_client=aws.logs,
            # The stack creates the groups, encrypted, with their retention.
            create_log_group=False,
            send_interval=5,
        )
        # watchtower's own formatter appends the traceback, exception text
        # included; these groups get what stdout gets: the type only.
        handler.setFormatter(MessageOnly())
        logger = logging.getLogger(logger_name)
        logger.addHandler(handler)

        async def detach(
            handler: logging.Handler = handler, logger: logging.Logger = logger
        ) -> None:
            logger.removeHandler(handler)
            # close() sends what is queued; not on the event loop.
            await asyncio.to_thread(handler.close)

        # Closers run in reverse: placed just after the AWS clients' closer,
        # the handlers close after everything else (the audit trail's final
        # digest line included) and before the clients they send with.
        closers.insert(closers.index(aws.aclose) + 1, detach)


def build_oauth_client(
    settings: Settings, extra: Sequence[OAuthProvider], clock: Clock, closers: list[Closer]
) -> OAuthClient:
    """Build the aiohttp OAuth client for the settings' providers and ``extra``; closed last."""
    from timmybot_adapters.oauth import AiohttpOAuthClient

    client = AiohttpOAuthClient(
        oauth_providers(settings, extra),
        min_tls=settings.oauth_min_tls,
        clock=clock,
        timeout=settings.oauth_timeout,
    )
    closers.append(client.close)
    return client


def compose(
    settings: Settings,
    *,
    guard: bool = True,
    vault: bool = False,
    audit: bool = False,
    privacy: bool = False,
    host_data: Sequence[HostUserData] = (),
    clock: Clock | None = None,
    oauth: OAuthClient | None = None,
    extra_providers: Sequence[OAuthProvider] = (),
) -> Security:
    """Build the parts of TimmyBot's security that are asked for, on the settings' backend.

    ``privacy`` brings in the guard's store, the vault and the audit trail,
    which erasure and export need; ``host_data`` are the host bot's own
    stores that take part in export and erasure (see
    :class:`~timmybot_core.HostUserData`). ``oauth`` is the OAuth client the
    token service refreshes with (default: one for the settings' providers
    and ``extra_providers``). Building does no I/O beyond preparing the data
    directory as TimmyBot does (its keys and identity, on a first start);
    call :meth:`Security.open` to open the stores.

    Raises:
        ConfigurationError: a setting or a key file is wrong (the message
            names it), as for TimmyBot itself.
        ValueError: ``host_data`` is given without ``privacy``.
    """
    if host_data and not privacy:
        raise ValueError("host_data takes part in privacy requests: pass privacy=True too")
    check_settings(settings)
    if privacy:
        guard = vault = audit = True
    clock = clock if clock is not None else SystemClock()
    openers: list[Closer] = []
    closers: list[Closer] = []
    # The data directory as TimmyBot keeps it: private from the start; on a
    # first start the database, every key file and the identity that ties
    # them together are created, so a later composition with more parts
    # finds its keys (a used directory refuses to make new ones).
    data_dir.prepare(settings)
    backend = _Backend(settings, openers, closers)
    pseudonymizer = _pseudonymizer(settings)
    metrics, metrics_source = _metrics(settings, closers)
    alerter = backend.alerter()
    security_log = SecurityAuditLogger(pseudonymizer=pseudonymizer, clock=clock)
    suspicion = SuspicionMeter(clock)
    security_log.subscribe(suspicion.on_event)
    metrics.observe_suspicious_activity(suspicion.level)
    sanitizer = ResponseSanitizer(allow_http=settings.allow_http_urls)

    trail: AuditTrailService | None = None
    if audit:
        signer, key_ring = audit_keys(settings)
        trail = AuditTrailService(
            log=backend.audit(),
            pseudonymizer=pseudonymizer,
            sanitizer=sanitizer,
            signer=signer,
            verifier=key_ring,
            clock=clock,
            settings=AuditSettings(
                retention=settings.audit_retention,
                digest_interval=settings.audit_digest_interval,
            ),
            anchor=backend.digest_anchor(),
        )
        # Security events join the audit log, where administrators can query
        # them; the final digest is written before the stores close.
        security_log.subscribe(trail.on_security_event)
        closers.append(trail.close)

    # Refusals no one authenticated (made-up callback states, an already
    # banned guild's commands): one record per reason and window, never an
    # alarm. Flushed before the audit trail closes (closers run in reverse).
    refusals = RefusalLedger(security_log=security_log, clock=clock)

    closers.append(refusals.flush)

    access: ServerAccessControl | None = None
    limiter: RateLimiter | None = None
    if guard:
        limiter = RateLimiter(
            store=backend.rate_limits(),
            clock=clock,
            security_log=security_log,
            metrics=metrics,
            refusals=refusals,
            settings=RateLimitSettings(
                command=settings.rate_limit_command,
                quota_command=settings.rate_limit_provider_command,
                user=settings.rate_limit_user,
                guild=settings.rate_limit_guild,
                fail_open=settings.rate_limit_fail_mode == "open",
                quota_fail_open=settings.rate_limit_provider_fail_mode == "open",
            ),
        )
        access = ServerAccessControl(
            refusals=refusals,
            store=backend.access(),
            security_log=security_log,
            metrics=metrics,
            alerter=alerter,
            clock=clock,
            settings=AccessSettings(
                owner_ids=settings.owner_ids,
                allowed_guilds=settings.allowed_guilds,
                attempt_limit=settings.attempt_limit,
                attempt_window=settings.attempt_window,
                ban_duration=settings.ban_duration,
                lockdown_attempt_limit=settings.lockdown_attempt_limit,
                allow_direct_messages=settings.allow_direct_messages,
            ),
        )

    tokens: SecureTokenService | None = None
    if vault:
        if oauth is None:
            oauth = build_oauth_client(settings, extra_providers, clock, closers)
        tokens = SecureTokenService(
            vault=backend.vault(),
            oauth=oauth,
            security_log=security_log,
            metrics=metrics,
            clock=clock,
            settings=TokenSettings(claim_timeout=settings.token_claim_timeout),
            leases=backend.refresh_leases(),
            # The kill switch's flag lives in the guard's store.
            refresh_paused=_refresh_paused(access, clock),
        )

    retention: DataRetentionService | None = None
    if privacy:
        if tokens is None or trail is None:  # pragma: no cover - privacy brought them in
            raise AssertionError("privacy needs the vault and the audit trail")
        retention = DataRetentionService(
            tokens=tokens,
            user_data=backend.user_data(),
            link_states=backend.link_states(),
            access_store=backend.access(),
            incidents=backend.incidents(),
            audit=trail,
            clock=clock,
            # The same retention as the audit trail's own: verify() tells a
            # legitimate pruning from tampering by it.
            settings=RetentionSettings(
                audit_retention=settings.audit_retention,
                attempt_window=settings.attempt_window,
            ),
            participants=host_data,
            journal=backend.erasures(),
            sealer=trail,
        )

    return Security(
        settings=settings,
        clock=clock,
        sanitizer=sanitizer,
        pseudonymizer=pseudonymizer,
        security_log=security_log,
        suspicion=suspicion,
        metrics=metrics,
        metrics_source=metrics_source,
        alerter=alerter,
        refusals=refusals,
        access=access,
        limiter=limiter,
        access_store=backend.access() if guard else None,
        incident_store=backend.incidents() if privacy else None,
        vault=backend.vault() if vault else None,
        tokens=tokens,
        link_states=backend.link_states() if privacy else None,
        user_data=backend.user_data() if privacy else None,
        audit=trail,
        privacy=retention,
        openers=tuple(openers),
        closers=tuple(closers),
    )


def _refresh_paused(
    access: ServerAccessControl | None, clock: Clock
) -> Callable[[], Awaitable[bool]]:
    """Return the kill switch's ``refresh_paused`` flag (never on without the guard's store)."""

    async def refresh_paused() -> bool:
        if access is None:
            return False
        return (await access.switch_state(Switch.REFRESH_PAUSED)).active(clock.now())

    return refresh_paused
