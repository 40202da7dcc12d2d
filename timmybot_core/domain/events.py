"""Security events: what happened, to which (pseudonymous) guild or user."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["DetailValue", "SecurityEvent", "SecurityEventType", "bound_integer", "freeze_details"]

DetailValue = str | int | float | bool | None
_IDENTITY = ("guild", "user", "ip")
_RESERVED = frozenset({"event", "at", *_IDENTITY})
# Python writes no integer of more than 4,300 digits as text (a host may lower
# that to 640), so json.dumps raises ValueError on one: 500 digits, as many as
# a detail text has characters, stays below every limit.
_MAX_INT_DIGITS = 500
_INT_BOUND = 10**_MAX_INT_DIGITS


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


def bound_integer(value: int) -> int | str:
    """Return ``value``, or a short text in its place if it has more than 500 digits.

    Details are bounded like texts, so that none can break the JSON encoding
    of an audit record, a log line or an alert.
    """
    if -_INT_BOUND < value < _INT_BOUND:
        return value
    return f"[integer of {value.bit_length()} bits]"


def freeze_details(details: Mapping[str, DetailValue]) -> Mapping[str, DetailValue]:
    """Return a read-only copy of ``details`` (events and alerts never change after the fact).

    Integers are bounded (:func:`bound_integer`).
    """
    return MappingProxyType(
        {
            key: bound_integer(value) if isinstance(value, int) else value
            for key, value in details.items()
        }
    )


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
