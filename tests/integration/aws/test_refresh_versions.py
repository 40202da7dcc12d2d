"""One refresh is one secret version: counted on moto's Secrets Manager.

The claim lives in a DynamoDB lease (dynalite), so a refresh sends exactly
one ``PutSecretValue`` and leaves exactly one new version
(``ListSecretVersionIds``). The same service without the lease, claiming in
the record as the memory and SQLite vaults do, is measured beside it: two.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from tests import aws_servers
from tests.unit.conftest import USER, wire
from tests.unit.fake_oauth import FakeOAuthClient
from timmybot_adapters.aws import DynamoRefreshLeases, SecretsManagerTokenVault
from timmybot_adapters.aws.clients import AwsClients
from timmybot_core.services.tokens import SecureTokenService


class CallCounter:
    """Counts the Secrets Manager operations a client sends."""

    def __init__(self, clients: AwsClients) -> None:
        self.calls: Counter[str] = Counter()
        clients.secretsmanager.meta.events.register("before-call.secrets-manager", self)

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1


@pytest.fixture
async def clients() -> AsyncIterator[AwsClients]:
    opened = aws_servers.new_clients()
    try:
        yield opened
    finally:
        await opened.aclose()


def versions(clients: AwsClients, name: str) -> int:
    answer = clients.secretsmanager.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)
    return len(answer["Versions"])


@pytest.mark.parametrize("leased", [True, False], ids=["lease", "claim-in-secret"])
async def test_a_refresh_writes_one_secret_version_with_the_lease(
    clients: AwsClients, leased: bool
) -> None:
    w = wire()
    vault = SecretsManagerTokenVault(
        clients,
        prefix=f"/timmybot-test/{aws_servers.unique()}/users/",
        kms_key_id=aws_servers.kms_key_id(),
    )
    oauth = FakeOAuthClient(w.clock)
    async with aws_servers.fresh_tables(roles=["access"]) as tables:
        tokens = SecureTokenService(
            vault=vault,
            oauth=oauth,
            security_log=w.security_log,
            metrics=w.metrics,
            clock=w.clock,
            leases=DynamoRefreshLeases(aws_servers.shared_clients(), tables.access)
            if leased
            else None,
        )
        await tokens.store_user_tokens(USER, oauth.issue())
        name = vault.secret_name(USER)
        before = versions(clients, name)
        counter = CallCounter(clients)
        w.clock.advance(timedelta(minutes=58))
        outcome = await tokens.refresh(USER, "spotify", within=timedelta(minutes=5))
        assert outcome.refreshed
        added = versions(clients, name) - before
        stored = await vault.get(USER)
    assert stored is not None
    assert stored.links["spotify"].tokens.refresh_token == outcome.tokens.refresh_token
    if leased:
        assert counter.calls["PutSecretValue"] == 1
        assert added == 1
    else:
        # The claim and its release are each a version: the cost the lease removes.
        assert counter.calls["PutSecretValue"] == 2
        assert added == 2
