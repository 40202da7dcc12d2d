"""The CloudFormation template on local emulators: moto's server, for tests and ``make aws-local``.

moto's CloudFormation cannot create everything the template declares, so
:func:`deploy` deploys what it can and makes the rest by direct calls, from
the template's own properties:

* ``AWS::SecretsManager::Secret`` and ``::ResourcePolicy``,
  ``AWS::CloudWatch::Alarm`` and ``AWS::SNS::TopicPolicy`` (moto's
  CloudFormation skips them) are created with the services' own APIs;
* an ``AWS::S3::Bucket``'s versioning and Object Lock, which moto's
  CloudFormation ignores, are put on the bucket it created, and
  ``AWS::S3::BucketPolicy`` (unsupported) with ``PutBucketPolicy``, minus
  its conditional statements (moto enforces bucket policies but knows few
  condition keys, and the emulators speak plain HTTP);
* ``AWS::DynamoDB::GlobalTable`` (moto has none) becomes a plain table with
  its own region's replica settings; the other replicas are not modelled;
* ``Fn::If`` is resolved by the caller's ``conditions`` (moto leaves an
  ``AWS::NoValue`` in a list as an empty entry, which IAM refuses), and the
  key's tags are left out (moto reads them in the wrong shape).

What moto ignores (encryption settings, TTL, point-in-time recovery, IAM
enforcement, replica regions) must be checked on the template itself; the
stack test does. This module is for emulators only: never point it at AWS.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

__all__ = [
    "MOTO_SKIPS",
    "EmulatedStack",
    "Resolver",
    "as_plain_table",
    "conditions_for",
    "create_skipped",
    "deploy",
    "for_moto",
    "load_template",
    "mentions",
    "resolve_conditions",
]

Clients = Callable[[str], Any]
"""Returns a boto3 client of the emulator for a service name."""

MOTO_SKIPS: Final = frozenset(
    {
        "AWS::SecretsManager::Secret",
        "AWS::SecretsManager::ResourcePolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::SNS::TopicPolicy",
        "AWS::S3::BucketPolicy",
    }
)
_NO_VALUE: Final = {"Ref": "AWS::NoValue"}


def load_template(path: Path) -> dict[str, Any]:
    """Return the template as plain JSON data (short-form tags become ``Fn::*``).

    Needs cfn-lint (the dev install), whose YAML loader reads the short forms.
    """
    from cfnlint.decode import decode_str  # type: ignore[import-untyped]  # a dev-only tool

    decoded, problems = decode_str(path.read_text())
    if problems:
        raise ValueError(f"the template does not parse: {problems[0]}")
    plain: dict[str, Any] = json.loads(json.dumps(decoded))
    return plain


def resolve_conditions(node: Any, conditions: Mapping[str, bool]) -> Any:
    """Return ``node`` with ``Fn::If`` resolved by ``conditions``, ``AWS::NoValue`` dropped.

    moto's CloudFormation leaves an ``AWS::NoValue`` in a list (a policy
    statement, a replica) as an empty entry, which IAM then refuses.
    """
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return resolve_conditions(yes if conditions[name] else no, conditions)
        resolved = {key: resolve_conditions(value, conditions) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value != _NO_VALUE}
    if isinstance(node, list):
        return [
            item for item in (resolve_conditions(n, conditions) for n in node) if item != _NO_VALUE
        ]
    return node


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


def as_plain_table(resource: dict[str, Any]) -> dict[str, Any]:
    """Return a global table as the plain table moto creates: its region's replica merged in.

    moto's CloudFormation has no ``AWS::DynamoDB::GlobalTable``; the replicas
    (one per region of ``ReplicaRegions``) are checked on the template instead.
    """
    props = copy.deepcopy(resource["Properties"])
    here = props.pop("Replicas")[0]
    props.pop("StreamSpecification", None)
    props["PointInTimeRecoverySpecification"] = here["PointInTimeRecoverySpecification"]
    props["DeletionProtectionEnabled"] = here["DeletionProtectionEnabled"]
    props["Tags"] = here["Tags"]
    props["SSESpecification"] = {
        **props["SSESpecification"],
        "KMSMasterKeyId": here["SSESpecification"]["KMSMasterKeyId"],
    }
    return {**resource, "Type": "AWS::DynamoDB::Table", "Properties": props}


def for_moto(template: dict[str, Any], conditions: Mapping[str, bool]) -> dict[str, Any]:
    """Return the template minus what moto's CloudFormation cannot create."""
    trimmed = copy.deepcopy(template)
    skipped = {name for name, r in trimmed["Resources"].items() if r["Type"] in MOTO_SKIPS}
    for name in skipped:
        del trimmed["Resources"][name]
    for name in [n for n, o in trimmed["Outputs"].items() if mentions(o, skipped)]:
        del trimmed["Outputs"][name]
    trimmed["Resources"]["Key"]["Properties"].pop("Tags", None)
    trimmed["Resources"] = resolve_conditions(trimmed["Resources"], conditions)
    for name, resource in trimmed["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::GlobalTable":
            trimmed["Resources"][name] = as_plain_table(resource)
    return trimmed


@attrs.define
class Resolver:
    """Resolves the intrinsic functions the skipped resources use."""

    values: dict[str, str]
    attributes: dict[str, str]

    def __call__(self, node: Any) -> Any:
        """Return ``node`` with every Ref, GetAtt, Sub, Join, Split and Select replaced."""
        if isinstance(node, dict):
            if "Ref" in node:
                return self.values[node["Ref"]]
            if "Fn::GetAtt" in node:
                return self.attributes[".".join(node["Fn::GetAtt"])]
            if "Fn::Sub" in node:
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._name(m.group(1)), node["Fn::Sub"])
            if "Fn::Join" in node:
                separator, parts = node["Fn::Join"]
                resolved = self(parts)
                flat = [
                    item
                    for part in (resolved if isinstance(resolved, list) else [resolved])
                    for item in (part if isinstance(part, list) else [part])
                ]
                return separator.join(flat)
            if "Fn::Split" in node:
                separator, text = node["Fn::Split"]
                return str(self(text)).split(separator)
            if "Fn::Select" in node:
                index, items = node["Fn::Select"]
                return self(items)[int(index)]
            return {key: self(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self(value) for value in node]
        return node

    def _name(self, name: str) -> str:
        return self.attributes[name] if "." in name else self.values[name]


@attrs.define
class EmulatedStack:
    """A deployed stack: its outputs, template and the values its names resolve to."""

    prefix: str
    template: dict[str, Any]
    outputs: dict[str, str]
    resolve: Resolver


def create_skipped(
    template: dict[str, Any], resolve: Resolver, conditions: Mapping[str, bool], clients: Clients
) -> dict[str, str]:
    """Create the resources moto skips, from their template properties; return their IDs."""
    secrets, cloudwatch, sns = clients("secretsmanager"), clients("cloudwatch"), clients("sns")
    created: dict[str, str] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] not in MOTO_SKIPS:
            continue
        props = resolve(resolve_conditions(resource["Properties"], conditions))
        created[name] = name  # the ID of what has none of its own
        if resource["Type"] == "AWS::SecretsManager::ResourcePolicy":
            secrets.put_resource_policy(
                SecretId=props["SecretId"],
                ResourcePolicy=json.dumps(props["ResourcePolicy"]),
                BlockPublicPolicy=props["BlockPublicPolicy"],
            )
        elif resource["Type"] == "AWS::SecretsManager::Secret":
            value = "placeholder-until-the-operator-puts-one"
            if "GenerateSecretString" in props:
                value = secrets.get_random_password(**props["GenerateSecretString"])[
                    "RandomPassword"
                ]
            replicas = (
                {"AddReplicaRegions": props["ReplicaRegions"]}
                if props.get("ReplicaRegions")
                else {}
            )
            answer = secrets.create_secret(
                Name=props["Name"],
                Description=props["Description"],
                KmsKeyId=props["KmsKeyId"],
                SecretString=value,
                Tags=props["Tags"],
                **replicas,
            )
            created[name] = resolve.values[name] = answer["ARN"]
        elif resource["Type"] == "AWS::S3::BucketPolicy":
            # moto enforces bucket policies but knows few condition keys (it
            # takes s3:object-lock-mode as absent), and the emulators speak
            # plain HTTP (aws:SecureTransport false): conditional statements
            # would refuse every call, so only the unconditional ones apply.
            document = dict(props["PolicyDocument"])
            document["Statement"] = [
                statement for statement in document["Statement"] if "Condition" not in statement
            ]
            clients("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
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
    return created


def _complete_buckets(
    template: dict[str, Any], resolve: Resolver, conditions: Mapping[str, bool], clients: Clients
) -> None:
    """Put what moto's CloudFormation ignores on the buckets it created: versioning, Object Lock."""
    s3 = clients("s3")
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::S3::Bucket":
            continue
        props = resolve(resolve_conditions(resource["Properties"], conditions))
        bucket = resolve.values[name]
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration=props["VersioningConfiguration"]
            )
        lock = props.get("ObjectLockConfiguration")
        if lock is not None:
            rule = lock["Rule"]["DefaultRetention"]
            s3.put_object_lock_configuration(
                Bucket=bucket,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": lock["ObjectLockEnabled"],
                    "Rule": {"DefaultRetention": {"Mode": rule["Mode"], "Days": int(rule["Days"])}},
                },
            )


def deploy(
    template: dict[str, Any],
    *,
    clients: Clients,
    stack: str,
    prefix: str,
    region: str,
    parameters: Mapping[str, str],
    conditions: Mapping[str, bool],
    timeout: float = 30.0,
) -> EmulatedStack:
    """Deploy ``template`` to moto as ``stack``; return its outputs (see the module docstring)."""
    cloudformation = clients("cloudformation")
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(for_moto(template, conditions)),
        Parameters=[
            {"ParameterKey": "Prefix", "ParameterValue": prefix},
            *({"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()),
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + timeout
    while True:
        description = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        if description["StackStatus"] == "CREATE_COMPLETE":
            break
        if "FAILED" in description["StackStatus"] or time.monotonic() > deadline:
            raise RuntimeError(
                f"stack {stack}: {description['StackStatus']} "
                f"({description.get('StackStatusReason', 'no reason given')})"
            )
        time.sleep(0.1)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
        if "LogicalResourceId" in r  # moto lists a bucket policy without one
    }
    account = clients("sts").get_caller_identity()["Account"]
    values: dict[str, Any] = {
        **{name: spec.get("Default", "") for name, spec in template["Parameters"].items()},
        **parameters,
        "Prefix": prefix,
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
        "AWS::StackName": stack,
        "AWS::NoValue": None,
        **physical,
    }
    for name, spec in template["Parameters"].items():
        if spec.get("Type") == "CommaDelimitedList":
            values[name] = [v for v in str(values[name]).split(",") if v]
    attributes = {"Key.Arn": outputs["KeyArn"]}
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::S3::Bucket" and name in physical:
            attributes[f"{name}.Arn"] = f"arn:aws:s3:::{physical[name]}"
    resolve = Resolver(values=values, attributes=attributes)
    _complete_buckets(template, resolve, conditions, clients)
    created = create_skipped(template, resolve, conditions, clients)
    resolve.values.update(created)
    for name, output in template["Outputs"].items():
        if name not in outputs:  # dropped for moto: it names a skipped resource
            outputs[name] = resolve(output["Value"])
    return EmulatedStack(prefix=prefix, template=template, outputs=outputs, resolve=resolve)


def conditions_for(parameters: Mapping[str, str], *, production: bool = True) -> dict[str, bool]:
    """Return the template's conditions under ``parameters`` (names as the template's)."""
    replicas: Sequence[str] = [r for r in parameters.get("ReplicaRegions", "").split(",") if r]
    return {
        "IsProduction": production,
        "HasAlarmEmail": bool(parameters.get("AlarmEmail")),
        "HasAdminPrincipal": bool(parameters.get("AdminPrincipalArn")),
        "HasReplicas": bool(replicas),
        "HasEcsCluster": bool(parameters.get("EcsClusterName")),
        "HasReplica1": len(replicas) >= 1,
        "HasReplica2": len(replicas) >= 2,
        "HasReplica3": len(replicas) >= 3,
    }
