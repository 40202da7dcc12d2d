"""DigestAnchor on S3 with Object Lock: copies of the audit digests nobody can rewrite.

The stack's digest bucket (``deploy/cloudformation/timmybot.yaml``) has
versioning and Object Lock on, with a default retention in *compliance*
mode: until an object's retain-until date passes, no one, the account's
root user included, can delete or overwrite that version. Each digest is
one object::

    s3://<bucket>/digests/<writer ID as hex>/<digest sequence, 20 digits>.json

holding :func:`~timmybot_core.domain.audit_chain.digest_bytes`. It is put
with ``If-None-Match: *`` (never over an existing key), its own
``ObjectLockMode=COMPLIANCE`` and ``ObjectLockRetainUntilDate`` (the
digest's time plus the retention setting, the audit retention by default:
a digest outlives the records it covers), and a ``Content-MD5`` (Object
Lock requires one). A later version of the same key, which someone with
``PutObject`` could add despite the condition, never replaces the first:
readers take each key's *oldest* version, the one the lock keeps, and
listing goes through object versions, so a delete marker hides nothing.

This is the same idea as CloudTrail's digest files in S3. Errors surface as
``StoreUnavailable`` naming the operation, never the object's content.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any, Final

from botocore.exceptions import ClientError

from timmybot_adapters.aws.clients import AwsClients, aws_errors, error_code
from timmybot_core.domain.audit_chain import digest_bytes, digest_from_bytes
from timmybot_core.domain.errors import AuditConflict, StoreUnavailable
from timmybot_core.ports.audit import SignedDigest

__all__ = ["DEFAULT_DIGEST_PREFIX", "S3DigestAnchor"]

DEFAULT_DIGEST_PREFIX: Final = "digests/"
_LABEL: Final = "digest anchor"


class S3DigestAnchor:
    """Copies of the audit digests in an S3 bucket with Object Lock (see the module docstring).

    Args:
        aws: the clients.
        bucket: the digest bucket (the stack's ``DigestBucketName`` output).
        retention: how long each copy is locked, from its digest's time.
        prefix: the key prefix of the copies.
    """

    def __init__(
        self,
        aws: AwsClients,
        bucket: str,
        *,
        retention: timedelta,
        prefix: str = DEFAULT_DIGEST_PREFIX,
    ) -> None:
        if not bucket:
            raise ValueError(f"{_LABEL}: a bucket name is required")
        if retention <= timedelta(0):
            raise ValueError(f"{_LABEL}: the retention must be positive")
        self._aws = aws
        self._bucket = bucket
        self._retention = retention
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"S3DigestAnchor(bucket={self._bucket!r}, prefix={self._prefix!r})"

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self._bucket}/{self._prefix}"

    @property
    def _s3(self) -> Any:  # no stubs for S3 in the dev install
        return self._aws.client("s3")

    def _folder(self, writer_id: str) -> str:
        return f"{self._prefix}{writer_id.encode('utf-8').hex()}/"

    def _key(self, digest: SignedDigest) -> str:
        return f"{self._folder(digest.writer_id)}{digest.digest_sequence:020d}.json"

    async def put(self, digest: SignedDigest) -> None:
        """Keep a locked copy; ``AuditConflict`` if a different one holds its key."""
        data = digest_bytes(digest)
        key = self._key(digest)
        md5 = hashlib.md5(data, usedforsecurity=False).digest()  # S3's integrity check
        with aws_errors(_LABEL, "put"):
            try:
                await self._aws.run(
                    self._s3.put_object,
                    Bucket=self._bucket,
                    Key=key,
                    Body=data,
                    ContentType="application/json",
                    ContentMD5=base64.b64encode(md5).decode("ascii"),
                    IfNoneMatch="*",
                    ObjectLockMode="COMPLIANCE",
                    ObjectLockRetainUntilDate=digest.created_at + self._retention,
                )
                return
            except ClientError as error:
                if error_code(error) not in {"PreconditionFailed", "412"}:
                    raise
        versions = await self._versions(key)
        if key not in versions or await self._read(key, versions[key]) != data:
            raise AuditConflict(
                f"{_LABEL}: {digest.writer_id}#{digest.digest_sequence} holds another digest"
            )
        # Else: this very digest, kept before (a retry).

    async def _versions(self, prefix: str) -> dict[str, str]:
        """Each key under ``prefix`` -> the version ID of its oldest version.

        S3 lists a key's versions newest first, so the last one listed is the
        first written (timestamps have one-second steps and cannot tell two
        versions of one second apart).
        """
        oldest: dict[str, str] = {}
        params: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix}
        while True:
            with aws_errors(_LABEL, "list"):
                page = await self._aws.run(self._s3.list_object_versions, **params)
            for version in page.get("Versions", []):
                oldest[version["Key"]] = version["VersionId"]
            if not page.get("IsTruncated"):
                return oldest
            params["KeyMarker"] = page.get("NextKeyMarker")
            params["VersionIdMarker"] = page.get("NextVersionIdMarker")

    async def _read(self, key: str, version: str) -> bytes:
        with aws_errors(_LABEL, "read"):
            answer = await self._aws.run(
                self._s3.get_object, Bucket=self._bucket, Key=key, VersionId=version
            )
            body: bytes = await self._aws.run(answer["Body"].read)
        return body

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        """Return the writer's copies (each key's first version) in ``digest_sequence`` order."""
        found: list[SignedDigest] = []
        versions = await self._versions(self._folder(writer_id))
        for key in sorted(versions):
            try:
                found.append(digest_from_bytes(await self._read(key, versions[key])))
            except ValueError as error:
                raise StoreUnavailable(
                    f"{_LABEL}: {key.rsplit('/', 1)[-1]} of writer {writer_id} is unreadable "
                    f"({error})"
                ) from None
        return sorted(found, key=lambda d: d.digest_sequence)

    async def writers(self) -> list[str]:
        """Return every writer with a copy (a delete marker hides none)."""
        names: set[str] = set()
        for key in await self._versions(self._prefix):
            folder = key[len(self._prefix) :].split("/", 1)[0]
            try:
                names.add(bytes.fromhex(folder).decode("utf-8"))
            except (ValueError, UnicodeError):
                continue  # not ours
        return sorted(names)
