"""The TokenVault contract: every adapter of the port passes this suite.

A new adapter joins by adding one entry to ``ADAPTERS``: an async context
manager that yields a fresh, empty vault.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from timmybot_adapters.memory import MemoryTokenVault
from timmybot_adapters.sqlite import SqliteDatabase, SqliteTokenVault, VaultKeys
from timmybot_core.domain.errors import VersionConflict
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink, UserTokens
from timmybot_core.ports.vault import TokenVault

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
USER = 123456789012345678
OTHER = 876543210987654321
MAX_SNOWFLAKE = 2**64 - 1
ACCESS = "canary-at-contract-5d1f0c"
REFRESH = "canary-rt-contract-9a7e42"


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[TokenVault]:
    yield MemoryTokenVault()


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[TokenVault]:
    async with SqliteDatabase(tmp_path / "var" / "timmybot.db") as db:
        yield await SqliteTokenVault.open(db, VaultKeys.single("contract1", os.urandom(32)))


@asynccontextmanager
async def _aws(tmp_path: Path) -> AsyncIterator[TokenVault]:
    from tests import aws_servers
    from timmybot_adapters.aws import SecretsManagerTokenVault

    yield SecretsManagerTokenVault(
        aws_servers.shared_clients(),
        prefix=f"/timmybot-test/{aws_servers.unique()}/users/",
        kms_key_id=aws_servers.kms_key_id(),
    )


ADAPTERS: dict[str, Callable[[Path], AbstractAsyncContextManager[TokenVault]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "aws": _aws,
}


@pytest.fixture(params=list(ADAPTERS))
async def vault(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TokenVault]:
    async with ADAPTERS[request.param](tmp_path) as opened:
        yield opened


def tokens(
    platform: str = "spotify",
    *,
    access: str = ACCESS,
    refresh: str | None = REFRESH,
    scopes: tuple[str, ...] = ("user-read-email", "playlist-read-private"),
    expires_at: datetime = T0 + HOUR,
) -> OAuthTokens:
    return OAuthTokens(
        platform=platform,
        access_token=access,
        refresh_token=refresh,
        scopes=scopes,
        expires_at=expires_at,
    )


def record(user_id: int = USER, *platforms: str) -> UserTokens:
    result = UserTokens.new(user_id, now=T0)
    for platform in platforms or ("spotify",):
        result = result.with_link(
            PlatformLink(tokens=tokens(platform), linked_at=T0), now=T0 + timedelta(seconds=1)
        )
    return result


async def all_ids(vault: TokenVault) -> list[int]:
    return [user_id async for user_id in vault.user_ids()]


def test_the_vault_implements_the_port(vault: TokenVault) -> None:
    assert isinstance(vault, TokenVault)


# Reads and compare-and-set writes


async def test_an_unknown_user_has_no_record(vault: TokenVault) -> None:
    assert await vault.get(USER) is None
    assert await all_ids(vault) == []


async def test_put_without_a_version_creates_the_record(vault: TokenVault) -> None:
    version = await vault.put(USER, record(), expected_version=None)
    assert isinstance(version, str)
    stored = await vault.get(USER)
    assert stored == record()
    assert stored is not None
    assert stored.version == version


async def test_every_write_changes_the_version(vault: TokenVault) -> None:
    versions = [await vault.put(USER, record(), expected_version=None)]
    for _ in range(3):
        versions.append(await vault.put(USER, record(), expected_version=versions[-1]))
    assert len(set(versions)) == len(versions)
    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == versions[-1]


async def test_versions_are_per_user(vault: TokenVault) -> None:
    await vault.put(USER, record(USER), expected_version=None)
    # Another user's record does not exist yet, whatever USER's version is.
    await vault.put(OTHER, record(OTHER), expected_version=None)
    with pytest.raises(VersionConflict):
        await vault.put(OTHER, record(OTHER), expected_version=None)


async def test_a_stale_version_conflicts_and_changes_nothing(vault: TokenVault) -> None:
    first = await vault.put(USER, record(USER, "spotify"), expected_version=None)
    second = await vault.put(USER, record(USER, "spotify", "deezer"), expected_version=first)
    with pytest.raises(VersionConflict):
        await vault.put(USER, record(USER, "tidal"), expected_version=first)
    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == second
    assert sorted(stored.links) == ["deezer", "spotify"]


async def test_creating_an_existing_record_conflicts_and_changes_nothing(
    vault: TokenVault,
) -> None:
    version = await vault.put(USER, record(USER, "spotify"), expected_version=None)
    with pytest.raises(VersionConflict):
        await vault.put(USER, record(USER, "tidal"), expected_version=None)
    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == version
    assert list(stored.links) == ["spotify"]


async def test_updating_a_missing_record_conflicts_and_creates_nothing(vault: TokenVault) -> None:
    with pytest.raises(VersionConflict):
        await vault.put(USER, record(), expected_version="1")
    assert await vault.get(USER) is None


async def test_a_record_of_another_user_is_refused(vault: TokenVault) -> None:
    with pytest.raises(ValueError, match="another user"):
        await vault.put(USER, record(OTHER), expected_version=None)
    assert await vault.get(USER) is None
    assert await vault.get(OTHER) is None


# Delete and listing


async def test_delete_tells_whether_there_was_a_record(vault: TokenVault) -> None:
    assert await vault.delete(USER) is False
    await vault.put(USER, record(), expected_version=None)
    assert await vault.delete(USER) is True
    assert await vault.get(USER) is None
    assert await vault.delete(USER) is False


async def test_a_deleted_record_can_be_created_again(vault: TokenVault) -> None:
    await vault.put(USER, record(), expected_version=None)
    await vault.delete(USER)
    version = await vault.put(USER, record(USER, "tidal"), expected_version=None)
    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == version
    assert list(stored.links) == ["tidal"]


async def test_user_ids_lists_every_user_and_follows_deletes(vault: TokenVault) -> None:
    users = [MAX_SNOWFLAKE, 10, 9, 2**63, 1, 0, USER, OTHER, 2**63 - 1]
    for user_id in users:
        await vault.put(user_id, record(user_id), expected_version=None)
    assert sorted(await all_ids(vault)) == sorted(users)
    await vault.delete(10)
    await vault.delete(MAX_SNOWFLAKE)
    assert sorted(await all_ids(vault)) == sorted(set(users) - {10, MAX_SNOWFLAKE})


async def test_user_ids_pages_through_many_users(vault: TokenVault) -> None:
    # More than one page of the SQLite adapter (500 per query).
    users = list(range(1, 1203))
    for user_id in users:
        await vault.put(user_id, UserTokens.new(user_id, now=T0), expected_version=None)
    listed = await all_ids(vault)
    assert sorted(listed) == users
    assert len(listed) == len(set(listed))


# Round trip


async def test_the_json_round_trip_keeps_every_field(vault: TokenVault) -> None:
    paris = timezone(timedelta(hours=1))
    claim_until = datetime(2026, 1, 1, 12, 0, 30, 123456, tzinfo=UTC)
    full = UserTokens(
        user_id=USER,
        links={
            "spotify": PlatformLink(
                tokens=OAuthTokens(
                    platform="spotify",
                    access_token=ACCESS,
                    refresh_token=REFRESH,
                    token_type="Bearer",
                    scopes=("b-scope", "a-scope"),
                    expires_at=datetime(2026, 1, 1, 13, 0, 0, 654321, tzinfo=paris),
                ),
                linked_at=T0,
                refreshed_at=T0 + timedelta(minutes=5, microseconds=7),
                needs_relink=False,
                refresh_claim=("claim-1f2e", claim_until),
            ),
            "deezer": PlatformLink(
                tokens=OAuthTokens(
                    platform="deezer",
                    access_token="canary-at-deezer-77",
                    refresh_token=None,
                    token_type="mac",
                    scopes=(),
                    expires_at=T0,
                ),
                linked_at=T0 - HOUR,
                needs_relink=True,
                relink_reason="the answer was lost; link the account again",
            ),
        },
        created_at=T0 - timedelta(days=3),
        updated_at=T0 + timedelta(microseconds=1),
    )
    await vault.put(USER, full, expected_version=None)
    stored = await vault.get(USER)
    assert stored == full
    assert stored is not None
    spotify = stored.links["spotify"]
    assert spotify.tokens.access_token == ACCESS
    assert spotify.tokens.refresh_token == REFRESH
    assert spotify.tokens.scopes == ("a-scope", "b-scope")
    assert spotify.tokens.expires_at == datetime(2026, 1, 1, 12, 0, 0, 654321, tzinfo=UTC)
    assert spotify.tokens.expires_at.utcoffset() == timedelta(0)
    assert spotify.refresh_claim == ("claim-1f2e", claim_until)
    assert spotify.refreshed_at == T0 + timedelta(minutes=5, microseconds=7)
    deezer = stored.links["deezer"]
    assert deezer.needs_relink is True
    # The "possibly spent" fact is in the record every process reads.
    assert deezer.relink_reason == "the answer was lost; link the account again"
    assert spotify.relink_reason is None
    assert deezer.tokens.refresh_token is None
    assert deezer.tokens.token_type == "mac"
    assert stored.created_at == T0 - timedelta(days=3)
    assert stored.updated_at == T0 + timedelta(microseconds=1)
    for moment in (stored.created_at, stored.updated_at, spotify.linked_at):
        assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


async def test_the_largest_snowflake_is_stored(vault: TokenVault) -> None:
    await vault.put(MAX_SNOWFLAKE, record(MAX_SNOWFLAKE), expected_version=None)
    stored = await vault.get(MAX_SNOWFLAKE)
    assert stored is not None
    assert stored.user_id == MAX_SNOWFLAKE
    assert await vault.get(MAX_SNOWFLAKE - 1) is None
    assert await all_ids(vault) == [MAX_SNOWFLAKE]
    assert await vault.delete(MAX_SNOWFLAKE) is True


async def test_a_record_read_back_never_shows_its_tokens(vault: TokenVault) -> None:
    await vault.put(USER, record(USER, "spotify", "deezer"), expected_version=None)
    stored = await vault.get(USER)
    assert stored is not None
    for text in (repr(stored), str(stored), repr(stored.links), str(stored.links["spotify"])):
        assert ACCESS not in text
        assert REFRESH not in text
        assert "canary-" not in text


# Concurrency


async def test_concurrent_compare_and_set_writers_lose_no_update(vault: TokenVault) -> None:
    await vault.put(USER, UserTokens.new(USER, now=T0), expected_version=None)
    conflicts = 0

    async def add_platform(index: int) -> None:
        nonlocal conflicts
        link = PlatformLink(tokens=tokens(f"p{index}", access=f"canary-at-{index}"), linked_at=T0)
        while True:
            current = await vault.get(USER)
            assert current is not None
            try:
                await vault.put(
                    USER, current.with_link(link, now=T0), expected_version=current.version
                )
            except VersionConflict:
                conflicts += 1
                await asyncio.sleep(0)
                continue
            return

    await asyncio.gather(*(add_platform(i) for i in range(50)))
    stored = await vault.get(USER)
    assert stored is not None
    assert sorted(stored.links) == sorted(f"p{i}" for i in range(50))
    for i in range(50):
        assert stored.links[f"p{i}"].tokens.access_token == f"canary-at-{i}"


async def test_a_version_from_before_a_delete_cannot_overwrite_a_new_record(
    vault: TokenVault,
) -> None:
    first = await vault.put(USER, record(), expected_version=None)
    assert await vault.delete(USER)
    await vault.put(USER, record(), expected_version=None)
    with pytest.raises(VersionConflict):
        await vault.put(USER, record(), expected_version=first)


# Version-checked delete: a link written since the deleter's read survives


async def test_a_delete_at_the_current_version_removes_the_record(vault: TokenVault) -> None:
    version = await vault.put(USER, UserTokens.new(USER, now=T0), expected_version=None)
    assert await vault.delete(USER, expected_version=version) is True
    assert await vault.get(USER) is None
    assert USER not in await all_ids(vault)
    # The user can link again at once (on aws after the deletion settles).
    await vault.put(USER, record(USER, "tidal"), expected_version=None)


async def test_a_delete_at_a_stale_version_conflicts_and_keeps_the_new_link(
    vault: TokenVault,
) -> None:
    # An unlink emptied the record (version ``emptied``); another process
    # linked again from that version before the unlink's delete ran.
    emptied = await vault.put(USER, UserTokens.new(USER, now=T0), expected_version=None)
    relinked = await vault.put(USER, record(USER, "spotify"), expected_version=emptied)
    with pytest.raises(VersionConflict):
        await vault.delete(USER, expected_version=emptied)
    stored = await vault.get(USER)
    assert stored is not None
    assert stored.version == relinked
    assert list(stored.links) == ["spotify"]
    # Its version still works: the refused delete wrote nothing.
    await vault.put(USER, record(USER, "spotify", "deezer"), expected_version=relinked)


async def test_a_version_checked_delete_of_a_missing_record_conflicts(vault: TokenVault) -> None:
    with pytest.raises(VersionConflict):
        await vault.delete(USER, expected_version="1")
    version = await vault.put(USER, record(), expected_version=None)
    assert await vault.delete(USER) is True
    with pytest.raises(VersionConflict):
        await vault.delete(USER, expected_version=version)
    assert await vault.get(USER) is None


async def test_no_write_from_a_version_read_before_a_checked_delete_succeeds(
    vault: TokenVault,
) -> None:
    first = await vault.put(USER, record(), expected_version=None)
    assert await vault.delete(USER, expected_version=first) is True
    with pytest.raises(VersionConflict):
        await vault.put(USER, record(USER, "tidal"), expected_version=first)
    assert await vault.get(USER) is None


async def test_racing_checked_deletes_and_writes_from_one_version_have_one_winner(
    vault: TokenVault,
) -> None:
    base = await vault.put(USER, UserTokens.new(USER, now=T0), expected_version=None)

    async def delete() -> str:
        try:
            await vault.delete(USER, expected_version=base)
        except VersionConflict:
            return "conflict"
        return "deleted"

    async def link() -> str:
        try:
            await vault.put(USER, record(USER, "spotify"), expected_version=base)
        except VersionConflict:
            return "conflict"
        return "linked"

    results = await asyncio.gather(delete(), link(), delete(), link())
    assert sorted(results).count("conflict") == 3
    stored = await vault.get(USER)
    if "linked" in results:
        assert stored is not None
        assert list(stored.links) == ["spotify"]
    else:
        assert stored is None
