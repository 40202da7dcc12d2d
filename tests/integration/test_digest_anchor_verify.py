"""Verification compares the store's digests with the anchor's copies.

The attacker here can rewrite the whole audit store and holds the signing
key: a rewritten record with a re-signed digest verifies clean against the
store alone. The anchor (a digest directory, as on the embedded default)
still holds the digests as first written, so every difference is reported.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

from timmybot_adapters.memory import MemoryAuditLog
from timmybot_adapters.signing import Ed25519KeyRing, Ed25519Signer
from timmybot_adapters.sqlite.digest_directory import DirectoryDigestAnchor
from timmybot_core import (
    AuditSettings,
    AuditTrailService,
    FakeClock,
    ProblemKind,
    Pseudonymizer,
    ResponseSanitizer,
)
from timmybot_core.domain.audit_chain import digest_hash, digest_message, sealed
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.ports.audit import AuditLog, ChainHead, SignedDigest
from timmybot_core.ports.digest_anchor import DigestAnchor

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SIGNER = Ed25519Signer.generate()
RING = Ed25519KeyRing()
RING.add(SIGNER.public_key)


def trail(
    log: MemoryAuditLog, anchor: DigestAnchor | None, writer: str = "w-a"
) -> AuditTrailService:
    return AuditTrailService(
        log=log,
        pseudonymizer=Pseudonymizer(key=b"anchor-test-pseudonym-key-32byte", key_id="t1"),
        sanitizer=ResponseSanitizer(),
        signer=SIGNER,
        verifier=RING,
        clock=FakeClock(START),
        settings=AuditSettings(digest_interval=timedelta(days=1), digest_every=3),
        writer_id=writer,
        anchor=anchor,
    )


async def written(tmp_path: Path) -> tuple[MemoryAuditLog, DirectoryDigestAnchor]:
    log = MemoryAuditLog()
    anchor = DirectoryDigestAnchor(tmp_path / "digests")
    service = trail(log, anchor)
    for n in range(7):
        await service.record_admin_action(111, f"act.{n}", "switch")
    await service.close()
    return log, anchor


def resigned(digest: SignedDigest, head_hash: str) -> SignedDigest:
    draft = attrs.evolve(
        digest,
        head=ChainHead(writer_id=digest.writer_id, sequence=digest.head.sequence, hash=head_hash),
    )
    draft = attrs.evolve(draft, hash=digest_hash(draft))
    return attrs.evolve(draft, signature=SIGNER.sign(digest_message(draft)))


async def test_every_digest_is_copied_and_a_clean_log_verifies_clean(tmp_path: Path) -> None:
    log, anchor = await written(tmp_path)
    assert await anchor.digests("w-a") == await log.digests("w-a")
    assert [d.head.sequence for d in await anchor.digests("w-a")] == [3, 6, 7]
    report = await trail(log, anchor, writer="w-verifier").verify()
    assert report.ok, [str(p) for p in report.problems]
    assert report.anchor == str(tmp_path / "digests")
    assert "compared with" in report.summary()


async def test_a_rewritten_record_with_a_resigned_digest_is_caught_only_by_the_anchor(
    tmp_path: Path,
) -> None:
    log, anchor = await written(tmp_path)
    # The attacker rewrites record 3, re-chains every record after it and
    # re-signs every digest: the store alone is consistent again.
    forged_log = MemoryAuditLog()
    hashes: dict[int, str] = {}
    previous = None
    for record in await log.chain("w-a"):
        if record.sequence == 3:
            record = attrs.evolve(record, action="act.forged")
        if previous is not None:
            record = attrs.evolve(record, prev_hash=previous)
        record = sealed(record)
        hashes[record.sequence] = previous = record.hash
        await forged_log.append(record)
    prev_digest = None
    for digest in await log.digests("w-a"):
        draft = attrs.evolve(
            digest,
            head=ChainHead(
                writer_id="w-a", sequence=digest.head.sequence, hash=hashes[digest.head.sequence]
            ),
            prev_digest_hash=digest.prev_digest_hash if prev_digest is None else prev_digest,
        )
        forged = resigned(draft, draft.head.hash)
        prev_digest = forged.hash
        await forged_log.put_digest(forged)

    alone = await trail(forged_log, None, writer="w-v").verify()
    assert alone.ok, [str(p) for p in alone.problems]

    report = await trail(forged_log, anchor, writer="w-v").verify()
    found = {(p.kind, p.digest_sequence) for p in report.problems}
    assert found == {(ProblemKind.ANCHOR_MISMATCH, n) for n in (1, 2, 3)}
    first = next(p for p in report.problems if p.digest_sequence == 1)
    assert "record 3" in first.detail
    assert first.location == "writer w-a digest 1"


async def test_a_deleted_digest_and_a_deleted_writer_are_reported(tmp_path: Path) -> None:
    log, anchor = await written(tmp_path)
    other = trail(log, anchor, writer="w-gone")
    await other.record_admin_action(111, "act.x", "switch")
    await other.close()
    # The store loses digest 2 of w-a and everything of w-gone.
    stripped = MemoryAuditLog()
    for record in await log.chain("w-a"):
        await stripped.append(record)
    for digest in await log.digests("w-a"):
        if digest.digest_sequence != 2:
            await stripped.put_digest(digest)

    report = await trail(stripped, anchor, writer="w-v").verify()
    found = {(p.kind, p.writer_id, p.digest_sequence) for p in report.problems}
    assert (ProblemKind.ANCHOR_ONLY, "w-a", 2) in found
    assert (ProblemKind.ANCHOR_ONLY, "w-gone", 1) in found


class CountingLog:
    """A pass-through log counting the digest reads, as a front-end's progress bar does."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log
        self.digest_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        self.digest_reads += 1
        return await self._log.digests(writer_id)


async def test_an_observed_verification_still_compares_with_the_anchor(tmp_path: Path) -> None:
    log, anchor = await written(tmp_path)
    stripped = MemoryAuditLog()
    for record in await log.chain("w-a"):
        await stripped.append(record)
    observed: list[CountingLog] = []

    def observe(inner: AuditLog) -> AuditLog:
        observed.append(CountingLog(inner))
        return cast(AuditLog, observed[-1])

    report = await trail(stripped, anchor, writer="w-v").verify(observe=observe)
    assert observed[0].digest_reads == 1  # the chain check read through the wrapper
    assert report.anchor == str(tmp_path / "digests")
    found = {(p.kind, p.digest_sequence) for p in report.problems}
    assert {(ProblemKind.ANCHOR_ONLY, n) for n in (1, 2, 3)} <= found


async def test_a_digest_the_anchor_did_not_take_is_retried_and_reported_until_then(
    tmp_path: Path,
) -> None:
    class Refusing(DirectoryDigestAnchor):
        refuse = True

        async def put(self, digest: SignedDigest) -> None:
            if self.refuse:
                raise StoreUnavailable("digest anchor: put failed (simulated)")
            await super().put(digest)

    log = MemoryAuditLog()
    anchor = Refusing(tmp_path / "digests")
    service = trail(log, anchor)
    for n in range(3):
        await service.record_admin_action(111, f"act.{n}", "switch")  # digest 1, not copied
    report = await trail(log, anchor, writer="w-v").verify()
    assert {(p.kind, p.digest_sequence) for p in report.problems} == {
        (ProblemKind.ANCHOR_MISSING, 1)
    }
    anchor.refuse = False
    await service.record_admin_action(111, "act.3", "switch")
    await service.close()  # digest 2, and digest 1 again
    assert [d.digest_sequence for d in await anchor.digests("w-a")] == [1, 2]
    assert (await trail(log, anchor, writer="w-v").verify()).ok


async def test_the_log_names_every_digest_not_copied_with_its_writer_and_hash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The operator tells a failed copy from a forged digest by the bot's log
    # (docs/audit.md): only the first digest waiting was named, without its
    # hash, and a seal's digest under the sealing writer's ID, not its own.
    class Refusing(DirectoryDigestAnchor):
        async def put(self, digest: SignedDigest) -> None:
            raise StoreUnavailable("digest anchor: put failed (simulated)")

    caplog.set_level(logging.WARNING, logger="timmybot.audit")
    log = MemoryAuditLog()
    anchor = Refusing(tmp_path / "digests")
    dead = trail(log, None, writer="w-dead")
    await dead.record_admin_action(111, "act.dead", "switch")  # unsigned, then killed
    service = trail(log, anchor)
    for n in range(7):
        await service.record_admin_action(111, f"act.{n}", "switch")  # digests 1 and 2
    cast(Any, service)._clock.advance(timedelta(days=3))
    assert await service.seal_abandoned() == 1
    await service.close()  # digest 3
    waiting = [*await log.digests("w-a"), *await log.digests("w-dead")]
    assert len(waiting) == 4
    lines = [r.getMessage() for r in caplog.records if "not copied" in r.getMessage()]
    for digest in waiting:
        named = (
            f"audit digest {digest.digest_sequence} of writer {digest.writer_id} "
            f"(hash {digest.hash}) not copied to the digest anchor yet"
        )
        assert any(line.startswith(named) for line in lines), (named, lines)
    # Each is named once, and the first waiting again at each of the four
    # retries (digest 2, the seal, digest 3, the stop).
    assert len(lines) == 4 + 4
