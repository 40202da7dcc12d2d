"""The security-metrics port: the seed design's three instruments, and rate-limit failures.

No instrument carries a guild or user attribute: every distinct attribute
set is a separate, billed CloudWatch metric, and guild IDs are unbounded.
Per-guild detail goes to the security log instead.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from typing import Final, Protocol, runtime_checkable

import attrs

__all__ = [
    "AUTH_FAILURES",
    "RATE_LIMIT_FAILURES",
    "SUSPICIOUS_ACTIVITY",
    "UNAUTHORIZED_ACCESS",
    "AuthFailureReason",
    "MetricsSnapshot",
    "SecurityMetrics",
    "bounded_platform",
]

UNAUTHORIZED_ACCESS: Final = "timmybot.security.unauthorized_access"
AUTH_FAILURES: Final = "timmybot.security.auth_failures"
SUSPICIOUS_ACTIVITY: Final = "timmybot.security.suspicious_activity"
RATE_LIMIT_FAILURES: Final = "timmybot.security.rate_limit_failures"

_PLATFORM = re.compile(r"^[a-z0-9_]{1,24}$")


class AuthFailureReason(enum.StrEnum):
    """Why an authentication failed: a bounded set, safe as a metric attribute."""

    INVALID_GRANT = "invalid_grant"
    INVALID_STATE = "invalid_state"
    PKCE_MISMATCH = "pkce_mismatch"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    TIMEOUT = "timeout"
    REVOKED = "revoked"
    OTHER = "other"


def bounded_platform(platform: str) -> str:
    """Return ``platform`` if it is a short lowercase slug, else ``"other"``.

    Keeps the ``platform`` attribute's cardinality bounded whatever a caller
    passes in.
    """
    value = platform.lower() if isinstance(platform, str) else ""
    # fullmatch: with match, "$" also accepts a trailing newline ("spotify\n").
    return value if _PLATFORM.fullmatch(value) else "other"


@attrs.frozen(kw_only=True)
class MetricsSnapshot:
    """Totals since the process started, for incident snapshots and tests."""

    unauthorized_access: int = 0
    auth_failures: Mapping[tuple[str, str], int] = attrs.field(factory=dict)
    suspicious_activity: float = 0.0
    rate_limit_failures: int = 0

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-serializable form."""
        return {
            "unauthorized_access": self.unauthorized_access,
            "auth_failures": [
                {"platform": platform, "reason": reason, "count": count}
                for (platform, reason), count in sorted(self.auth_failures.items())
            ],
            "suspicious_activity": self.suspicious_activity,
            "rate_limit_failures": self.rate_limit_failures,
        }


@runtime_checkable
class SecurityMetrics(Protocol):
    """Counters and the gauge of the security layer.

    Recording never raises and never blocks on I/O: exporters run in the
    background. The one exception is a programming error: a ``reason`` that
    is not an :class:`AuthFailureReason` raises ``ValueError`` before
    anything is counted, so the attribute's cardinality stays bounded.
    """

    def record_unauthorized_access(self) -> None:
        """Add one to ``timmybot.security.unauthorized_access``."""
        ...

    def record_auth_failure(self, *, platform: str, reason: AuthFailureReason) -> None:
        """Add one to ``timmybot.security.auth_failures`` with ``platform`` and ``reason``."""
        ...

    def record_rate_limit_failure(self) -> None:
        """Add one to ``timmybot.security.rate_limit_failures`` (the rate-limit store failed)."""
        ...

    def observe_suspicious_activity(self, source: Callable[[], float]) -> None:
        """Report ``source()`` (0 to 100) as ``timmybot.security.suspicious_activity``."""
        ...

    def snapshot(self) -> MetricsSnapshot:
        """Return the totals recorded by this process and the gauge's current value."""
        ...
