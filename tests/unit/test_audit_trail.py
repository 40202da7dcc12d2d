"""AuditTrailService: recording, querying, digests, verification and retention."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from timmybot_adapters.memory import MemoryAuditLog
from timmybot_adapters.signing import Ed25519KeyRing, Ed25519Signer
from timmybot_core import (
    AuditKind,
    AuditSettings,
    AuditTrailService,
    FakeClock,
    ProblemKind,
    Pseudonymizer,
    PseudonymKind,
    ResponseSanitizer,
    SecurityAuditLogger,
    SecurityEventType,
    StoreUnavailable,
)
from timmybot_core.domain.audit_chain import record_hash
from timmybot_core.ports.incidents import RetentionHold

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ADMIN = 111_111_111_111_111_111
USER = 444_444_444_444_444_444
GUILD = 222_222_222_222_222_222
PSEUDONYMS = Pseudonymizer(key=b"unit-test-pseudonym-key-32-bytes!", key_id="t1")


@attrs.define
class Trail:
    service: AuditTrailService
    log: MemoryAuditLog
    clock: FakeClock
    signer: Ed25519Signer
    ring: Ed25519KeyRing


def trail(
    settings: AuditSettings | None = None,
    *,
    log: MemoryAuditLog | None = None,
    signer: Ed25519Signer | None = None,
    ring: Ed25519KeyRing | None = None,
    clock: FakeClock | None = None,
    writer_id: str = "w-test",
) -> Trail:
    signer = signer or Ed25519Signer.generate()
    if ring is None:
        ring = Ed25519KeyRing()
        ring.add(signer.public_key)
    log = log if log is not None else MemoryAuditLog()
    clock = clock or FakeClock(START)
    service = AuditTrailService(
        log=log,
        pseudonymizer=PSEUDONYMS,
        sanitizer=ResponseSanitizer(),
        signer=signer,
        verifier=ring,
        clock=clock,
        settings=settings,
        writer_id=writer_id,
    )
    return Trail(service=service, log=log, clock=clock, signer=signer, ring=ring)


@pytest.fixture
def t() -> Trail:
    return trail()


async def test_an_admin_action_is_recorded_as_the_seed_describes(t: Trail) -> None:
    record = await t.service.record_admin_action(
        ADMIN, "guild.allow", f"guild:{GUILD}", {"reason": "new server"}
    )

    assert record.kind is AuditKind.ADMIN
    assert record.actor == PSEUDONYMS.pseudonymize(PseudonymKind.ADMIN, ADMIN)
    assert str(ADMIN) not in repr(record)
    assert record.action == "guild.allow"
    assert record.resource == f"guild:{GUILD}"
    assert dict(record.details) == {"reason": "new server"}
    assert record.source == "admin-panel"
    assert record.timestamp == START
    assert record.timestamp.tzinfo is not None
    assert len(record.event_id) == 36  # a UUID
    assert (record.sequence, record.prev_hash) == (1, "0" * 64)
    assert record.hash == record_hash(record)


async def test_secrets_in_details_are_redacted_and_text_is_cleaned(t: Trail) -> None:
    record = await t.service.record_admin_action(
        ADMIN,
        "vault.rekey",
        "vault",
        {
            "refresh_token": "canary-refresh-123",
            "clientSecret": "canary-secret",
            "nested": {"password": "canary-pw", "key_id": "v1234"},
            "header": "Bearer canary-bearer-token",
            "note": "line one\nline two\u202e",
            "token_type": "Bearer",
        },
    )

    details = dict(record.details)
    assert details["refresh_token"] == "[redacted]"
    assert details["clientSecret"] == "[redacted]"
    assert details["nested"] == {"password": "[redacted]", "key_id": "v1234"}
    assert details["header"] == "[redacted]"
    assert details["note"] == "line one line two"
    assert details["token_type"] == "Bearer"
    assert "canary" not in repr(record)


async def test_no_integer_in_the_details_can_break_an_append(t: Trail) -> None:
    huge = 10**5000  # more digits than Python writes as text: json.dumps raises on it
    record = await t.service.record_admin_action(
        ADMIN,
        "guild.allow",
        f"guild:{GUILD}",
        {"count": huge, "nested": {"n": -huge, huge: 1}, "items": [huge, 7], "id": GUILD},
    )

    details = dict(record.details)
    assert details["count"] == "[integer of 16610 bits]"
    assert details["nested"] == {"n": "[integer of 16610 bits]", "[integer of 16610 bits]": 1}
    assert details["items"] == ["[integer of 16610 bits]", 7]
    assert details["id"] == GUILD  # a snowflake is nowhere near the bound
    assert record.hash == record_hash(record)
    assert (await t.service.verify()).ok


async def test_an_integer_is_bounded_below_the_lowest_text_limit_a_host_may_set(
    t: Trail,
) -> None:
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)  # the smallest Python allows
    try:
        record = await t.service.record_admin_action(ADMIN, "guild.allow", "x", {"n": 10**600})
    finally:
        sys.set_int_max_str_digits(limit)
    assert record.details["n"] == "[integer of 1994 bits]"
    kept = await t.service.record_admin_action(ADMIN, "guild.allow", "x", {"n": 10**499})
    assert kept.details["n"] == 10**499  # 500 digits: kept as it is


async def test_a_security_event_with_a_huge_integer_is_logged_and_recorded(t: Trail) -> None:
    security_log = SecurityAuditLogger(pseudonymizer=PSEUDONYMS, clock=t.clock)
    security_log.subscribe(t.service.on_security_event)

    event = await security_log.record(SecurityEventType.LOCKDOWN, details={"n": 10**5000})

    assert event.details["n"] == "[integer of 16610 bits]"
    page = await t.service.get_audit_history(START, START + timedelta(seconds=1))
    [record] = page.records
    assert record.details["n"] == "[integer of 16610 bits]"


async def test_security_events_join_the_same_log(t: Trail) -> None:
    security_log = SecurityAuditLogger(pseudonymizer=PSEUDONYMS, clock=t.clock)
    security_log.subscribe(t.service.on_security_event)

    await security_log.unauthorized_access(
        guild_id=GUILD, user_id=USER, command="search", reason="guild_not_allowed"
    )

    page = await t.service.get_audit_history(START, START + timedelta(seconds=1))
    [record] = page.records
    assert record.kind is AuditKind.SECURITY
    assert record.action == SecurityEventType.UNAUTHORIZED_ACCESS.value
    assert record.subject == PSEUDONYMS.user(USER)
    assert record.resource == f"guild:{PSEUDONYMS.guild(GUILD)}"
    assert str(USER) not in repr(record) and str(GUILD) not in repr(record)
    assert await t.service.events_about(USER) == [record]


async def test_history_filters_by_admin_action_and_kind_and_pages(t: Trail) -> None:
    other = 999_999_999_999_999_999
    for n in range(7):
        t.clock.advance(timedelta(seconds=1))
        await t.service.record_admin_action(ADMIN if n % 2 else other, f"act.{n % 3}", "x")
    await t.service.record_privacy_request(user_id=USER, action="export", requester="user")
    window = (START, START + timedelta(hours=1))

    mine = await t.service.get_audit_history(*window, admin_id=ADMIN)
    assert [r.action for r in mine.records] == ["act.2", "act.0", "act.1"]
    only = await t.service.get_audit_history(*window, action="act.0")
    assert len(only.records) == 3
    privacy = await t.service.get_audit_history(*window, kind=AuditKind.PRIVACY)
    assert [r.action for r in privacy.records] == ["export"]
    first = await t.service.get_audit_history(*window, limit=5)
    second = await t.service.get_audit_history(*window, limit=5, cursor=first.next_cursor)
    assert len(first.records) == 5 and len(second.records) == 3
    assert second.next_cursor is None


@pytest.mark.parametrize(
    ("start", "end", "limit", "message"),
    [
        (START, START, 10, "after its start"),
        (START, START + timedelta(days=1), 0, "limit"),
        (START, START + timedelta(days=1), 501, "limit"),
    ],
)
async def test_a_bad_history_request_is_a_clear_error(
    t: Trail, start: datetime, end: datetime, limit: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await t.service.get_audit_history(start, end, limit=limit)


async def test_a_digest_is_written_after_the_interval_and_on_close() -> None:
    t = trail(AuditSettings(digest_interval=timedelta(minutes=5), digest_every=1000))
    await t.service.record_admin_action(ADMIN, "a", "x")
    t.clock.advance(timedelta(minutes=4))
    await t.service.record_admin_action(ADMIN, "b", "x")
    assert await t.log.digests("w-test") == []

    t.clock.advance(timedelta(minutes=1))
    await t.service.record_admin_action(ADMIN, "c", "x")
    [first] = await t.log.digests("w-test")
    assert (first.covers_from, first.head.sequence, first.key_id) == (1, 3, t.signer.key_id)

    await t.service.record_admin_action(ADMIN, "d", "x")
    await t.service.close()
    await t.service.close()  # nothing new: no second digest for the same head
    digests = await t.log.digests("w-test")
    assert [(d.covers_from, d.head.sequence) for d in digests] == [(1, 3), (4, 4)]
    assert digests[1].prev_digest_hash == first.hash
    assert (await t.service.verify()).ok


async def test_a_digest_is_written_every_n_records_at_the_latest() -> None:
    t = trail(AuditSettings(digest_every=3))
    for _ in range(7):
        await t.service.record_admin_action(ADMIN, "a", "x")

    heads = [d.head.sequence for d in await t.log.digests("w-test")]
    assert heads == [3, 6]
    report = await t.service.verify()
    assert report.ok and report.uncovered == 1


class FlakyLog(MemoryAuditLog):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    async def append(self, record, *, wait=True):  # type: ignore[no-untyped-def]
        if self.fail:
            raise StoreUnavailable("audit log: append failed (simulated)")
        await super().append(record, wait=wait)


async def test_a_failed_append_leaves_no_gap_in_the_chain() -> None:
    log = FlakyLog()
    t = trail(log=log)
    await t.service.record_admin_action(ADMIN, "a", "x")
    log.fail = True
    with pytest.raises(StoreUnavailable):
        await t.service.record_admin_action(ADMIN, "b", "x")
    log.fail = False
    await t.service.record_admin_action(ADMIN, "c", "x")
    await t.service.close()

    assert [r.sequence for r in await log.chain("w-test")] == [1, 2]
    assert (await t.service.verify()).ok


class FlakyDigests(MemoryAuditLog):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    async def put_digest(self, digest):  # type: ignore[no-untyped-def]
        if self.fail:
            raise StoreUnavailable("audit log: put_digest failed (simulated)")
        await super().put_digest(digest)


async def test_a_stored_record_whose_digest_fails_is_still_reported_recorded() -> None:
    log = FlakyDigests()
    t = trail(AuditSettings(digest_every=2), log=log)
    await t.service.record_admin_action(ADMIN, "a", "x")
    log.fail = True
    # The record is in the store; only its digest failed: the caller is not
    # told "not recorded" for an action that was.
    record = await t.service.record_admin_action(ADMIN, "b", "x")
    assert [r.sequence for r in await log.chain("w-test")] == [1, 2]
    assert record.sequence == 2
    assert await log.digests("w-test") == []
    log.fail = False
    await t.service.record_admin_action(ADMIN, "c", "x")  # the digest is due: written now
    assert [d.head.sequence for d in await log.digests("w-test")] == [3]
    await t.service.close()
    assert (await t.service.verify()).ok


async def test_rotating_the_key_keeps_old_digests_verifiable() -> None:
    log = MemoryAuditLog()
    old = Ed25519Signer.generate()
    new = Ed25519Signer.generate()
    ring = Ed25519KeyRing()
    ring.add(old.public_key)
    before = trail(log=log, signer=old, ring=ring, writer_id="w-old")
    await before.service.record_admin_action(ADMIN, "a", "x")
    await before.service.close()

    ring.add(new.public_key)
    after = trail(log=log, signer=new, ring=ring, writer_id="w-new")
    await after.service.record_admin_action(ADMIN, "b", "x")
    await after.service.close()

    report = await after.service.verify()
    assert report.ok, report.problems
    assert report.digests_checked == 2
    assert {d.key_id for w in ("w-old", "w-new") for d in await log.digests(w)} == {
        old.key_id,
        new.key_id,
    }


async def test_a_digest_by_a_key_not_in_the_ring_is_reported() -> None:
    stranger = Ed25519Signer.generate()
    t = trail(signer=stranger, ring=Ed25519KeyRing())
    await t.service.record_admin_action(ADMIN, "a", "x")
    await t.service.close()

    report = await t.service.verify()
    assert [p.kind for p in report.problems] == [ProblemKind.UNKNOWN_KEY]
    assert report.problems[0].digest_sequence == 1


async def test_retention_prunes_old_records_and_keeps_held_ones() -> None:
    t = trail(AuditSettings(retention=timedelta(days=365)))
    for day in range(0, 400, 20):
        t.clock.set(START + timedelta(days=day))
        await t.service.record_admin_action(ADMIN, f"day.{day}", "x")
    await t.service.close()
    now = START + timedelta(days=400)
    t.clock.set(now)
    hold = RetentionHold(
        hold_id="h1",
        incident_id="i1",
        start=START + timedelta(days=10),
        end=START + timedelta(days=30),
        placed_at=START,
    )

    pruned = await t.service.prune_expired(now=now, holds=[hold])

    # Days 0..20 are older than 365 days (cutoff: day 35); day 20 is held.
    assert pruned == 1
    left = await t.service.get_audit_history(START - timedelta(days=1), now)
    assert sorted(r.action for r in left.records)[:3] == ["day.100", "day.120", "day.140"]
    assert "day.20" in {r.action for r in left.records}
    assert "day.0" not in {r.action for r in left.records}
    assert (await t.service.verify()).ok


async def test_a_record_emptied_before_its_time_is_reported() -> None:
    t = trail(AuditSettings(retention=timedelta(days=365)))
    record = await t.service.record_admin_action(ADMIN, "a", "x")
    await t.service.close()

    await t.log.prune([record])

    report = await t.service.verify()
    assert [(p.kind, p.sequence) for p in report.problems] == [(ProblemKind.PRUNED_EARLY, 1)]


async def test_details_past_the_total_budget_keep_what_fits_and_say_what_was_left(
    t: Trail,
) -> None:
    # Every single bound holds (32 keys, 50 items, 500 characters), yet
    # together they would make one record of megabytes.
    big = {f"k{n}": ["x" * 500] * 50 for n in range(32)}
    record = await t.service.record_admin_action(
        ADMIN, "guild.allow", "x", {"first": "kept", **big}
    )
    details = dict(record.details)
    assert len(json.dumps(details)) <= 16_384 + 32 * 40
    assert details["first"] == "kept"
    assert isinstance(details["k0"], list) and len(details["k0"]) == 50  # fits whole
    assert details["k30"].endswith(" bytes, not kept]")  # past the budget: its size only
    assert record.hash == record_hash(record)
    assert (await t.service.verify()).ok


async def test_a_security_event_with_a_huge_integer_key_is_logged(t: Trail) -> None:
    security_log = SecurityAuditLogger(pseudonymizer=PSEUDONYMS, clock=t.clock)
    event = await security_log.record(SecurityEventType.LOCKDOWN, details={10**5000: "n"})
    assert event.details == {"[integer of 16610 bits]": "n"}


async def test_a_ranged_verify_reports_tampering_whatever_time_the_store_gives_it() -> None:
    # Times are what the store holds, and whoever rewrites it sets them: a
    # record forged and dated a year back dropped out of since:. Tampering is
    # reported wherever it lies; the range narrows the findings about time.
    t = trail(AuditSettings(digest_interval=timedelta(days=30)))
    for day in range(10):
        t.clock.set(START + timedelta(days=day))
        await t.service.record_admin_action(ADMIN, f"day.{day}", "x")
    await t.service.close()
    dead = trail(log=t.log, signer=t.signer, ring=t.ring, clock=t.clock, writer_id="w-dead")
    t.clock.set(START)
    await dead.service.record_admin_action(ADMIN, "dead", "x")  # killed: never signed
    forged = (await t.log.chain("w-test", after=7, limit=1))[0]
    t.log._records[("w-test", 8)] = attrs.evolve(
        forged, action="nothing.to.see", timestamp=START - timedelta(days=365)
    )
    del t.log._records[("w-test", 4)]
    t.clock.set(START + timedelta(days=100))
    everything = {(p.kind, p.writer_id) for p in (await t.service.verify()).problems}
    assert everything == {
        (ProblemKind.MODIFIED, "w-test"),
        (ProblemKind.MISSING, "w-test"),
        (ProblemKind.UNCOVERED, "w-dead"),
    }
    # A range that holds none of those times: the dead writer's old tail is
    # a finding about time and is left out; the tampering is not.
    ranged = await t.service.verify(start=START + timedelta(days=50))
    assert {(p.kind, p.writer_id, p.sequence) for p in ranged.problems} == {
        (ProblemKind.MODIFIED, "w-test", 8),
        (ProblemKind.MISSING, "w-test", 4),
    }
    assert ranged.records_checked == 0
