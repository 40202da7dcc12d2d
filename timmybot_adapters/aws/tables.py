"""The DynamoDB tables of the aws adapters: names, keys, indexes, TTL.

This module is the single description of the tables. The adapters read and
write them as described here; the CloudFormation template
(``deploy/cloudformation/timmybot.yaml``) must declare the same keys,
indexes and TTL attribute; tests and local runs create them with
:func:`create_tables`.

Every table has a string partition key ``pk`` and (except the link states) a
string sort key ``sk``. Items that expire carry their expiry in the number
attribute ``ttl`` (epoch seconds), the table's TTL attribute. DynamoDB
deletes expired items *late* (typically within a few days), so every read
also compares the item's own expiry with the caller's ``now``: TTL only
collects garbage, it never decides an answer.

| table (default name) | keys | indexes | TTL |
|---|---|---|---|
| ``timmybot-access`` | ``pk``, ``sk`` | none | ``ttl`` |
| ``timmybot-link-states`` | ``pk`` | ``by-user`` (``user_pk``), keys only | ``ttl`` |
| ``timmybot-incidents`` | ``pk``, ``sk`` | none | none |
| ``timmybot-audit`` | ``pk``, ``sk`` | five, ``INCLUDE`` projections (below) | none |
| ``timmybot-user-data`` | ``pk``, ``sk`` | none | ``ttl`` |

The audit indexes share the sort key ``at`` and differ by partition key:
``by-day`` on ``day_pk``, ``by-kind`` on ``kind_pk``, ``by-actor`` on
``actor_pk``, ``by-action`` on ``action_pk``, ``by-subject`` on
``subject_pk`` (all strings). Each projects the keys and
``AUDIT_INDEX_PROJECTION`` only (what a query reads: the record's bytes, its
hash and the filter attributes), so an index entry is a third of the item.
The layout of the items is described in each adapter's module. The access
table holds the partitions of several stores, told apart by ``pk``: the
access policy (``allow``, ``ban``, ``switch``, ``attempts#<guild>``,
``lease``, ``job``: ``access.py``), the erasure journal (``erasure``:
``erasure.py``), the rate limits (``rate#<key>``, ``sk="window"``, with
``ttl``: ``rate_limits.py``) and the token refresh leases
(``refresh#<user>``, ``sk=<platform>``: ``refresh_leases.py``). The leases
live there, not in a table of their own, because they need exactly what the
access table already has (conditional updates, strongly consistent reads,
TTL, the task role's grants, encryption, point-in-time recovery, replicas),
and a refresh of the vault's secret then costs one secret version, not two.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
from botocore.exceptions import ClientError

from timmybot_adapters.aws.clients import AwsClients, aws_errors, error_code
from timmybot_core.domain.errors import StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "AUDIT_INDEXES",
    "AUDIT_INDEX_PROJECTION",
    "DEFAULT_TABLE_PREFIX",
    "TTL_ATTRIBUTE",
    "TableNames",
    "TableSpec",
    "check_tables",
    "create_tables",
    "delete_tables",
    "table_specs",
]

DEFAULT_TABLE_PREFIX: Final = "timmybot-"
TTL_ATTRIBUTE: Final = "ttl"

AUDIT_INDEXES: Final[dict[str, str]] = {
    "by-day": "day_pk",
    "by-kind": "kind_pk",
    "by-actor": "actor_pk",
    "by-action": "action_pk",
    "by-subject": "subject_pk",
}
"""Audit index name -> its partition key attribute (sort key: ``at``)."""

AUDIT_INDEX_PROJECTION: Final = ("body", "hash", "actor", "action", "kind", "subject")
"""The non-key attributes the audit indexes project (``INCLUDE``)."""


@attrs.frozen(kw_only=True)
class TableNames:
    """The physical names of the tables."""

    access: str
    link_states: str
    incidents: str
    audit: str
    user_data: str

    @classmethod
    def with_prefix(cls, prefix: str = DEFAULT_TABLE_PREFIX) -> TableNames:
        """Name every table ``{prefix}{role}``: ``timmybot-access`` and so on."""
        return cls(**{f.name: prefix + f.name.replace("_", "-") for f in attrs.fields(cls)})

    def all(self) -> tuple[str, ...]:
        """Every table name."""
        return attrs.astuple(self)


@attrs.frozen(kw_only=True)
class TableSpec:
    """How one table is keyed: partition key, optional sort key, indexes, TTL."""

    name: str
    sort_key: bool = True
    indexes: tuple[tuple[str, str, str | None, str], ...] = ()
    """(index name, partition key, sort key or None, projection type)."""
    projected: tuple[str, ...] = ()
    """The non-key attributes of ``INCLUDE`` indexes."""
    ttl: bool = True


def table_specs(names: TableNames) -> tuple[TableSpec, ...]:
    """Return the spec of every table, named by ``names``."""
    return (
        TableSpec(name=names.access),
        TableSpec(
            name=names.link_states,
            sort_key=False,
            indexes=(("by-user", "user_pk", None, "KEYS_ONLY"),),
        ),
        TableSpec(name=names.incidents, ttl=False),
        TableSpec(
            name=names.audit,
            ttl=False,
            indexes=tuple((index, key, "at", "INCLUDE") for index, key in AUDIT_INDEXES.items()),
            projected=AUDIT_INDEX_PROJECTION,
        ),
        TableSpec(name=names.user_data),
    )


def _create_request(spec: TableSpec) -> dict[str, Any]:
    keys: list[dict[str, str]] = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes: dict[str, str] = {"pk": "S"}
    if spec.sort_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes["sk"] = "S"
    indexes: list[dict[str, Any]] = []
    for index, partition, sort, projection in spec.indexes:
        index_keys = [{"AttributeName": partition, "KeyType": "HASH"}]
        attributes[partition] = "S"
        if sort is not None:
            index_keys.append({"AttributeName": sort, "KeyType": "RANGE"})
            attributes[sort] = "S"
        shape: dict[str, Any] = {"ProjectionType": projection}
        if projection == "INCLUDE":
            shape["NonKeyAttributes"] = list(spec.projected)
        indexes.append({"IndexName": index, "KeySchema": index_keys, "Projection": shape})
    request: dict[str, Any] = {
        "TableName": spec.name,
        "KeySchema": keys,
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": kind} for name, kind in attributes.items()
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    return request


def create_tables(
    client: DynamoDBClient,
    names: TableNames,
    *,
    enable_ttl: bool = True,
    only: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create the tables (on-demand) and wait until they are active.

    For tests and local runs; production tables come from the CloudFormation
    template, with encryption and point-in-time recovery. ``enable_ttl=False``
    skips ``UpdateTimeToLive``, which dynalite does not implement. ``only``
    limits creation to the named tables. Blocking: call it off the event loop.
    """
    specs = [spec for spec in table_specs(names) if only is None or spec.name in only]
    for spec in specs:
        client.create_table(**_create_request(spec))
    deadline = time.monotonic() + timeout
    for spec in specs:
        while client.describe_table(TableName=spec.name)["Table"].get("TableStatus") != "ACTIVE":
            if time.monotonic() > deadline:
                raise TimeoutError(f"table {spec.name} did not become active in {timeout} s")
            time.sleep(0.05)
        if enable_ttl and spec.ttl:
            client.update_time_to_live(
                TableName=spec.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )


def delete_tables(client: DynamoDBClient, names: Sequence[str]) -> None:
    """Delete the named tables, ignoring those that do not exist. Blocking."""
    for name in names:
        try:
            client.delete_table(TableName=name)
        except client.exceptions.ResourceNotFoundException:
            continue


async def check_tables(aws: AwsClients, names: TableNames) -> None:
    """Check that every table exists and is active; raise ``StoreUnavailable`` naming it.

    The bot calls this at start-up, so a wrong prefix, a stack not yet
    deployed or a role without ``dynamodb:DescribeTable`` shows at once.
    """
    for name in names.all():
        with aws_errors("dynamodb", f"check table {name}"):
            try:
                answer = await aws.run(aws.dynamodb.describe_table, TableName=name)
            except ClientError as error:
                if error_code(error) != "ResourceNotFoundException":
                    raise
                raise StoreUnavailable(
                    f"dynamodb: table {name} does not exist (check the table prefix setting "
                    "and that the CloudFormation stack is deployed)"
                ) from None
        status = answer["Table"].get("TableStatus")
        if status not in {"ACTIVE", "UPDATING"}:
            raise StoreUnavailable(f"dynamodb: table {name} is {status}, not ACTIVE")
