"""The S3 digest anchor against moto's server, Object Lock included.

What the contract suite cannot show: each copy is locked in compliance
mode until its digest's time plus the retention, a locked version cannot
be deleted, and neither a newer version of the same key nor a delete
marker changes what the anchor reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import botocore.exceptions
import pytest

from tests import aws_servers
from tests.integration.aws.s3_buckets import locked_bucket, s3_client
from timmybot_adapters.aws.anchor import S3DigestAnchor
from timmybot_core.domain.audit_chain import digest_bytes
from timmybot_core.domain.errors import AuditConflict
from timmybot_core.ports.audit import GENESIS_HASH, ChainHead, SignedDigest

NOW = datetime.now(UTC).replace(microsecond=0)


def digest(sequence: int, writer: str = "w-s3") -> SignedDigest:
    return SignedDigest(
        writer_id=writer,
        digest_sequence=sequence,
        created_at=NOW,
        head=ChainHead(writer_id=writer, sequence=sequence * 5, hash="ab" * 32),
        covers_from=1,
        prev_digest_hash=GENESIS_HASH,
        key_id="a1234abcd",
        hash=f"{sequence:064x}",
        signature=bytes(range(64)),
    )


def key_of(one: SignedDigest) -> str:
    return f"digests/{one.writer_id.encode().hex()}/{one.digest_sequence:020d}.json"


async def test_each_copy_is_locked_in_compliance_mode_for_the_retention() -> None:
    bucket = locked_bucket()
    anchor = S3DigestAnchor(aws_servers.shared_clients(), bucket, retention=timedelta(days=400))
    await anchor.put(digest(1))
    s3 = s3_client()
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    [version] = s3.list_object_versions(Bucket=bucket)["Versions"]
    head = s3.head_object(Bucket=bucket, Key=key_of(digest(1)), VersionId=version["VersionId"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == NOW + timedelta(days=400)
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key=key_of(digest(1)), VersionId=version["VersionId"])


async def test_a_newer_version_or_a_delete_marker_changes_nothing_the_anchor_reads() -> None:
    bucket = locked_bucket()
    anchor = S3DigestAnchor(aws_servers.shared_clients(), bucket, retention=timedelta(days=1))
    first = digest(1)
    await anchor.put(first)
    await anchor.put(digest(2))
    s3 = s3_client()
    # Someone with PutObject writes over it (no If-None-Match), then deletes the key.
    forged = digest_bytes(attrs.evolve(first, key_id="forged"))
    s3.put_object(Bucket=bucket, Key=key_of(first), Body=forged)
    s3.delete_object(Bucket=bucket, Key=key_of(digest(2)))
    assert await anchor.digests("w-s3") == [first, digest(2)]
    assert await anchor.writers() == ["w-s3"]
    # And the anchor itself still refuses a different digest at a kept place.
    with pytest.raises(AuditConflict, match="holds another digest"):
        await anchor.put(attrs.evolve(first, hash="f" * 64))
