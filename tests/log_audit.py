"""Suite-wide capture of log lines, and the raw identifiers the code was given.

``tests/conftest.py`` installs the capture for the whole session; the test in
``tests/zz_audit`` (collected last) checks what was captured: no raw guild,
user or IP identifier in a security event, and no line broken by user input.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from timmybot_core.services.security_log import SecurityAuditLogger


@attrs.define
class LogAudit:
    lines: list[tuple[str, str]] = attrs.Factory(list)
    raw_ids: set[str] = attrs.Factory(set)
    installed: bool = False


AUDIT = LogAudit()


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            AUDIT.lines.append((record.name, record.getMessage()))
        except Exception:  # noqa: BLE001 - a broken record is itself a finding
            AUDIT.lines.append((record.name, "<unformattable record>"))


def install() -> None:
    """Capture every ``timmybot.*`` record and every raw ID given to the security log."""
    if AUDIT.installed:
        return
    AUDIT.installed = True
    logger = logging.getLogger("timmybot")
    logger.addHandler(_Capture(level=logging.DEBUG))
    logger.setLevel(logging.DEBUG)
    original = SecurityAuditLogger.record

    async def recording(self: SecurityAuditLogger, *args: Any, **kwargs: Any) -> Any:
        for key in ("guild_id", "user_id", "ip"):
            value = kwargs.get(key)
            if value is not None:
                AUDIT.raw_ids.add(str(value))
        return await original(self, *args, **kwargs)

    SecurityAuditLogger.record = recording  # type: ignore[method-assign]
