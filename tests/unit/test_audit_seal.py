"""Abandoned writers: sealing, coverage, and the live writer's timed digest."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from tests.unit.test_audit_trail import START, Trail, trail
from timmybot_core import AuditSettings, ProblemKind
from timmybot_core.ports.audit import AuditKind, SignedDigest
from timmybot_core.services.audit import DIGEST_TAKEN_ACTION
from timmybot_core.services.audit_verify import SEAL_ACTION

INTERVAL = timedelta(minutes=5)


def pair(**settings: object) -> tuple[Trail, Trail]:
    """A writer that dies (``dead``) and a later process (``later``) on one log."""
    audit_settings = AuditSettings(digest_interval=INTERVAL, **settings)  # type: ignore[arg-type]
    dead = trail(audit_settings, writer_id="w-dead")
    later = trail(
        audit_settings,
        log=dead.log,
        signer=dead.signer,
        ring=dead.ring,
        clock=dead.clock,
        writer_id="w-later",
    )
    return dead, later


async def die_with_unsigned_tail(dead: Trail, records: int = 7) -> None:
    for n in range(records):
        await dead.service.record_admin_action(1, "test.append", f"thing:{n}")
    # No close(): the process was killed before its final digest.


async def test_a_young_unsigned_tail_is_left_alone_and_not_a_problem() -> None:
    dead, later = pair()
    await die_with_unsigned_tail(dead)
    dead.clock.advance(INTERVAL)
    assert await later.service.seal_abandoned() == 0
    report = await later.service.verify()
    assert report.ok, report.problems
    assert report.open_writers == 1
    assert report.uncovered == 7


async def test_an_old_unsigned_tail_is_a_problem_until_sealed() -> None:
    dead, later = pair()
    await die_with_unsigned_tail(dead)
    dead.clock.advance(2 * INTERVAL + timedelta(seconds=1))
    report = await later.service.verify()
    assert [p.kind for p in report.problems] == [ProblemKind.UNCOVERED]
    assert report.problems[0].location == "writer w-dead record 1"

    assert await later.service.seal_abandoned() == 1
    report = await later.service.verify()
    assert report.ok, report.problems
    assert (report.sealed_writers, report.open_writers, report.uncovered) == (1, 0, 0)
    chain = await later.log.chain("w-dead")
    assert chain[-1].action == SEAL_ACTION
    assert chain[-1].details["unsigned_from"] == 1
    assert chain[-1].details["sealed_by"] == "w-later"
    (digest,) = await later.log.digests("w-dead")
    assert digest.key_id == later.signer.key_id
    assert digest.head.sequence == chain[-1].sequence
    # Sealing twice changes nothing.
    assert await later.service.seal_abandoned() == 0


async def test_records_removed_from_a_sealed_tail_are_detected() -> None:
    dead, later = pair()
    await die_with_unsigned_tail(dead)
    dead.clock.advance(3 * INTERVAL)
    await later.service.seal_abandoned()
    victims = (await later.log.chain("w-dead"))[-3:]
    for record in victims:
        later.log._records.pop(("w-dead", record.sequence), None)
    kinds = {p.kind for p in (await later.service.verify()).problems}
    assert ProblemKind.TRUNCATED in kinds


async def test_a_writer_sealed_while_stalled_continues_under_a_new_id() -> None:
    dead, later = pair()
    await die_with_unsigned_tail(dead, records=3)
    dead.clock.advance(3 * INTERVAL)
    assert await later.service.seal_abandoned() == 1
    # It was only stalled: its next record must not land after the seal.
    record = await dead.service.record_admin_action(1, "test.append", "late")
    assert record.writer_id != "w-dead"
    assert record.sequence == 1
    await dead.service.close()
    report = await later.service.verify()
    assert report.ok, report.problems


async def test_a_writer_sealed_between_a_record_and_its_digest_continues_under_a_new_id() -> None:
    # The stall falls after the store took record 3 and before its digest:
    # the seal's digest holds the position the writer signs next. The
    # AuditConflict reached the admin whose action was stored, and every
    # later digest of the writer hit it again.
    dead, later = pair(digest_every=3)
    put_digest = dead.log.put_digest
    stalled = False

    async def stall_first(digest: SignedDigest) -> None:
        nonlocal stalled
        if digest.writer_id == "w-dead" and not stalled:
            stalled = True
            dead.clock.advance(3 * INTERVAL)
            assert await later.service.seal_abandoned() == 1
        await put_digest(digest)

    dead.log.put_digest = stall_first  # type: ignore[method-assign]
    await die_with_unsigned_tail(dead, records=2)
    record = await dead.service.record_admin_action(1, "test.append", "stored")
    assert (record.writer_id, record.sequence) == ("w-dead", 3)
    (seal_digest,) = await dead.log.digests("w-dead")
    assert seal_digest.head.sequence == 4  # the seal, right after the stored record
    late = await dead.service.record_admin_action(1, "test.append", "late")
    assert late.writer_id not in {"w-dead", "w-later"}
    assert late.sequence == 1
    await dead.service.close()
    assert len(await dead.log.digests(late.writer_id)) == 1
    report = await later.service.verify()
    assert report.ok, report.problems


async def test_a_digest_another_process_wrote_is_refused_once_and_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Not a seal: a digest forged in the store, or a second process with this
    # writer ID. The writer must not sign over it at every later digest.
    one = trail(AuditSettings(digest_interval=INTERVAL, digest_every=3), writer_id="w-x")
    for n in range(2):
        await one.service.record_admin_action(1, "test.append", f"thing:{n}")
    forged = trail(signer=one.signer, clock=one.clock, writer_id="w-x")
    await forged.service.record_admin_action(1, "test.append", "forged")
    (foreign,) = [d for d in [await forged.service.write_digest()] if d is not None]
    await one.log.put_digest(foreign)
    caplog.set_level(logging.WARNING, logger="timmybot.audit")
    record = await one.service.record_admin_action(1, "test.append", "thing:2")
    assert (record.writer_id, record.sequence) == ("w-x", 3)
    assert await one.log.digests("w-x") == [foreign]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "audit digest 1 of writer w-x was already written by another process" in (
        errors[0].getMessage()
    )
    new = one.service.writer_id
    assert new != "w-x"
    (event,) = await one.log.chain(new)
    assert (event.kind, event.action, event.source) == (
        AuditKind.SECURITY,
        DIGEST_TAKEN_ACTION,
        "audit",
    )
    assert dict(event.details) == {
        "reason": "another process wrote this writer's digest, and did not seal it",
        "digest_sequence": 1,
        "unsigned_from": 1,
        "unsigned_to": 3,
    }
    for n in range(3, 6):
        await one.service.record_admin_action(1, "test.append", f"thing:{n}")
    await one.service.close()
    assert [d.head.sequence for d in await one.log.digests(new)] == [3, 4]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def test_the_live_writer_signs_its_tail_on_a_timer() -> None:
    one = trail(AuditSettings(digest_interval=timedelta(seconds=1)), writer_id="w-timer")
    await one.service.record_admin_action(1, "test.append", "thing")
    assert await one.log.digests("w-timer") == []
    # The timer runs on the loop's monotonic clock, not on the (fake) wall clock.
    for _ in range(40):
        await asyncio.sleep(0.05)
        if await one.log.digests("w-timer"):
            break
    (digest,) = await one.log.digests("w-timer")
    assert digest.head.sequence == 1
    await one.service.close()


async def test_the_live_writers_own_tail_is_never_a_coverage_problem() -> None:
    one = trail(AuditSettings(digest_interval=INTERVAL), writer_id="w-self")
    await one.service.record_admin_action(1, "test.append", "thing")
    one.clock.advance(10 * INTERVAL)
    assert (await one.service.verify()).ok
    assert one.clock.now() > START


async def test_a_host_action_named_like_the_seal_is_an_ordinary_record() -> None:
    # A host bot may name its own admin action anything, the seal's name too.
    one = trail(AuditSettings(digest_interval=INTERVAL), writer_id="w-host")
    await one.service.record_admin_action(1, SEAL_ACTION, "thing:1")
    await one.service.record_admin_action(1, "guild.allow", "guild:1")
    await one.service.write_digest()
    report = await one.service.verify()
    assert report.ok, [str(p) for p in report.problems]
    assert report.sealed_writers == 0


async def test_a_dead_writer_whose_last_action_is_named_like_the_seal_is_still_sealed() -> None:
    dead, later = pair()
    await die_with_unsigned_tail(dead, records=2)
    # An invisible character the cleaning removes: the stored action is the seal's name.
    await dead.service.record_admin_action(1, SEAL_ACTION + "\u200b", "thing:last")
    dead.clock.advance(3 * INTERVAL)
    assert await later.service.seal_abandoned() == 1
    chain = await later.log.chain("w-dead")
    assert [r.action for r in chain] == ["test.append", "test.append", SEAL_ACTION, SEAL_ACTION]
    assert chain[-1].source == "audit"
    # It was only stalled: the seal's position is taken, so it moves to a new ID.
    record = await dead.service.record_admin_action(1, "test.append", "late")
    assert record.writer_id != "w-dead"
    await dead.service.close()
    report = await later.service.verify()
    assert report.ok, [str(p) for p in report.problems]
    assert report.sealed_writers == 1
