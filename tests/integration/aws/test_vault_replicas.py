"""Disaster recovery of the token vault: each user's secret is replicated on creation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests import aws_servers
from timmybot_adapters.aws import SecretsManagerTokenVault
from timmybot_adapters.aws.vault import replica_key
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink, UserTokens

NOW = datetime.now(UTC).replace(microsecond=0)


def test_a_key_arn_names_its_replica_by_region() -> None:
    arn = "arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef"
    assert replica_key(arn, "eu-central-1") == arn.replace("eu-west-1", "eu-central-1")
    assert replica_key("alias/timmybot", "eu-central-1") == "alias/timmybot"


async def test_a_new_user_secret_is_replicated_to_every_replica_region() -> None:
    aws = aws_servers.shared_clients()
    prefix = f"/{aws_servers.unique('dr')}/users/"
    vault = SecretsManagerTokenVault(
        aws,
        prefix=prefix,
        kms_key_id=aws_servers.kms_key_id(),
        replica_regions=("eu-central-1", "us-east-1"),
    )
    tokens = OAuthTokens(
        platform="spotify",
        access_token="dr-access",
        refresh_token="dr-refresh",
        expires_at=NOW + timedelta(hours=1),
    )
    record = UserTokens.new(7, now=NOW).with_link(
        PlatformLink(tokens=tokens, linked_at=NOW), now=NOW
    )
    await vault.put(7, record, expected_version=None)
    described = (
        aws_servers.session()
        .client("secretsmanager", endpoint_url=aws_servers.moto_endpoint())
        .describe_secret(SecretId=vault.secret_name(7))
    )
    assert sorted(r["Region"] for r in described["ReplicationStatus"]) == [
        "eu-central-1",
        "us-east-1",
    ]
    assert await vault.get(7) is not None
    assert await vault.delete(7) is True
