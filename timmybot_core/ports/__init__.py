"""Ports: the interfaces (typing.Protocol) that adapters implement.

Each port has one contract test suite under ``tests/contract`` that every
adapter of it passes.
"""

from __future__ import annotations

from timmybot_core.ports.access import AccessPolicyStore, Ban, Switch, SwitchState
from timmybot_core.ports.alerts import Alert, Alerter, Severity
from timmybot_core.ports.catalog import (
    DEFAULT_SEARCH_LIMIT,
    MAX_SEARCH_LIMIT,
    CatalogTrack,
    MusicCatalog,
)
from timmybot_core.ports.erasure import ErasureEntry, ErasureJournal, ErasureStep
from timmybot_core.ports.incidents import IncidentRecord, IncidentStore, RetentionHold
from timmybot_core.ports.link_states import LinkState, LinkStateStore, TakeOutcome, TakeResult
from timmybot_core.ports.metrics import (
    AUTH_FAILURES,
    SUSPICIOUS_ACTIVITY,
    UNAUTHORIZED_ACCESS,
    AuthFailureReason,
    MetricsSnapshot,
    SecurityMetrics,
    bounded_platform,
)
from timmybot_core.ports.oauth import OAuthClient
from timmybot_core.ports.rate_limits import RateDecision, RateLimit, RateLimitStore
from timmybot_core.ports.user_data import Preference, PreferenceError, UserDataStore
from timmybot_core.ports.vault import TokenVault

__all__ = [
    "AUTH_FAILURES",
    "DEFAULT_SEARCH_LIMIT",
    "MAX_SEARCH_LIMIT",
    "SUSPICIOUS_ACTIVITY",
    "UNAUTHORIZED_ACCESS",
    "AccessPolicyStore",
    "Alert",
    "Alerter",
    "AuthFailureReason",
    "Ban",
    "CatalogTrack",
    "ErasureEntry",
    "ErasureJournal",
    "ErasureStep",
    "IncidentRecord",
    "IncidentStore",
    "LinkState",
    "LinkStateStore",
    "MetricsSnapshot",
    "MusicCatalog",
    "OAuthClient",
    "Preference",
    "PreferenceError",
    "RateDecision",
    "RateLimit",
    "RateLimitStore",
    "RetentionHold",
    "SecurityMetrics",
    "Severity",
    "Switch",
    "SwitchState",
    "TakeOutcome",
    "TakeResult",
    "TokenVault",
    "UserDataStore",
    "bounded_platform",
]
