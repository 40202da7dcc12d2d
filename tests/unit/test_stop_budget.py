"""The supervisors are told the stop budget: they wait longer than a graceful stop takes."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from timmybot_bot.runtime.settings import Settings
from timmybot_bot.runtime.shutdown import drain_budget, stop_budget

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_budget_covers_two_provider_calls_and_the_vault_write() -> None:
    settings = Settings(oauth_timeout=timedelta(seconds=10))
    assert drain_budget(settings) == timedelta(seconds=25)
    assert stop_budget(settings) == timedelta(seconds=30)
    assert stop_budget(Settings(oauth_timeout=timedelta(seconds=20))) == timedelta(seconds=50)


def test_systemd_and_ecs_wait_longer_than_a_stop_takes() -> None:
    budget = stop_budget(Settings()).total_seconds()
    operations = (DOCS / "operations.md").read_text()
    (systemd,) = re.findall(r"^TimeoutStopSec=(\d+)$", operations, re.MULTILINE)
    ecs = re.findall(r'"?stopTimeout"?: (\d+)', operations + (DOCS / "deploy-aws.md").read_text())
    assert ecs, "no ECS stopTimeout documented"
    for seconds in [int(systemd), *map(int, ecs)]:
        assert seconds > budget
        assert seconds <= 120  # ECS's maximum


def test_the_callback_time_limit_and_the_stop_wait_follow_the_oauth_timeout() -> None:
    from timmybot_bot.web.server import LINK_TIMEOUT, REQUEST_TIMEOUT, link_budget

    # An exchange, the vault write, and a revocation of what the vault refused.
    slow = Settings(oauth_timeout=timedelta(seconds=20))
    assert link_budget(slow) == timedelta(seconds=45)
    assert link_budget(slow).total_seconds() > REQUEST_TIMEOUT  # so the limit must follow it
    assert link_budget(Settings()).total_seconds() == LINK_TIMEOUT
    # No longer than the drain it runs beside: the stop budget still holds.
    for settings in (Settings(), slow):
        assert link_budget(settings) <= drain_budget(settings)
