"""S3 buckets with Object Lock on moto's server, as the stack's digest bucket."""

from __future__ import annotations

from tests.aws_servers import REGION, moto_endpoint, session, unique


def s3_client():  # type: ignore[no-untyped-def]
    """A plain S3 client on moto (no injected faults)."""
    return session().client("s3", endpoint_url=moto_endpoint())


def locked_bucket(days: int = 1) -> str:
    """A new bucket with versioning, Object Lock and a default compliance retention."""
    name = unique("digests")
    s3 = s3_client()
    s3.create_bucket(
        Bucket=name,
        ObjectLockEnabledForBucket=True,
        CreateBucketConfiguration={"LocationConstraint": REGION},
    )
    s3.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}},
        },
    )
    return name
