"""The CloudFormation template, deployed to moto's server, serves the adapters.

moto's CloudFormation skips ``AWS::SecretsManager::Secret``,
``AWS::CloudWatch::Alarm`` and ``AWS::SNS::TopicPolicy``: the test deploys the
rest with ``create_stack`` and creates those three from the template's own
properties with direct calls. moto also reads KMS key tags in the wrong shape
(``TagKey``), so the key's tags are left out of what it is given. What moto
ignores (table encryption, TTL and point-in-time recovery; log group
encryption; IAM scoping) is checked on the template itself, and the IAM
policies are evaluated by a small evaluator below, since moto enforces none.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import boto3
import pytest
import watchtower
from cfnlint.api import lint

from tests.aws_servers import REGION, moto_endpoint, session, unique
from timmybot_adapters.aws import (
    AwsClients,
    AwsConfig,
    DynamoAccessPolicyStore,
    DynamoAuditLog,
    DynamoIncidentStore,
    DynamoLinkStateStore,
    DynamoUserDataStore,
    SecretsManagerTokenVault,
    SnsAlerter,
    TableNames,
    create_tables,
    table_specs,
)
from timmybot_adapters.aws import emulated_stack as emulated
from timmybot_adapters.aws.emulated_stack import EmulatedStack, conditions_for
from timmybot_adapters.aws.tables import TTL_ATTRIBUTE
from timmybot_adapters.otel import OtelSecurityMetrics
from timmybot_adapters.otel.emf import DEFAULT_NAMESPACE
from timmybot_adapters.otel.exporters import build_meter_provider
from timmybot_bot.runtime.keys import parse_key
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink, UserTokens
from timmybot_core.ports.access import Ban
from timmybot_core.ports.alerts import Alert, Severity
from timmybot_core.ports.audit import GENESIS_HASH, AuditKind, AuditRecord
from timmybot_core.ports.incidents import IncidentRecord
from timmybot_core.ports.link_states import LinkState, TakeOutcome
from timmybot_core.ports.metrics import AuthFailureReason
from timmybot_core.ports.user_data import Preference

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "timmybot.yaml"
REPLICA_REGIONS = ("eu-central-1", "us-east-1")
CLUSTER = "tb-cluster"
PARAMETERS = {"ReplicaRegions": ",".join(REPLICA_REGIONS), "EcsClusterName": CLUSTER}
# The template's conditions under the parameters the test deploys with.
CONDITIONS = conditions_for(PARAMETERS)


def resolve_conditions(node: Any) -> Any:
    """``Fn::If`` resolved by :data:`CONDITIONS`, ``AWS::NoValue`` dropped."""
    return emulated.resolve_conditions(node, CONDITIONS)


NOW = datetime.now(UTC).replace(microsecond=0)


def load_template() -> dict[str, Any]:
    """The template as plain JSON data (short-form tags become ``Fn::*``)."""
    return emulated.load_template(TEMPLATE)


Deployed = EmulatedStack


def client(service: str) -> Any:
    return session().client(service, endpoint_url=moto_endpoint())


@pytest.fixture(scope="module")
def deployed() -> Deployed:
    return emulated.deploy(
        load_template(),
        clients=client,
        stack=unique("timmybot"),
        prefix=unique("tb"),
        region=REGION,
        parameters=PARAMETERS,
        conditions=CONDITIONS,
    )


@pytest.fixture
def aws() -> Iterator[AwsClients]:
    clients = AwsClients(
        AwsConfig(region=REGION, endpoint_url=moto_endpoint(), max_attempts=2), session=session()
    )
    yield clients
    clients.close()


# -- the template ---------------------------------------------------------------


def test_the_template_passes_cfn_lint_without_a_warning() -> None:
    assert [str(match) for match in lint(TEMPLATE.read_text())] == []


def test_the_stack_outputs_everything_the_bot_settings_need(deployed: Deployed) -> None:
    prefix, outputs = deployed.prefix, deployed.outputs
    names = TableNames.with_prefix(outputs["TablePrefix"])
    assert outputs["AccessTableName"] == names.access == f"{prefix}-access"
    assert outputs["LinkStatesTableName"] == names.link_states
    assert outputs["IncidentsTableName"] == names.incidents
    assert outputs["AuditTableName"] == names.audit
    assert outputs["UserDataTableName"] == names.user_data
    assert outputs["UserSecretPrefix"] == f"/{prefix}/users/"
    assert outputs["Region"] == REGION
    assert outputs["KeyArn"].startswith(f"arn:aws:kms:{REGION}:")
    assert outputs["AlertTopicArn"].endswith(f":{prefix}-security-alerts")
    assert outputs["SecurityLogGroupName"] == f"/{prefix}/security"
    assert outputs["AuditLogGroupName"] == f"/{prefix}/audit"
    assert outputs["MetricsNamespace"] == DEFAULT_NAMESPACE
    assert ":secret:" in outputs["DiscordTokenSecretArn"]
    assert f"/{prefix}/bot/discord-token" in outputs["DiscordTokenSecretArn"]
    for role in ("TaskRoleArn", "ExecutionRoleArn", "AdminRoleArn"):
        assert outputs[role].startswith("arn:aws:iam::")


def test_the_generated_bot_keys_are_keys_the_settings_accept(deployed: Deployed) -> None:
    secrets = client("secretsmanager")
    for output, exact in (("PseudonymKeySecretArn", None), ("AuditSigningKeySecretArn", 32)):
        arn = deployed.outputs[output]
        assert secrets.describe_secret(SecretId=arn)["KmsKeyId"] == deployed.resolve.values["Key"]
        value = secrets.get_secret_value(SecretId=arn)["SecretString"]
        assert len(parse_key(output, value, exact=exact)) == 32


def test_the_tables_are_keyed_and_indexed_as_the_adapters_expect(deployed: Deployed) -> None:
    dynamodb = client("dynamodb")
    specs = table_specs(TableNames.with_prefix(deployed.outputs["TablePrefix"]))
    declared = {
        deployed.resolve(r["Properties"]["TableName"])
        for r in deployed.template["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::GlobalTable"
    }
    assert declared == {spec.name for spec in specs}
    for spec in specs:
        table = dynamodb.describe_table(TableName=spec.name)["Table"]
        keys = {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
        assert keys == ({"pk": "HASH", "sk": "RANGE"} if spec.sort_key else {"pk": "HASH"})
        types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        assert set(types.values()) == {"S"}
        indexes = {
            index["IndexName"]: (
                [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]],
                index["Projection"]["ProjectionType"],
                sorted(index["Projection"].get("NonKeyAttributes", [])),
            )
            for index in table.get("GlobalSecondaryIndexes", [])
        }
        expected = {
            name: (
                [(partition, "HASH")] + ([(sort, "RANGE")] if sort else []),
                projection,
                sorted(spec.projected) if projection == "INCLUDE" else [],
            )
            for name, partition, sort, projection in spec.indexes
        }
        assert indexes == expected, spec.name
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_every_table_is_encrypted_recoverable_and_expires_items_as_the_adapters_write_them(
    deployed: Deployed,
) -> None:
    # moto ignores these properties (and has no global tables: the test deploys
    # each as a plain table), so they are checked where they are declared.
    specs = {
        spec.name: spec
        for spec in table_specs(TableNames.with_prefix(deployed.outputs["TablePrefix"]))
    }
    for resource in deployed.template["Resources"].values():
        if resource["Type"] != "AWS::DynamoDB::GlobalTable":
            continue
        props = resource["Properties"]
        spec = specs[deployed.resolve(props["TableName"])]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
        ttl = props.get("TimeToLiveSpecification")
        assert ttl == ({"AttributeName": TTL_ATTRIBUTE, "Enabled": True} if spec.ttl else None)
        assert resource["DeletionPolicy"] == "Retain"
        assert resource["DependsOn"] == "KeyAlias"
        for replica in resolve_conditions(props["Replicas"]):
            assert replica["PointInTimeRecoverySpecification"] == {
                "PointInTimeRecoveryEnabled": True
            }
            assert replica["SSESpecification"] == {"KMSMasterKeyId": {"Fn::Sub": "alias/${Prefix}"}}


def test_with_replica_regions_every_table_secret_and_the_key_spans_them(
    deployed: Deployed,
) -> None:
    # Disaster recovery. moto models none of it (no global tables, secrets
    # created by the test, multi-region keys without replicas): the shape is
    # checked on the template under the deployed parameters.
    resources = deployed.template["Resources"]
    here = [REGION]
    for resource in resources.values():
        if resource["Type"] == "AWS::DynamoDB::GlobalTable":
            replicas = deployed.resolve(resolve_conditions(resource["Properties"]["Replicas"]))
            assert [r["Region"] for r in replicas] == here + list(REPLICA_REGIONS)
            stream = resolve_conditions(resource["Properties"]["StreamSpecification"])
            assert stream == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
        if resource["Type"] == "AWS::SecretsManager::Secret":
            replicas = deployed.resolve(
                resolve_conditions(resource["Properties"]["ReplicaRegions"])
            )
            assert [r["Region"] for r in replicas] == list(REPLICA_REGIONS)
            assert {r["KmsKeyId"] for r in replicas} == {f"alias/{deployed.prefix}"}
    assert resolve_conditions(resources["Key"]["Properties"]["MultiRegion"]) is True
    assert deployed.outputs["ReplicaRegions"] == ",".join(REPLICA_REGIONS)
    # The secrets the test created carry their replicas as moto records them.
    secrets = client("secretsmanager")
    described = secrets.describe_secret(SecretId=deployed.outputs["DiscordTokenSecretArn"])
    assert sorted(r["Region"] for r in described.get("ReplicationStatus", [])) == sorted(
        REPLICA_REGIONS
    )


def test_without_replica_regions_the_template_stays_in_one_region() -> None:
    template = load_template()
    quiet = dict(CONDITIONS, HasReplicas=False, HasReplica1=False, HasReplica2=False)
    saved = dict(CONDITIONS)
    CONDITIONS.update(quiet)
    try:
        resources = resolve_conditions(template["Resources"])
    finally:
        CONDITIONS.update(saved)
    assert resources["Key"]["Properties"]["MultiRegion"] is False
    for resource in resources.values():
        if resource["Type"] == "AWS::DynamoDB::GlobalTable":
            assert [r["Region"] for r in resource["Properties"]["Replicas"]] == [
                {"Ref": "AWS::Region"}
            ]
            assert "StreamSpecification" not in resource["Properties"]
        if resource["Type"] == "AWS::SecretsManager::Secret":
            assert "ReplicaRegions" not in resource["Properties"]


def test_the_key_rotates_and_encrypts_the_topic_and_the_log_groups(deployed: Deployed) -> None:
    kms = client("kms")
    key = deployed.outputs["KeyArn"]
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is True
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases(KeyId=key)["Aliases"]}
    assert f"alias/{deployed.prefix}" in aliases

    topic = client("sns").get_topic_attributes(TopicArn=deployed.outputs["AlertTopicArn"])
    assert topic["Attributes"]["KmsMasterKeyId"] == key

    groups = {
        g["logGroupName"]: g
        for g in client("logs").describe_log_groups(logGroupNamePrefix=f"/{deployed.prefix}/")[
            "logGroups"
        ]
    }
    assert groups[f"/{deployed.prefix}/security"]["retentionInDays"] == 365
    assert groups[f"/{deployed.prefix}/audit"]["retentionInDays"] == 365
    assert groups[f"/{deployed.prefix}/app"]["retentionInDays"] == 30
    for resource in deployed.template["Resources"].values():
        if resource["Type"] == "AWS::Logs::LogGroup":  # moto ignores KmsKeyId
            assert resource["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["Key", "Arn"]}


def key_policy(deployed: Deployed) -> dict[str, Any]:
    policy = client("kms").get_key_policy(KeyId=deployed.outputs["KeyArn"], PolicyName="default")
    document = policy["Policy"]
    return json.loads(document) if isinstance(document, str) else document


def test_the_key_policy_lets_the_account_administer_the_key_and_the_roles_use_it(
    deployed: Deployed,
) -> None:
    statements = {s["Sid"]: s for s in key_policy(deployed)["Statement"]}
    account = deployed.resolve.values["AWS::AccountId"]
    root = statements["AccountAdministersTheKey"]
    assert root["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"}
    assert root["Action"] == "kms:*"

    use = statements["TaskRoleUsesTheKeyThroughItsServices"]
    assert use["Principal"] == {"AWS": deployed.outputs["TaskRoleArn"]}
    assert "kms:Decrypt" in use["Action"]
    assert set(use["Condition"]["StringEquals"]["kms:ViaService"]) == {
        f"{service}.{REGION}.amazonaws.com"
        for service in ("secretsmanager", "dynamodb", "sns", "s3")
    }
    # The admin role manages the key and decrypts only through the services
    # timmybot-admin uses (tables, users' token records for export and erasure,
    # the digest bucket), never raw ciphertext.
    admin = deployed.outputs["AdminRoleArn"]
    for statement in statements.values():
        if statement.get("Principal") == {"AWS": admin} and "kms:Decrypt" in statement["Action"]:
            via = statement["Condition"]["StringEquals"]["kms:ViaService"]
            assert set(via) == {
                f"{service}.{REGION}.amazonaws.com"
                for service in ("dynamodb", "secretsmanager", "s3")
            }
    tls = statements["TlsOnly"]
    assert tls["Effect"] == "Deny"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} or tls["Condition"] == {
        "Bool": {"aws:SecureTransport": False}
    }
    assert "kms:ScheduleKeyDeletion" in statements["AdminRoleManagesTheKey"]["Action"]
    logs = statements["CloudWatchLogsEncryptsOurLogGroups"]
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"].endswith(
        f":log-group:/{deployed.prefix}/*"
    )


# -- IAM: which role reaches what ----------------------------------------------


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


TLS = {"aws:SecureTransport": "true"}


# Condition keys a request carries, which Allow statements are judged on too;
# the others (kms:ViaService, aws:SourceArn, ...) describe a calling service
# and are taken as met by an Allow. aws:RequestedRegion is the region of the
# endpoint called: unless a test says otherwise, the region its ARN names.
REQUEST_KEYS = frozenset(
    {
        "dynamodb:LeadingKeys",
        "secretsmanager:KmsKeyArn",
        "iam:PassedToService",
        "aws:RequestedRegion",
    }
)


def condition_holds(
    condition: dict[str, Any], context: dict[str, str], *, only: frozenset[str] | None = None
) -> bool:
    """Evaluate the condition operators the template uses (``only``: just those keys).

    A key absent from ``context`` satisfies a negated operator
    (``StringNotEquals``, ``StringNotLike``) and nothing else, as in IAM.
    """
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            if only is not None and key not in only:
                continue
            listed = wanted if isinstance(wanted, list) else [wanted]
            values = [str(v).lower() if operator == "Bool" else str(v) for v in listed]
            have = context.get(key)
            if operator == "StringNotEquals":
                if have is not None and have in values:
                    return False
            elif operator == "StringNotLike":
                if have is not None and any(fnmatch.fnmatchcase(have, v) for v in values):
                    return False
            elif operator in {"Bool", "StringEquals"}:
                if have is None or have not in values:
                    return False
            elif operator in {"StringLike", "ForAllValues:StringLike"}:
                if have is None or not any(fnmatch.fnmatchcase(have, v) for v in values):
                    return False
            else:
                raise AssertionError(f"no evaluator for {operator}")
    return True


def allows(
    documents: list[dict[str, Any]],
    action: str,
    resource: str,
    context: dict[str, str] | None = None,
) -> bool:
    """Identity-policy evaluation: an Allow matches and no Deny does.

    A Deny's conditions are evaluated against ``context`` (a TLS request
    unless it says otherwise); an Allow's only on :data:`REQUEST_KEYS` and the
    keys ``context`` names.
    """
    region = resource.split(":")[3] if resource.count(":") >= 5 else ""
    context = {**TLS, **({"aws:RequestedRegion": region} if region else {}), **(context or {})}
    allowed = False
    for document in documents:
        for statement in document["Statement"]:
            actions = _listed(statement["Action"])
            resources = _listed(statement["Resource"])
            if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
                fnmatch.fnmatchcase(resource, r) for r in resources
            ):
                if statement["Effect"] == "Deny":
                    if condition_holds(statement.get("Condition", {}), context):
                        return False
                    continue
                # A key the test names (kms:ViaService, say) is judged as well.
                judged = REQUEST_KEYS | frozenset(context)
                if condition_holds(statement.get("Condition", {}), context, only=judged):
                    allowed = True
    return allowed


def role_policies(role_arn: str) -> list[dict[str, Any]]:
    iam = client("iam")
    name = role_arn.rsplit("/", 1)[1]
    documents = []
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        documents.append(json.loads(document) if isinstance(document, str) else document)
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    return documents


def test_each_role_reaches_its_own_resources_and_nothing_more(deployed: Deployed) -> None:
    out, prefix = deployed.outputs, deployed.prefix
    account = deployed.resolve.values["AWS::AccountId"]
    secret = f"arn:aws:secretsmanager:{REGION}:{account}:secret:"
    user_secret = f"{secret}/{prefix}/users/123456789/oauth-AbCdEf"
    other_stack_secret = f"{secret}/other/users/123456789/oauth-AbCdEf"
    token = out["DiscordTokenSecretArn"]
    table = f"arn:aws:dynamodb:{REGION}:{account}:table/"
    stream = f"arn:aws:logs:{REGION}:{account}:log-group:/{prefix}/security:log-stream:bot-1"
    app_stream = f"arn:aws:logs:{REGION}:{account}:log-group:/{prefix}/app:log-stream:ecs/x"

    task = role_policies(out["TaskRoleArn"])
    key = {"secretsmanager:KmsKeyArn": out["KeyArn"]}
    assert allows(task, "secretsmanager:GetSecretValue", user_secret)
    assert allows(task, "secretsmanager:CreateSecret", user_secret, key)
    # Never under another key, nor the default aws/secretsmanager (no key named).
    assert not allows(task, "secretsmanager:CreateSecret", user_secret)
    other_key = {"secretsmanager:KmsKeyArn": out["KeyArn"].replace("key/", "key/other-")}
    assert not allows(task, "secretsmanager:CreateSecret", user_secret, other_key)
    assert not allows(
        task, "secretsmanager:GetSecretValue", user_secret, {"aws:SecureTransport": "false"}
    )
    bucket = f"arn:aws:s3:::{out['DigestBucketName']}"
    assert allows(task, "s3:PutObject", f"{bucket}/digests/77/1.json")
    assert allows(task, "s3:ListBucketVersions", bucket)
    assert not allows(task, "s3:DeleteObject", f"{bucket}/digests/77/1.json")
    assert not allows(task, "s3:PutBucketObjectLockConfiguration", bucket)
    assert allows(task, "secretsmanager:DeleteSecret", user_secret)
    assert not allows(task, "secretsmanager:GetSecretValue", token)
    assert not allows(task, "secretsmanager:GetSecretValue", other_stack_secret)
    assert allows(task, "dynamodb:UpdateItem", f"{table}{prefix}-access")
    assert allows(task, "dynamodb:Query", f"{table}{prefix}-audit/index/by-actor")
    assert not allows(task, "dynamodb:UpdateItem", f"{table}someone-else")
    assert not allows(task, "dynamodb:DeleteTable", f"{table}{prefix}-audit")
    assert allows(task, "kms:Decrypt", out["KeyArn"])
    assert not allows(task, "kms:ScheduleKeyDeletion", out["KeyArn"])
    assert allows(task, "sns:Publish", out["AlertTopicArn"])
    assert allows(task, "logs:PutLogEvents", stream)
    assert not allows(task, "logs:PutLogEvents", app_stream)

    execution = role_policies(out["ExecutionRoleArn"])
    assert allows(execution, "secretsmanager:GetSecretValue", token)
    assert allows(execution, "secretsmanager:GetSecretValue", out["PseudonymKeySecretArn"])
    assert not allows(execution, "secretsmanager:GetSecretValue", user_secret)
    assert allows(execution, "logs:PutLogEvents", app_stream)
    assert not allows(execution, "dynamodb:GetItem", f"{table}{prefix}-access")

    admin = role_policies(out["AdminRoleArn"])
    # user export and user delete read a user's record (the CLI test below
    # replays every command's calls); the bot's own secrets stay unread.
    assert allows(admin, "secretsmanager:GetSecretValue", user_secret)
    assert not allows(admin, "secretsmanager:GetSecretValue", token)
    assert allows(admin, "secretsmanager:DeleteSecret", user_secret)
    assert allows(admin, "secretsmanager:PutSecretValue", token)
    assert not allows(admin, "secretsmanager:CreateSecret", user_secret, key)
    assert allows(admin, "dynamodb:PutItem", f"{table}{prefix}-access")
    assert allows(admin, "dynamodb:Query", f"{table}{prefix}-audit")
    # Audit records are appended; the only delete is of an event guard.
    assert allows(admin, "dynamodb:PutItem", f"{table}{prefix}-audit")
    guard = {"dynamodb:LeadingKeys": "event#0f3c"}
    record = {"dynamodb:LeadingKeys": "chain#w-1"}
    assert allows(admin, "dynamodb:DeleteItem", f"{table}{prefix}-audit", guard)
    assert not allows(admin, "dynamodb:DeleteItem", f"{table}{prefix}-audit", record)
    assert allows(admin, "dynamodb:BatchWriteItem", f"{table}{prefix}-audit", record)
    assert not allows(admin, "dynamodb:BatchWriteItem", f"{table}{prefix}-audit", guard)
    assert not allows(admin, "s3:DeleteObjectVersion", f"{bucket}/digests/77/1.json")
    # sns:Unsubscribe names a subscription: granted on "*", where IAM matches it.
    assert allows(admin, "sns:Unsubscribe", f"{out['AlertTopicArn']}:0f3c-sub")
    # The operator path on ECS.
    cluster = f"arn:aws:ecs:{REGION}:{account}:cluster/{CLUSTER}"
    assert allows(
        admin, "ecs:ExecuteCommand", f"arn:aws:ecs:{REGION}:{account}:task/{CLUSTER}/ab12"
    )
    assert allows(
        admin, "ecs:RunTask", f"arn:aws:ecs:{REGION}:{account}:task-definition/{prefix}:3"
    )
    assert not allows(admin, "ecs:RunTask", f"arn:aws:ecs:{REGION}:{account}:task-definition/x:3")
    assert allows(admin, "ecs:DescribeTasks", cluster)
    passed = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert allows(admin, "iam:PassRole", out["TaskRoleArn"], passed)
    assert not allows(admin, "iam:PassRole", out["TaskRoleArn"], {"iam:PassedToService": "ec2"})
    assert not allows(admin, "iam:PassRole", out["AdminRoleArn"], passed)

    # Every KMS grant to a role goes through a service, never to raw ciphertext.
    for document in task + execution + admin:
        for statement in document["Statement"]:
            if any(action.startswith("kms:") for action in _listed(statement["Action"])):
                assert "kms:ViaService" in statement["Condition"]["StringEquals"], statement
    # ECS Exec's channels for the task.
    assert allows(task, "ssmmessages:OpenDataChannel", "*")

    iam = client("iam")
    for arn, principal in [
        (out["TaskRoleArn"], {"Service": "ecs-tasks.amazonaws.com"}),
        (out["ExecutionRoleArn"], {"Service": "ecs-tasks.amazonaws.com"}),
        (out["AdminRoleArn"], {"AWS": f"arn:aws:iam::{account}:root"}),
    ]:
        trust = iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        [statement] = trust["Statement"]
        assert statement["Principal"] == principal
    assert statement["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": True}}


# -- alarms and the metric names we export ---------------------------------------


def emitted_metrics() -> set[tuple[str, str, frozenset[str]]]:
    """(namespace, metric name, dimension names) of every metric our EMF lines declare."""
    stream = io.StringIO()
    handle = build_meter_provider("emf", stream=stream, export_interval=timedelta(hours=1))
    metrics = OtelSecurityMetrics(handle.meter_provider)
    metrics.record_unauthorized_access()
    metrics.record_auth_failure(platform="spotify", reason=AuthFailureReason.TIMEOUT)
    metrics.record_rate_limit_failure()
    metrics.observe_suspicious_activity(lambda: 12.0)
    handle.shutdown()
    found = set()
    for line in stream.getvalue().splitlines():
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], metric["Name"], frozenset(dimensions)))
    return found


_INSIGHTS = re.compile(
    r'^SELECT SUM\("(?P<metric>[^"]+)"\) FROM SCHEMA\("(?P<namespace>[^"]+)"(?P<dims>(?:, *\w+)*)\)$'
)


def watched_metric(alarm: dict[str, Any]) -> tuple[str, str, frozenset[str]]:
    """What an alarm watches: a plain metric, or a Metrics Insights SUM over a schema."""
    if "MetricName" in alarm:
        dimensions = frozenset(d["Name"] for d in alarm.get("Dimensions", []))
        return alarm["Namespace"], alarm["MetricName"], dimensions
    [query] = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    match = _INSIGHTS.match(query["Expression"])
    assert match, query["Expression"]
    dimensions = frozenset(d.strip() for d in match["dims"].split(",") if d.strip())
    return match["namespace"], match["metric"], dimensions


def test_the_alarms_watch_the_metrics_our_emf_exporter_emits(deployed: Deployed) -> None:
    emitted = emitted_metrics()
    alarms = {
        a["AlarmName"]: a
        for a in client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{deployed.prefix}-")[
            "MetricAlarms"
        ]
    }
    unauthorized = alarms[f"{deployed.prefix}-UnauthorizedAccess"]
    failures = alarms[f"{deployed.prefix}-AuthFailures"]
    rate_limits = alarms[f"{deployed.prefix}-RateLimitFailures"]

    assert watched_metric(rate_limits) in emitted
    assert watched_metric(rate_limits)[1] == "timmybot.security.rate_limit_failures"
    assert (rate_limits["Statistic"], rate_limits["Period"]) == ("Sum", 300)
    assert watched_metric(unauthorized) in emitted
    assert watched_metric(unauthorized)[1] == "timmybot.security.unauthorized_access"
    assert watched_metric(failures) in emitted
    assert watched_metric(failures)[1] == "timmybot.security.auth_failures"

    assert (unauthorized["Statistic"], unauthorized["Period"]) == ("Sum", 300)
    assert [m["Period"] for m in failures["Metrics"] if m.get("ReturnData")] == [900]
    for alarm, threshold in ((unauthorized, 10), (failures, 20), (rate_limits, 5)):
        assert alarm["Threshold"] == threshold
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["EvaluationPeriods"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [deployed.outputs["AlertTopicArn"]]


def test_auth_failures_has_no_dimensionless_series_so_its_alarm_sums_the_schema() -> None:
    # A plain alarm on the metric name alone would watch a series nobody writes.
    emitted = emitted_metrics()
    names = {(namespace, name) for namespace, name, _ in emitted}
    assert (DEFAULT_NAMESPACE, "timmybot.security.auth_failures") in names
    assert (DEFAULT_NAMESPACE, "timmybot.security.auth_failures", frozenset()) not in emitted


# -- the adapters on the deployed names ------------------------------------------


def sample_tokens(user_id: int) -> UserTokens:
    return UserTokens(
        user_id=user_id,
        links={
            "spotify": PlatformLink(
                tokens=OAuthTokens(
                    platform="spotify",
                    access_token="stack-test-access",
                    refresh_token="stack-test-refresh",
                    expires_at=NOW + timedelta(hours=1),
                ),
                linked_at=NOW,
            )
        },
        created_at=NOW,
        updated_at=NOW,
    )


async def test_the_token_vault_keeps_tokens_under_the_stack_key_and_prefix(
    deployed: Deployed, aws: AwsClients
) -> None:
    vault = SecretsManagerTokenVault(
        aws, prefix=deployed.outputs["UserSecretPrefix"], kms_key_id=deployed.outputs["KeyArn"]
    )
    user = 271_828_182_845_904_523
    version = await vault.put(user, sample_tokens(user), expected_version=None)
    stored = await vault.get(user)
    assert stored == sample_tokens(user)
    assert stored is not None and stored.version == version
    name = f"{deployed.outputs['UserSecretPrefix']}{user}/oauth"
    described = client("secretsmanager").describe_secret(SecretId=name)
    assert described["KmsKeyId"] == deployed.outputs["KeyArn"]
    assert [u async for u in vault.user_ids()] == [user]
    assert await vault.delete(user) is True
    assert await vault.get(user) is None


async def test_the_dynamodb_stores_work_on_the_stack_tables(
    deployed: Deployed, aws: AwsClients
) -> None:
    out = deployed.outputs
    access = DynamoAccessPolicyStore(aws, out["AccessTableName"])
    guild = 424_242_424_242_424_242
    assert await access.allow_guild(guild, at=NOW) is True
    assert await access.list_allowed_guilds() == [guild]
    counts = [
        await access.record_attempt(guild, at=NOW + timedelta(seconds=i), window=timedelta(hours=1))
        for i in range(3)
    ]
    assert counts == [1, 2, 3]
    ban = Ban(guild_id=guild, until=NOW + timedelta(hours=1), reason="stack test", placed_at=NOW)
    assert await access.place_ban(ban, now=NOW) is True
    assert await access.place_ban(ban, now=NOW) is False
    assert await access.get_ban(guild, now=NOW) == ban

    links = DynamoLinkStateStore(aws, out["LinkStatesTableName"])
    state = LinkState(
        state_hash="ab" * 32,
        user_id=7,
        platform="spotify",
        code_verifier="verifier-" + "x" * 40,
        created_at=NOW,
        expires_at=NOW + timedelta(minutes=10),
    )
    await links.add(state)
    assert (await links.take(state.state_hash, now=NOW)).outcome is TakeOutcome.TAKEN
    assert (await links.take(state.state_hash, now=NOW)).outcome is TakeOutcome.USED

    incidents = DynamoIncidentStore(aws, out["IncidentsTableName"])
    record = IncidentRecord(
        incident_id="inc-stack-1",
        severity=Severity.P2,
        title="stack test",
        description="deployed tables answer",
        source="test",
        declared_at=NOW,
        declared_by=None,
    )
    await incidents.save(record)
    assert await incidents.get("inc-stack-1") == record

    preferences = DynamoUserDataStore(aws, out["UserDataTableName"])
    await preferences.set_preference(7, "volume", 80, at=NOW)
    assert await preferences.get_preference(7, "volume") == Preference(
        key="volume", value=80, updated_at=NOW
    )


async def test_the_audit_log_queries_the_stack_table_through_its_indexes(
    deployed: Deployed, aws: AwsClients
) -> None:
    audit = DynamoAuditLog(aws, deployed.outputs["AuditTableName"])
    records = []
    previous = GENESIS_HASH
    for sequence, actor in enumerate(["admin-a", "admin-b", "admin-a"], start=1):
        record = AuditRecord(
            event_id=f"ev-{sequence}",
            writer_id="w-stack",
            sequence=sequence,
            timestamp=NOW + timedelta(seconds=sequence),
            kind=AuditKind.ADMIN,
            action="guild.ban",
            actor=actor,
            subject="guild-x",
            prev_hash=previous,
            hash=f"{sequence:064x}",
        )
        await audit.append(record)
        records.append(record)
        previous = record.hash
    page = await audit.query(start=NOW, end=NOW + timedelta(minutes=1), actor="admin-a")
    assert [r.sequence for r in page.records] == [3, 1]
    assert await audit.chain("w-stack") == records


async def test_alerts_reach_a_subscriber_of_the_stack_topic(
    deployed: Deployed, aws: AwsClients
) -> None:
    sqs = client("sqs")
    queue = sqs.create_queue(QueueName=unique("alerts"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    client("sns").subscribe(
        TopicArn=deployed.outputs["AlertTopicArn"],
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    alerter = SnsAlerter(aws, topic_arn=deployed.outputs["AlertTopicArn"])
    await alerter.send(Alert(severity=Severity.P1, title="Guild banned", at=NOW, details={"n": 3}))
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2)["Messages"]
    [body] = [json.loads(m["Body"]) for m in messages]
    assert body["severity"] == "P1"
    assert "Guild banned" in json.dumps(body)


def test_security_log_lines_reach_the_stack_log_group(
    deployed: Deployed, aws: AwsClients, tmp_path: Path
) -> None:
    group = deployed.outputs["SecurityLogGroupName"]
    handler = watchtower.CloudWatchLogHandler(
        log_group_name=group,
        log_stream_name="test-stream",
        boto3_client=aws.logs,
        create_log_group=False,
    )
    try:
        handler.handle(
            logging.makeLogRecord({"name": "timmybot.security", "msg": '{"event": "ban"}'})
        )
        handler.flush()
    finally:
        handler.close()
    events = client("logs").get_log_events(
        logGroupName=group, logStreamName="test-stream", startFromHead=True
    )["events"]
    assert [e["message"] for e in events] == ['{"event": "ban"}']


# -- timmybot-admin under the admin role ------------------------------------------


@attrs.define
class Recorder:
    """A ``before-parameter-build`` hook keeping every AWS call the CLI makes."""

    calls: list[tuple[str, str, dict[str, Any]]] = attrs.Factory(list)

    def __call__(self, params: dict[str, Any], event_name: str = "", **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls.append((service, operation, copy.deepcopy(params)))


def iam_requests(
    deployed: Deployed,
    service: str,
    operation: str,
    params: dict[str, Any],
    region: str = REGION,
) -> list[tuple[str, str, dict[str, str]]]:
    """What IAM authorizes for one call in ``region``: (action, resource ARN, request context)."""
    account = deployed.resolve.values["AWS::AccountId"]
    if service == "dynamodb" and "RequestItems" in params:
        return [
            (
                f"dynamodb:{operation}",
                f"arn:aws:dynamodb:{region}:{account}:table/{table}",
                {"dynamodb:LeadingKeys": next(iter(key["pk"].values()))},
            )
            for table, requests in params["RequestItems"].items()
            for request in (requests if isinstance(requests, list) else [requests])
            for key in (
                [next(iter(request.values())).get("Item") or next(iter(request.values()))["Key"]]
                if isinstance(requests, list)
                else request["Keys"]
            )
        ]
    if service == "dynamodb":
        tables = [params["TableName"]]
        context: dict[str, str] = {}
        key = params.get("Key") or params.get("Item")
        if key is not None:
            context["dynamodb:LeadingKeys"] = next(iter(key["pk"].values()))
        suffix = f"/index/{params['IndexName']}" if "IndexName" in params else ""
        return [
            (
                f"dynamodb:{operation}",
                f"arn:aws:dynamodb:{region}:{account}:table/{t}{suffix}",
                context,
            )
            for t in tables
        ]
    if service == "secrets-manager":
        if operation == "ListSecrets":
            return [("secretsmanager:ListSecrets", "*", {})]
        name = params.get("SecretId") or params["Name"]
        arn = (
            name
            if name.startswith("arn:")
            else f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf"
        )
        context = {"secretsmanager:KmsKeyArn": params["KmsKeyId"]} if "KmsKeyId" in params else {}
        return [(f"secretsmanager:{operation}", arn, context)]
    if service == "s3":
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if operation == "ListObjectVersions":
            return [("s3:ListBucketVersions", bucket, {})]
        if operation in {"ListObjectsV2", "ListObjects"}:
            return [("s3:ListBucket", bucket, {})]
        obj = f"{bucket}/{params['Key']}"
        if operation == "PutObject":
            extra = (
                [("s3:PutObjectRetention", obj, {})]
                if "ObjectLockRetainUntilDate" in params
                else []
            )
            return [("s3:PutObject", obj, {}), *extra]
        if operation in {"GetObject", "HeadObject"}:
            return [("s3:GetObjectVersion" if "VersionId" in params else "s3:GetObject", obj, {})]
    if service == "sns":
        return [(f"sns:{operation}", params["TopicArn"], {})]
    raise AssertionError(f"no IAM mapping for {service}:{operation}: add one")


# Commands the admin role runs, in an order that gives each something to work on.
# Not here: `rotation run` (the bot's own job, with its OAuth client secrets),
# `vault rekey` (refused on the aws backend: KMS rotates) and `audit rotate-key`
# (on AWS the signing key is the stack's secret: put a new value instead).
ADMIN_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("config", "check"),
    ("guild", "allow", "424242424242424242"),
    ("guild", "list"),
    ("guild", "unban", "424242424242424242"),
    ("guild", "remove", "424242424242424242"),
    ("switch", "list"),
    ("switch", "on", "kill_switch"),
    ("switch", "off", "kill_switch"),
    ("incident", "declare", "P3", "stack", "test", "--description", "an operator drill"),
    ("audit", "query"),
    ("audit", "verify"),
    ("user", "export", "271828182845904523"),
    ("user", "delete", "271828182845904523", "--yes"),
)


def admin_cli_env(deployed: Deployed, tmp_path: Path, region: str) -> dict[str, str]:
    """The settings timmybot-admin runs with in ``region`` (the stack's, or a replica's)."""
    out, secrets = deployed.outputs, client("secretsmanager")
    return {
        "TIMMYBOT_BACKEND": "aws",
        "TIMMYBOT_DATA_DIR": str(tmp_path / "var"),
        "TIMMYBOT_AWS_REGION": region,
        "TIMMYBOT_AWS_ENDPOINT_URL": moto_endpoint(),
        "TIMMYBOT_AWS_TABLE_PREFIX": out["TablePrefix"],
        "TIMMYBOT_AWS_SECRET_PREFIX": out["UserSecretPrefix"],
        "TIMMYBOT_AWS_KMS_KEY_ID": out["KeyArn"],
        "TIMMYBOT_AWS_ALERT_TOPIC_ARN": out["AlertTopicArn"],
        "TIMMYBOT_AWS_DIGEST_BUCKET": out["DigestBucketName"],
        "TIMMYBOT_PSEUDONYM_KEY": secrets.get_secret_value(SecretId=out["PseudonymKeySecretArn"])[
            "SecretString"
        ],
        "TIMMYBOT_AUDIT_SIGNING_KEY": secrets.get_secret_value(
            SecretId=out["AuditSigningKeySecretArn"]
        )["SecretString"],
    }


async def replay_admin_commands(
    deployed: Deployed,
    env: dict[str, str],
    region: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Run every command of :data:`ADMIN_COMMANDS`; check each AWS call against the admin role."""
    from timmybot_bot.cli.main import main

    recorder = Recorder()
    real_session = boto3.Session

    def recording_session(*args: Any, **kwargs: Any) -> boto3.Session:
        made = real_session(
            region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        made.events.register("before-parameter-build", recorder)
        return made

    monkeypatch.setattr(boto3, "Session", recording_session)
    admin = role_policies(deployed.outputs["AdminRoleArn"])
    for command in ADMIN_COMMANDS:
        recorder.calls.clear()
        code = await asyncio.to_thread(main, [*command, "--no-progress"], environ=env)
        printed = capsys.readouterr()
        # Other tests of this module leave records with made-up hashes in the
        # stack's audit table: verify finds them (exit 1), having made its calls.
        found_problems = command == ("audit", "verify") and "problem" in printed.out
        # No OAuth client is configured, so erasure cannot revoke the grant at
        # the platform: a failed step (exit 1) after its AWS calls were made.
        unrevoked = command[:2] == ("user", "delete") and "could not be revoked" in printed.err
        assert code == 0 or found_problems or unrevoked, (command, printed.err)
        refused = [
            (action, resource)
            for service, operation, params in recorder.calls
            for action, resource, context in iam_requests(
                deployed, service, operation, params, region
            )
            if not allows(admin, action, resource, {"aws:RequestedRegion": region, **context})
        ]
        assert refused == [], (command, refused)
        assert recorder.calls or command[0] == "config", command


async def test_the_admin_role_may_make_every_call_of_every_cli_command(
    deployed: Deployed,
    aws: AwsClients,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = deployed.outputs
    user = 271_828_182_845_904_523
    vault = SecretsManagerTokenVault(aws, prefix=out["UserSecretPrefix"], kms_key_id=out["KeyArn"])
    await vault.put(user, sample_tokens(user), expected_version=None)
    env = admin_cli_env(deployed, tmp_path, REGION)
    await replay_admin_commands(deployed, env, REGION, monkeypatch, capsys)


def in_region(service: str, region: str) -> Any:
    return session().client(service, endpoint_url=moto_endpoint(), region_name=region)


async def test_after_a_fail_over_the_admin_role_may_make_every_cli_call_in_the_replica_region(
    deployed: Deployed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # docs/deploy-aws.md#disaster-recovery: the tables' replicas, a promoted
    # user secret under the key's replica, and what the operator creates in
    # the replica region (the topic, a digest bucket of the same naming).
    # moto replicates none of it, so the test makes it there. Its
    # CloudFormation makes the key single-region (MultiRegion ignored) and it
    # cannot replicate that key: the replica's ARN is the one KMS gives (the
    # same key ID in the replica's region), which moto does not check.
    replica = REPLICA_REGIONS[0]
    out, prefix = deployed.outputs, deployed.prefix
    account = deployed.resolve.values["AWS::AccountId"]
    replica_key = out["KeyArn"].replace(f":{REGION}:", f":{replica}:")
    create_tables(in_region("dynamodb", replica), TableNames.with_prefix(out["TablePrefix"]))
    topic = in_region("sns", replica).create_topic(
        Name=f"{prefix}-security-alerts", Attributes={"KmsMasterKeyId": f"alias/{prefix}"}
    )["TopicArn"]
    bucket = f"{prefix}-digests-{account}-{replica}"
    in_region("s3", replica).create_bucket(
        Bucket=bucket,
        ObjectLockEnabledForBucket=True,
        CreateBucketConfiguration={"LocationConstraint": replica},
    )
    there = AwsClients(
        AwsConfig(region=replica, endpoint_url=moto_endpoint(), max_attempts=2), session=session()
    )
    try:
        user = 271_828_182_845_904_523
        vault = SecretsManagerTokenVault(
            there, prefix=out["UserSecretPrefix"], kms_key_id=replica_key
        )
        await vault.put(user, sample_tokens(user), expected_version=None)
    finally:
        there.close()
    env = {
        **admin_cli_env(deployed, tmp_path, replica),
        "TIMMYBOT_AWS_KMS_KEY_ID": replica_key,
        "TIMMYBOT_AWS_ALERT_TOPIC_ARN": topic,
        "TIMMYBOT_AWS_DIGEST_BUCKET": bucket,
    }
    await replay_admin_commands(deployed, env, replica, monkeypatch, capsys)


def test_the_task_and_execution_roles_reach_the_replicas_and_no_other_region(
    deployed: Deployed,
) -> None:
    out, prefix = deployed.outputs, deployed.prefix
    account = deployed.resolve.values["AWS::AccountId"]
    task = role_policies(out["TaskRoleArn"])
    execution = role_policies(out["ExecutionRoleArn"])
    stranger = "ap-south-1"  # a region the stack does not replicate to
    for region in (*REPLICA_REGIONS, stranger):
        ours = region != stranger
        key = out["KeyArn"].replace(f":{REGION}:", f":{region}:")
        user_secret = (
            f"arn:aws:secretsmanager:{region}:{account}:secret:/{prefix}/users/1/oauth-AbCdEf"
        )
        bot_secret = f"arn:aws:secretsmanager:{region}:{account}:secret:/{prefix}/bot/x-AbCdEf"
        table = f"arn:aws:dynamodb:{region}:{account}:table/{prefix}-audit"
        logs = f"arn:aws:logs:{region}:{account}:log-group:/{prefix}"
        # Normal running: Secrets Manager encrypts each replica of a user's
        # secret with the replica key there, under the bot's own permissions
        # (ReplicateSecretToRegions, CreateSecret with AddReplicaRegions).
        via = {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
        for action in ("kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"):
            assert allows(task, action, key, via) is ours, (region, action)
        # Fail-over: the same task definition in the replica region.
        assert allows(task, "secretsmanager:GetSecretValue", user_secret) is ours, region
        assert (
            allows(
                task, "secretsmanager:CreateSecret", user_secret, {"secretsmanager:KmsKeyArn": key}
            )
            is ours
        ), region
        assert not allows(task, "secretsmanager:CreateSecret", user_secret), region
        assert allows(task, "dynamodb:PutItem", table) is ours, region
        assert allows(task, "dynamodb:Query", f"{table}/index/by-day") is ours, region
        topic = f"arn:aws:sns:{region}:{account}:{prefix}-security-alerts"
        assert allows(task, "sns:Publish", topic) is ours, region
        assert allows(task, "logs:PutLogEvents", f"{logs}/audit:log-stream:b") is ours, region
        assert allows(execution, "secretsmanager:GetSecretValue", bot_secret) is ours, region
        assert allows(execution, "kms:Decrypt", key, via) is ours, region
        assert allows(execution, "logs:PutLogEvents", f"{logs}/app:log-stream:e") is ours, region
        assert not allows(execution, "secretsmanager:GetSecretValue", user_secret), region
        bucket = f"arn:aws:s3:::{prefix}-digests-{account}-{region}"
        assert allows(task, "s3:PutObject", f"{bucket}/digests/7/1.json") is ours, region
        assert not allows(task, "s3:DeleteObject", f"{bucket}/digests/7/1.json"), region
    # ECS assumes both roles for a task in a replica region too.
    iam = client("iam")
    for arn in (out["TaskRoleArn"], out["ExecutionRoleArn"]):
        trust = iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        [statement] = trust["Statement"]
        sources = _listed(statement["Condition"]["ArnLike"]["aws:SourceArn"])
        for region in (REGION, *REPLICA_REGIONS):
            task_arn = f"arn:aws:ecs:{region}:{account}:task/{CLUSTER}/ab12"
            assert any(fnmatch.fnmatchcase(task_arn, s) for s in sources), (arn, region)
        stranger_task = f"arn:aws:ecs:{stranger}:{account}:task/{CLUSTER}/ab12"
        assert not any(fnmatch.fnmatchcase(stranger_task, s) for s in sources), arn


def test_the_digest_bucket_locks_every_copy_in_compliance_mode(deployed: Deployed) -> None:
    resources = deployed.template["Resources"]
    props = resources["DigestBucket"]["Properties"]
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {
            "DefaultRetention": {"Mode": "COMPLIANCE", "Days": {"Ref": "DigestRetentionDays"}}
        },
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": ["Key", "Arn"]}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert resources["DigestBucket"]["DeletionPolicy"] == "Retain"
    statements = {
        s["Sid"]: s
        for s in resources["DigestBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    }
    assert statements["TlsOnly"]["Effect"] == "Deny"
    assert statements["TlsOnly"]["Condition"] == {"Bool": {"aws:SecureTransport": False}}
    assert statements["EveryCopyIsLocked"]["Condition"] == {
        "StringNotEquals": {"s3:object-lock-mode": "COMPLIANCE"}
    }
    # moto's CloudFormation ignores Object Lock; the emulated deployment puts
    # these very properties on the bucket, which then refuses deletes.
    s3 = client("s3")
    lock = s3.get_object_lock_configuration(Bucket=deployed.outputs["DigestBucketName"])
    assert lock["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert lock["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Days"] == 400


def test_every_secret_and_the_topic_and_the_key_refuse_plain_http(deployed: Deployed) -> None:
    resources = deployed.template["Resources"]
    tls = {"Bool": {"aws:SecureTransport": False}}
    for name in ("DiscordTokenSecret", "PseudonymKeySecret", "AuditSigningKeySecret"):
        [policy] = [
            r
            for r in resources.values()
            if r["Type"] == "AWS::SecretsManager::ResourcePolicy"
            and r["Properties"]["SecretId"] == {"Ref": name}
        ]
        [statement] = policy["Properties"]["ResourcePolicy"]["Statement"]
        assert (statement["Effect"], statement["Action"], statement["Condition"]) == (
            "Deny",
            "secretsmanager:*",
            tls,
        )
    topic = resources["AlertTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s.get("Condition") == tls for s in topic)
    key = resources["Key"]["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == tls and s["Action"] == "kms:*" for s in key
    )
    # Secrets moto holds carry the resource policy the test put from the template.
    held = client("secretsmanager").get_resource_policy(
        SecretId=deployed.outputs["DiscordTokenSecretArn"]
    )
    assert "aws:SecureTransport" in held["ResourcePolicy"]
