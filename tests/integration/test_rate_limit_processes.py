"""Exact rate limits across processes: 4 processes x 8 tasks hammer one key.

Each process opens the real store (one SQLite file, or one DynamoDB table
on dynalite) and its 8 asyncio tasks acquire one key ``ATTEMPTS`` times
each, at one fixed moment per round. Two rounds, one window apart, with a
barrier between them (a round's hits must all be in before the next round
starts, or hits of the later moment would count against the earlier one).
Across all processes, each round allows exactly ``LIMIT`` hits, with
distinct hit IDs; every refusal waits until the round's hits leave the
window; no call fails.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.integration import processes

PROCESSES = 4
TASKS = 8
ATTEMPTS = 25
LIMIT = 10
WINDOW = 60.0
ROUNDS = 2
T0 = 1_767_225_600.0

WORKER = r"""
import asyncio, json, sys, time
from pathlib import Path

from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.ports.rate_limits import RateLimit

(barrier, index, backend, where, table, tasks, attempts, limit, window, rounds, t0,
 processes) = sys.argv[1:]
barrier, processes = Path(barrier), int(processes)


def store_for():
    if backend == "sqlite":
        from timmybot_adapters.sqlite import SqliteDatabase, SqliteRateLimitStore

        db = SqliteDatabase(Path(where))
        return SqliteRateLimitStore(db), db.close
    import boto3
    from timmybot_adapters.aws import AwsClients, AwsConfig, DynamoRateLimitStore

    config = AwsConfig(
        region="eu-west-1", endpoint_url=where, dynamodb_endpoint_url=where,
        connect_timeout=2.0, read_timeout=10.0, max_attempts=3,
    )
    session = boto3.Session(
        region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    clients = AwsClients(config, session=session)
    return DynamoRateLimitStore(clients, table), clients.aclose


def wait_for(name, count):
    deadline = time.monotonic() + 60
    while len(list(barrier.glob(name))) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {name} not reached")
        time.sleep(0.002)


async def hammer(store, rate, now):
    decisions = []
    for _ in range(int(attempts)):
        try:
            decisions.append(await store.acquire("cmd:search:user:7", rate, now=now))
        except StoreUnavailable as error:
            decisions.append(str(error))
    return decisions


async def main():
    store, close = store_for()
    rate = RateLimit(limit=int(limit), window=float(window))
    # Migrate (SQLite) before the race; a key no round uses.
    await store.acquire("warm-up", rate, now=float(t0))
    (barrier / f"ready-{index}").touch()
    wait_for("go", 1)
    report = []
    for round_ in range(int(rounds)):
        now = float(t0) + round_ * float(window)
        results = await asyncio.gather(*(hammer(store, rate, now) for _ in range(int(tasks))))
        flat = [d for task in results for d in task]
        report.append({
            "allowed": [d.hit_id for d in flat if not isinstance(d, str) and d.allowed],
            "waits": sorted({d.retry_after for d in flat if not isinstance(d, str) and not d.allowed}),
            "errors": [d for d in flat if isinstance(d, str)],
            "calls": len(flat),
        })
        (barrier / f"done-{round_}-{index}").touch()
        wait_for(f"done-{round_}-*", processes)
    await close()
    print(json.dumps(report))


asyncio.run(main())
"""


def _run(tmp_path: Path, backend: str, where: str, table: str) -> list[list[dict[str, object]]]:
    args = [backend, where, table, str(TASKS), str(ATTEMPTS), str(LIMIT), str(WINDOW)]
    outputs = processes.run_together(
        WORKER,
        tmp_path / "barrier",
        [*args, str(ROUNDS), str(T0), str(PROCESSES)],
        processes=PROCESSES,
        start_timeout=60,
        run_timeout=120,
    )
    return [json.loads(out) for out, _ in outputs]


def _check(reports: list[list[dict[str, object]]]) -> None:
    assert len(reports) == PROCESSES
    every_id: list[str] = []
    for round_ in range(ROUNDS):
        rounds = [report[round_] for report in reports]
        assert [r["errors"] for r in rounds] == [[]] * PROCESSES
        assert sum(int(str(r["calls"])) for r in rounds) == PROCESSES * TASKS * ATTEMPTS
        allowed = [hit for r in rounds for hit in r["allowed"]]  # type: ignore[attr-defined]
        assert len(allowed) == LIMIT, (round_, len(allowed))
        every_id.extend(allowed)
        # Every hit of the round is at the same moment: each refusal waits a window.
        waits = {wait for r in rounds for wait in r["waits"]}  # type: ignore[attr-defined]
        assert waits == {WINDOW}
    assert len(set(every_id)) == LIMIT * ROUNDS


def test_sqlite_four_processes_allow_exactly_the_limit_per_window(tmp_path: Path) -> None:
    path = tmp_path / "var" / "timmybot.db"
    _check(_run(tmp_path, "sqlite", str(path), ""))


def test_dynamodb_four_processes_allow_exactly_the_limit_per_window(tmp_path: Path) -> None:
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
