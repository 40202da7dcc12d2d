"""The aws adapters under injected faults, against dynalite and moto's server.

Faults come from botocore ``before-send`` hooks (``injection.Faults``) on
each test's own clients. The specification:

* transient faults (throttling, 500s, connect and read timeouts) at a set
  rate are retried by botocore, and every call succeeds with the right answer;
* a write whose answer is lost after the server applied it, and which
  botocore therefore sends again, counts once: one attempt, one ban, one
  vault version, one audit record;
* a persistent failure raises the core's error with a clear message (what
  failed, the AWS code, the attempts, the request ID; never a secret, a
  user ID or a secret name) and leaves no partial record behind;
* a slow AWS call never stalls the event loop.

Retry delays are compressed for speed (throttling backs off from 20 ms
instead of 1 s); botocore's retry logic is otherwise untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from botocore.retries.standard import ExponentialBackoff

from tests import aws_servers
from tests.integration.aws.injection import Faults
from timmybot_adapters.aws import (
    AwsClients,
    DynamoAccessPolicyStore,
    DynamoAuditLog,
    DynamoRefreshLeases,
    SecretsManagerTokenVault,
    SnsAlerter,
    TableNames,
)
from timmybot_core.domain.audit_chain import record_hash
from timmybot_core.domain.errors import (
    AlertDeliveryError,
    StoreUnavailable,
    VaultUnavailable,
    VersionConflict,
)
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink, UserTokens
from timmybot_core.ports.access import Ban
from timmybot_core.ports.alerts import Alert, Severity
from timmybot_core.ports.audit import GENESIS_HASH, AuditKind, AuditRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
GUILD = 18_446_744_073_709_551_557
USER = 18_446_744_073_709_551_533
CANARY = "canary-token-faults-4e1d"


@pytest.fixture(autouse=True)
def _fast_throttling_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Time compression only: the 1 s base of throttling backoff becomes 20 ms.
    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale", 0.02)


@pytest.fixture
def aws() -> Iterator[AwsClients]:
    clients = aws_servers.new_clients(max_attempts=6)
    try:
        yield clients
    finally:
        clients.close()


@pytest.fixture
async def tables() -> AsyncIterator[TableNames]:
    async with aws_servers.fresh_tables(roles=["access", "audit"]) as names:
        yield names


def dynamodb_faults(aws: AwsClients, **options: Any) -> Faults:
    faults = Faults(**options)
    faults.attach(aws.dynamodb, "dynamodb")
    return faults


def secrets_faults(aws: AwsClients, **options: Any) -> Faults:
    faults = Faults(**options)
    faults.attach(aws.secretsmanager, "secrets-manager")
    return faults


def record_for(user_id: int, platform: str = "spotify") -> UserTokens:
    tokens = OAuthTokens(
        platform=platform, access_token=CANARY, refresh_token=CANARY + "-r", expires_at=T0 + HOUR
    )
    return UserTokens.new(user_id, now=T0).with_link(
        PlatformLink(tokens=tokens, linked_at=T0), now=T0
    )


def audit_record(sequence: int, writer: str = "w-faults") -> AuditRecord:
    draft = AuditRecord(
        event_id=f"{writer}-{sequence}",
        writer_id=writer,
        sequence=sequence,
        timestamp=T0 + sequence * US,
        kind=AuditKind.ADMIN,
        action="guild.allow",
        actor="p1:admin",
        details={"n": sequence},
        prev_hash=GENESIS_HASH,
        hash="",
    )
    return attrs.evolve(draft, hash=record_hash(draft))


def assert_clean_message(message: str) -> None:
    # AWS's own message (it can name a resource) is never repeated.
    for secret in (CANARY, str(USER), str(GUILD), "/users/", "aws-message-7c1f"):
        assert secret not in message, (secret, message)


# Transient faults


async def test_transient_faults_are_retried_and_counts_stay_exact(
    aws: AwsClients, tables: TableNames
) -> None:
    faults = dynamodb_faults(aws, rate=0.3)
    store = DynamoAccessPolicyStore(aws, tables.access)
    counts = [await store.record_attempt(GUILD, at=T0 + n * US, window=HOUR) for n in range(40)]
    placed = await store.place_ban(
        Ban(guild_id=GUILD, until=T0 + HOUR, reason="flood", placed_at=T0), now=T0
    )

    assert counts == list(range(1, 41))
    assert placed is True
    assert await store.count_attempts(GUILD, now=T0 + HOUR / 2, window=HOUR) == 40
    # The faults really happened, every kind of them.
    assert set(faults.counts) == {"throttle", "error500", "connect", "read"}
    assert sum(faults.counts.values()) >= 10


async def test_the_vault_rides_out_transient_faults(aws: AwsClients) -> None:
    faults = secrets_faults(aws, rate=0.3)
    vault = SecretsManagerTokenVault(aws, prefix=f"/faults/{aws_servers.unique()}/")
    first = await vault.put(USER, record_for(USER), expected_version=None)
    versions = [first]
    for platform in ("deezer", "tidal", "qobuz"):
        current = await vault.get(USER)
        assert current is not None
        updated = current.with_link(record_for(USER, platform).links[platform], now=T0)
        versions.append(await vault.put(USER, updated, expected_version=current.version))

    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == versions[-1]
    assert sorted(stored.links) == ["deezer", "qobuz", "spotify", "tidal"]
    assert [u async for u in vault.user_ids()] == [USER]
    assert sum(faults.counts.values()) >= 3


# Lost answers: the request was applied, botocore sends it again


async def test_a_lost_answer_never_counts_an_attempt_twice(
    aws: AwsClients, tables: TableNames
) -> None:
    faults = dynamodb_faults(aws, rate=0.5, kinds=["lost"], operations=["UpdateItem"])
    store = DynamoAccessPolicyStore(aws, tables.access)
    # Ten attempts at one instant share one counter item: the hardest case.
    counts = [await store.record_attempt(GUILD, at=T0, window=HOUR) for _ in range(10)]

    assert faults.counts["lost"] >= 3
    assert counts == list(range(1, 11))
    assert await store.count_attempts(GUILD, now=T0, window=HOUR) == 10


async def test_answers_lost_every_time_give_a_clear_error_and_one_ban(
    aws: AwsClients, tables: TableNames
) -> None:
    faults = dynamodb_faults(aws, rate=1.0, kinds=["lost"], operations=["PutItem"])
    store = DynamoAccessPolicyStore(aws, tables.access)
    ban = Ban(guild_id=GUILD, until=T0 + HOUR, reason="flood", placed_at=T0)

    # Every attempt is applied and its answer lost, until the retries run out.
    with pytest.raises(StoreUnavailable, match="read timeout"):
        await store.place_ban(ban, now=T0)
    assert faults.counts["lost"] == 6

    faults.rate = 0.0
    # The ban is in place once, and nobody can place a second one.
    assert await store.get_ban(GUILD, now=T0) == ban
    assert await store.place_ban(ban, now=T0) is False


async def test_one_lost_answer_is_recognised_as_our_own_write(
    aws: AwsClients, tables: TableNames
) -> None:
    store = DynamoAccessPolicyStore(aws, tables.access)
    ban = Ban(guild_id=GUILD, until=T0 + HOUR, reason="flood", placed_at=T0)
    # The first try of each write is applied and its answer lost; the retry
    # then fails the write's condition, because the write is already there.
    faults = dynamodb_faults(
        aws, kinds=["lost"], operations=["PutItem"], schedule=[True, False, True, False]
    )

    assert await store.place_ban(ban, now=T0) is True
    assert await store.allow_guild(GUILD, at=T0) is True
    assert faults.counts["lost"] == 2
    assert faults.sent["PutItem"] == 4
    assert await store.list_allowed_guilds() == [GUILD]
    assert await store.place_ban(ban, now=T0) is False


async def test_a_lost_answer_is_recognised_by_a_refresh_lease(
    aws: AwsClients, tables: TableNames
) -> None:
    leases = DynamoRefreshLeases(aws, tables.access)
    until = T0 + HOUR
    # The first try of the acquire and of the release is applied and its
    # answer lost; each retry fails its condition and reads the lease back.
    faults = dynamodb_faults(
        aws, kinds=["lost"], operations=["UpdateItem"], schedule=[True, False, True, False]
    )

    assert await leases.acquire(USER, "spotify", claim_id="c1", fence="f1", until=until) is True
    assert await leases.holder(USER, "spotify") == "c1"
    assert await leases.release(USER, "spotify", claim_id="c1", spent=False) is True
    assert faults.counts["lost"] == 2
    assert faults.sent["UpdateItem"] == 4
    assert await leases.holder(USER, "spotify") is None
    # Not retried: a failed condition is a plain refusal, whatever the lease holds.
    assert await leases.acquire(USER, "spotify", claim_id="c2", fence="f2", until=until) is True
    assert await leases.release(USER, "spotify", claim_id="c1", spent=False) is False
    assert await leases.acquire(USER, "spotify", claim_id="c3", fence="f3", until=until) is False
    assert await leases.holder(USER, "spotify") == "c2"


async def test_a_lost_answer_leaves_one_vault_version_and_no_false_conflict(
    aws: AwsClients,
) -> None:
    vault = SecretsManagerTokenVault(aws, prefix=f"/faults/{aws_servers.unique()}/")
    faults = secrets_faults(
        aws,
        kinds=["lost"],
        operations=["CreateSecret", "UpdateSecretVersionStage"],
        schedule=[True, False, True, False],
    )

    created = await vault.put(USER, record_for(USER), expected_version=None)
    current = await vault.get(USER)
    assert current is not None and current.version == created
    tidal = record_for(USER, "tidal").links["tidal"]
    updated = await vault.put(USER, current.with_link(tidal, now=T0), expected_version=created)

    assert faults.counts["lost"] == 2
    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == updated
    assert sorted(stored.links) == ["spotify", "tidal"]


async def test_an_audit_append_retried_after_a_lost_answer_stores_one_record(
    aws: AwsClients, tables: TableNames
) -> None:
    log = DynamoAuditLog(aws, tables.audit)
    # The event ID's guard and the record: each first try applied, answer lost.
    faults = dynamodb_faults(
        aws, kinds=["lost"], operations=["PutItem"], schedule=[True, False, True, False]
    )

    await log.append(audit_record(1))

    assert faults.counts["lost"] == 2
    assert await log.chain("w-faults") == [audit_record(1)]
    # The writer is listed, so verification reads its chain.
    assert await log.writers() == ["w-faults"]


# Damaged items: the attributes are read where they disagree with the body


async def test_an_audit_attribute_that_disagrees_with_the_body_is_what_is_read(
    aws: AwsClients, tables: TableNames
) -> None:
    log = DynamoAuditLog(aws, tables.audit)
    for sequence in (1, 2, 3):
        await log.append(audit_record(sequence))
    key = {"pk": {"S": "chain#w-faults"}, "sk": {"S": f"{2:020d}"}}
    aws.dynamodb.update_item(
        TableName=tables.audit,
        Key=key,
        UpdateExpression="SET #a = :a",
        ExpressionAttributeNames={"#a": "action"},
        ExpressionAttributeValues={":a": {"S": "guild.hidden"}},
    )
    aws.dynamodb.update_item(
        TableName=tables.audit, Key={**key, "sk": {"S": f"{3:020d}"}}, UpdateExpression="REMOVE ts"
    )

    with pytest.raises(StoreUnavailable, match=r"unreadable \(KeyError\)"):
        await log.chain("w-faults")
    [intact, changed] = await log.chain("w-faults", limit=2)
    # An intact item is the record its body holds, bytes and all.
    assert intact == audit_record(1) and intact._body is not None
    assert changed == attrs.evolve(audit_record(2), action="guild.hidden")
    assert changed._body is None and record_hash(changed) != changed.hash


# Persistent failures


@pytest.mark.parametrize(
    ("status", "code", "meaning"),
    [
        (400, "ThrottlingException", "throttled"),
        (500, "InternalServerError", "server error"),
        (400, "AccessDeniedException", "access denied"),
        (400, "ValidationException", "rejected the request as invalid"),
    ],
)
async def test_a_persistent_dynamodb_failure_is_a_clear_error_and_writes_nothing(
    aws: AwsClients, tables: TableNames, status: int, code: str, meaning: str
) -> None:
    store = DynamoAccessPolicyStore(aws, tables.access)
    faults = dynamodb_faults(aws)
    faults.always = (status, code)

    with pytest.raises(StoreUnavailable) as caught:
        await store.place_ban(
            Ban(guild_id=GUILD, until=T0 + HOUR, reason=CANARY, placed_at=T0), now=T0
        )
    message = str(caught.value)
    assert message.startswith("access policy store: place_ban failed: ")
    assert meaning in message
    assert f"PutItem -> {code}" in message
    assert_clean_message(message)
    assert caught.value.__cause__ is None
    retried = code in {"ThrottlingException", "InternalServerError"}
    assert faults.sent["PutItem"] == (6 if retried else 1)
    if retried:
        assert "after 6 attempts" in message

    faults.always = None
    assert await store.get_ban(GUILD, now=T0) is None
    assert await store.list_bans(now=T0) == []


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        ("KMSInvalidStateException", "KMS key cannot be used"),
        ("DecryptionFailure", "KMS key cannot be used"),
        ("AccessDeniedException", "access denied"),
        ("ThrottlingException", "throttled"),
    ],
)
async def test_a_vault_that_cannot_answer_is_unavailable_not_empty(
    aws: AwsClients, code: str, meaning: str
) -> None:
    vault = SecretsManagerTokenVault(aws, prefix=f"/faults/{aws_servers.unique()}/")
    await vault.put(USER, record_for(USER), expected_version=None)
    faults = secrets_faults(aws)
    faults.always = (400, code)

    with pytest.raises(VaultUnavailable) as caught:
        await vault.get(USER)
    message = str(caught.value)
    assert message.startswith("token vault: get failed: ")
    assert meaning in message
    assert_clean_message(message)


async def test_a_failed_vault_write_leaves_the_record_as_it_was(aws: AwsClients) -> None:
    vault = SecretsManagerTokenVault(aws, prefix=f"/faults/{aws_servers.unique()}/")
    version = await vault.put(USER, record_for(USER), expected_version=None)
    current = await vault.get(USER)
    assert current is not None
    faults = secrets_faults(aws, operations=["UpdateSecretVersionStage"])
    faults.always = (500, "InternalServiceError")

    changed = current.with_link(record_for(USER, "tidal").links["tidal"], now=T0)
    with pytest.raises(VaultUnavailable, match=r"put failed: AWS failed with a server error"):
        await vault.put(USER, changed, expected_version=version)

    faults.always = None
    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == version
    assert list(stored.links) == ["spotify"]


async def test_a_checked_delete_stopped_before_delete_secret_leaves_no_record_behind(
    aws: AwsClients,
) -> None:
    # The tombstone is current, then DeleteSecret fails (the process stops
    # there): the user reads as unlinked, and linking again finishes the delete.
    vault = SecretsManagerTokenVault(aws, prefix=f"/faults/{aws_servers.unique()}/")
    emptied = await vault.put(USER, UserTokens.new(USER, now=T0), expected_version=None)
    faults = secrets_faults(aws, operations=["DeleteSecret"])
    faults.always = (500, "InternalServiceError")
    with pytest.raises(VaultUnavailable, match="delete failed"):
        await vault.delete(USER, expected_version=emptied)
    faults.always = None

    assert await vault.get(USER) is None
    with pytest.raises(VersionConflict):
        await vault.put(USER, record_for(USER), expected_version=emptied)
    with pytest.raises(VaultUnavailable, match="still being deleted") as caught:
        await vault.put(USER, record_for(USER), expected_version=None)
    assert_clean_message(str(caught.value))
    version = await vault.put(USER, record_for(USER), expected_version=None)
    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == version
    assert list(stored.links) == ["spotify"]


@pytest.mark.parametrize("answer", ["moto", "InvalidRequestException"])
async def test_a_secret_scheduled_for_deletion_does_not_block_a_new_link(
    aws: AwsClients, answer: str
) -> None:
    # An operator deleted the secret with a recovery window: the vault reads
    # it as no record, so the user links again. Secrets Manager refuses that
    # name until the window ends (AWS answers InvalidRequestException, moto
    # ResourceExistsException); "try again in a few seconds" must then hold.
    vault = SecretsManagerTokenVault(aws, prefix=f"/faults/{aws_servers.unique()}/")
    await vault.put(USER, record_for(USER), expected_version=None)
    await aws.run(
        aws.secretsmanager.delete_secret,
        SecretId=vault.secret_name(USER),
        RecoveryWindowInDays=7,
    )
    assert await vault.get(USER) is None
    faults = secrets_faults(aws, operations=["CreateSecret"])
    if answer != "moto":
        faults.always = (400, answer)
    with pytest.raises(VaultUnavailable, match="still being deleted") as caught:
        await vault.put(USER, record_for(USER, "discord"), expected_version=None)
    assert_clean_message(str(caught.value))
    faults.always = None
    version = await vault.put(USER, record_for(USER, "discord"), expected_version=None)
    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == version
    assert list(stored.links) == ["discord"]


async def test_a_failed_create_leaves_no_secret(aws: AwsClients) -> None:
    vault = SecretsManagerTokenVault(aws, prefix=f"/faults/{aws_servers.unique()}/")
    faults = secrets_faults(aws, operations=["CreateSecret"])
    faults.always = (400, "ThrottlingException")

    with pytest.raises(VaultUnavailable, match="throttled"):
        await vault.put(USER, record_for(USER), expected_version=None)

    faults.always = None
    assert await vault.get(USER) is None
    assert [u async for u in vault.user_ids()] == []


async def test_a_failed_audit_append_leaves_no_record_and_can_be_retried(
    aws: AwsClients, tables: TableNames
) -> None:
    log = DynamoAuditLog(aws, tables.audit)
    # The event ID's guard goes through; every try of the record itself fails.
    faults = dynamodb_faults(
        aws, kinds=["error500"], operations=["PutItem"], schedule=[False] + [True] * 6
    )

    with pytest.raises(StoreUnavailable, match="audit log: append failed"):
        await log.append(audit_record(1))
    assert faults.counts["error500"] == 6

    assert await log.chain("w-faults") == []
    # The writer sends the same record again (the service spools and
    # re-sends): it lands once, whole.
    await log.append(audit_record(1))
    assert await log.chain("w-faults") == [audit_record(1)]


async def test_an_unreachable_endpoint_is_a_clear_error() -> None:
    # Port 9 (discard) on 127.0.0.1: nothing listens there.
    aws = AwsClients(
        aws_servers.config(
            endpoint_url="http://127.0.0.1:9",
            dynamodb_endpoint_url="http://127.0.0.1:9",
            connect_timeout=0.5,
            max_attempts=2,
        ),
        session=aws_servers.session(),
    )
    try:
        store = DynamoAccessPolicyStore(aws, "timmybot-access")
        with pytest.raises(StoreUnavailable, match=r"could not connect to http://127\.0\.0\.1:9"):
            await store.is_guild_allowed(GUILD)
        vault = SecretsManagerTokenVault(aws)
        with pytest.raises(VaultUnavailable, match="could not connect"):
            await vault.get(USER)
    finally:
        aws.close()


async def test_an_alert_sns_will_not_take_is_a_delivery_error(aws: AwsClients) -> None:
    topic = aws.sns.create_topic(Name=aws_servers.unique("alerts"))["TopicArn"]
    faults = Faults(query_protocol=True)
    faults.attach(aws.sns, "sns")
    faults.always = (500, "InternalError")
    alerter = SnsAlerter(aws, topic_arn=topic)

    with pytest.raises(AlertDeliveryError) as caught:
        await alerter.send(Alert(severity=Severity.P1, title="t", at=T0, details={"x": CANARY}))
    assert "alerter: send failed: AWS failed with a server error" in str(caught.value)
    assert_clean_message(str(caught.value))


async def test_a_missing_table_stops_the_start_with_its_name(aws: AwsClients) -> None:
    from timmybot_adapters.aws.tables import check_tables

    async with aws_servers.fresh_tables(roles=["access"]) as names:
        with pytest.raises(StoreUnavailable) as caught:
            await check_tables(aws, names)
    # The access table exists; the next one checked does not.
    assert str(caught.value).startswith(f"dynamodb: table {names.link_states} does not exist")
    assert "table prefix" in str(caught.value)


# The event loop


async def test_a_slow_aws_call_does_not_stall_the_event_loop(
    aws: AwsClients, tables: TableNames
) -> None:
    store = DynamoAccessPolicyStore(aws, tables.access)

    def slow(**_: Any) -> None:
        time.sleep(0.5)  # a slow network, on the pool's thread

    aws.dynamodb.meta.events.register("before-send.dynamodb", slow)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        assert await store.is_guild_allowed(GUILD) is False
    finally:
        ticker.cancel()
    assert ticks >= 20
