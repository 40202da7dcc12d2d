"""Worker processes for the multi-process ban test on DynamoDB (imported by spawn)."""

from __future__ import annotations

import asyncio
import logging
from multiprocessing.synchronize import Barrier
from queue import Queue

import boto3

from timmybot_adapters.aws import AwsClients, AwsConfig, DynamoAccessPolicyStore
from timmybot_adapters.memory import MemoryAlerter, MemorySecurityMetrics
from timmybot_core import (
    AccessSettings,
    Pseudonymizer,
    SecurityAuditLogger,
    SecurityEventType,
    ServerAccessControl,
    SystemClock,
)


async def _deny_many(
    endpoint: str, table: str, guild: int, attempts: int, barrier: Barrier
) -> tuple[int, int]:
    silent = logging.getLogger("timmybot.security.worker")
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    session = boto3.Session(
        region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    aws = AwsClients(
        AwsConfig(region="eu-west-1", dynamodb_endpoint_url=endpoint, max_workers=4),
        session=session,
    )
    clock = SystemClock()
    security_log = SecurityAuditLogger(
        pseudonymizer=Pseudonymizer(key=b"w" * 32, key_id="w1"),
        clock=clock,
        logger=silent,
        recent=attempts + 10,
    )
    alerter = MemoryAlerter()
    access = ServerAccessControl(
        store=DynamoAccessPolicyStore(aws, table),
        security_log=security_log,
        metrics=MemorySecurityMetrics(),
        alerter=alerter,
        clock=clock,
        settings=AccessSettings(),
    )
    await access.is_guild_allowed(guild + 1)  # build the client before the race starts
    barrier.wait()
    for _ in range(attempts):
        await access.check(guild, 7, "search")
    bans = sum(
        1 for e in security_log.recent(attempts + 10) if e.type is SecurityEventType.BAN_PLACED
    )
    await aws.aclose()
    return len(alerter.sent), bans


def deny_many(
    endpoint: str, table: str, guild: int, attempts: int, barrier: Barrier, results: Queue[object]
) -> None:
    """Run ``attempts`` denied checks, then report (alerts sent, bans logged)."""
    results.put(asyncio.run(_deny_many(endpoint, table, guild, attempts, barrier)))
