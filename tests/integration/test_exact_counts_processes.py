"""Exact counts across processes: 8 processes x 16 tasks knock on one stranger guild.

Each process runs the real access guard over a shared store (one SQLite
file, or one DynamoDB table on dynalite) with ``attempt_limit=10``. Across
all of them: exactly ``limit`` denials come before the ban, their attempt
numbers are 1 to ``limit`` each once, and exactly one process places the
ban and sends its alert.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from tests.integration import processes

PROCESSES = 8
TASKS = 16
LIMIT = 10
GUILD = 777_777_777_777_777_777

WORKER = r"""
import asyncio, json, logging, sys, time
from pathlib import Path

from timmybot_adapters.memory import MemoryAlerter, MemorySecurityMetrics
from timmybot_core import (
    AccessSettings, Pseudonymizer, SecurityAuditLogger, SecurityEventType,
    ServerAccessControl, SystemClock,
)

barrier, index, backend, where, table, guild, tasks, limit = sys.argv[1:]


def store_for():
    if backend == "sqlite":
        from timmybot_adapters.sqlite import SqliteAccessPolicyStore, SqliteDatabase

        db = SqliteDatabase(Path(where))
        return SqliteAccessPolicyStore(db), db.close
    import boto3
    from timmybot_adapters.aws import AwsClients, AwsConfig, DynamoAccessPolicyStore

    config = AwsConfig(
        region="eu-west-1", endpoint_url=where, dynamodb_endpoint_url=where,
        connect_timeout=2.0, read_timeout=10.0, max_attempts=3,
    )
    session = boto3.Session(
        region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    clients = AwsClients(config, session=session)
    return DynamoAccessPolicyStore(clients, table), clients.aclose


async def main():
    silent = logging.getLogger("timmybot.security.worker")
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    store, close = store_for()
    clock = SystemClock()
    log = SecurityAuditLogger(
        pseudonymizer=Pseudonymizer(key=b"w" * 32, key_id="w1"),
        clock=clock, logger=silent, recent=int(tasks) * 4,
    )
    alerter = MemoryAlerter()
    access = ServerAccessControl(
        store=store, security_log=log, metrics=MemorySecurityMetrics(), alerter=alerter,
        clock=clock, settings=AccessSettings(attempt_limit=int(limit)),
    )
    await access.is_guild_allowed(int(guild) + 1)  # open (migrate) before the race
    (Path(barrier) / f"ready-{index}").touch()
    deadline = time.monotonic() + 30
    while not (Path(barrier) / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("no start signal")
        time.sleep(0.001)
    decisions = await asyncio.gather(
        *(access.check(int(guild), 1000 + n, "search") for n in range(int(tasks)))
    )
    events = log.recent(int(tasks) * 4)
    denied = [
        e.details.get("attempts") for e in events
        if e.type is SecurityEventType.UNAUTHORIZED_ACCESS
        and e.details.get("reason") == "not_allowlisted"
    ]
    report = {
        "allowed": sum(1 for d in decisions if d.allowed),
        "reasons": [d.reason.value for d in decisions],
        "denied_attempts": denied,
        "bans": sum(1 for e in events if e.type is SecurityEventType.BAN_PLACED),
        "alerts": len(alerter.sent),
    }
    await close()
    print(json.dumps(report))


asyncio.run(main())
"""


def _check(reports: list[dict[str, object]]) -> None:
    assert sum(int(str(r["allowed"])) for r in reports) == 0
    reasons = Counter(reason for r in reports for reason in r["reasons"])  # type: ignore[attr-defined]
    assert reasons == {"not_allowlisted": LIMIT, "guild_banned": PROCESSES * TASKS - LIMIT}
    numbers = sorted(n for r in reports for n in r["denied_attempts"])  # type: ignore[attr-defined]
    assert numbers == list(range(1, LIMIT + 1)), numbers
    assert sum(int(str(r["bans"])) for r in reports) == 1
    assert sum(int(str(r["alerts"])) for r in reports) == 1


def _run(tmp_path: Path, backend: str, where: str, table: str) -> list[dict[str, object]]:
    outputs = processes.run_together(
        WORKER,
        tmp_path / "barrier",
        [backend, where, table, str(GUILD), str(TASKS), str(LIMIT)],
        processes=PROCESSES,
        start_timeout=60,
        run_timeout=120,
    )
    return [json.loads(out) for out, _ in outputs]


def test_sqlite_eight_processes_give_exactly_limit_denials_before_the_ban(tmp_path: Path) -> None:
    path = tmp_path / "var" / "timmybot.db"
    _check(_run(tmp_path, "sqlite", str(path), ""))


def test_dynamodb_eight_processes_give_exactly_limit_denials_before_the_ban(
    tmp_path: Path,
) -> None:
    from tests import aws_servers

    async def tables() -> str:
        context = aws_servers.fresh_tables(roles=["access"])
        names = await context.__aenter__()
        holder.append(context)
        return names.access

    holder: list[object] = []
    loop = asyncio.new_event_loop()
    try:
        table = loop.run_until_complete(tables())
        try:
            _check(_run(tmp_path, "aws", aws_servers.dynalite_endpoint(), table))
        finally:
            loop.run_until_complete(holder[0].__aexit__(None, None, None))  # type: ignore[attr-defined]
    finally:
        loop.close()
