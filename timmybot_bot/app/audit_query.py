"""``/admin audit ...`` and ``/admin guild ...``: their arguments, and the audit trail shown.

Filters are written ``name:value`` (``kind:security action:guild.allow
since:7d limit:20``), the same on Discord (one text option) and on the
console. Every text in a reply is escaped for Discord: actions and
resources were cleaned when recorded, but were typed by someone once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

import attrs

from timmybot_bot.app.commands import QueryAudit, VerifyAudit
from timmybot_bot.app.failures import UsageError
from timmybot_bot.app.fitting import fit_lines
from timmybot_core import (
    AuditCursor,
    AuditKind,
    AuditPage,
    AuditRecord,
    DiscordLimits,
    ResponseSanitizer,
)
from timmybot_core.domain.snowflake import SnowflakeError, parse_snowflake, parse_whole_number

__all__ = [
    "MAX_SHOWN",
    "AuditQueryError",
    "parse_audit_query",
    "parse_guild_id",
    "parse_recent",
    "parse_verify",
    "render_page",
    "render_verification",
]

_DURATION: Final = re.compile(r"^([0-9]{1,6})([mhdw])$", re.ASCII)
_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_FILTERS: Final = ("kind", "action", "admin", "since", "until", "limit", "cursor")
MAX_SHOWN: Final = 25
_DEFAULT_SHOWN: Final = 10
_EVER: Final = datetime(2000, 1, 1, tzinfo=UTC)


class AuditQueryError(UsageError):
    """An ``/admin audit`` argument is malformed; the message says how to write it."""


def parse_guild_id(text: str) -> int:
    """Return the guild ID written in ``text``; raises ``UsageError`` saying how to write one."""
    try:
        return parse_snowflake(text.strip())
    except SnowflakeError:
        raise UsageError(
            "The guild must be a Discord ID (the digits 0-9, no leading zero, up to 2**64 - 1)."
        ) from None


def _moment(name: str, value: str, now: datetime) -> datetime:
    match = _DURATION.match(value)
    try:
        if match:
            amount, unit = match.groups()
            return now - timedelta(**{_UNITS[unit]: int(amount)})
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise AuditQueryError(
                f"{name}: must be a duration back from now (30m, 12h, 7d, 2w) or a date "
                "(2026-11-01 or 2026-11-01T12:00)"
            ) from None
        # In UTC here, so that no store meets an instant it cannot convert.
        return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        # 999999w back from now, or 0001-01-01T00:00+01:00: before year 1 or after 9999 in UTC.
        raise AuditQueryError(f"{name}: must lie between the years 1 and 9999 (UTC).") from None


def _limit(value: str | int) -> int:
    try:
        return parse_whole_number(str(value), minimum=1, maximum=MAX_SHOWN)
    except SnowflakeError:
        raise AuditQueryError(f"limit: must be a number from 1 to {MAX_SHOWN}.") from None


def parse_audit_query(words: list[str], *, now: datetime) -> QueryAudit:
    """Parse ``name:value`` words into a :class:`~timmybot_bot.app.commands.QueryAudit`.

    Raises ``AuditQueryError`` naming the filter that is wrong and how to write it.
    """
    values: dict[str, str] = {}
    for word in words:
        name, sep, value = word.partition(":")
        name = name.lower()
        if not sep or name not in _FILTERS or not value:
            raise AuditQueryError(
                f"Filters are name:value with name one of {', '.join(_FILTERS)} "
                "(for example kind:security since:7d)."
            )
        if name in values:
            raise AuditQueryError(f"{name}: given twice.")
        values[name] = value
    kind: AuditKind | None = None
    if "kind" in values:
        try:
            kind = AuditKind(values["kind"].lower())
        except ValueError:
            raise AuditQueryError(
                f"kind: must be one of {', '.join(k.value for k in AuditKind)}."
            ) from None
    admin_id: int | None = None
    if "admin" in values:
        try:
            admin_id = parse_snowflake(values["admin"])
        except SnowflakeError:
            raise AuditQueryError(
                "admin: must be a Discord user ID (the digits 0-9, no leading zero)."
            ) from None
    limit = _limit(values["limit"]) if "limit" in values else _DEFAULT_SHOWN
    start = _moment("since", values["since"], now) if "since" in values else _EVER
    end = (
        _moment("until", values["until"], now) if "until" in values else now + timedelta(seconds=1)
    )
    if end <= start:
        raise AuditQueryError("until: must be after since.")
    return QueryAudit(
        start=start,
        end=end,
        kind=kind,
        action_name=values.get("action"),
        admin_id=admin_id,
        limit=limit,
        cursor=values.get("cursor"),
    )


def parse_recent(count: int | str | None, *, now: datetime) -> QueryAudit:
    """``/admin audit recent [count]``: the latest records (``count`` falsy: the default)."""
    query = parse_audit_query([], now=now)
    return attrs.evolve(query, recent=True, limit=_limit(count) if count else query.limit)


def parse_verify(words: list[str], *, now: datetime) -> VerifyAudit:
    """``/admin audit verify [filters]``: verify, reporting problems within the filters' times."""
    query = parse_audit_query(words, now=now)
    return VerifyAudit(start=query.start, end=query.end)


def _one_line(sanitizer: ResponseSanitizer, text: str, *, limit: int) -> str:
    # Stored text is one line only if nobody wrote the store but the trail: a
    # writer ID read from the store reaches a seal record's resource and every
    # problem's place, and a line break there would forge lines of the reply.
    return sanitizer.for_discord(sanitizer.sanitize_string(text), limit=limit)


def _line(sanitizer: ResponseSanitizer, record: AuditRecord) -> str:
    who = record.actor or record.subject or "-"
    short = who if len(who) <= 14 else who[:14] + "…"

    def clean(text: str, *, limit: int) -> str:
        return _one_line(sanitizer, text, limit=limit)

    parts = [
        f"{record.timestamp:%Y-%m-%d %H:%M:%S}",
        record.kind.value,
        clean(record.action, limit=60) or "-",
        f"by {clean(short, limit=20)}",
    ]
    if record.resource:
        parts.append(f"on {clean(record.resource, limit=60)}")
    if record.source:
        parts.append(f"({clean(record.source, limit=20)})")
    return " ".join(parts)


def render_page(
    sanitizer: ResponseSanitizer,
    page: AuditPage,
    *,
    title: str,
    limit: int = DiscordLimits.MESSAGE,
) -> str:
    """Return a page of records as reply text, newest first, with the next page's cursor.

    The text is at most ``limit`` characters: records that do not fit are
    left for the next page, whose cursor then starts after the last record
    shown. (Cut by the sender instead, a long page lost its last records and
    the cursor line with them.)
    """
    if not page.records:
        return f"{title}: no audit records match."
    lines = [f"{title} (newest first, UTC):"]
    for index, record in enumerate(page.records):
        rest = page.records[index + 1 :]
        # Past this record, the page goes on from it (or from the page's end).
        cursor = AuditCursor.of(record).encode() if rest else page.next_cursor
        more = [f"More: add cursor:{cursor}"] if cursor is not None else []
        line = f"• {_line(sanitizer, record)}"
        if index > 0 and len("\n".join([*lines, line, *more])) > limit:
            previous = AuditCursor.of(page.records[index - 1]).encode()
            return "\n".join([*lines, f"More: add cursor:{previous}"])
        lines.append(line)
    if page.next_cursor is not None:
        lines.append(f"More: add cursor:{page.next_cursor}")
    return "\n".join(lines)


def render_verification(sanitizer: ResponseSanitizer, report_text: str, problems: list[str]) -> str:
    """Return a verification report as reply text: at most 10 problems, within one message."""
    return fit_lines(
        [report_text],
        [f"  ✗ {_one_line(sanitizer, p, limit=200)}" for p in problems[:10]],
        total=len(problems),
        more=lambda n: f"  … and {n} more (timmybot-admin audit verify lists all)",
    )
