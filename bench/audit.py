"""Cost of the audit trail: appends with chaining and signing, and verification.

Run ``.venv/bin/python bench/audit.py`` (``--quick`` for a smoke run,
``--json`` for the figures as one JSON object instead of the tables);
``make bench`` runs it after the token tables. Tables go to stdout; there is
no pass/fail.

Table 1: appends per second
    Each row appends N records (10,000; 1,000 with ``--quick``) to a fresh
    log and is timed with ``time.perf_counter`` around the whole loop.
    Baseline: the store's own ``append`` of records built and hashed before
    the clock starts (what any log costs). Then
    ``AuditTrailService.record_admin_action``: the same record plus what
    the service adds (pseudonymizing the admin, cleaning and redacting the
    details, the canonical encoding and SHA-256 chaining), with a signed
    digest every 1,000 records (the default cadence), and with a digest
    after *every* record (the worst case: an Ed25519 signature and a second
    write each time). The ratio column is each row's time over the
    baseline of the same store, measured in the same run. Stores:
    ``MemoryAuditLog`` and ``SqliteAuditLog`` on a file in a fresh temporary
    directory (``TMPDIR`` chooses the disk).

Table 2: verification per 10,000 records
    A log of N records with a digest every 1,000 is verified whole with
    ``AuditTrailService.verify()`` (every hash checked, every link and
    signature checked), reading included. Two baselines, measured in the
    same run: SHA-256 over the stored bytes of the same records (the floor:
    what any check of every hash costs; ``verify_vs_sha256``, goal at most
    5), and reading the same chain from the store (``AuditLog.chain``,
    paged as verify pages it), so the ratio shows what checking adds to
    reading. Stores keep each record's hashed bytes, so verify hashes them
    instead of re-encoding the record; on SQLite the time is mostly the
    reading of the rows. Times are scaled to 10,000 records.

JSON (``--json``)
    One object: ``records``, ``repeats``, ``appends_per_second`` and
    ``append_vs_baseline`` per store and writer, ``verify_ms_per_10k``,
    ``read_ms_per_10k`` and ``verify_vs_read`` per store,
    ``sha256_ms_per_10k``, ``verify_vs_sha256`` (the memory store's, where
    no reading cost hides the checking) and ``verify_vs_sha256_by_store``.

Every timed run is repeated (3 times, 2 with ``--quick``; the runs of table 2,
which are short, 7 times) and the best is kept; the garbage collector runs
before each repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

from run import fmt_us, print_table
from timmybot_adapters.memory import MemoryAuditLog
from timmybot_adapters.signing import Ed25519KeyRing, Ed25519Signer
from timmybot_adapters.sqlite import SqliteAuditLog, SqliteDatabase
from timmybot_core import (
    AuditKind,
    AuditLog,
    AuditRecord,
    AuditSettings,
    AuditTrailService,
    FakeClock,
    Pseudonymizer,
    ResponseSanitizer,
    record_hash,
)
from timmybot_core.domain.audit_chain import record_bytes

Figures = dict[str, object]

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ADMIN = 111_111_111_111_111_111
DETAILS = {"arguments": "maintenance window", "outcome": "Kill switch ON", "count": 3}
SIGNER = Ed25519Signer.generate()
RING = Ed25519KeyRing()
RING.add(SIGNER.public_key)
Opener = Callable[[Path], Awaitable[tuple[AuditLog, Callable[[], Awaitable[None]]]]]


async def _memory(_: Path) -> tuple[AuditLog, Callable[[], Awaitable[None]]]:
    async def close() -> None:
        return None

    return MemoryAuditLog(), close


async def _sqlite(directory: Path) -> tuple[AuditLog, Callable[[], Awaitable[None]]]:
    path = Path(tempfile.mkdtemp(dir=directory)) / "audit.db"
    db = SqliteDatabase(path)
    return await SqliteAuditLog.open(db), db.close


STORES: dict[str, Opener] = {"memory": _memory, "sqlite": _sqlite}


def service(log: AuditLog, clock: FakeClock, every: int) -> AuditTrailService:
    return AuditTrailService(
        log=log,
        pseudonymizer=Pseudonymizer(key=b"bench-pseudonym-key-32-bytes-long", key_id="b1"),
        sanitizer=ResponseSanitizer(),
        signer=SIGNER,
        verifier=RING,
        clock=clock,
        settings=AuditSettings(digest_every=every, digest_interval=timedelta(days=1)),
        writer_id="w-bench",
    )


def prebuilt(count: int) -> list[AuditRecord]:
    records = []
    previous = "0" * 64
    for sequence in range(1, count + 1):
        draft = AuditRecord(
            event_id=f"bench-{sequence}",
            writer_id="w-base",
            sequence=sequence,
            timestamp=START + timedelta(milliseconds=sequence),
            kind=AuditKind.ADMIN,
            action="killswitch.on",
            actor="b1:" + "a" * 32,
            resource="switch:kill_switch",
            details=DETAILS,
            source="admin-panel",
            prev_hash=previous,
            hash="",
        )
        record = attrs.evolve(draft, hash=record_hash(draft))
        records.append(record)
        previous = record.hash
    return records


async def best_of(repeats: int, run: Callable[[], Awaitable[float]]) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        times.append(await run())
    return min(times)


async def table_appends(count: int, repeats: int, directory: Path, figures: Figures) -> None:
    records = prebuilt(count)
    rows: list[list[str]] = []
    rates: dict[str, float] = {}
    ratios: dict[str, float] = {}
    for store_name, opener in STORES.items():

        async def baseline(opener: Opener = opener) -> float:
            log, close = await opener(directory)
            started = time.perf_counter()
            for record in records:
                await log.append(record)
            elapsed = time.perf_counter() - started
            await close()
            return elapsed

        async def chained(every: int, opener: Opener = opener) -> float:
            log, close = await opener(directory)
            clock = FakeClock(START)
            trail = service(log, clock, every)
            started = time.perf_counter()
            for _ in range(count):
                await trail.record_admin_action(ADMIN, "killswitch.on", "switch", DETAILS)
            elapsed = time.perf_counter() - started
            await close()
            return elapsed

        base = await best_of(repeats, baseline)
        variants = [
            ("store append only (baseline)", base),
            ("chained, digest every 1,000", await best_of(repeats, lambda: chained(1000))),
            ("chained, digest every record", await best_of(repeats, lambda: chained(1))),
        ]
        for label, elapsed in variants:
            rates[f"{store_name}: {label}"] = round(count / elapsed, 1)
            ratios[f"{store_name}: {label}"] = round(elapsed / base, 3)
            rows.append(
                [
                    f"{store_name}: {label}",
                    f"{count / elapsed:,.0f}",
                    fmt_us(elapsed / count * 1e6),
                    f"{elapsed / base:.2f}x",
                ]
            )
    figures["appends_per_second"] = rates
    figures["append_vs_baseline"] = ratios
    if not figures.get("json"):
        print_table(
            f"Audit appends ({count:,} records per run, best of {repeats})",
            ["store: writer", "appends/s", "us/append", "vs baseline"],
            rows,
        )


async def table_verify(count: int, repeats: int, directory: Path, figures: Figures) -> None:
    rows: list[list[str]] = []
    scale = 10_000 / count
    verify_ms: dict[str, float] = {}
    read_ms: dict[str, float] = {}
    vs_read: dict[str, float] = {}
    vs_sha: dict[str, float] = {}
    floors: list[float] = []
    for store_name, opener in STORES.items():
        log, close = await opener(directory)
        trail = service(log, FakeClock(START), 1000)
        for _ in range(count):
            await trail.record_admin_action(ADMIN, "killswitch.on", "switch", DETAILS)
        await trail.close()

        async def read_all(log: AuditLog = log) -> float:
            started = time.perf_counter()
            after, seen = 0, 0
            while page := await log.chain("w-bench", after=after, limit=1000):
                seen += len(page)
                after = page[-1].sequence
            if seen != count:
                raise SystemExit(f"read {seen} records, wrote {count}")
            return time.perf_counter() - started

        async def verify_all(trail: AuditTrailService = trail) -> float:
            started = time.perf_counter()
            report = await trail.verify()
            elapsed = time.perf_counter() - started
            if not report.ok or report.records_checked != count:
                raise SystemExit(f"verification failed: {report.summary()}")
            return elapsed

        stored = [record_bytes(r) for r in await log.chain("w-bench")]

        async def hash_all(stored: list[bytes] = stored) -> float:
            started = time.perf_counter()
            for body in stored:
                hashlib.sha256(body).hexdigest()
            return time.perf_counter() - started

        # Short runs, so more repeats: the best of 7 of each is what a quiet
        # machine gives, and the ratio compares like with like.
        floor = await best_of(max(repeats, 7), hash_all)
        floors.append(floor)
        base = await best_of(max(repeats, 7), read_all)
        checked = await best_of(max(repeats, 7), verify_all)
        rows.append(
            [
                f"{store_name}: SHA-256 of the stored bytes (floor)",
                f"{floor * scale * 1e3:,.1f}",
                "-",
                "1.00x",
            ]
        )
        rows.append(
            [
                f"{store_name}: read the chain (baseline)",
                f"{base * scale * 1e3:,.1f}",
                "1.00x",
                f"{base / floor:.2f}x",
            ]
        )
        rows.append(
            [
                f"{store_name}: verify()",
                f"{checked * scale * 1e3:,.1f}",
                f"{checked / base:.2f}x",
                f"{checked / floor:.2f}x",
            ]
        )
        verify_ms[store_name] = round(checked * scale * 1e3, 2)
        read_ms[store_name] = round(base * scale * 1e3, 2)
        vs_read[store_name] = round(checked / base, 3)
        vs_sha[store_name] = round(checked / floor, 3)
        await close()
    figures["sha256_ms_per_10k"] = round(min(floors) * scale * 1e3, 3)
    figures["verify_ms_per_10k"] = verify_ms
    figures["read_ms_per_10k"] = read_ms
    figures["verify_vs_read"] = vs_read
    figures["verify_vs_sha256"] = vs_sha["memory"]
    figures["verify_vs_sha256_by_store"] = vs_sha
    if figures.get("json"):
        return
    print_table(
        f"Audit verification ({count:,} records, digest every 1,000, best of {repeats}; "
        "times scaled to 10,000 records)",
        ["store: what", "ms per 10,000", "vs read", "vs SHA-256"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print both tables (or, with ``--json``, their figures as one JSON object)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 records, 2 repeats")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    options = parser.parse_args(argv)
    count, repeats = (1_000, 2) if options.quick else (10_000, 3)
    figures: Figures = {"json": options.json}
    with tempfile.TemporaryDirectory(prefix="timmybot-bench-audit-") as directory:
        asyncio.run(table_appends(count, repeats, Path(directory), figures))
        if not options.json:
            print()
        asyncio.run(table_verify(count, repeats, Path(directory), figures))
    if options.json:
        del figures["json"]
        print(json.dumps({"records": count, "repeats": repeats, **figures}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
