"""Four bot processes share one DynamoDB table (dynalite) and enforce one limit.

Each process runs 500 denied commands of one guild through its own
``ServerAccessControl`` and ``DynamoAccessPolicyStore``, all released at
once. dynalite locks items the way DynamoDB applies single-item updates
atomically, so the atomic ``ADD`` and the conditional ban write are really
exercised across processes: every attempt is counted exactly once, and of
the processes that see the limit crossed exactly one places the ban and
sends the alert.
"""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

from tests import aws_servers
from tests.integration.aws.access_workers import deny_many
from timmybot_adapters.aws import DynamoAccessPolicyStore
from timmybot_core import SystemClock

PROCESSES = 4
ATTEMPTS = 500
GUILD = 555_555_555_555_555_555


async def test_four_processes_count_every_attempt_and_ban_once() -> None:
    endpoint = aws_servers.dynalite_endpoint()
    async with aws_servers.fresh_tables(roles=["access"]) as tables:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(PROCESSES)
        results = context.Queue()
        workers = [
            context.Process(
                target=deny_many,
                args=(endpoint, tables.access, GUILD, ATTEMPTS, barrier, results),
            )
            for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        try:
            # The workers block this thread while they run; the event loop
            # has nothing else to do meanwhile.
            reports = [results.get(timeout=180) for _ in workers]
        finally:
            for worker in workers:
                worker.join(timeout=30)
                if worker.is_alive():
                    worker.kill()
        assert [worker.exitcode for worker in workers] == [0] * PROCESSES

        alerts = sum(report[0] for report in reports)
        bans = sum(report[1] for report in reports)
        assert (alerts, bans) == (1, 1)
        store = DynamoAccessPolicyStore(aws_servers.shared_clients(), tables.access)
        count = await store.count_attempts(
            GUILD, now=SystemClock().now(), window=timedelta(hours=1)
        )
        assert count == PROCESSES * ATTEMPTS
        ban = await store.get_ban(GUILD, now=SystemClock().now())
        assert ban is not None
