"""Suite-wide configuration: hypothesis profiles."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests import log_audit

# CI runs a fixed, derandomized sample so a red build is reproducible; local
# runs explore new examples each time.
settings.register_profile(
    "ci", max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("heavy", max_examples=5000, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True, scope="session")
def _audit_every_log_line() -> None:
    log_audit.install()
