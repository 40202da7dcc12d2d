"""Cost of the aws adapters against moto's server: Secrets Manager calls, and audit appends.

Run ``.venv/bin/python bench/aws.py`` (``--quick`` for a smoke run);
``make bench`` runs it after the token tables. Everything runs in one
process against one ``ThreadedMotoServer(ip_address="127.0.0.1", port=0)``:
boto3 makes real HTTP calls to it (fake credentials, region eu-west-1).
There is no pass/fail; the exit status is always 0.

Secrets Manager bills every API call, so the number of calls per token read
is the cost that matters. Calls are counted with a botocore ``before-send``
hook on each client: every HTTP request, retries included (there are none
here). Latencies against moto say nothing about AWS's network; the call
counts are exact and carry over.

Table 1: Secrets Manager calls per 1,000 token reads of 100 users
    100 users are linked first (``SecretsManagerTokenVault.put``, one secret
    each, tokens valid for a day, so no refresh ever happens). Then 1,000
    reads go round the users, alternately through:

    * ``SecureTokenService.get_valid_access_token(user, "demo")`` (ours),
      with ``TokenSettings(cache_ttl=interval)`` and the system clock;
    * ``aws_secretsmanager_caching.SecretCache.get_secret_string(name)``
      with ``SecretCacheConfig(secret_refresh_interval=interval)`` and a
      client of its own from the same session, followed by ``json.loads``
      and picking the access token (what its caller must do on every read:
      it caches the string, not the parsed record).

    Two intervals: 60 s (the service's default ``cache_ttl``) with the reads
    as fast as they go, so every record is read from AWS once; and 2 s with
    the reads paced over at least 6 s (1 s over 3 s with ``--quick``), so
    entries expire and both caches go back to AWS. Both caches see the same
    reads at the same moments; "reads took" is the measured duration (longer
    than the pacing when the calls to moto take longer than the gaps). ``SecretCache`` needs a
    ``DescribeSecret`` (which version is current?) before its first
    ``GetSecretValue`` of a secret, and re-describes at a random moment
    between half the interval and the interval; our cache re-reads the
    record (one ``GetSecretValue``) once ``cache_ttl`` has passed.

Table 2: latency of a cached read
    After warming, the best of 5 repeats of N reads of one user (N = 2,000,
    200 with ``--quick``), per read, in microseconds: ours awaited in the
    event loop (a cache hit: a dict lookup, an expiry check); SecretCache's
    ``get_secret_string`` alone and with the ``json.loads`` its callers
    need. For scale, one uncached ``SecretsManagerTokenVault.get`` (an HTTP
    round trip to moto on 127.0.0.1, parsing included), best of 20.

Table 3: DynamoDB calls and wall time per 1,000 audit appends
    ``DynamoAuditLog.append`` of 1,000 hash-chained records (200 with
    ``--quick``, scaled to 1,000) of one writer, one after another, into an
    audit table created on moto's DynamoDB with the five indexes. Each
    append writes the event ID's guard and the record (two conditional
    ``PutItem``); the first append of a writer also registers it and the
    first append of a day widens the stored day range. Wall time is moto's
    and this process's; DynamoDB's own latency (single-digit milliseconds)
    would dominate against AWS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import boto3
from aws_secretsmanager_caching import SecretCache, SecretCacheConfig
from moto.server import ThreadedMotoServer

from run import fmt_us, parse_quick, print_table
from timmybot_adapters.aws import (
    AwsClients,
    AwsConfig,
    DynamoAuditLog,
    SecretsManagerTokenVault,
    TableNames,
    create_tables,
)
from timmybot_adapters.memory import MemorySecurityMetrics
from timmybot_adapters.oauth import AiohttpOAuthClient
from timmybot_core import (
    OAuthTokens,
    PlatformLink,
    Pseudonymizer,
    SecureTokenService,
    SecurityAuditLogger,
    SystemClock,
    UserTokens,
)
from timmybot_core.domain.audit_chain import record_hash
from timmybot_core.ports.audit import GENESIS_HASH, AuditKind, AuditRecord
from timmybot_core.services.tokens import TokenSettings

REGION = "eu-west-1"
PLATFORM = "demo"
USERS = 100
READS = 1_000
PREFIX = "/timmybot-bench/users/"


class Calls:
    """A ``before-send`` hook counting HTTP requests by operation."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()

    def __call__(self, event_name: str = "", **_: Any) -> None:
        self.by_operation[event_name.rsplit(".", 1)[-1]] += 1

    def total(self) -> int:
        return sum(self.by_operation.values())

    def reset(self) -> None:
        self.by_operation.clear()


def counted(client: Any, service: str) -> Calls:
    calls = Calls()
    client.meta.events.register(f"before-send.{service}", calls)
    return calls


def record(user_id: int) -> UserTokens:
    now = datetime.now(UTC)
    tokens = OAuthTokens(
        platform=PLATFORM,
        access_token=f"bench-access-{user_id}",
        refresh_token=f"bench-refresh-{user_id}",
        expires_at=now + timedelta(days=1),
    )
    return UserTokens.new(user_id, now=now).with_link(
        PlatformLink(tokens=tokens, linked_at=now), now=now
    )


def token_service(
    vault: SecretsManagerTokenVault, oauth: AiohttpOAuthClient, interval: float
) -> SecureTokenService:
    clock = SystemClock()
    return SecureTokenService(
        vault=vault,
        # Never called: no token nears its expiry during the benchmark.
        oauth=oauth,
        security_log=SecurityAuditLogger(
            pseudonymizer=Pseudonymizer(key=b"b" * 32, key_id="bench"), clock=clock
        ),
        metrics=MemorySecurityMetrics(),
        clock=clock,
        settings=TokenSettings(cache_ttl=timedelta(seconds=interval)),
    )


@attrs.define
class Readers:
    """Our service and a SecretCache, each with its call counter."""

    ours: SecureTokenService
    ours_calls: Calls
    theirs: SecretCache
    theirs_calls: Calls
    vault: SecretsManagerTokenVault

    def their_token(self, user_id: int) -> str:
        text = self.theirs.get_secret_string(self.vault.secret_name(user_id))
        return str(json.loads(text)["links"][PLATFORM]["tokens"]["access_token"])


def readers(aws: AwsClients, oauth: AiohttpOAuthClient, endpoint: str, interval: float) -> Readers:
    vault = SecretsManagerTokenVault(aws, prefix=PREFIX)
    their_client = boto3.Session(
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - moto
    ).client("secretsmanager", endpoint_url=endpoint)
    return Readers(
        ours=token_service(vault, oauth, interval),
        ours_calls=counted(aws.secretsmanager, "secrets-manager"),
        theirs=SecretCache(
            config=SecretCacheConfig(secret_refresh_interval=interval), client=their_client
        ),
        theirs_calls=counted(their_client, "secrets-manager"),
        vault=vault,
    )


async def read_round(r: Readers, *, spread: float) -> float:
    """Make 1,000 reads round the users through both caches, over at least ``spread`` seconds.

    Returns how long the reads took: more than ``spread`` when the calls to
    moto take longer than the gaps between reads.
    """
    gap = spread / READS
    started = time.perf_counter()
    for n in range(READS):
        user_id = n % USERS + 1
        ours = await r.ours.get_valid_access_token(user_id, PLATFORM)
        theirs = r.their_token(user_id)
        assert ours == theirs == f"bench-access-{user_id}"
        if gap:
            # Pace by the clock, not by sleeping a fixed gap after each read.
            await asyncio.sleep(max(0.0, started + (n + 1) * gap - time.perf_counter()))
    return time.perf_counter() - started


def calls_row(label: str, interval: float, took: float, calls: Calls) -> list[str]:
    gets = calls.by_operation["GetSecretValue"]
    describes = calls.by_operation["DescribeSecret"]
    total = calls.total()
    return [
        label,
        f"{interval:g} s",
        f"{took:.1f} s",
        f"{gets:,}",
        f"{describes:,}",
        f"{total:,}",
        f"{total * 1000 / READS:,.0f}",
    ]


async def table_calls(
    aws: AwsClients, oauth: AiohttpOAuthClient, endpoint: str, quick: bool
) -> Readers:
    rows: list[list[str]] = []
    fast: Readers | None = None
    for interval, spread in ((60.0, 0.0), (1.0, 3.0) if quick else (2.0, 6.0)):
        r = readers(aws, oauth, endpoint, interval)
        r.ours_calls.reset()
        took = await read_round(r, spread=spread)
        rows.append(calls_row("SecureTokenService (ours)", interval, took, r.ours_calls))
        rows.append(calls_row("SecretCache", interval, took, r.theirs_calls))
        fast = fast if fast is not None else r
    print_table(
        f"Table 1: Secrets Manager calls per {READS:,} token reads of {USERS} users "
        "(moto server, HTTP requests counted)",
        [
            "reader",
            "refresh interval",
            "reads took",
            "GetSecretValue",
            "DescribeSecret",
            "calls",
            "per 1,000 reads",
        ],
        rows,
    )
    print(
        "SecretCache re-describes each secret at a random moment between half the interval and "
        "the interval; ours re-reads a record once its cache_ttl has passed."
    )
    print()
    assert fast is not None
    return fast


def best_per_call(body: Callable[[int], float], number: int, repeats: int) -> float:
    """The best of ``repeats`` timings of ``body(number)``, per call, in microseconds."""
    return min(body(number) for _ in range(repeats)) / number * 1e6


async def table_latency(r: Readers, quick: bool) -> None:
    number, repeats = (200, 5) if quick else (2_000, 5)
    user_id = 1
    await r.ours.get_valid_access_token(user_id, PLATFORM)
    r.their_token(user_id)
    name = r.vault.secret_name(user_id)
    loop_timings: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            await r.ours.get_valid_access_token(user_id, PLATFORM)
        loop_timings.append(time.perf_counter() - start)
    ours = min(loop_timings) / number * 1e6

    def theirs_raw(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            r.theirs.get_secret_string(name)
        return time.perf_counter() - start

    def theirs_parsed(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            r.their_token(user_id)
        return time.perf_counter() - start

    uncached = []
    for _ in range(20):
        start = time.perf_counter()
        await r.vault.get(user_id)
        uncached.append(time.perf_counter() - start)
    rows = [
        ["SecureTokenService.get_valid_access_token (ours, awaited)", fmt_us(ours)],
        ["SecretCache.get_secret_string", fmt_us(best_per_call(theirs_raw, number, repeats))],
        [
            "SecretCache.get_secret_string + json.loads",
            fmt_us(best_per_call(theirs_parsed, number, repeats)),
        ],
        ["uncached: SecretsManagerTokenVault.get (moto, 127.0.0.1)", fmt_us(min(uncached) * 1e6)],
    ]
    print_table(
        f"Table 2: latency of a cached token read, microseconds (best of {repeats} x {number:,})",
        ["read", "per read"],
        rows,
    )
    print()


def audit_records(count: int, start: datetime) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    previous = GENESIS_HASH
    for sequence in range(1, count + 1):
        draft = AuditRecord(
            event_id=f"bench-{sequence}",
            writer_id="w-bench",
            sequence=sequence,
            timestamp=start + timedelta(milliseconds=sequence),
            kind=AuditKind.SECURITY if sequence % 4 else AuditKind.ADMIN,
            action="UNAUTHORIZED_ACCESS" if sequence % 4 else "guild.allow",
            actor=None if sequence % 4 else "p1:admin",
            subject=f"p1:user-{sequence % 50}",
            resource="guild:p1:g",
            details={"attempts": sequence},
            source="bench",
            prev_hash=previous,
            hash="",
        )
        record = attrs.evolve(draft, hash=record_hash(draft))
        records.append(record)
        previous = record.hash
    return records


async def table_audit(aws: AwsClients, quick: bool) -> None:
    count = 200 if quick else 1_000
    names = TableNames.with_prefix("timmybot-bench-")
    await asyncio.to_thread(
        create_tables, aws.dynamodb, names, enable_ttl=False, only=[names.audit]
    )
    log = DynamoAuditLog(aws, names.audit)
    calls = counted(aws.dynamodb, "dynamodb")
    records = audit_records(count, datetime.now(UTC))
    start = time.perf_counter()
    for one in records:
        await log.append(one)
    wall = time.perf_counter() - start
    chained = await log.chain("w-bench")
    assert [r.sequence for r in chained] == list(range(1, count + 1))
    scale = 1000 / count
    operations = ", ".join(f"{op} {n:,}" for op, n in sorted(calls.by_operation.items()))
    print_table(
        f"Table 3: DynamoDB calls and wall time per 1,000 audit appends "
        f"({count:,} appended, scaled; moto's DynamoDB)",
        ["appends", "DynamoDB calls", "calls per append", "wall per 1,000", "per append"],
        [
            [
                f"{count:,}",
                f"{calls.total():,}",
                f"{calls.total() / count:.2f}",
                f"{wall * scale:.2f} s",
                f"{fmt_us(wall / count * 1e6)} us",
            ]
        ],
    )
    print(f"Calls by operation: {operations}")
    print()


async def run_tables(endpoint: str, quick: bool) -> None:
    session = boto3.Session(
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - moto
    )
    aws = AwsClients(
        AwsConfig(region=REGION, endpoint_url=endpoint, dynamodb_endpoint_url=endpoint),
        session=session,
    )
    oauth = AiohttpOAuthClient([], clock=SystemClock())
    try:
        seeding = SecretsManagerTokenVault(aws, prefix=PREFIX)
        for user_id in range(1, USERS + 1):
            await seeding.put(user_id, record(user_id), expected_version=None)
        fast = await table_calls(aws, oauth, endpoint, quick)
        await table_latency(fast, quick)
        await table_audit(aws, quick)
    finally:
        await oauth.close()
        await aws.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the AWS benchmark against moto's server and print its tables; always 0."""
    quick = parse_quick(argv, __doc__, "smoke run: shorter spread, fewer reads and appends")
    started = time.perf_counter()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    security = logging.getLogger("timmybot.security")
    handlers, propagate = list(security.handlers), security.propagate
    security.handlers, security.propagate = [logging.NullHandler()], False
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        import moto

        print(
            f"timmybot aws bench: Python {platform.python_version()}, boto3 {boto3.__version__}, "
            f"moto {moto.__version__} server on {host}:{port}{' [--quick]' if quick else ''}"
        )
        print()
        asyncio.run(run_tables(f"http://{host}:{port}", quick))
    finally:
        server.stop()
        security.handlers, security.propagate = handlers, propagate
    print(f"AWS bench time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
