"""The composition root: the one place where adapters are wired into services.

Everything else in the bot receives the :class:`Services` it needs; nothing
below this module picks an adapter or reads the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from timmybot_bot.app.messagebus import MessageBus
from timmybot_bot.app.recorder import AdminRecorder
from timmybot_bot.integrate.composition import (
    VAULT_WRITE_BUDGET,
    Closer,
    PrometheusSource,
    build_oauth_client,
    check_settings,
    close_all,
    compose,
    oauth_providers,
)
from timmybot_bot.runtime.settings import Settings
from timmybot_core import (
    AccessPolicyStore,
    AccountLinkService,
    AlarmMonitor,
    Alerter,
    AuditTrailService,
    Clock,
    DataRetentionService,
    IncidentResponseService,
    IncidentSettings,
    InputValidator,
    MusicCatalog,
    OAuthClient,
    Pseudonymizer,
    RateLimiter,
    ResponseSanitizer,
    SecureTokenService,
    SecurityAuditLogger,
    SecurityMetrics,
    ServerAccessControl,
    SuspicionMeter,
    Switch,
    SystemClock,
    TokenRotationService,
    TokenVault,
    UserDataStore,
    ValidationPolicy,
)

if TYPE_CHECKING:
    from timmybot_adapters.oauth import OAuthProvider

__all__ = [
    "VAULT_WRITE_BUDGET",
    "Services",
    "Settings",
    "bootstrap",
    "check_settings",
]


@attrs.frozen(kw_only=True)
class Services:
    """The services the bot's commands, console and web server use."""

    settings: Settings
    clock: Clock
    #: Runs every use case: guard, admin check, rate limit, handler (see :mod:`timmybot_bot.app`).
    bus: MessageBus
    validator: InputValidator
    sanitizer: ResponseSanitizer
    pseudonymizer: Pseudonymizer = attrs.field(repr=False)
    security_log: SecurityAuditLogger
    suspicion: SuspicionMeter
    metrics: SecurityMetrics
    alerter: Alerter
    access: ServerAccessControl
    limiter: RateLimiter
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
        """Close stores and flush exporters, last created first (see ``close_all``)."""
        await close_all(self._closers)


def _catalog(
    settings: Settings, extra: Sequence[OAuthProvider], clock: Clock, closers: list[Closer]
) -> MusicCatalog:
    """Build the catalog for the providers the OAuth client links that have one."""
    from timmybot_adapters.oauth.catalog import SpotifyWebApiCatalog, catalog_api_for

    apis = [
        api for p in oauth_providers(settings, extra) if (api := catalog_api_for(p)) is not None
    ]
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
    clock = clock if clock is not None else SystemClock()
    closers: list[Closer] = []
    if oauth is None:
        # No I/O until compose() has checked the settings: the client opens
        # its HTTP session on its first call.
        oauth_client: OAuthClient = build_oauth_client(settings, extra_providers, clock, closers)
    else:
        oauth_client = oauth
    # TimmyBot's security parts come from the same composition other bots use.
    security = compose(settings, privacy=True, clock=clock, oauth=oauth_client)
    closers.extend(security.closers)
    access, tokens, audit = security.access, security.tokens, security.audit
    retention, access_store = security.privacy, security.access_store
    incident_store, link_states = security.incident_store, security.link_states
    limiter = security.limiter
    if (
        access is None
        or limiter is None
        or tokens is None
        or audit is None
        or retention is None
        or access_store is None
        or incident_store is None
        or link_states is None
        or security.vault is None
        or security.user_data is None
    ):  # pragma: no cover - compose(privacy=True) builds them all
        raise AssertionError("compose(privacy=True) left a part out")
    security_log, metrics, alerter = security.security_log, security.metrics, security.alerter
    incidents = IncidentResponseService(
        access=access,
        incidents=incident_store,
        security_log=security_log,
        metrics=metrics,
        alerter=alerter,
        clock=clock,
        suspicion=security.suspicion,
        settings=IncidentSettings(lockdown_duration=settings.lockdown_duration),
    )
    alarms = AlarmMonitor(incidents, clock)
    security_log.subscribe(alarms.on_event)

    async def refresh_paused() -> bool:
        return (await access.switch_state(Switch.REFRESH_PAUSED)).active(clock.now())

    links = AccountLinkService(
        oauth=oauth_client,
        states=link_states,
        tokens=tokens,
        security_log=security_log,
        metrics=metrics,
        clock=clock,
        redirect_uri=settings.redirect_uri,
        refusals=security.refusals,
    )
    rotation = TokenRotationService(
        tokens=tokens, alerter=alerter, clock=clock, paused=refresh_paused
    )
    music_catalog = (
        catalog if catalog is not None else _catalog(settings, extra_providers, clock, closers)
    )
    strict = settings.validation_policy == "strict"
    validator = InputValidator(ValidationPolicy.strict() if strict else ValidationPolicy.default())
    # Each handler receives the services it names, and nothing else.
    bus = MessageBus(
        access=access,
        limiter=limiter,
        security_log=security_log,
        metrics=metrics,
        admin_role_ids=settings.admin_role_ids,
        dependencies={
            "settings": settings,
            "clock": clock,
            "validator": validator,
            "sanitizer": security.sanitizer,
            "security_log": security_log,
            "access": access,
            "incidents": incidents,
            "tokens": tokens,
            "links": links,
            "rotation": rotation,
            "catalog": music_catalog,
            "audit": audit,
            "retention": retention,
            "recorder": AdminRecorder(audit, security.pseudonymizer),
        },
    )
    return Services(
        settings=settings,
        clock=clock,
        bus=bus,
        validator=validator,
        sanitizer=security.sanitizer,
        pseudonymizer=security.pseudonymizer,
        security_log=security_log,
        suspicion=security.suspicion,
        metrics=metrics,
        alerter=alerter,
        access=access,
        limiter=limiter,
        incidents=incidents,
        alarms=alarms,
        vault=security.vault,
        oauth=oauth_client,
        tokens=tokens,
        links=links,
        rotation=rotation,
        catalog=music_catalog,
        audit=audit,
        user_data=security.user_data,
        retention=retention,
        metrics_source=security.metrics_source,
        access_store=access_store,
        openers=security.openers,
        closers=tuple(closers),
    )
