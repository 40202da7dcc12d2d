"""The process-wide switches every shard obeys."""

from __future__ import annotations

import enum

__all__ = ["Switch"]


class Switch(enum.StrEnum):
    """Process-wide switches that every shard obeys."""

    KILL_SWITCH = "kill_switch"
    """Deny every command except the owners'."""
    REFRESH_PAUSED = "refresh_paused"
    """Stop refreshing OAuth tokens (incident isolation)."""
    LOCKDOWN = "lockdown"
    """Tightened attempt limit and detailed security logging."""
