"""Whichever front-end runs a use case, its audit record is the same but for ``source``.

The test walks the command table: every command class with an audit action
that the console and ``timmybot-admin`` both offer is run from each, on the
same SQLite data directory, and the two records are compared field by field.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from timmybot_bot.app import commands as c
from timmybot_bot.app.handlers import HANDLERS
from timmybot_bot.cli.main import main as admin_main
from timmybot_bot.console.lines import parse_line, run_command
from timmybot_bot.console.offline import LOCAL_OPERATOR
from timmybot_bot.runtime.bootstrap import Settings, bootstrap
from timmybot_core import AuditKind, AuditRecord

GUILD = "222222222222222222"
# One pseudonym key for both data directories, so that actors compare.
KEY = "11" * 32
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

# (console line, timmybot-admin arguments) for each use case both offer.
BOTH: list[tuple[str, list[str]]] = [
    (f"/admin guild allow {GUILD}", ["guild", "allow", GUILD]),
    (f"/admin guild unban {GUILD}", ["guild", "unban", GUILD]),
    (f"/admin guild remove {GUILD}", ["guild", "remove", GUILD]),
    (
        "/admin killswitch on leaked token",
        ["switch", "on", "kill_switch", "--reason", "leaked token"],
    ),
    ("/admin killswitch off", ["switch", "off", "kill_switch"]),
    (
        "/admin incident declare P3 disk almost full",
        ["incident", "declare", "P3", "disk almost full"],
    ),
    ("/admin rotation run", ["rotation", "run"]),
]


def _console_command(line: str) -> c.Command:
    name, _, args = line[1:].partition(" ")
    command = parse_line(name, args, now=NOW)
    assert command is not None
    return command


def test_every_recorded_command_has_a_handler_and_one_fixed_action() -> None:
    recorded = [kind for kind in HANDLERS if kind.action is not None]
    actions = [kind.action for kind in recorded]
    assert len(actions) == len(set(actions)), "two commands share an audit action"
    for kind in recorded:
        assert kind.admin_only, f"{kind.__name__} is recorded as an admin action"


def test_the_table_covers_every_recorded_command_the_console_offers() -> None:
    console_lines = [
        f"/admin guild allow {GUILD}",
        f"/admin guild remove {GUILD}",
        f"/admin guild unban {GUILD}",
        "/admin killswitch on",
        "/admin killswitch off",
        "/admin incident declare P1 x",
        "/admin rotation run",
        "/admin audit verify",
        "/admin audit query",
        "/admin guild list",
        "/privacy export",
        "/privacy delete",
    ]
    offered = {type(_console_command(line)) for line in console_lines}
    recorded = {kind for kind in offered if kind.action is not None}
    assert recorded == {type(_console_command(line)) for line, _ in BOTH}


def _settings(data_dir: Path) -> Settings:
    return Settings(backend="sqlite", data_dir=data_dir, pseudonym_key=KEY)


def _admin_records(data_dir: Path) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        services = bootstrap(_settings(data_dir))
        try:
            page = await services.audit.get_audit_history(
                NOW - timedelta(days=3650),
                datetime.now(UTC) + timedelta(days=1),
                kind=AuditKind.ADMIN,
                limit=100,
            )
        finally:
            await services.aclose()
        return list(reversed(page.records))

    return asyncio.run(read())


def _comparable(record: AuditRecord) -> dict[str, Any]:
    return {
        "action": record.action,
        "actor": record.actor,
        "subject": record.subject,
        "resource": record.resource,
        "details": {k: v for k, v in record.details.items() if k != "incident_id"},
    }


@pytest.mark.parametrize(("line", "argv"), BOTH, ids=[line for line, _ in BOTH])
def test_console_and_admin_cli_record_the_same_but_for_the_source(
    tmp_path: Path, line: str, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each front-end on a fresh data directory: both change something.
    environ = {
        "TIMMYBOT_BACKEND": "sqlite",
        "TIMMYBOT_DATA_DIR": str(tmp_path / "cli"),
        "TIMMYBOT_PSEUDONYM_KEY": KEY,
    }
    monkeypatch.setattr("sys.stdout", io.StringIO())
    monkeypatch.setattr("sys.stderr", io.StringIO())

    async def from_console() -> str:
        services = bootstrap(_settings(tmp_path / "console"))
        try:
            name, _, args = line[1:].partition(" ")
            return (await run_command(services, LOCAL_OPERATOR, name, args)).text
        finally:
            await services.aclose()

    asyncio.run(from_console())
    assert admin_main(argv, environ=environ) in (0, 1)  # rotation with nothing linked: 0

    [console] = _admin_records(tmp_path / "console")
    [cli] = _admin_records(tmp_path / "cli")
    assert type(_console_command(line)).action == console.action
    assert (console.source, cli.source) == ("console", "cli")
    assert _comparable(console) == _comparable(cli)
