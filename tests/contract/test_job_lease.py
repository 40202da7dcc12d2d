"""The scheduler's part of the AccessPolicyStore contract: leases and job runs.

Runs against every adapter registered in ``test_access_policy_store.ADAPTERS``,
so a new adapter of the port (the AWS one, say) passes these too without
registering twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.contract.test_access_policy_store import ADAPTERS
from timmybot_core.ports.access import AccessPolicyStore

T0 = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
TTL = timedelta(minutes=5)
JOB = "token_rotation"


@pytest.fixture(params=list(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AccessPolicyStore]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


# Leases


async def test_a_free_lease_is_taken(store: AccessPolicyStore) -> None:
    assert await store.acquire_lease(JOB, "a", now=T0, ttl=TTL) is True


async def test_a_valid_lease_keeps_other_holders_out_until_it_expires(
    store: AccessPolicyStore,
) -> None:
    await store.acquire_lease(JOB, "a", now=T0, ttl=TTL)
    assert await store.acquire_lease(JOB, "b", now=T0, ttl=TTL) is False
    assert await store.acquire_lease(JOB, "b", now=T0 + TTL - US, ttl=TTL) is False
    # The expiry instant itself is already past the lease.
    assert await store.acquire_lease(JOB, "b", now=T0 + TTL, ttl=TTL) is True
    assert await store.acquire_lease(JOB, "a", now=T0 + TTL, ttl=TTL) is False


async def test_the_holder_renews_its_lease_and_pushes_the_expiry(store: AccessPolicyStore) -> None:
    await store.acquire_lease(JOB, "a", now=T0, ttl=TTL)
    assert await store.acquire_lease(JOB, "a", now=T0 + TTL / 2, ttl=TTL) is True
    # Valid until T0 + 1.5 TTL now, not T0 + TTL.
    assert await store.acquire_lease(JOB, "b", now=T0 + TTL, ttl=TTL) is False
    assert await store.acquire_lease(JOB, "b", now=T0 + TTL * 1.5, ttl=TTL) is True


async def test_a_holder_may_renew_its_own_expired_lease(store: AccessPolicyStore) -> None:
    await store.acquire_lease(JOB, "a", now=T0, ttl=TTL)
    assert await store.acquire_lease(JOB, "a", now=T0 + TTL * 3, ttl=TTL) is True
    assert await store.acquire_lease(JOB, "b", now=T0 + TTL * 3, ttl=TTL) is False


async def test_a_failed_acquire_changes_nothing(store: AccessPolicyStore) -> None:
    await store.acquire_lease(JOB, "a", now=T0, ttl=TTL)
    # b asks for a much longer lease and is refused: a's expiry stays.
    assert await store.acquire_lease(JOB, "b", now=T0 + US, ttl=TTL * 100) is False
    assert await store.acquire_lease(JOB, "c", now=T0 + TTL, ttl=TTL) is True


async def test_leases_are_independent_by_name(store: AccessPolicyStore) -> None:
    assert await store.acquire_lease("rotation", "a", now=T0, ttl=TTL) is True
    assert await store.acquire_lease("cleanup", "b", now=T0, ttl=TTL) is True
    assert await store.acquire_lease("rotation", "b", now=T0, ttl=TTL) is False
    assert await store.acquire_lease("cleanup", "a", now=T0, ttl=TTL) is False


async def test_release_frees_the_lease_for_others_at_once(store: AccessPolicyStore) -> None:
    await store.acquire_lease(JOB, "a", now=T0, ttl=TTL)
    assert await store.release_lease(JOB, "a") is True
    assert await store.release_lease(JOB, "a") is False
    assert await store.acquire_lease(JOB, "b", now=T0, ttl=TTL) is True


async def test_only_the_holder_can_release(store: AccessPolicyStore) -> None:
    assert await store.release_lease(JOB, "a") is False
    await store.acquire_lease(JOB, "a", now=T0, ttl=TTL)
    assert await store.release_lease(JOB, "b") is False
    assert await store.acquire_lease(JOB, "b", now=T0, ttl=TTL) is False


async def test_an_expired_lease_taken_over_cannot_be_released_by_its_old_holder(
    store: AccessPolicyStore,
) -> None:
    await store.acquire_lease(JOB, "a", now=T0, ttl=TTL)
    await store.acquire_lease(JOB, "b", now=T0 + TTL, ttl=TTL)
    assert await store.release_lease(JOB, "a") is False
    assert await store.acquire_lease(JOB, "a", now=T0 + TTL, ttl=TTL) is False


async def test_racing_holders_get_exactly_one_lease(store: AccessPolicyStore) -> None:
    holders = [f"holder-{i}" for i in range(20)]
    won = await asyncio.gather(
        *(store.acquire_lease(JOB, holder, now=T0, ttl=TTL) for holder in holders)
    )
    assert won.count(True) == 1


async def test_lease_times_in_any_zone_compare_as_instants(store: AccessPolicyStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    await store.acquire_lease(JOB, "a", now=T0.astimezone(plus_two), ttl=TTL)
    assert await store.acquire_lease(JOB, "b", now=T0 + TTL - US, ttl=TTL) is False
    assert await store.acquire_lease(JOB, "b", now=(T0 + TTL).astimezone(plus_two), ttl=TTL)


@pytest.mark.parametrize(
    ("name", "holder", "ttl"),
    [("", "a", TTL), (JOB, "", TTL), (JOB, "a", timedelta(0)), (JOB, "a", -TTL)],
)
async def test_a_lease_needs_a_name_a_holder_and_a_positive_ttl(
    store: AccessPolicyStore, name: str, holder: str, ttl: timedelta
) -> None:
    with pytest.raises(ValueError, match="lease"):
        await store.acquire_lease(name, holder, now=T0, ttl=ttl)


# Job runs


async def test_a_job_never_recorded_has_no_last_run(store: AccessPolicyStore) -> None:
    assert await store.last_job_run(JOB) is None


async def test_record_job_run_only_moves_forward(store: AccessPolicyStore) -> None:
    assert await store.record_job_run(JOB, T0) is True
    assert await store.last_job_run(JOB) == T0
    assert await store.record_job_run(JOB, T0) is False
    assert await store.record_job_run(JOB, T0 - US) is False
    assert await store.last_job_run(JOB) == T0
    assert await store.record_job_run(JOB, T0 + US) is True
    assert await store.last_job_run(JOB) == T0 + US


async def test_job_runs_are_kept_per_job_and_returned_in_utc(store: AccessPolicyStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    await store.record_job_run("rotation", T0.astimezone(plus_two))
    await store.record_job_run("cleanup", T0 + timedelta(hours=1))
    rotation = await store.last_job_run("rotation")
    assert rotation == T0
    assert rotation is not None and rotation.utcoffset() == timedelta(0)
    assert await store.last_job_run("cleanup") == T0 + timedelta(hours=1)


async def test_concurrent_records_keep_the_latest(store: AccessPolicyStore) -> None:
    moments = [T0 + timedelta(minutes=m) for m in (3, 1, 4, 1, 5, 9, 2, 6)]
    await asyncio.gather(*(store.record_job_run(JOB, moment) for moment in moments))
    assert await store.last_job_run(JOB) == max(moments)


async def test_a_job_needs_a_name(store: AccessPolicyStore) -> None:
    with pytest.raises(ValueError, match="job"):
        await store.record_job_run("", T0)
