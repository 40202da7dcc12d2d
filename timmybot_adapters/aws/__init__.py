"""Adapters on AWS: Secrets Manager, DynamoDB and SNS, through boto3.

Every adapter takes an :class:`AwsClients` (boto3 clients built once, a
bounded thread pool for their blocking calls) and a resource name (a table,
a topic, a secret prefix). The tables are described in :mod:`.tables`.
"""

from __future__ import annotations

from timmybot_adapters.aws.access import DynamoAccessPolicyStore
from timmybot_adapters.aws.alerts import SnsAlerter
from timmybot_adapters.aws.audit import DynamoAuditLog
from timmybot_adapters.aws.clients import AwsClients, AwsConfig, aws_errors, describe_error
from timmybot_adapters.aws.erasure import DynamoErasureJournal
from timmybot_adapters.aws.incidents import DynamoIncidentStore
from timmybot_adapters.aws.link_states import DynamoLinkStateStore
from timmybot_adapters.aws.rate_limits import DynamoRateLimitStore
from timmybot_adapters.aws.tables import TableNames, create_tables, delete_tables, table_specs
from timmybot_adapters.aws.user_data import DynamoUserDataStore
from timmybot_adapters.aws.vault import DEFAULT_SECRET_PREFIX, SecretsManagerTokenVault

__all__ = [
    "DEFAULT_SECRET_PREFIX",
    "AwsClients",
    "AwsConfig",
    "DynamoAccessPolicyStore",
    "DynamoAuditLog",
    "DynamoErasureJournal",
    "DynamoIncidentStore",
    "DynamoLinkStateStore",
    "DynamoRateLimitStore",
    "DynamoUserDataStore",
    "SecretsManagerTokenVault",
    "SnsAlerter",
    "TableNames",
    "aws_errors",
    "create_tables",
    "delete_tables",
    "describe_error",
    "table_specs",
]
