"""The bot's services with ``backend="aws"``: real HTTP to moto's server and dynalite.

``bootstrap`` builds the aws adapters from settings alone (endpoints,
region, table prefix, secret prefix, KMS key, SNS topic), exactly as in
production but pointed at 127.0.0.1. One run goes through the life of a
user and of an unwelcome guild:

link (the demo OAuth provider approves, the callback lands the tokens in
Secrets Manager under the KMS key), refresh (the rotated refresh token is
stored), deny (a guild off the allowlist), ban (past the limit: one ban in
DynamoDB, one alert through SNS to an SQS queue), audit (the security
events and the admin action are in the DynamoDB audit log, the chains
verify), erase (the secret, the preferences and the pending states are
gone, and the erasure is audited).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
import watchtower

from tests import aws_servers
from timmybot_bot.app.commands import Invocation
from timmybot_bot.console.lines import run_command
from timmybot_bot.demo.provider import DemoOAuthProvider
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_bot.web.server import WebServer, build_app
from timmybot_core.ports.audit import AuditKind

# Snowflake-sized IDs: "not in" checks on logs and alerts must be able to fail.
HOME = 222_222_222_222_222_222
OWNER = Invocation(user_id=111_111_111_111_111_111, guild_id=HOME)
USER = Invocation(user_id=444_444_444_444_444_444, guild_id=HOME)
STRANGER = Invocation(user_id=555_555_555_555_555_555, guild_id=999_999_999_999_999_999)
LIMIT = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define
class World:
    services: Services
    demo: DemoOAuthProvider
    web: WebServer
    http: aiohttp.ClientSession
    aws: Any
    queue_url: str
    secret_prefix: str
    kms_key: str

    async def say(self, line: str, invocation: Invocation) -> str:
        name, _, rest = line.lstrip("/").partition(" ")
        return (await run_command(self.services, invocation, name, rest)).text

    def alerts(self) -> list[dict[str, Any]]:
        sqs = self.aws.client("sqs", endpoint_url=aws_servers.moto_endpoint())
        batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        return [json.loads(message["Body"]) for message in batch.get("Messages", [])]


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    # bootstrap builds its own boto3 session: the default chain finds these.
    for name, value in aws_servers.CREDENTIAL_ENV.items():
        monkeypatch.setenv(name, value)
    moto = aws_servers.moto_endpoint()
    session = aws_servers.session()
    sns, sqs = session.client("sns", endpoint_url=moto), session.client("sqs", endpoint_url=moto)
    name = aws_servers.unique("e2e")
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    logs = session.client("logs", endpoint_url=moto)
    for group in (f"/{name}/security", f"/{name}/audit"):
        logs.create_log_group(logGroupName=group)
    port = free_port()
    async with aws_servers.fresh_tables() as tables:
        prefix = tables.access.removesuffix("access")
        settings = Settings(
            backend="aws",
            data_dir=tmp_path / "var",
            web_port=port,
            owner_ids={OWNER.user_id},
            allowed_guilds={HOME},
            attempt_limit=LIMIT,
            aws_region=aws_servers.REGION,
            aws_endpoint_url=moto,
            aws_dynamodb_endpoint_url=aws_servers.dynalite_endpoint(),
            aws_table_prefix=prefix,
            aws_secret_prefix=f"/e2e/{name}/users/",
            aws_kms_key_id=aws_servers.kms_key_id(),
            aws_alert_topic_arn=topic,
            aws_security_log_group=f"/{name}/security",
            aws_audit_log_group=f"/{name}/audit",
        )
        demo = DemoOAuthProvider(redirect_uris=[settings.redirect_uri], auto_approve=True)
        await demo.start()
        services = bootstrap(settings, extra_providers=[demo.oauth_provider()])
        await services.open()  # checks every table exists and is active
        web = WebServer(build_app(services.links), port=port)
        await web.start()
        http = aiohttp.ClientSession()
        try:
            yield World(
                services=services,
                demo=demo,
                web=web,
                http=http,
                aws=session,
                queue_url=queue,
                secret_prefix=settings.aws_secret_prefix,
                kms_key=settings.aws_kms_key_id or "",
            )
        finally:
            await http.close()
            await web.stop()
            await services.aclose()
            await demo.stop()


async def test_link_refresh_deny_ban_audit_and_erase(world: World) -> None:
    services = world.services
    secrets = world.aws.client("secretsmanager", endpoint_url=aws_servers.moto_endpoint())

    # An owner changes the allowlist: an admin action for the audit trail.
    assert "is now allowed" in await world.say("/admin guild allow 777777777777777777", OWNER)

    # Link: through the demo provider and the bot's own callback.
    reply = await world.say("/link demo", USER)
    url = re.search(r"<(http[^>]+)>", reply)
    assert url is not None, reply
    async with world.http.get(url.group(1)) as response:
        assert response.status == 200
        assert "Account linked" in await response.text()
    secret_name = f"{world.secret_prefix}{USER.user_id}/oauth"
    described = secrets.describe_secret(SecretId=secret_name)
    assert described["KmsKeyId"] == world.kms_key
    assert {"Key": "application", "Value": "timmybot"} in described["Tags"]
    linked = await services.vault.get(USER.user_id)
    assert linked is not None and set(linked.links) == {"demo"}
    assert "demo: active" in await world.say("/linked", USER)

    # Refresh: the rotated refresh token is what Secrets Manager now holds.
    lifetime = timedelta(seconds=world.demo.expires_in + 60)
    await services.tokens.refresh(USER.user_id, "demo", within=lifetime)
    refreshed = await services.vault.get(USER.user_id)
    assert refreshed is not None and refreshed.version != linked.version
    new_refresh = refreshed.links["demo"].tokens.refresh_token
    assert new_refresh is not None and world.demo.is_valid_refresh_token(new_refresh)
    current = json.loads(
        secrets.get_secret_value(SecretId=secret_name, VersionStage="AWSCURRENT")["SecretString"]
    )
    assert current["links"]["demo"]["tokens"]["refresh_token"] == new_refresh

    # Deny, then ban: the stranger's guild is not on the allowlist.
    for _ in range(LIMIT):
        assert "not authorized" in await world.say("/search lofi", STRANGER)
    assert "temporarily blocked" in await world.say("/search lofi", STRANGER)
    assert "temporarily blocked" in await world.say("/search lofi", STRANGER)
    bans = await services.access.list_bans()
    assert [ban.guild_id for ban in bans] == [STRANGER.guild_id]
    alerts = world.alerts()
    assert [alert["severity"] for alert in alerts] == ["P2"]
    assert "banned" in alerts[0]["alert"]
    assert str(STRANGER.guild_id) not in json.dumps(alerts)  # pseudonyms only

    # Audit: every event above is in DynamoDB, in order, and the chains verify.
    now = services.clock.now()
    page = await services.audit.get_audit_history(now - timedelta(hours=1), now + timedelta(1))
    kinds = {record.kind for record in page.records}
    assert {AuditKind.ADMIN, AuditKind.SECURITY} <= kinds
    admin = await services.audit.get_audit_history(
        now - timedelta(hours=1), now + timedelta(1), admin_id=OWNER.user_id
    )
    assert [record.action for record in admin.records][-1:] == ["guild.allow"]
    timestamps = [record.timestamp for record in page.records]
    assert timestamps == sorted(timestamps, reverse=True)
    await services.audit.write_digest()
    report = await services.audit.verify()
    assert report.ok, report

    # Erase: tokens, preferences and pending states of the user are gone.
    await services.user_data.set_preference(USER.user_id, "volume", 70, at=now)
    await world.say("/link demo", USER)  # a pending state, never completed
    erased = await services.retention.delete_user_data(USER.user_id, "user")
    assert erased.ok, erased
    assert await services.vault.get(USER.user_id) is None
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId=secret_name)
    assert await services.user_data.get_preferences(USER.user_id) == []
    assert erased.audit_event_id is not None
    privacy = await services.audit.get_audit_history(
        now - timedelta(hours=1), now + timedelta(1), kind=AuditKind.PRIVACY
    )
    # Newest first: the outcome, then the request recorded before any store was touched.
    assert [record.action for record in privacy.records] == ["erasure", "erasure.requested"]
    assert privacy.records[0].event_id == erased.audit_event_id
    assert erased.request_id is not None
    assert await services.retention.resume_pending_erasures() == 0  # nothing left pending

    # The security log lines went to their CloudWatch Logs group too.
    [handler] = [
        h
        for h in logging.getLogger("timmybot.security").handlers
        if isinstance(h, watchtower.CloudWatchLogHandler)
    ]
    await asyncio.to_thread(handler.flush)
    logs = world.aws.client("logs", endpoint_url=aws_servers.moto_endpoint())
    group = services.settings.aws_security_log_group
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    lines = [
        event["message"]
        for stream in streams
        for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])[
            "events"
        ]
    ]
    assert any('"event":"UNAUTHORIZED_ACCESS"' in line for line in lines)
    assert all(str(USER.user_id) not in line for line in lines)
