"""timmybot_core: the security layer of TimmyBot, importable by any bot.

Pure Python (the standard library and attrs): input validation, response
sanitization for Discord, keyed pseudonymization, and the ports and
services that the adapters and the bot build on.

    from timmybot_core import InputValidator, ResponseSanitizer

    result = InputValidator().validate_search_query(user_text)
    if result.ok:
        search(result.value)      # a str here, for type checkers too
    else:
        reply(result.error)       # a str here

Every name is exported lazily (PEP 562): ``import timmybot_core`` loads
nothing but this module, and ``from timmybot_core import InputValidator``
loads the validator's modules alone, never asyncio or ssl, so a bot that
wants one validator pays about what ``import attrs`` costs
(``bench/import_time.py`` measures it). Type checkers see the imports
under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import importlib

# Not ``typing.TYPE_CHECKING``: importing typing would cost a bot that only
# touches the package more than the package itself; type checkers treat any
# name ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from timmybot_core.domain.audit_chain import (
        canonical_bytes,
        record_hash,
    )
    from timmybot_core.domain.classification import (
        DataClass,
        OnErasure,
        StoredField,
    )
    from timmybot_core.domain.clock import (
        Clock,
        FakeClock,
        SystemClock,
    )
    from timmybot_core.domain.errors import (
        AlertDeliveryError,
        AuditConflict,
        DataDeletionError,
        LinkError,
        NotLinked,
        OAuthError,
        OAuthNotConfigured,
        ProviderRateLimited,
        ProviderUnavailable,
        RefreshOutcomeUnknown,
        RefreshPaused,
        ReLinkRequired,
        StoreUnavailable,
        TimmyBotError,
        VaultIntegrityError,
        VaultUnavailable,
        VersionConflict,
    )
    from timmybot_core.domain.events import (
        SecurityEvent,
        SecurityEventType,
    )
    from timmybot_core.domain.incident_data import (
        dumps_incident_data,
        loads_incident_data,
    )
    from timmybot_core.domain.tokens import (
        OAuthTokens,
        PlatformLink,
        UserTokens,
    )
    from timmybot_core.ports.access import (
        AccessPolicyStore,
        Ban,
        Switch,
        SwitchState,
    )
    from timmybot_core.ports.alerts import (
        Alert,
        Alerter,
        Severity,
    )
    from timmybot_core.ports.audit import (
        AuditCursor,
        AuditKind,
        AuditLog,
        AuditPage,
        AuditRecord,
        ChainHead,
        SignedDigest,
    )
    from timmybot_core.ports.catalog import (
        CatalogTrack,
        MusicCatalog,
    )
    from timmybot_core.ports.erasure import (
        ErasureEntry,
        ErasureJournal,
        ErasureStep,
    )
    from timmybot_core.ports.incidents import (
        IncidentRecord,
        IncidentStore,
        RetentionHold,
    )
    from timmybot_core.ports.link_states import (
        LinkState,
        LinkStateStore,
        TakeOutcome,
        TakeResult,
    )
    from timmybot_core.ports.metrics import (
        AuthFailureReason,
        MetricsSnapshot,
        SecurityMetrics,
    )
    from timmybot_core.ports.oauth import (
        OAuthClient,
    )
    from timmybot_core.ports.rate_limits import (
        RateDecision,
        RateLimit,
        RateLimitStore,
    )
    from timmybot_core.ports.signing import (
        DigestSigner,
        SignatureVerifier,
    )
    from timmybot_core.ports.user_data import (
        Preference,
        PreferenceError,
        PreferenceValue,
        UserDataStore,
    )
    from timmybot_core.ports.vault import (
        TokenVault,
    )
    from timmybot_core.safety.pseudonymizer import (
        MIN_KEY_BYTES,
        Pseudonymizer,
        PseudonymKind,
    )
    from timmybot_core.safety.sanitizer import (
        DiscordLimits,
        ResponseSanitizer,
        TrackInfo,
    )
    from timmybot_core.safety.urls import (
        MAX_URL_LENGTH,
        safe_url,
    )
    from timmybot_core.safety.validation import (
        Accepted,
        InputValidator,
        Rejected,
        ValidationPolicy,
        ValidationResult,
    )
    from timmybot_core.services.access_control import (
        AccessDecision,
        AccessReason,
        AccessSettings,
        ServerAccessControl,
    )
    from timmybot_core.services.alarms import (
        DEFAULT_RULES,
        AlarmMonitor,
        AlarmRule,
    )
    from timmybot_core.services.audit import (
        AuditSettings,
        AuditTrailService,
        record_as_json,
    )
    from timmybot_core.services.audit_verify import (
        Problem,
        ProblemKind,
        VerificationReport,
    )
    from timmybot_core.services.incidents import (
        Incident,
        IncidentReport,
        IncidentResponseService,
        IncidentSettings,
        StepResult,
    )
    from timmybot_core.services.linking import (
        AccountLinkService,
        LinkResult,
        LinkStart,
        pkce_challenge,
    )
    from timmybot_core.services.rate_limits import (
        RateLimiter,
        RateLimitSettings,
        RateVerdict,
    )
    from timmybot_core.services.retention import (
        CleanupReport,
        DataRetentionService,
        DeletionReport,
        ErasureReport,
        HostUserData,
        Requester,
        RetentionSettings,
        UserDataEraser,
    )
    from timmybot_core.services.rotation import (
        RotationReport,
        RotationSettings,
        TokenRotationService,
    )
    from timmybot_core.services.security_log import (
        SecurityAuditLogger,
    )
    from timmybot_core.services.suspicion import (
        Signal,
        SignalThreshold,
        SuspicionMeter,
        SuspicionThresholds,
    )
    from timmybot_core.services.tokens import (
        RefreshOutcome,
        SecureTokenService,
        TokenSettings,
    )


__version__ = "0.1.0"

# Where each public name lives; __getattr__ imports the module on first use.
_EXPORTS: dict[str, str] = {
    "DEFAULT_RULES": "timmybot_core.services.alarms",
    "MAX_URL_LENGTH": "timmybot_core.safety.urls",
    "MIN_KEY_BYTES": "timmybot_core.safety.pseudonymizer",
    "AccessDecision": "timmybot_core.services.access_control",
    "AccessPolicyStore": "timmybot_core.ports.access",
    "AccessReason": "timmybot_core.services.access_control",
    "AccessSettings": "timmybot_core.services.access_control",
    "AccountLinkService": "timmybot_core.services.linking",
    "AlarmMonitor": "timmybot_core.services.alarms",
    "AlarmRule": "timmybot_core.services.alarms",
    "Alert": "timmybot_core.ports.alerts",
    "AlertDeliveryError": "timmybot_core.domain.errors",
    "Alerter": "timmybot_core.ports.alerts",
    "AuditConflict": "timmybot_core.domain.errors",
    "AuditCursor": "timmybot_core.ports.audit",
    "AuditKind": "timmybot_core.ports.audit",
    "AuditLog": "timmybot_core.ports.audit",
    "AuditPage": "timmybot_core.ports.audit",
    "AuditRecord": "timmybot_core.ports.audit",
    "AuditSettings": "timmybot_core.services.audit",
    "AuditTrailService": "timmybot_core.services.audit",
    "AuthFailureReason": "timmybot_core.ports.metrics",
    "Ban": "timmybot_core.ports.access",
    "CatalogTrack": "timmybot_core.ports.catalog",
    "ChainHead": "timmybot_core.ports.audit",
    "CleanupReport": "timmybot_core.services.retention",
    "Clock": "timmybot_core.domain.clock",
    "DataClass": "timmybot_core.domain.classification",
    "DataDeletionError": "timmybot_core.domain.errors",
    "DataRetentionService": "timmybot_core.services.retention",
    "DeletionReport": "timmybot_core.services.retention",
    "DigestSigner": "timmybot_core.ports.signing",
    "DiscordLimits": "timmybot_core.safety.sanitizer",
    "ErasureEntry": "timmybot_core.ports.erasure",
    "ErasureJournal": "timmybot_core.ports.erasure",
    "ErasureReport": "timmybot_core.services.retention",
    "ErasureStep": "timmybot_core.ports.erasure",
    "HostUserData": "timmybot_core.services.retention",
    "FakeClock": "timmybot_core.domain.clock",
    "Incident": "timmybot_core.services.incidents",
    "IncidentRecord": "timmybot_core.ports.incidents",
    "IncidentReport": "timmybot_core.services.incidents",
    "IncidentResponseService": "timmybot_core.services.incidents",
    "IncidentSettings": "timmybot_core.services.incidents",
    "IncidentStore": "timmybot_core.ports.incidents",
    "Accepted": "timmybot_core.safety.validation",
    "InputValidator": "timmybot_core.safety.validation",
    "Rejected": "timmybot_core.safety.validation",
    "LinkError": "timmybot_core.domain.errors",
    "LinkResult": "timmybot_core.services.linking",
    "LinkStart": "timmybot_core.services.linking",
    "LinkState": "timmybot_core.ports.link_states",
    "LinkStateStore": "timmybot_core.ports.link_states",
    "MetricsSnapshot": "timmybot_core.ports.metrics",
    "MusicCatalog": "timmybot_core.ports.catalog",
    "NotLinked": "timmybot_core.domain.errors",
    "OAuthClient": "timmybot_core.ports.oauth",
    "OAuthError": "timmybot_core.domain.errors",
    "OAuthNotConfigured": "timmybot_core.domain.errors",
    "OAuthTokens": "timmybot_core.domain.tokens",
    "OnErasure": "timmybot_core.domain.classification",
    "PlatformLink": "timmybot_core.domain.tokens",
    "Preference": "timmybot_core.ports.user_data",
    "PreferenceError": "timmybot_core.ports.user_data",
    "PreferenceValue": "timmybot_core.ports.user_data",
    "Problem": "timmybot_core.services.audit_verify",
    "ProblemKind": "timmybot_core.services.audit_verify",
    "ProviderRateLimited": "timmybot_core.domain.errors",
    "ProviderUnavailable": "timmybot_core.domain.errors",
    "PseudonymKind": "timmybot_core.safety.pseudonymizer",
    "Pseudonymizer": "timmybot_core.safety.pseudonymizer",
    "RateDecision": "timmybot_core.ports.rate_limits",
    "RateLimit": "timmybot_core.ports.rate_limits",
    "RateLimitStore": "timmybot_core.ports.rate_limits",
    "RateLimitSettings": "timmybot_core.services.rate_limits",
    "RateLimiter": "timmybot_core.services.rate_limits",
    "RateVerdict": "timmybot_core.services.rate_limits",
    "ReLinkRequired": "timmybot_core.domain.errors",
    "RefreshOutcome": "timmybot_core.services.tokens",
    "RefreshOutcomeUnknown": "timmybot_core.domain.errors",
    "RefreshPaused": "timmybot_core.domain.errors",
    "Requester": "timmybot_core.services.retention",
    "ResponseSanitizer": "timmybot_core.safety.sanitizer",
    "RetentionHold": "timmybot_core.ports.incidents",
    "RetentionSettings": "timmybot_core.services.retention",
    "RotationReport": "timmybot_core.services.rotation",
    "RotationSettings": "timmybot_core.services.rotation",
    "SecureTokenService": "timmybot_core.services.tokens",
    "SecurityAuditLogger": "timmybot_core.services.security_log",
    "SecurityEvent": "timmybot_core.domain.events",
    "SecurityEventType": "timmybot_core.domain.events",
    "SecurityMetrics": "timmybot_core.ports.metrics",
    "ServerAccessControl": "timmybot_core.services.access_control",
    "Severity": "timmybot_core.ports.alerts",
    "Signal": "timmybot_core.services.suspicion",
    "SignalThreshold": "timmybot_core.services.suspicion",
    "SignatureVerifier": "timmybot_core.ports.signing",
    "SignedDigest": "timmybot_core.ports.audit",
    "StepResult": "timmybot_core.services.incidents",
    "StoreUnavailable": "timmybot_core.domain.errors",
    "StoredField": "timmybot_core.domain.classification",
    "SuspicionMeter": "timmybot_core.services.suspicion",
    "SuspicionThresholds": "timmybot_core.services.suspicion",
    "Switch": "timmybot_core.ports.access",
    "SwitchState": "timmybot_core.ports.access",
    "SystemClock": "timmybot_core.domain.clock",
    "TakeOutcome": "timmybot_core.ports.link_states",
    "TakeResult": "timmybot_core.ports.link_states",
    "TimmyBotError": "timmybot_core.domain.errors",
    "TokenRotationService": "timmybot_core.services.rotation",
    "TokenSettings": "timmybot_core.services.tokens",
    "TokenVault": "timmybot_core.ports.vault",
    "TrackInfo": "timmybot_core.safety.sanitizer",
    "UserDataEraser": "timmybot_core.services.retention",
    "UserDataStore": "timmybot_core.ports.user_data",
    "UserTokens": "timmybot_core.domain.tokens",
    "ValidationPolicy": "timmybot_core.safety.validation",
    "ValidationResult": "timmybot_core.safety.validation",
    "VaultIntegrityError": "timmybot_core.domain.errors",
    "VaultUnavailable": "timmybot_core.domain.errors",
    "VerificationReport": "timmybot_core.services.audit_verify",
    "VersionConflict": "timmybot_core.domain.errors",
    "canonical_bytes": "timmybot_core.domain.audit_chain",
    "dumps_incident_data": "timmybot_core.domain.incident_data",
    "loads_incident_data": "timmybot_core.domain.incident_data",
    "pkce_challenge": "timmybot_core.services.linking",
    "record_as_json": "timmybot_core.services.audit",
    "record_hash": "timmybot_core.domain.audit_chain",
    "safe_url": "timmybot_core.safety.urls",
}

__all__ = [
    "DEFAULT_RULES",
    "MAX_URL_LENGTH",
    "MIN_KEY_BYTES",
    "Accepted",
    "AccessDecision",
    "AccessPolicyStore",
    "AccessReason",
    "AccessSettings",
    "AccountLinkService",
    "AlarmMonitor",
    "AlarmRule",
    "Alert",
    "AlertDeliveryError",
    "Alerter",
    "AuditConflict",
    "AuditCursor",
    "AuditKind",
    "AuditLog",
    "AuditPage",
    "AuditRecord",
    "AuditSettings",
    "AuditTrailService",
    "AuthFailureReason",
    "Ban",
    "CatalogTrack",
    "ChainHead",
    "CleanupReport",
    "Clock",
    "DataClass",
    "DataDeletionError",
    "DataRetentionService",
    "DeletionReport",
    "DigestSigner",
    "DiscordLimits",
    "ErasureEntry",
    "ErasureJournal",
    "ErasureReport",
    "ErasureStep",
    "FakeClock",
    "HostUserData",
    "Incident",
    "IncidentRecord",
    "IncidentReport",
    "IncidentResponseService",
    "IncidentSettings",
    "IncidentStore",
    "InputValidator",
    "LinkError",
    "LinkResult",
    "LinkStart",
    "LinkState",
    "LinkStateStore",
    "MetricsSnapshot",
    "MusicCatalog",
    "NotLinked",
    "OAuthClient",
    "OAuthError",
    "OAuthNotConfigured",
    "OAuthTokens",
    "OnErasure",
    "PlatformLink",
    "Preference",
    "PreferenceError",
    "PreferenceValue",
    "Problem",
    "ProblemKind",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "PseudonymKind",
    "Pseudonymizer",
    "RateDecision",
    "RateLimit",
    "RateLimitSettings",
    "RateLimitStore",
    "RateLimiter",
    "RateVerdict",
    "ReLinkRequired",
    "RefreshOutcome",
    "RefreshOutcomeUnknown",
    "RefreshPaused",
    "Rejected",
    "Requester",
    "ResponseSanitizer",
    "RetentionHold",
    "RetentionSettings",
    "RotationReport",
    "RotationSettings",
    "SecureTokenService",
    "SecurityAuditLogger",
    "SecurityEvent",
    "SecurityEventType",
    "SecurityMetrics",
    "ServerAccessControl",
    "Severity",
    "Signal",
    "SignalThreshold",
    "SignatureVerifier",
    "SignedDigest",
    "StepResult",
    "StoreUnavailable",
    "StoredField",
    "SuspicionMeter",
    "SuspicionThresholds",
    "Switch",
    "SwitchState",
    "SystemClock",
    "TakeOutcome",
    "TakeResult",
    "TimmyBotError",
    "TokenRotationService",
    "TokenSettings",
    "TokenVault",
    "TrackInfo",
    "UserDataEraser",
    "UserDataStore",
    "UserTokens",
    "ValidationPolicy",
    "ValidationResult",
    "VaultIntegrityError",
    "VaultUnavailable",
    "VerificationReport",
    "VersionConflict",
    "canonical_bytes",
    "dumps_incident_data",
    "loads_incident_data",
    "pkce_challenge",
    "record_as_json",
    "record_hash",
    "safe_url",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'timmybot_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
