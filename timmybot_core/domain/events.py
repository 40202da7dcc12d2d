"""Security events: what happened, to which (pseudonymous) guild or user."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["DetailValue", "SecurityEvent", "SecurityEventType", "freeze_details"]

DetailValue = str | int | float | bool | None
_IDENTITY = ("guild", "user", "ip")
_RESERVED = frozenset({"event", "at", *_IDENTITY})


class SecurityEventType(enum.StrEnum):
    """Kinds of security events, as written to the ``timmybot.security`` log."""

    AUTHENTICATION_ATTEMPT = "AUTHENTICATION_ATTEMPT"
    UNAUTHORIZED_ACCESS = "UNAUTHORIZED_ACCESS"
    ACCESS_GRANTED = "ACCESS_GRANTED"
    BAN_PLACED = "BAN_PLACED"
    BAN_LIFTED = "BAN_LIFTED"
    KILL_SWITCH = "KILL_SWITCH"
    LOCKDOWN = "LOCKDOWN"
    REFRESH_PAUSED = "REFRESH_PAUSED"
    ALLOWLIST_CHANGED = "ALLOWLIST_CHANGED"
    VALIDATION_REJECTED = "VALIDATION_REJECTED"
    INCIDENT_DECLARED = "INCIDENT_DECLARED"
    ALERT_FAILED = "ALERT_FAILED"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    REQUESTS_REFUSED = "REQUESTS_REFUSED"
    RATE_LIMIT_ABUSE = "RATE_LIMIT_ABUSE"


def freeze_details(details: Mapping[str, DetailValue]) -> Mapping[str, DetailValue]:
    """Return a read-only copy of ``details`` (events and alerts never change after the fact)."""
    return MappingProxyType(dict(details))


@attrs.frozen(kw_only=True)
class SecurityEvent:
    """One security event. IDs are pseudonyms; details are bounded, clean text.

    Build events through :class:`~timmybot_core.services.security_log.SecurityAuditLogger`,
    which pseudonymizes and cleans what it is given.
    """

    type: SecurityEventType
    at: datetime
    guild: str | None = None
    user: str | None = None
    ip: str | None = None
    details: Mapping[str, DetailValue] = attrs.field(factory=dict, converter=freeze_details)

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form written to the log."""
        record: dict[str, Any] = {"event": self.type.value, "at": self.at.isoformat()}
        for key in _IDENTITY:
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        for key, value in self.details.items():
            # A detail can never overwrite the event's own fields.
            record[f"detail_{key}" if key in _RESERVED else key] = value
        return record
