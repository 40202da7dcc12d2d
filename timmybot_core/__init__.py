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

    from timmybot_core.domain.audit_chain import canonical_bytes as canonical_bytes
    from timmybot_core.domain.audit_chain import record_hash as record_hash
    from timmybot_core.domain.classification import DataClass as DataClass
    from timmybot_core.domain.classification import OnErasure as OnErasure
    from timmybot_core.domain.classification import StoredField as StoredField
    from timmybot_core.domain.clock import Clock as Clock
    from timmybot_core.domain.clock import FakeClock as FakeClock
    from timmybot_core.domain.clock import SystemClock as SystemClock
    from timmybot_core.domain.errors import AlertDeliveryError as AlertDeliveryError
    from timmybot_core.domain.errors import AuditConflict as AuditConflict
    from timmybot_core.domain.errors import DataDeletionError as DataDeletionError
    from timmybot_core.domain.errors import LinkError as LinkError
    from timmybot_core.domain.errors import NotLinked as NotLinked
    from timmybot_core.domain.errors import OAuthError as OAuthError
    from timmybot_core.domain.errors import OAuthNotConfigured as OAuthNotConfigured
    from timmybot_core.domain.errors import ProviderRateLimited as ProviderRateLimited
    from timmybot_core.domain.errors import ProviderUnavailable as ProviderUnavailable
    from timmybot_core.domain.errors import RefreshOutcomeUnknown as RefreshOutcomeUnknown
    from timmybot_core.domain.errors import RefreshPaused as RefreshPaused
    from timmybot_core.domain.errors import ReLinkRequired as ReLinkRequired
    from timmybot_core.domain.errors import StoreUnavailable as StoreUnavailable
    from timmybot_core.domain.errors import TimmyBotError as TimmyBotError
    from timmybot_core.domain.errors import VaultIntegrityError as VaultIntegrityError
    from timmybot_core.domain.errors import VaultUnavailable as VaultUnavailable
    from timmybot_core.domain.errors import VersionConflict as VersionConflict
    from timmybot_core.domain.events import SecurityEvent as SecurityEvent
    from timmybot_core.domain.events import SecurityEventType as SecurityEventType
    from timmybot_core.domain.incident_data import dumps_incident_data as dumps_incident_data
    from timmybot_core.domain.incident_data import loads_incident_data as loads_incident_data
    from timmybot_core.domain.tokens import OAuthTokens as OAuthTokens
    from timmybot_core.domain.tokens import PlatformLink as PlatformLink
    from timmybot_core.domain.tokens import UserTokens as UserTokens
    from timmybot_core.ports.access import AccessPolicyStore as AccessPolicyStore
    from timmybot_core.ports.access import Ban as Ban
    from timmybot_core.ports.access import Switch as Switch
    from timmybot_core.ports.access import SwitchState as SwitchState
    from timmybot_core.ports.alerts import Alert as Alert
    from timmybot_core.ports.alerts import Alerter as Alerter
    from timmybot_core.ports.alerts import Severity as Severity
    from timmybot_core.ports.audit import AuditCursor as AuditCursor
    from timmybot_core.ports.audit import AuditKind as AuditKind
    from timmybot_core.ports.audit import AuditLog as AuditLog
    from timmybot_core.ports.audit import AuditPage as AuditPage
    from timmybot_core.ports.audit import AuditRecord as AuditRecord
    from timmybot_core.ports.audit import ChainHead as ChainHead
    from timmybot_core.ports.audit import SignedDigest as SignedDigest
    from timmybot_core.ports.catalog import CatalogTrack as CatalogTrack
    from timmybot_core.ports.catalog import MusicCatalog as MusicCatalog
    from timmybot_core.ports.erasure import ErasureEntry as ErasureEntry
    from timmybot_core.ports.erasure import ErasureJournal as ErasureJournal
    from timmybot_core.ports.erasure import ErasureStep as ErasureStep
    from timmybot_core.ports.incidents import IncidentRecord as IncidentRecord
    from timmybot_core.ports.incidents import IncidentStore as IncidentStore
    from timmybot_core.ports.incidents import RetentionHold as RetentionHold
    from timmybot_core.ports.link_states import LinkState as LinkState
    from timmybot_core.ports.link_states import LinkStateStore as LinkStateStore
    from timmybot_core.ports.link_states import TakeOutcome as TakeOutcome
    from timmybot_core.ports.link_states import TakeResult as TakeResult
    from timmybot_core.ports.metrics import AuthFailureReason as AuthFailureReason
    from timmybot_core.ports.metrics import MetricsSnapshot as MetricsSnapshot
    from timmybot_core.ports.metrics import SecurityMetrics as SecurityMetrics
    from timmybot_core.ports.oauth import OAuthClient as OAuthClient
    from timmybot_core.ports.rate_limits import RateDecision as RateDecision
    from timmybot_core.ports.rate_limits import RateLimit as RateLimit
    from timmybot_core.ports.rate_limits import RateLimitStore as RateLimitStore
    from timmybot_core.ports.signing import DigestSigner as DigestSigner
    from timmybot_core.ports.signing import SignatureVerifier as SignatureVerifier
    from timmybot_core.ports.user_data import Preference as Preference
    from timmybot_core.ports.user_data import PreferenceError as PreferenceError
    from timmybot_core.ports.user_data import PreferenceValue as PreferenceValue
    from timmybot_core.ports.user_data import UserDataStore as UserDataStore
    from timmybot_core.ports.vault import TokenVault as TokenVault
    from timmybot_core.safety.pseudonymizer import MIN_KEY_BYTES as MIN_KEY_BYTES
    from timmybot_core.safety.pseudonymizer import Pseudonymizer as Pseudonymizer
    from timmybot_core.safety.pseudonymizer import PseudonymKind as PseudonymKind
    from timmybot_core.safety.sanitizer import DiscordLimits as DiscordLimits
    from timmybot_core.safety.sanitizer import ResponseSanitizer as ResponseSanitizer
    from timmybot_core.safety.sanitizer import TrackInfo as TrackInfo
    from timmybot_core.safety.urls import MAX_URL_LENGTH as MAX_URL_LENGTH
    from timmybot_core.safety.urls import safe_url as safe_url
    from timmybot_core.safety.validation import Accepted as Accepted
    from timmybot_core.safety.validation import InputValidator as InputValidator
    from timmybot_core.safety.validation import Rejected as Rejected
    from timmybot_core.safety.validation import ValidationPolicy as ValidationPolicy
    from timmybot_core.safety.validation import ValidationResult as ValidationResult
    from timmybot_core.services.access_control import AccessDecision as AccessDecision
    from timmybot_core.services.access_control import AccessReason as AccessReason
    from timmybot_core.services.access_control import AccessSettings as AccessSettings
    from timmybot_core.services.access_control import ServerAccessControl as ServerAccessControl
    from timmybot_core.services.alarms import DEFAULT_RULES as DEFAULT_RULES
    from timmybot_core.services.alarms import AlarmMonitor as AlarmMonitor
    from timmybot_core.services.alarms import AlarmRule as AlarmRule
    from timmybot_core.services.audit import AuditSettings as AuditSettings
    from timmybot_core.services.audit import AuditTrailService as AuditTrailService
    from timmybot_core.services.audit import record_as_json as record_as_json
    from timmybot_core.services.audit_verify import Problem as Problem
    from timmybot_core.services.audit_verify import ProblemKind as ProblemKind
    from timmybot_core.services.audit_verify import VerificationReport as VerificationReport
    from timmybot_core.services.incidents import Incident as Incident
    from timmybot_core.services.incidents import IncidentReport as IncidentReport
    from timmybot_core.services.incidents import IncidentResponseService as IncidentResponseService
    from timmybot_core.services.incidents import IncidentSettings as IncidentSettings
    from timmybot_core.services.incidents import StepResult as StepResult
    from timmybot_core.services.linking import AccountLinkService as AccountLinkService
    from timmybot_core.services.linking import LinkResult as LinkResult
    from timmybot_core.services.linking import LinkStart as LinkStart
    from timmybot_core.services.linking import pkce_challenge as pkce_challenge
    from timmybot_core.services.rate_limits import RateLimiter as RateLimiter
    from timmybot_core.services.rate_limits import RateLimitSettings as RateLimitSettings
    from timmybot_core.services.rate_limits import RateVerdict as RateVerdict
    from timmybot_core.services.retention import CleanupReport as CleanupReport
    from timmybot_core.services.retention import DataRetentionService as DataRetentionService
    from timmybot_core.services.retention import DeletionReport as DeletionReport
    from timmybot_core.services.retention import ErasureReport as ErasureReport
    from timmybot_core.services.retention import HostUserData as HostUserData
    from timmybot_core.services.retention import Requester as Requester
    from timmybot_core.services.retention import RetentionSettings as RetentionSettings
    from timmybot_core.services.retention import UserDataEraser as UserDataEraser
    from timmybot_core.services.rotation import RotationReport as RotationReport
    from timmybot_core.services.rotation import RotationSettings as RotationSettings
    from timmybot_core.services.rotation import TokenRotationService as TokenRotationService
    from timmybot_core.services.security_log import SecurityAuditLogger as SecurityAuditLogger
    from timmybot_core.services.suspicion import Signal as Signal
    from timmybot_core.services.suspicion import SignalThreshold as SignalThreshold
    from timmybot_core.services.suspicion import SuspicionMeter as SuspicionMeter
    from timmybot_core.services.suspicion import SuspicionThresholds as SuspicionThresholds
    from timmybot_core.services.tokens import RefreshOutcome as RefreshOutcome
    from timmybot_core.services.tokens import SecureTokenService as SecureTokenService
    from timmybot_core.services.tokens import TokenSettings as TokenSettings


__version__ = "0.1.0"

# Where each public name lives, grouped by its module under timmybot_core;
# __getattr__ imports the module on first use. The imports above say the same
# for type checkers (written ``X as X``, the explicit re-export that mypy
# --strict and pyright accept); a test holds the two lists equal.
_MODULES: dict[str, tuple[str, ...]] = {
    "domain.audit_chain": ("canonical_bytes", "record_hash"),
    "domain.classification": ("DataClass", "OnErasure", "StoredField"),
    "domain.clock": ("Clock", "FakeClock", "SystemClock"),
    "domain.errors": (
        "AlertDeliveryError",
        "AuditConflict",
        "DataDeletionError",
        "LinkError",
        "NotLinked",
        "OAuthError",
        "OAuthNotConfigured",
        "ProviderRateLimited",
        "ProviderUnavailable",
        "ReLinkRequired",
        "RefreshOutcomeUnknown",
        "RefreshPaused",
        "StoreUnavailable",
        "TimmyBotError",
        "VaultIntegrityError",
        "VaultUnavailable",
        "VersionConflict",
    ),
    "domain.events": ("SecurityEvent", "SecurityEventType"),
    "domain.incident_data": ("dumps_incident_data", "loads_incident_data"),
    "domain.tokens": ("OAuthTokens", "PlatformLink", "UserTokens"),
    "ports.access": ("AccessPolicyStore", "Ban", "Switch", "SwitchState"),
    "ports.alerts": ("Alert", "Alerter", "Severity"),
    "ports.audit": (
        "AuditCursor",
        "AuditKind",
        "AuditLog",
        "AuditPage",
        "AuditRecord",
        "ChainHead",
        "SignedDigest",
    ),
    "ports.catalog": ("CatalogTrack", "MusicCatalog"),
    "ports.erasure": ("ErasureEntry", "ErasureJournal", "ErasureStep"),
    "ports.incidents": ("IncidentRecord", "IncidentStore", "RetentionHold"),
    "ports.link_states": ("LinkState", "LinkStateStore", "TakeOutcome", "TakeResult"),
    "ports.metrics": ("AuthFailureReason", "MetricsSnapshot", "SecurityMetrics"),
    "ports.oauth": ("OAuthClient",),
    "ports.rate_limits": ("RateDecision", "RateLimit", "RateLimitStore"),
    "ports.signing": ("DigestSigner", "SignatureVerifier"),
    "ports.user_data": ("Preference", "PreferenceError", "PreferenceValue", "UserDataStore"),
    "ports.vault": ("TokenVault",),
    "safety.pseudonymizer": ("MIN_KEY_BYTES", "PseudonymKind", "Pseudonymizer"),
    "safety.sanitizer": ("DiscordLimits", "ResponseSanitizer", "TrackInfo"),
    "safety.urls": ("MAX_URL_LENGTH", "safe_url"),
    "safety.validation": (
        "Accepted",
        "InputValidator",
        "Rejected",
        "ValidationPolicy",
        "ValidationResult",
    ),
    "services.access_control": (
        "AccessDecision",
        "AccessReason",
        "AccessSettings",
        "ServerAccessControl",
    ),
    "services.alarms": ("AlarmMonitor", "AlarmRule", "DEFAULT_RULES"),
    "services.audit": ("AuditSettings", "AuditTrailService", "record_as_json"),
    "services.audit_verify": ("Problem", "ProblemKind", "VerificationReport"),
    "services.incidents": (
        "Incident",
        "IncidentReport",
        "IncidentResponseService",
        "IncidentSettings",
        "StepResult",
    ),
    "services.linking": ("AccountLinkService", "LinkResult", "LinkStart", "pkce_challenge"),
    "services.rate_limits": ("RateLimitSettings", "RateLimiter", "RateVerdict"),
    "services.retention": (
        "CleanupReport",
        "DataRetentionService",
        "DeletionReport",
        "ErasureReport",
        "HostUserData",
        "Requester",
        "RetentionSettings",
        "UserDataEraser",
    ),
    "services.rotation": ("RotationReport", "RotationSettings", "TokenRotationService"),
    "services.security_log": ("SecurityAuditLogger",),
    "services.suspicion": ("Signal", "SignalThreshold", "SuspicionMeter", "SuspicionThresholds"),
    "services.tokens": ("RefreshOutcome", "SecureTokenService", "TokenSettings"),
}
_EXPORTS: dict[str, str] = {
    name: f"timmybot_core.{module}" for module, names in _MODULES.items() for name in names
}
__all__ = sorted(_EXPORTS)


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
