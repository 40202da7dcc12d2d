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
