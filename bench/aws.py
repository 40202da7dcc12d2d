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

Table 3: DynamoDB calls, wall time and write units per 1,000 audit appends
    Into an audit table created on moto's DynamoDB with the five indexes
    (``INCLUDE`` projections), one writer, N = 1,000 records (200 with
    ``--quick``, scaled to 1,000) one way and 1,000 the other:

    * durable appends, ``DynamoAuditLog.append(record)`` one after another
      (what admin and privacy records cost: the event ID's guard and the
      record, two conditional ``PutItem``);
    * a steady stream of security events through
      ``AuditTrailService.on_security_event`` (``append(wait=False)``:
      buffered, 25 records per ``BatchWriteItem``), then ``close()``
      (which flushes and writes the digest); ``audit_calls_per_append`` is
      this row's calls per record, goal at most 0.05.

    Every HTTP request counts (the first append of a writer also claims or
    registers it, the first of a day widens the stored day range, the
    stream's close writes one digest). Write units are computed from the
    items actually written, by DynamoDB's sizing rules (attribute names
    plus values, 1 unit per started KB, per table write and per index entry
    the item lands in): moto reports table units only, and every item here
    is under 1 KB, so a record costs 1 unit in the table and 1 per index it
    appears in (3 to 5), plus 1 for the guard item of a durable append.
    Wall time is moto's and this process's.

Table 4: Secrets Manager writes per refresh
    N users (20, 6 with ``--quick``) linked through the demo OAuth provider
    (``DemoOAuthProvider``, real code flows over HTTP on 127.0.0.1), their
    records in Secrets Manager; then ``SecureTokenService.refresh`` of each,
    half of them with the claim in a DynamoDB lease (``DynamoRefreshLeases``
    on moto's access table: the aws backend's composition) and half with
    the claim in the secret (as the memory and SQLite vaults keep it).
    Counted per refresh: ``PutSecretValue``, the versions each secret gained
    (``ListSecretVersionIds``), every Secrets Manager call, and the DynamoDB
    calls of the lease.

JSON (``--json``)
    The tables' figures as one JSON object instead of the tables:
    ``secrets_calls_per_1000_reads`` (reader -> interval -> calls),
    ``cached_read_us``, ``audit_calls_per_append``,
    ``audit_calls_per_durable_append``, ``audit_calls_by_operation``,
    ``audit_write_units_per_record`` (stream and durable),
    ``audit_index_entry_bytes`` and ``audit_item_bytes`` (means),
    ``secret_versions_per_refresh`` and ``secret_writes_per_refresh``
    (claim -> figure: ``lease``, ``claim_in_secret``),
    ``secrets_calls_per_refresh`` and ``lease_dynamodb_calls_per_refresh``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import attrs
import boto3
from aws_secretsmanager_caching import SecretCache, SecretCacheConfig
from moto.server import ThreadedMotoServer

from run import fmt_us, print_table
from timmybot_adapters.aws import (
    AwsClients,
    AwsConfig,
    DynamoAuditLog,
    DynamoRefreshLeases,
    SecretsManagerTokenVault,
    TableNames,
    create_tables,
)
from timmybot_adapters.aws.tables import AUDIT_INDEX_PROJECTION, AUDIT_INDEXES
from timmybot_adapters.memory import MemorySecurityMetrics
from timmybot_adapters.oauth import AiohttpOAuthClient
from timmybot_adapters.signing import Ed25519KeyRing, Ed25519Signer
from timmybot_bot.demo.provider import DemoOAuthProvider
from timmybot_core import (
    AuditSettings,
    AuditTrailService,
    FakeClock,
    OAuthTokens,
    PlatformLink,
    Pseudonymizer,
    ResponseSanitizer,
    SecureTokenService,
    SecurityAuditLogger,
    SystemClock,
    UserTokens,
)
from timmybot_core.domain.audit_chain import sealed
from timmybot_core.domain.events import SecurityEvent, SecurityEventType
from timmybot_core.ports.audit import GENESIS_HASH, AuditKind, AuditRecord
from timmybot_core.services.tokens import TokenSettings
from tokens import REDIRECT_URI, issue_tokens

REGION = "eu-west-1"
PLATFORM = "demo"
USERS = 100
READS = 1_000
PREFIX = "/timmybot-bench/users/"
Figures = dict[str, Any]
FIGURES: Figures = {}
QUIET = {"on": False}


def show(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *notes: str) -> None:
    """Print a table and its notes, unless ``--json`` asked for figures only."""
    if QUIET["on"]:
        return
    print_table(title, header, rows)
    for note in notes:
        print(note)
    print()


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
    per_reads: dict[str, dict[str, float]] = {"ours": {}, "SecretCache": {}}
    for interval, spread in ((60.0, 0.0), (1.0, 3.0) if quick else (2.0, 6.0)):
        r = readers(aws, oauth, endpoint, interval)
        r.ours_calls.reset()
        took = await read_round(r, spread=spread)
        rows.append(calls_row("SecureTokenService (ours)", interval, took, r.ours_calls))
        rows.append(calls_row("SecretCache", interval, took, r.theirs_calls))
        per_reads["ours"][f"{interval:g}s"] = r.ours_calls.total() * 1000 / READS
        per_reads["SecretCache"][f"{interval:g}s"] = r.theirs_calls.total() * 1000 / READS
        fast = fast if fast is not None else r
    FIGURES["secrets_calls_per_1000_reads"] = per_reads
    show(
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
        "SecretCache re-describes each secret at a random moment between half the interval and "
        "the interval; ours re-reads a record once its cache_ttl has passed.",
    )
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
    FIGURES["cached_read_us"] = {"ours": round(ours, 3)}
    rows = [
        ["SecureTokenService.get_valid_access_token (ours, awaited)", fmt_us(ours)],
        ["SecretCache.get_secret_string", fmt_us(best_per_call(theirs_raw, number, repeats))],
        [
            "SecretCache.get_secret_string + json.loads",
            fmt_us(best_per_call(theirs_parsed, number, repeats)),
        ],
        ["uncached: SecretsManagerTokenVault.get (moto, 127.0.0.1)", fmt_us(min(uncached) * 1e6)],
    ]
    show(
        f"Table 2: latency of a cached token read, microseconds (best of {repeats} x {number:,})",
        ["read", "per read"],
        rows,
    )


def audit_records(count: int, start: datetime) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    previous = GENESIS_HASH
    for sequence in range(1, count + 1):
        draft = AuditRecord(
            event_id=f"bench-{sequence}",
            writer_id="w-bench",
            sequence=sequence,
            timestamp=start + timedelta(milliseconds=sequence),
            kind=AuditKind.ADMIN,
            action="guild.allow",
            actor="p1:admin",
            subject=f"p1:user-{sequence % 50}",
            resource="guild:p1:g",
            details={"attempts": sequence},
            source="bench",
            prev_hash=previous,
            hash="",
        )
        record = sealed(draft)
        records.append(record)
        previous = record.hash
    return records


def _value_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (numbers: about 1 byte per 2 digits, plus 1)."""
    [(kind, inner)] = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "B":
        return len(inner)
    if kind == "N":
        return math.ceil(len(inner.lstrip("-").replace(".", "")) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    raise ValueError(f"no size rule for {kind}")


def item_size(item: dict[str, Any], names: Sequence[str] | None = None) -> int:
    """DynamoDB's size of an item (or of the attributes ``names`` of it): names plus values."""
    chosen = item if names is None else {n: item[n] for n in names if n in item}
    return sum(len(name.encode()) + _value_size(value) for name, value in chosen.items())


def write_units(item: dict[str, Any]) -> tuple[int, int, int]:
    """(units, item bytes, index entry bytes summed) of one record put, by the sizing rules."""
    size = item_size(item)
    units = math.ceil(size / 1024)
    entry_bytes = 0
    for partition in AUDIT_INDEXES.values():
        if partition not in item:
            continue  # sparse: the record is not in this index
        entry = item_size(item, ["pk", "sk", partition, "at", *AUDIT_INDEX_PROJECTION])
        entry_bytes += entry
        units += math.ceil(entry / 1024)
    return units, size, entry_bytes


class Captured:
    """A ``before-parameter-build`` hook keeping the record items the adapter sends."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        if "Item" in params and str(params["Item"]["pk"]["S"]).startswith("chain#"):
            self.items.append(params["Item"])
        for writes in params.get("RequestItems", {}).values():
            self.items.extend(w["PutRequest"]["Item"] for w in writes if "PutRequest" in w)


def bench_service(log: DynamoAuditLog, clock: FakeClock, writer: str) -> AuditTrailService:
    signer = Ed25519Signer.generate()
    ring = Ed25519KeyRing()
    ring.add(signer.public_key)
    return AuditTrailService(
        log=log,
        pseudonymizer=Pseudonymizer(key=b"b" * 32, key_id="bench"),
        sanitizer=ResponseSanitizer(),
        signer=signer,
        verifier=ring,
        clock=clock,
        settings=AuditSettings(digest_interval=timedelta(days=1), digest_every=100_000),
        writer_id=writer,
    )


async def table_audit(aws: AwsClients, quick: bool) -> None:
    count = 200 if quick else 1_000
    names = TableNames.with_prefix("timmybot-bench-")
    await asyncio.to_thread(
        create_tables, aws.dynamodb, names, enable_ttl=False, only=[names.audit]
    )
    rows: list[list[str]] = []
    captured = Captured()
    aws.dynamodb.meta.events.register("before-parameter-build.dynamodb", captured)

    # Durable appends, one after another.
    log = DynamoAuditLog(aws, names.audit)
    calls = counted(aws.dynamodb, "dynamodb")
    start = time.perf_counter()
    for one in audit_records(count, datetime.now(UTC)):
        await log.append(one)
    durable_wall = time.perf_counter() - start
    chained = await log.chain("w-bench")
    assert [r.sequence for r in chained] == list(range(1, count + 1))
    durable_calls = calls.total() - calls.by_operation["Query"]
    durable_ops = {op: n for op, n in calls.by_operation.items() if op != "Query"}
    durable_items = list(captured.items)

    # A steady stream of security events, batched: 1,000 even with --quick (it is
    # fast), so the writer's one-off calls weigh as they would in a long run.
    stream_count = 1_000
    captured.items.clear()
    calls.reset()
    stream_log = DynamoAuditLog(aws, names.audit)
    clock = FakeClock(datetime.now(UTC))
    trail = bench_service(stream_log, clock, "w-stream")
    start = time.perf_counter()
    for n in range(stream_count):
        clock.advance(timedelta(milliseconds=5))
        await trail.on_security_event(
            SecurityEvent(
                type=SecurityEventType.UNAUTHORIZED_ACCESS,
                at=clock.now(),
                guild=f"p1:guild-{n % 7}",
                user=f"p1:user-{n % 50}",
                details={"attempts": n % 10 + 1},
            )
        )
    await trail.close()
    stream_wall = time.perf_counter() - start
    stream_calls = calls.total()
    stream_ops = dict(calls.by_operation)
    stream_items = list(captured.items)
    report = await trail.verify()
    # Both writers' records: the durable ones (no digest) and the stream's.
    assert report.ok, report.summary()
    assert report.records_checked == count + stream_count, report.summary()

    def units(items: list[dict[str, Any]], guard: int) -> tuple[float, float, float]:
        figures = [write_units(item) for item in items]
        return (
            sum(f[0] for f in figures) / len(figures) + guard,
            sum(f[1] for f in figures) / len(figures),
            sum(f[2] for f in figures) / len(figures),
        )

    durable_units, durable_bytes, durable_entries = units(durable_items, 1)
    stream_units, stream_bytes, stream_entries = units(stream_items, 0)
    for label, appended, total, wall, wcu in (
        ("durable append (admin, privacy)", count, durable_calls, durable_wall, durable_units),
        ("security events, batched", stream_count, stream_calls, stream_wall, stream_units),
    ):
        rows.append(
            [
                label,
                f"{appended:,}",
                f"{total:,}",
                f"{total / appended:.3f}",
                f"{wcu:.2f}",
                f"{wall * 1000 / appended:.2f} s",
            ]
        )
    FIGURES.update(
        {
            "audit_records": {"durable": count, "stream": stream_count},
            "audit_calls_per_append": round(stream_calls / stream_count, 4),
            "audit_calls_per_durable_append": round(durable_calls / count, 4),
            "audit_calls_by_operation": {"stream": stream_ops, "durable": durable_ops},
            "audit_write_units_per_record": {
                "stream": round(stream_units, 3),
                "durable": round(durable_units, 3),
            },
            "audit_item_bytes": {"stream": round(stream_bytes), "durable": round(durable_bytes)},
            "audit_index_entry_bytes": {
                "stream": round(stream_entries),
                "durable": round(durable_entries),
            },
        }
    )
    show(
        "Table 3: DynamoDB audit appends (wall scaled to 1,000; moto's DynamoDB)",
        [
            "appends",
            "records",
            "DynamoDB calls",
            "calls per append",
            "write units/record",
            "wall per 1,000",
        ],
        rows,
        "Calls by operation: durable "
        + ", ".join(f"{op} {n:,}" for op, n in sorted(durable_ops.items()))
        + "; stream "
        + ", ".join(f"{op} {n:,}" for op, n in sorted(stream_ops.items())),
        f"Mean item {stream_bytes:.0f} bytes; its index entries {stream_entries:.0f} bytes in all "
        "(INCLUDE projections: keys, body, hash and the filter attributes).",
    )


async def table_refresh(aws: AwsClients, quick: bool) -> None:
    """Refresh N users with the claim in a lease and in the secret; count the writes."""
    users = 6 if quick else 20
    provider = DemoOAuthProvider(redirect_uris=[REDIRECT_URI], auto_approve=True)
    await provider.start()
    client = AiohttpOAuthClient([provider.oauth_provider(PLATFORM)], clock=SystemClock())
    names = TableNames.with_prefix(f"bench-refresh-{time.monotonic_ns()}-")
    await asyncio.to_thread(create_tables, aws.dynamodb, names, only=[names.access])
    vault = SecretsManagerTokenVault(aws, prefix="/timmybot-bench/refresh/")
    rows: list[list[str]] = []
    try:
        async with aiohttp.ClientSession() as http:
            issued = await issue_tokens(client, http, users)
        now = datetime.now(UTC)
        for user_id, tokens in enumerate(issued, start=1):
            fresh = UserTokens.new(user_id, now=now).with_link(
                PlatformLink(tokens=tokens, linked_at=now), now=now
            )
            await vault.put(user_id, fresh, expected_version=None)
        halves = {
            "lease": (range(1, users // 2 + 1), DynamoRefreshLeases(aws, names.access)),
            "claim_in_secret": (range(users // 2 + 1, users + 1), None),
        }
        figures: dict[str, dict[str, float]] = {
            "secret_versions_per_refresh": {},
            "secret_writes_per_refresh": {},
            "secrets_calls_per_refresh": {},
            "lease_dynamodb_calls_per_refresh": {},
        }
        for label, (group, leases) in halves.items():
            clock = SystemClock()
            service = SecureTokenService(
                vault=vault,
                oauth=client,
                security_log=SecurityAuditLogger(
                    pseudonymizer=Pseudonymizer(key=b"b" * 32, key_id="bench"), clock=clock
                ),
                metrics=MemorySecurityMetrics(),
                clock=clock,
                leases=leases,
            )
            before = {u: await _versions(aws, vault.secret_name(u)) for u in group}
            secrets_calls = counted(aws.secretsmanager, "secrets-manager")
            dynamo_calls = counted(aws.dynamodb, "dynamodb")
            for user_id in group:
                # Within a day: every token (valid an hour) is due, so each is refreshed.
                outcome = await service.refresh(user_id, PLATFORM, within=timedelta(days=1))
                assert outcome.refreshed
            aws.secretsmanager.meta.events.unregister("before-send.secrets-manager", secrets_calls)
            aws.dynamodb.meta.events.unregister("before-send.dynamodb", dynamo_calls)
            added = sum([await _versions(aws, vault.secret_name(u)) - before[u] for u in group])
            count = len(group)
            puts = secrets_calls.by_operation["PutSecretValue"]
            figures["secret_versions_per_refresh"][label] = added / count
            figures["secret_writes_per_refresh"][label] = puts / count
            figures["secrets_calls_per_refresh"][label] = secrets_calls.total() / count
            figures["lease_dynamodb_calls_per_refresh"][label] = dynamo_calls.total() / count
            rows.append(
                [
                    "DynamoDB lease (aws backend)" if leases else "claim in the secret",
                    f"{count}",
                    f"{added / count:.2f}",
                    f"{puts / count:.2f}",
                    f"{secrets_calls.total() / count:.2f}",
                    f"{dynamo_calls.total() / count:.2f}",
                ]
            )
        FIGURES.update(figures)
        lease, claim = (figures["secret_versions_per_refresh"][k] for k in halves)
        show(
            "Table 4: Secrets Manager writes per refresh (demo provider, moto)",
            [
                "refresh claim",
                "refreshes",
                "versions/refresh",
                "PutSecretValue/refresh",
                "Secrets Manager calls/refresh",
                "DynamoDB calls/refresh",
            ],
            rows,
            f"The lease writes {lease / claim:.2f}x the secret versions of the claim in the "
            "secret (same run, same provider).",
        )
    finally:
        await client.close()
        await provider.stop()


async def _versions(aws: AwsClients, name: str) -> int:
    answer = await aws.run(
        aws.secretsmanager.list_secret_version_ids, SecretId=name, IncludeDeprecated=True
    )
    return len(answer["Versions"])


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
        await table_refresh(aws, quick)
    finally:
        await oauth.close()
        await aws.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the AWS benchmark against moto's server and print its tables; always 0."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: shorter spread, fewer reads and appends"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    options = parser.parse_args(argv)
    quick = options.quick
    QUIET["on"] = options.json
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

        if not options.json:
            print(
                f"timmybot aws bench: Python {platform.python_version()}, "
                f"boto3 {boto3.__version__}, moto {moto.__version__} server on {host}:{port}"
                f"{' [--quick]' if quick else ''}"
            )
            print()
        asyncio.run(run_tables(f"http://{host}:{port}", quick))
    finally:
        server.stop()
        security.handlers, security.propagate = handlers, propagate
    elapsed = time.perf_counter() - started
    if options.json:
        print(json.dumps({"quick": quick, "seconds": round(elapsed, 1), **FIGURES}, sort_keys=True))
    else:
        print(f"AWS bench time: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
