"""timmybot_core: the security layer of TimmyBot, importable by any bot.

Pure Python (the standard library and attrs): input validation, response
sanitization for Discord, keyed pseudonymization, and the ports and
services that the adapters and the bot build on.

    from timmybot_core import InputValidator, ResponseSanitizer

    result = InputValidator().validate_search_query(user_text)
    if result.ok:
        search(result.value)
    else:
        reply(result.error)
"""

from __future__ import annotations

from timmybot_core.domain.audit_chain import canonical_bytes, record_hash
from timmybot_core.domain.classification import DataClass, OnErasure, StoredField
from timmybot_core.domain.clock import Clock, FakeClock, SystemClock
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
from timmybot_core.domain.events import SecurityEvent, SecurityEventType
from timmybot_core.domain.incident_data import dumps_incident_data, loads_incident_data
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink, UserTokens
from timmybot_core.ports import (
    AccessPolicyStore,
    Alert,
    Alerter,
    AuthFailureReason,
    Ban,
    CatalogTrack,
    IncidentRecord,
    IncidentStore,
    LinkState,
    LinkStateStore,
    MetricsSnapshot,
    MusicCatalog,
    OAuthClient,
    RetentionHold,
    SecurityMetrics,
    Severity,
    Switch,
    SwitchState,
    TakeOutcome,
    TakeResult,
    TokenVault,
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
from timmybot_core.ports.erasure import ErasureEntry, ErasureJournal, ErasureStep
from timmybot_core.ports.signing import DigestSigner, SignatureVerifier
from timmybot_core.ports.user_data import (
    Preference,
    PreferenceError,
    PreferenceValue,
    UserDataStore,
)
from timmybot_core.safety.pseudonymizer import MIN_KEY_BYTES, Pseudonymizer, PseudonymKind
from timmybot_core.safety.sanitizer import DiscordLimits, ResponseSanitizer, TrackInfo
from timmybot_core.safety.urls import MAX_URL_LENGTH, safe_url
from timmybot_core.safety.validation import InputValidator, ValidationPolicy, ValidationResult
from timmybot_core.services.access_control import (
    AccessDecision,
    AccessReason,
    AccessSettings,
    ServerAccessControl,
)
from timmybot_core.services.alarms import DEFAULT_RULES, AlarmMonitor, AlarmRule
from timmybot_core.services.audit import AuditSettings, AuditTrailService, record_as_json
from timmybot_core.services.audit_verify import Problem, ProblemKind, VerificationReport
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
from timmybot_core.services.retention import (
    CleanupReport,
    DataRetentionService,
    DeletionReport,
    ErasureReport,
    Requester,
    RetentionSettings,
    UserDataEraser,
)
from timmybot_core.services.rotation import (
    RotationReport,
    RotationSettings,
    TokenRotationService,
)
from timmybot_core.services.security_log import SecurityAuditLogger
from timmybot_core.services.suspicion import (
    Signal,
    SignalThreshold,
    SuspicionMeter,
    SuspicionThresholds,
)
from timmybot_core.services.tokens import RefreshOutcome, SecureTokenService, TokenSettings

__all__ = [
    "DEFAULT_RULES",
    "MAX_URL_LENGTH",
    "MIN_KEY_BYTES",
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
    "ReLinkRequired",
    "RefreshOutcome",
    "RefreshOutcomeUnknown",
    "RefreshPaused",
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

__version__ = "0.1.0"
