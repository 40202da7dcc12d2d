"""Runs last: audits every log line the suite wrote (see tests/log_audit.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.log_audit import AUDIT


def _values(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [v for value in node.values() for v in _values(value)]
    if isinstance(node, list):
        return [v for value in node for v in _values(value)]
    return [node]


@pytest.fixture
def security_lines() -> list[str]:
    lines = [message for name, message in AUDIT.lines if name == "timmybot.security"]
    if len(lines) < 100:
        pytest.skip("the audit needs the whole suite's log lines; run it with the suite")
    return lines


PSEUDONYM = re.compile(r"^[A-Za-z0-9_.-]{1,32}:[0-9a-f]{32}$")
IDENTITY_FIELDS = ("guild", "user", "ip", "actor", "declared_by")


def test_identity_fields_are_always_pseudonyms(security_lines: list[str]) -> None:
    seen = 0
    for line in security_lines:
        record = json.loads(line)
        for field in IDENTITY_FIELDS:
            if record.get(field) is not None:
                seen += 1
                assert PSEUDONYM.match(record[field]), (field, line)
    assert seen > 100


def test_no_raw_identifier_reaches_a_security_event(security_lines: list[str]) -> None:
    # Snowflakes and IP addresses the code was handed, long enough that a
    # match cannot be a coincidence with a counter or a timestamp.
    long_ids = sorted(raw for raw in AUDIT.raw_ids if len(raw) >= 6)
    assert len(long_ids) > 10  # the capture saw the identifiers the suite used
    pattern = re.compile(
        r"(?<![0-9A-Za-z])(?:" + "|".join(map(re.escape, long_ids)) + r")(?![0-9A-Za-z])"
    )
    leaks = [
        (line, value)
        for line in security_lines
        for value in _values(json.loads(line))
        if pattern.search(str(value))
    ]
    assert leaks == []


def test_every_security_line_is_one_json_object(security_lines: list[str]) -> None:
    for line in security_lines:
        assert "\n" not in line and "\r" not in line
        assert isinstance(json.loads(line), dict)


def test_no_log_line_of_the_suite_is_broken_by_input(security_lines: list[str]) -> None:
    broken = [
        (name, message) for name, message in AUDIT.lines if "\n" in message or "\r" in message
    ]
    assert broken == []


def test_no_token_of_any_provider_reaches_a_log_line(security_lines: list[str]) -> None:
    # Every token, code and client secret the suite's OAuth providers issue
    # starts with "canary-"; none may reach any log line of the run.
    oauth_lines = [m for name, m in AUDIT.lines if name.startswith("timmybot.oauth")]
    assert oauth_lines, "the suite ran no OAuth traffic; the canary check would be empty"
    leaks = [(name, message) for name, message in AUDIT.lines if "canary-" in message]
    assert leaks == []
