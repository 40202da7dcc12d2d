"""The composition root: the one place where adapters are wired into services.

Everything else in the bot receives the :class:`Services` it needs; nothing
below this module picks an adapter or reads the environment.
"""

from __future__ import annotations

import asyncio
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
    MemorySecurityMetrics,
    MemoryTokenVault,
    MemoryUserDataStore,
)
from timmybot_bot.app.messagebus import MessageBus
from timmybot_bot.app.recorder import AdminRecorder
from timmybot_bot.runtime import data_dir
from timmybot_bot.runtime.audit_keys import audit_keys
from timmybot_bot.runtime.keys import key_id_for, load_or_create_key, parse_key
from timmybot_bot.runtime.settings import ConfigurationError, Settings, listens_everywhere
from timmybot_bot.runtime.vault_rekey import running_vault_keys
from timmybot_bot.web.tls import server_tls_context
from timmybot_core import (
    AccessPolicyStore,
    AccessSettings,
    AccountLinkService,
    AlarmMonitor,
    Alerter,
    AuditLog,
    AuditSettings,
    AuditTrailService,
    Clock,
    DataRetentionService,
    ErasureJournal,
    IncidentResponseService,
    IncidentSettings,
    IncidentStore,
    InputValidator,
    LinkStateStore,
    MusicCatalog,
    OAuthClient,
    Pseudonymizer,
    ResponseSanitizer,
    RetentionSettings,
    SecureTokenService,
    SecurityAuditLogger,
    SecurityMetrics,
    ServerAccessControl,
    SuspicionMeter,
    Switch,
    SystemClock,
    TokenRotationService,
    TokenSettings,
    TokenVault,
    UserDataStore,
    ValidationPolicy,
)
from timmybot_core.services.refusals import RefusalLedger

if TYPE_CHECKING:
    from timmybot_adapters.aws import AwsClients, AwsConfig, TableNames
    from timmybot_adapters.oauth import OAuthProvider
    from timmybot_core.ports.digest_anchor import DigestAnchor

__all__ = ["PrometheusSource", "Services", "Settings", "bootstrap", "check_settings"]

Closer = Callable[[], Awaitable[None]]


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
class Services:
    """The services the bot's commands, console and web server use."""

    settings: Settings
    clock: Clock
    #: Runs every use case: guard, admin check, handler (see :mod:`timmybot_bot.app`).
    bus: MessageBus
    validator: InputValidator
    sanitizer: ResponseSanitizer
    pseudonymizer: Pseudonymizer = attrs.field(repr=False)
    security_log: SecurityAuditLogger
    suspicion: SuspicionMeter
    metrics: SecurityMetrics
    alerter: Alerter
    access: ServerAccessControl
    incidents: IncidentResponseService
    alarms: AlarmMonitor
    vault: TokenVault
    oauth: OAuthClient
    tokens: SecureTokenService
    links: AccountLinkService
    rotation: TokenRotationService
    catalog: MusicCatalog
    audit: AuditTrailService
    user_data: UserDataStore
    retention: DataRetentionService
    metrics_source: PrometheusSource | None = None
    #: The raw store behind ``access``: the scheduler's leases and job records.
    access_store: AccessPolicyStore = attrs.field(repr=False)
    _openers: tuple[Closer, ...] = attrs.field(default=(), alias="openers", repr=False)
    _closers: tuple[Closer, ...] = attrs.field(default=(), alias="closers", repr=False)

    async def open(self) -> None:
        """Open every store now (SQLite: create or upgrade its tables).

        Stores otherwise open on first use; the runtime calls this at
        start-up so that a damaged or too-new database stops the start
        (``StoreUnavailable``, ``SchemaVersionError``) instead of the first
        command.
        """
        for open_store in self._openers:
            await open_store()

    async def aclose(self) -> None:
        """Close stores and flush exporters, in reverse order of creation."""
        for close in reversed(self._closers):
            await close()


def _policy(settings: Settings) -> ValidationPolicy:
    if settings.validation_policy == "strict":
        return ValidationPolicy.strict()
    return ValidationPolicy.default()


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
        handle.shutdown()

    closers.append(shutdown)
    return OtelSecurityMetrics(handle.meter_provider), handle


def check_settings(settings: Settings) -> None:
    """Raise ``ConfigurationError`` for anything that would make start-up fail.

    Has no side effects (creates no directory or key file), so
    ``--check-config`` can call it.
    """
    if settings.backend == "aws":
        _aws_config(settings)
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
    # modes are too open, is refused (docs/operations.md, recovery).
    data_dir.check(settings)


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


@attrs.frozen
class _Stores:
    access: AccessPolicyStore
    incidents: IncidentStore
    vault: TokenVault
    link_states: LinkStateStore
    audit: AuditLog
    user_data: UserDataStore
    erasures: ErasureJournal
    opener: Closer | None = None
    alerter: Alerter | None = None
    anchor: DigestAnchor | None = None


def _vault_key(settings: Settings) -> bytes:
    if settings.vault_key is not None:
        return parse_key("TIMMYBOT_VAULT_KEY", settings.vault_key, exact=32)
    return load_or_create_key(settings.data_dir / "keys" / "vault.key", purpose="vault")


def _stores(settings: Settings, closers: list[Closer]) -> _Stores:
    if settings.backend == "memory":
        return _Stores(
            access=MemoryAccessPolicyStore(),
            incidents=MemoryIncidentStore(),
            vault=MemoryTokenVault(),
            link_states=MemoryLinkStateStore(),
            audit=MemoryAuditLog(),
            user_data=MemoryUserDataStore(),
            erasures=MemoryErasureJournal(),
        )
    if settings.backend == "sqlite":
        from timmybot_adapters.sqlite import (
            SqliteAccessPolicyStore,
            SqliteAuditLog,
            SqliteDatabase,
            SqliteErasureJournal,
            SqliteIncidentStore,
            SqliteLinkStateStore,
            SqliteTokenVault,
            SqliteUserDataStore,
        )

        # The current key, plus retired keys (records not yet moved) and a
        # staged key (a rekey in progress encrypts new records with it).
        keys = running_vault_keys(settings, _vault_key(settings))
        db = SqliteDatabase(settings.data_dir / "timmybot.db")
        closers.append(db.close)

        async def open_all() -> None:
            # Each open() migrates its component at once; the lazy stores
            # below then find the shared database already migrated.
            await SqliteAccessPolicyStore.open(db)
            await SqliteIncidentStore.open(db)
            await SqliteTokenVault.open(db, keys)
            await SqliteLinkStateStore.open(db, keys=keys)
            await SqliteAuditLog.open(db)
            await SqliteUserDataStore.open(db, keys=keys)
            await SqliteErasureJournal.open(db)

        return _Stores(
            access=SqliteAccessPolicyStore(db),
            incidents=SqliteIncidentStore(db),
            vault=SqliteTokenVault(db, keys),
            link_states=SqliteLinkStateStore(db, keys=keys),
            audit=SqliteAuditLog(db),
            user_data=SqliteUserDataStore(db, keys=keys),
            erasures=SqliteErasureJournal(db),
            opener=open_all,
        )
    return _aws_stores(settings, closers)


def _aws_config(settings: Settings) -> tuple[AwsConfig, TableNames]:
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


def _aws_stores(settings: Settings, closers: list[Closer]) -> _Stores:
    """Build the ``aws`` backend: Secrets Manager, DynamoDB and (with a topic) SNS."""
    # Imported here: boto3 is the optional ``aws`` extra.
    from timmybot_adapters.aws import (
        AwsClients,
        DynamoAccessPolicyStore,
        DynamoAuditLog,
        DynamoErasureJournal,
        DynamoIncidentStore,
        DynamoLinkStateStore,
        DynamoUserDataStore,
        SecretsManagerTokenVault,
        SnsAlerter,
    )
    from timmybot_adapters.aws.tables import check_tables

    config, tables = _aws_config(settings)
    # Building the clients is lazy: no AWS call, no credential lookup here.
    aws = AwsClients(config)
    closers.append(aws.aclose)
    topic = settings.aws_alert_topic_arn
    alerter = SnsAlerter(aws, topic_arn=topic) if topic is not None else None
    vault = SecretsManagerTokenVault(
        aws,
        prefix=settings.aws_secret_prefix,
        kms_key_id=settings.aws_kms_key_id,
        replica_regions=settings.aws_replica_regions,
    )

    async def open_all() -> None:
        # Fails at start-up, with the table's name, if a table is missing,
        # not active, or the role may not describe it.
        await check_tables(aws, tables)
        _attach_log_groups(settings, aws, closers)

    return _Stores(
        access=DynamoAccessPolicyStore(aws, tables.access),
        incidents=DynamoIncidentStore(aws, tables.incidents),
        vault=vault,
        link_states=DynamoLinkStateStore(aws, tables.link_states),
        audit=DynamoAuditLog(aws, tables.audit),
        user_data=DynamoUserDataStore(aws, tables.user_data),
        erasures=DynamoErasureJournal(aws, tables.access),
        opener=open_all,
        alerter=alerter,
        anchor=_s3_anchor(settings, aws),
    )


def _s3_anchor(settings: Settings, aws: AwsClients) -> DigestAnchor | None:
    from timmybot_adapters.aws.anchor import S3DigestAnchor

    if settings.aws_digest_bucket is None:
        return None
    return S3DigestAnchor(aws, settings.aws_digest_bucket, retention=settings.audit_retention)


def _digest_anchor(settings: Settings, stores: _Stores) -> DigestAnchor | None:
    """Where digests are also copied: the backend's own anchor, else a digest directory."""
    if stores.anchor is not None:
        return stores.anchor
    if settings.audit_digest_dir is None:
        return None
    from timmybot_adapters.sqlite.digest_directory import DirectoryDigestAnchor

    return DirectoryDigestAnchor(settings.audit_digest_dir)


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


def _providers(settings: Settings, extra: Sequence[OAuthProvider]) -> list[OAuthProvider]:
    from timmybot_adapters.oauth import discord, spotify

    providers = list(extra)
    if settings.spotify_client_id:
        providers.append(spotify(settings.spotify_client_id, settings.spotify_client_secret))
    if settings.discord_client_id:
        providers.append(discord(settings.discord_client_id, settings.discord_client_secret))
    return providers


def _oauth(
    settings: Settings, extra: Sequence[OAuthProvider], clock: Clock, closers: list[Closer]
) -> OAuthClient:
    from timmybot_adapters.oauth import AiohttpOAuthClient

    providers = _providers(settings, extra)
    client = AiohttpOAuthClient(
        providers, min_tls=settings.oauth_min_tls, clock=clock, timeout=settings.oauth_timeout
    )
    closers.append(client.close)
    return client


def _catalog(
    settings: Settings, extra: Sequence[OAuthProvider], clock: Clock, closers: list[Closer]
) -> MusicCatalog:
    """Build the catalog for the providers the OAuth client links that have one."""
    from timmybot_adapters.oauth.catalog import SpotifyWebApiCatalog, catalog_api_for

    apis = [api for p in _providers(settings, extra) if (api := catalog_api_for(p)) is not None]
    catalog = SpotifyWebApiCatalog(apis, min_tls=settings.oauth_min_tls, clock=clock)
    closers.append(catalog.close)
    return catalog


def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    extra_providers: Sequence[OAuthProvider] = (),
    oauth: OAuthClient | None = None,
    catalog: MusicCatalog | None = None,
) -> Services:
    """Build the services for ``settings``.

    ``clock`` replaces the system clock (tests pass a ``FakeClock``);
    ``extra_providers`` adds OAuth providers (the demo provider); ``oauth``
    replaces the OAuth client altogether, and ``catalog`` the music catalog
    (by default Spotify's Web API for the providers that have one: Spotify,
    the demo provider). Stores open lazily: building the services does no
    I/O beyond creating local key files on first run. Call
    :meth:`Services.aclose` when done.
    """
    check_settings(settings)
    clock = clock if clock is not None else SystemClock()
    closers: list[Closer] = []
    # Private from the start; on a first start, the database, the keys and
    # the identity that ties them together are created here.
    data_dir.prepare(settings)
    pseudonymizer = _pseudonymizer(settings)
    stores = _stores(settings, closers)
    metrics, metrics_source = _metrics(settings, closers)
    alerter = stores.alerter if stores.alerter is not None else LoggingAlerter()
    security_log = SecurityAuditLogger(pseudonymizer=pseudonymizer, clock=clock)
    suspicion = SuspicionMeter(clock)
    security_log.subscribe(suspicion.on_event)
    signer, key_ring = audit_keys(settings)
    sanitizer = ResponseSanitizer(allow_http=settings.allow_http_urls)
    audit = AuditTrailService(
        log=stores.audit,
        pseudonymizer=pseudonymizer,
        sanitizer=sanitizer,
        signer=signer,
        verifier=key_ring,
        clock=clock,
        settings=AuditSettings(
            retention=settings.audit_retention, digest_interval=settings.audit_digest_interval
        ),
        anchor=_digest_anchor(settings, stores),
    )
    # Security events join the audit log, where administrators can query
    # them; the final digest is written before the stores close.
    security_log.subscribe(audit.on_security_event)
    closers.append(audit.close)
    metrics.observe_suspicious_activity(suspicion.level)
    # Refusals no one authenticated (made-up callback states, an already
    # banned guild's commands): one record per reason and window, never an
    # alarm. Flushed before the audit trail closes (closers run in reverse).
    refusals = RefusalLedger(security_log=security_log, clock=clock)

    async def flush_refusals() -> None:
        await refusals.flush()

    closers.append(flush_refusals)
    access = ServerAccessControl(
        refusals=refusals,
        store=stores.access,
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
    incidents = IncidentResponseService(
        access=access,
        incidents=stores.incidents,
        security_log=security_log,
        metrics=metrics,
        alerter=alerter,
        clock=clock,
        suspicion=suspicion,
        settings=IncidentSettings(lockdown_duration=settings.lockdown_duration),
    )
    alarms = AlarmMonitor(incidents, clock)
    security_log.subscribe(alarms.on_event)
    oauth_client = oauth if oauth is not None else _oauth(settings, extra_providers, clock, closers)

    async def refresh_paused() -> bool:
        return (await access.switch_state(Switch.REFRESH_PAUSED)).active(clock.now())

    tokens = SecureTokenService(
        vault=stores.vault,
        oauth=oauth_client,
        security_log=security_log,
        metrics=metrics,
        clock=clock,
        refresh_paused=refresh_paused,
        settings=TokenSettings(claim_timeout=settings.token_claim_timeout),
    )
    links = AccountLinkService(
        oauth=oauth_client,
        states=stores.link_states,
        tokens=tokens,
        security_log=security_log,
        metrics=metrics,
        clock=clock,
        redirect_uri=settings.redirect_uri,
        refusals=refusals,
    )
    rotation = TokenRotationService(
        tokens=tokens, alerter=alerter, clock=clock, paused=refresh_paused
    )
    retention = DataRetentionService(
        tokens=tokens,
        user_data=stores.user_data,
        link_states=stores.link_states,
        access_store=stores.access,
        incidents=stores.incidents,
        audit=audit,
        clock=clock,
        # The same retention as the audit trail's own: verify() tells a
        # legitimate pruning from tampering by it.
        settings=RetentionSettings(
            audit_retention=settings.audit_retention, attempt_window=settings.attempt_window
        ),
        journal=stores.erasures,
        sealer=audit,
    )
    music_catalog = (
        catalog if catalog is not None else _catalog(settings, extra_providers, clock, closers)
    )
    validator = InputValidator(_policy(settings))
    # Each handler receives the services it names, and nothing else.
    bus = MessageBus(
        access=access,
        security_log=security_log,
        metrics=metrics,
        admin_role_ids=settings.admin_role_ids,
        dependencies={
            "settings": settings,
            "clock": clock,
            "validator": validator,
            "sanitizer": sanitizer,
            "security_log": security_log,
            "access": access,
            "incidents": incidents,
            "tokens": tokens,
            "links": links,
            "rotation": rotation,
            "catalog": music_catalog,
            "audit": audit,
            "retention": retention,
            "recorder": AdminRecorder(audit, pseudonymizer),
        },
    )
    return Services(
        settings=settings,
        clock=clock,
        bus=bus,
        validator=validator,
        sanitizer=sanitizer,
        pseudonymizer=pseudonymizer,
        security_log=security_log,
        suspicion=suspicion,
        metrics=metrics,
        alerter=alerter,
        access=access,
        incidents=incidents,
        alarms=alarms,
        vault=stores.vault,
        oauth=oauth_client,
        tokens=tokens,
        links=links,
        rotation=rotation,
        catalog=music_catalog,
        audit=audit,
        user_data=stores.user_data,
        retention=retention,
        metrics_source=metrics_source,
        access_store=stores.access,
        openers=(stores.opener,) if stores.opener is not None else (),
        closers=tuple(closers),
    )
