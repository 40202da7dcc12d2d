"""Adapters that write to Python logging."""

from __future__ import annotations

from timmybot_adapters.log.alerts import LoggingAlerter

__all__ = ["LoggingAlerter"]
