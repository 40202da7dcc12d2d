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

import copy
import fnmatch
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import watchtower
from cfnlint.api import lint
from cfnlint.decode import decode_str

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
    table_specs,
)
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
MOTO_SKIPS = frozenset(
    {"AWS::SecretsManager::Secret", "AWS::CloudWatch::Alarm", "AWS::SNS::TopicPolicy"}
)
NOW = datetime.now(UTC).replace(microsecond=0)


def load_template() -> dict[str, Any]:
    """The template as plain JSON data (short-form tags become ``Fn::*``)."""
    decoded, problems = decode_str(TEMPLATE.read_text())
    assert not problems, problems
    plain: dict[str, Any] = json.loads(json.dumps(decoded))
    return plain


def mentions(node: Any, names: set[str]) -> bool:
    """Tell whether ``node`` refers (Ref, GetAtt or Sub) to any of ``names``."""
    if isinstance(node, dict):
        if node.get("Ref") in names:
            return True
        if "Fn::GetAtt" in node and node["Fn::GetAtt"][0] in names:
            return True
        return any(mentions(value, names) for value in node.values())
    if isinstance(node, list):
        return any(mentions(value, names) for value in node)
    if isinstance(node, str):
        return any(f"${{{name}" in node for name in names)
    return False


def for_moto(template: dict[str, Any]) -> dict[str, Any]:
    """The template minus what moto's CloudFormation cannot create."""
    trimmed = copy.deepcopy(template)
    skipped = {name for name, r in trimmed["Resources"].items() if r["Type"] in MOTO_SKIPS}
    for name in skipped:
        del trimmed["Resources"][name]
    for name in [n for n, o in trimmed["Outputs"].items() if mentions(o, skipped)]:
        del trimmed["Outputs"][name]
    trimmed["Resources"]["Key"]["Properties"].pop("Tags", None)
    return trimmed


@attrs.define
class Resolver:
    """Resolves the intrinsic functions the skipped resources use."""

    values: dict[str, str]
    attributes: dict[str, str]

    def __call__(self, node: Any) -> Any:
        if isinstance(node, dict):
            if "Ref" in node:
                return self.values[node["Ref"]]
            if "Fn::GetAtt" in node:
                return self.attributes[".".join(node["Fn::GetAtt"])]
            if "Fn::Sub" in node:
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._name(m.group(1)), node["Fn::Sub"])
            return {key: self(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self(value) for value in node]
        return node

    def _name(self, name: str) -> str:
        return self.attributes[name] if "." in name else self.values[name]


@attrs.define
class Deployed:
    prefix: str
    template: dict[str, Any]
    outputs: dict[str, str]
    resolve: Resolver


def create_skipped(template: dict[str, Any], resolve: Resolver) -> dict[str, str]:
    """Create the resources moto skips, from their template properties; return their IDs."""
    secrets = session().client("secretsmanager", endpoint_url=moto_endpoint())
    cloudwatch = session().client("cloudwatch", endpoint_url=moto_endpoint())
    sns = session().client("sns", endpoint_url=moto_endpoint())
    created: dict[str, str] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] not in MOTO_SKIPS:
            continue
        props = resolve(resource["Properties"])
        if resource["Type"] == "AWS::SecretsManager::Secret":
            value = "placeholder-until-the-operator-puts-one"
            if "GenerateSecretString" in props:
                value = secrets.get_random_password(**props["GenerateSecretString"])[
                    "RandomPassword"
                ]
            answer = secrets.create_secret(
                Name=props["Name"],
                Description=props["Description"],
                KmsKeyId=props["KmsKeyId"],
                SecretString=value,
                Tags=props["Tags"],
            )
            created[name] = answer["ARN"]
        elif resource["Type"] == "AWS::CloudWatch::Alarm":
            cloudwatch.put_metric_alarm(**props)
            created[name] = props["AlarmName"]
        else:
            for topic in props["Topics"]:
                sns.set_topic_attributes(
                    TopicArn=topic,
                    AttributeName="Policy",
                    AttributeValue=json.dumps(props["PolicyDocument"]),
                )
            created[name] = name
    return created


@pytest.fixture(scope="module")
def deployed() -> Deployed:
    template = load_template()
    prefix = unique("tb")
    stack = unique("timmybot")
    cloudformation = session().client("cloudformation", endpoint_url=moto_endpoint())
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(for_moto(template)),
        Parameters=[{"ParameterKey": "Prefix", "ParameterValue": prefix}],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + 30
    while True:
        description = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        if description["StackStatus"] == "CREATE_COMPLETE":
            break
        assert "FAILED" not in description["StackStatus"], description.get("StackStatusReason")
        assert time.monotonic() < deadline, description["StackStatus"]
        time.sleep(0.1)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in description["Outputs"]}
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    }
    account = session().client("sts", endpoint_url=moto_endpoint()).get_caller_identity()
    values = {
        **{name: spec.get("Default", "") for name, spec in template["Parameters"].items()},
        "Prefix": prefix,
        "AWS::Region": REGION,
        "AWS::AccountId": account["Account"],
        "AWS::Partition": "aws",
        "AWS::StackName": stack,
        **physical,
    }
    resolve = Resolver(values=values, attributes={"Key.Arn": outputs["KeyArn"]})
    created = create_skipped(template, resolve)
    resolve.values.update(created)
    for name, output in template["Outputs"].items():
        if name not in outputs:  # dropped for moto: it names a skipped resource
            outputs[name] = resolve(output["Value"])
    return Deployed(prefix=prefix, template=template, outputs=outputs, resolve=resolve)


@pytest.fixture
def aws() -> Iterator[AwsClients]:
    clients = AwsClients(
        AwsConfig(region=REGION, endpoint_url=moto_endpoint(), max_attempts=2), session=session()
    )
    yield clients
    clients.close()


def client(service: str) -> Any:
    return session().client(service, endpoint_url=moto_endpoint())


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
        if r["Type"] == "AWS::DynamoDB::Table"
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
            )
            for index in table.get("GlobalSecondaryIndexes", [])
        }
        expected = {
            name: (
                [(partition, "HASH")] + ([(sort, "RANGE")] if sort else []),
                projection,
            )
            for name, partition, sort, projection in spec.indexes
        }
        assert indexes == expected, spec.name
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_every_table_is_encrypted_recoverable_and_expires_items_as_the_adapters_write_them(
    deployed: Deployed,
) -> None:
    # moto ignores these properties, so they are checked where they are declared.
    specs = {
        spec.name: spec
        for spec in table_specs(TableNames.with_prefix(deployed.outputs["TablePrefix"]))
    }
    for resource in deployed.template["Resources"].values():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        spec = specs[deployed.resolve(props["TableName"])]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": {"Ref": "Key"},
        }
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        ttl = props.get("TimeToLiveSpecification")
        assert ttl == ({"AttributeName": TTL_ATTRIBUTE, "Enabled": True} if spec.ttl else None)
        assert resource["DeletionPolicy"] == "Retain"


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
        f"{service}.{REGION}.amazonaws.com" for service in ("secretsmanager", "dynamodb", "sns")
    }
    # The admin role manages the key but never decrypts through Secrets Manager.
    admin = deployed.outputs["AdminRoleArn"]
    for statement in statements.values():
        if statement["Principal"] == {"AWS": admin} and "kms:Decrypt" in statement["Action"]:
            via = statement["Condition"]["StringEquals"]["kms:ViaService"]
            assert via == f"dynamodb.{REGION}.amazonaws.com"
    assert "kms:ScheduleKeyDeletion" in statements["AdminRoleManagesTheKey"]["Action"]
    logs = statements["CloudWatchLogsEncryptsOurLogGroups"]
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"].endswith(
        f":log-group:/{deployed.prefix}/*"
    )


# -- IAM: which role reaches what ----------------------------------------------


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allows(documents: list[dict[str, Any]], action: str, resource: str) -> bool:
    """Identity-policy evaluation without conditions: an Allow matches and no Deny does."""
    allowed = False
    for document in documents:
        for statement in document["Statement"]:
            actions = _listed(statement["Action"])
            resources = _listed(statement["Resource"])
            if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
                fnmatch.fnmatchcase(resource, r) for r in resources
            ):
                if statement["Effect"] == "Deny":
                    return False
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
    assert allows(task, "secretsmanager:GetSecretValue", user_secret)
    assert allows(task, "secretsmanager:CreateSecret", user_secret)
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
    assert not allows(admin, "secretsmanager:GetSecretValue", user_secret)
    assert not allows(admin, "secretsmanager:GetSecretValue", token)
    assert allows(admin, "secretsmanager:DeleteSecret", user_secret)
    assert allows(admin, "secretsmanager:PutSecretValue", token)
    assert allows(admin, "dynamodb:PutItem", f"{table}{prefix}-access")
    assert allows(admin, "dynamodb:Query", f"{table}{prefix}-audit")
    assert not allows(admin, "dynamodb:PutItem", f"{table}{prefix}-audit")
    assert not allows(admin, "dynamodb:DeleteItem", f"{table}{prefix}-audit")

    # Every KMS grant to a role goes through a service, never to raw ciphertext.
    for document in task + execution + admin:
        for statement in document["Statement"]:
            if any(action.startswith("kms:") for action in _listed(statement["Action"])):
                assert "kms:ViaService" in statement["Condition"]["StringEquals"], statement

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

    assert watched_metric(unauthorized) in emitted
    assert watched_metric(unauthorized)[1] == "timmybot.security.unauthorized_access"
    assert watched_metric(failures) in emitted
    assert watched_metric(failures)[1] == "timmybot.security.auth_failures"

    assert (unauthorized["Statistic"], unauthorized["Period"]) == ("Sum", 300)
    assert [m["Period"] for m in failures["Metrics"] if m.get("ReturnData")] == [900]
    for alarm, threshold in ((unauthorized, 10), (failures, 20)):
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
