"""Handler-level tests: commands straight to the bus, on memory services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.fake_oauth import FakeOAuthClient
from timmybot_bot.app.commands import Invocation
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_core import AuditKind, AuditRecord, FakeClock

OWNER = 111_111_111_111_111_111
GUILD = 222_222_222_222_222_222
USER = 444_444_444_444_444_444
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
AS_OWNER = Invocation(user_id=OWNER, guild_id=GUILD, source="discord")
AS_USER = Invocation(user_id=USER, guild_id=GUILD, source="discord")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def services(clock: FakeClock) -> AsyncIterator[Services]:
    built = bootstrap(
        Settings(backend="memory", owner_ids={OWNER}, allowed_guilds={GUILD}),
        clock=clock,
        oauth=FakeOAuthClient(clock, platforms=("spotify",)),
    )
    yield built
    await built.aclose()


async def admin_records(services: Services) -> list[AuditRecord]:
    page = await services.audit.get_audit_history(
        START - timedelta(days=1), START + timedelta(days=1), kind=AuditKind.ADMIN, limit=25
    )
    return list(reversed(page.records))
