"""Ports: the interfaces (typing.Protocol) that adapters implement.

Each port has one contract test suite under ``tests/contract`` that every
adapter of it passes.
"""

from __future__ import annotations

from timmybot_core.ports.access import AccessPolicyStore, Ban, Switch, SwitchState
from timmybot_core.ports.alerts import Alert, Alerter, Severity
from timmybot_core.ports.incidents import IncidentRecord, IncidentStore, RetentionHold
from timmybot_core.ports.metrics import (
    AUTH_FAILURES,
    SUSPICIOUS_ACTIVITY,
    UNAUTHORIZED_ACCESS,
    AuthFailureReason,
    MetricsSnapshot,
    SecurityMetrics,
    bounded_platform,
)

__all__ = [
    "AUTH_FAILURES",
    "SUSPICIOUS_ACTIVITY",
    "UNAUTHORIZED_ACCESS",
    "AccessPolicyStore",
    "Alert",
    "Alerter",
    "AuthFailureReason",
    "Ban",
    "IncidentRecord",
    "IncidentStore",
    "MetricsSnapshot",
    "RetentionHold",
    "SecurityMetrics",
    "Severity",
    "Switch",
    "SwitchState",
    "bounded_platform",
]
