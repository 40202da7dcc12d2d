"""The DigestAnchor contract: every adapter of the port passes this suite.

Adapters: memory, a directory (the embedded default's), and S3 with Object
Lock on moto's server (a bucket created with Object Lock and a default
compliance retention, as the stack creates it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from timmybot_adapters.memory.anchor import MemoryDigestAnchor
from timmybot_adapters.sqlite.digest_directory import DirectoryDigestAnchor
from timmybot_core.domain.errors import AuditConflict
from timmybot_core.ports.audit import GENESIS_HASH, ChainHead, SignedDigest
from timmybot_core.ports.digest_anchor import DigestAnchor

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[DigestAnchor]:
    yield MemoryDigestAnchor()


@asynccontextmanager
async def _directory(tmp_path: Path) -> AsyncIterator[DigestAnchor]:
    yield DirectoryDigestAnchor(tmp_path / "digests")


@asynccontextmanager
async def _s3(tmp_path: Path) -> AsyncIterator[DigestAnchor]:
    from tests import aws_servers
    from tests.integration.aws.s3_buckets import locked_bucket
    from timmybot_adapters.aws.anchor import S3DigestAnchor

    bucket = locked_bucket()
    yield S3DigestAnchor(aws_servers.shared_clients(), bucket, retention=timedelta(days=1))


ADAPTERS: dict[str, Callable[[Path], AbstractAsyncContextManager[DigestAnchor]]] = {
    "memory": _memory,
    "directory": _directory,
    "s3": _s3,
}


@pytest.fixture(params=list(ADAPTERS))
async def anchor(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DigestAnchor]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


def digest(sequence: int, *, writer: str = "w-1", head: int = 1, sig: int = 0) -> SignedDigest:
    return SignedDigest(
        writer_id=writer,
        digest_sequence=sequence,
        created_at=datetime.now(UTC).replace(microsecond=123456) + sequence * timedelta(seconds=1),
        head=ChainHead(writer_id=writer, sequence=head, hash="ab" * 32),
        covers_from=1,
        prev_digest_hash=GENESIS_HASH,
        key_id="a1234abcd",
        hash=f"{sequence:064x}",
        signature=bytes((sig + n) % 256 for n in range(64)),
    )


def test_the_anchor_implements_the_port(anchor: DigestAnchor) -> None:
    assert isinstance(anchor, DigestAnchor)
    assert anchor.location


async def test_copies_read_back_exactly_in_order(anchor: DigestAnchor) -> None:
    kept = [digest(n, head=n * 10) for n in (1, 2, 3, 10)]
    for one in reversed(kept):
        await anchor.put(one)
    await anchor.put(digest(1, writer="w-ünï 🎵"))

    assert await anchor.digests("w-1") == kept
    assert await anchor.writers() == ["w-1", "w-ünï 🎵"]
    assert await anchor.digests("w-none") == []


async def test_a_copy_is_put_once_and_never_replaced(anchor: DigestAnchor) -> None:
    first = digest(1)
    await anchor.put(first)
    await anchor.put(first)  # a retry: nothing changes

    with pytest.raises(AuditConflict, match="w-1#1"):
        await anchor.put(attrs.evolve(first, signature=b"\x01" * 64))
    with pytest.raises(AuditConflict):
        await anchor.put(
            attrs.evolve(first, head=ChainHead(writer_id="w-1", sequence=9, hash="f" * 64))
        )
    assert await anchor.digests("w-1") == [first]
