"""compose() on the aws backend: real HTTP to moto's server and dynalite on 127.0.0.1."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import aws_servers
from tests.unit.fake_oauth import FakeOAuthClient
from timmybot_bot.integrate import Settings, compose
from timmybot_bot.integrate.composition import _attach_log_groups, close_all
from timmybot_core import FakeClock, OAuthTokens

HOME = 222_222_222_222_222_222
STRANGER = 999_999_999_999_999_999
USER = 444_444_444_444_444_444


async def test_the_guard_vault_and_audit_trail_on_aws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in aws_servers.CREDENTIAL_ENV.items():
        monkeypatch.setenv(name, value)
    async with aws_servers.fresh_tables() as tables:
        settings = Settings(
            backend="aws",
            data_dir=tmp_path / "var",
            allowed_guilds={HOME},
            aws_region=aws_servers.REGION,
            aws_endpoint_url=aws_servers.moto_endpoint(),
            aws_dynamodb_endpoint_url=aws_servers.dynalite_endpoint(),
            aws_table_prefix=tables.access.removesuffix("access"),
            aws_secret_prefix=f"/compose/{aws_servers.unique('c')}/users/",
            aws_kms_key_id=aws_servers.kms_key_id(),
        )
        clock = FakeClock(datetime.now(UTC))
        oauth = FakeOAuthClient(clock, platforms=("spotify",))
        security = compose(settings, guard=True, vault=True, audit=True, clock=clock, oauth=oauth)
        await security.open()  # every table exists and is active
        try:
            assert security.access is not None and security.tokens is not None
            assert security.audit is not None and security.privacy is None
            assert not (await security.access.check(STRANGER, USER, "ping")).allowed
            assert (await security.access.check(HOME, USER, "ping")).allowed
            # The rate limits live in the access table (DynamoRateLimitStore).
            assert security.limiter is not None
            for _ in range(5):
                assert (
                    await security.limiter.check(user_id=USER, guild_id=HOME, command="p")
                ).allowed
            refused = await security.limiter.check(user_id=USER, guild_id=HOME, command="p")
            assert not refused.allowed and refused.scope == "command"
            await security.tokens.store_user_tokens(
                USER,
                OAuthTokens(
                    platform="spotify",
                    access_token="at-compose",
                    refresh_token="rt-compose",
                    expires_at=clock.now() + timedelta(hours=1),
                ),
            )
            record = await security.tokens.get_user_tokens(USER, force_fetch=True)
            assert record is not None and "spotify" in record.links
            await security.audit.record_admin_action(USER, "host.action", "juke", source="juke")
            report = await security.audit.verify()
            assert report.ok, report
            # The refresh claim is a lease in the access table: one version per refresh.
            await security.tokens.store_user_tokens(USER + 1, oauth.issue())
            secrets = aws_servers.session().client(
                "secretsmanager", endpoint_url=aws_servers.moto_endpoint()
            )
            name = f"{settings.aws_secret_prefix}{USER + 1}/oauth"
            before = len(secrets.list_secret_version_ids(SecretId=name)["Versions"])
            clock.advance(timedelta(minutes=58))
            refreshed = await security.tokens.refresh(
                USER + 1, "spotify", within=timedelta(minutes=5)
            )
            assert refreshed.refreshed
            assert len(secrets.list_secret_version_ids(SecretId=name)["Versions"]) == before + 1
            lease = aws_servers.shared_clients().dynamodb.get_item(
                TableName=tables.access,
                Key={"pk": {"S": f"refresh#{USER + 1:020d}"}, "sk": {"S": "spotify"}},
                ConsistentRead=True,
            )
            assert "Item" in lease and "holder" not in lease["Item"]  # taken, then released
            # On AWS the secrets live in Secrets Manager: no local vault key is made.
            keys = {p.name for p in (settings.data_dir / "keys").iterdir()}
            assert "vault.key" not in keys
        finally:
            await security.aclose()


async def test_the_log_groups_name_an_exception_by_its_type_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On stdout (JsonLines) an exception shows as its type only; the lines
    # watchtower ships to the security and audit groups are the same loggers'
    # lines and must not carry the exception's text or traceback either.
    for name, value in aws_servers.CREDENTIAL_ENV.items():
        monkeypatch.setenv(name, value)
    groups = {"security": f"/{aws_servers.unique('lg')}/security"}
    groups["audit"] = groups["security"].replace("security", "audit")
    aws = aws_servers.new_clients()
    for group in groups.values():
        aws.logs.create_log_group(logGroupName=group)
    settings = Settings(
        backend="aws",
        aws_security_log_group=groups["security"],
        aws_audit_log_group=groups["audit"],
    )
    closers = [aws.aclose]
    _attach_log_groups(settings, aws, closers)
    try:
        for logger in ("timmybot.security.internal", "timmybot.audit"):
            try:
                raise RuntimeError("canary-exception-text\nsecond line")
            except RuntimeError:
                logging.getLogger(logger).error("%s: something failed", logger, exc_info=True)
    finally:
        await close_all(closers)  # the handlers send what is queued, then detach

    reader = aws_servers.shared_clients().logs
    for kind, group in groups.items():
        messages = [
            event["message"]
            for stream in reader.describe_log_streams(logGroupName=group)["logStreams"]
            for event in reader.get_log_events(
                logGroupName=group, logStreamName=stream["logStreamName"]
            )["events"]
        ]
        [message] = [m for m in messages if "something failed" in m]
        assert "canary-exception-text" not in message, kind
        assert "Traceback" not in message and "\n" not in message, kind
        assert "RuntimeError" in message, kind
