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

from timmybot_core.clock import Clock, FakeClock, SystemClock
from timmybot_core.errors import AlertDeliveryError, StoreUnavailable, TimmyBotError
from timmybot_core.events import SecurityEvent, SecurityEventType
from timmybot_core.ports import (
    AccessPolicyStore,
    Alert,
    Alerter,
    AuthFailureReason,
    Ban,
    IncidentRecord,
    IncidentStore,
    MetricsSnapshot,
    RetentionHold,
    SecurityMetrics,
    Severity,
    Switch,
    SwitchState,
)
from timmybot_core.pseudonymizer import MIN_KEY_BYTES, Pseudonymizer, PseudonymKind
from timmybot_core.sanitizer import DiscordLimits, ResponseSanitizer, TrackInfo
from timmybot_core.services.access_control import (
    AccessDecision,
    AccessReason,
    AccessSettings,
    ServerAccessControl,
)
from timmybot_core.services.alarms import DEFAULT_RULES, AlarmMonitor, AlarmRule
from timmybot_core.services.incidents import (
    Incident,
    IncidentReport,
    IncidentResponseService,
    IncidentSettings,
    StepResult,
)
from timmybot_core.services.security_log import SecurityAuditLogger
from timmybot_core.services.suspicion import (
    Signal,
    SignalThreshold,
    SuspicionMeter,
    SuspicionThresholds,
)
from timmybot_core.urls import MAX_URL_LENGTH, safe_url
from timmybot_core.validation import InputValidator, ValidationPolicy, ValidationResult

__all__ = [
    "DEFAULT_RULES",
    "MAX_URL_LENGTH",
    "MIN_KEY_BYTES",
    "AccessDecision",
    "AccessPolicyStore",
    "AccessReason",
    "AccessSettings",
    "AlarmMonitor",
    "AlarmRule",
    "Alert",
    "AlertDeliveryError",
    "Alerter",
    "AuthFailureReason",
    "Ban",
    "Clock",
    "DiscordLimits",
    "FakeClock",
    "Incident",
    "IncidentRecord",
    "IncidentReport",
    "IncidentResponseService",
    "IncidentSettings",
    "IncidentStore",
    "InputValidator",
    "MetricsSnapshot",
    "PseudonymKind",
    "Pseudonymizer",
    "ResponseSanitizer",
    "RetentionHold",
    "SecurityAuditLogger",
    "SecurityEvent",
    "SecurityEventType",
    "SecurityMetrics",
    "ServerAccessControl",
    "Severity",
    "Signal",
    "SignalThreshold",
    "StepResult",
    "StoreUnavailable",
    "SuspicionMeter",
    "SuspicionThresholds",
    "Switch",
    "SwitchState",
    "SystemClock",
    "TimmyBotError",
    "TrackInfo",
    "ValidationPolicy",
    "ValidationResult",
    "safe_url",
]

__version__ = "0.1.0"
