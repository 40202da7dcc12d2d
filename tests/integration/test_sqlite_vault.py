"""SQLite vault specifics: encryption at rest, integrity, rekey, failures, several processes.

The port's behaviour is specified by the contract suites
(``tests/contract/test_token_vault.py``, ``test_link_state_store.py``); this
module covers what only the encrypted SQLite backend promises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.integration import processes
from timmybot_adapters.sqlite import (
    SqliteDatabase,
    SqliteErasureJournal,
    SqliteLinkStateStore,
    SqliteTokenVault,
    VaultKeys,
)
from timmybot_adapters.sqlite.crypto import AeadCipher, associated_data
from timmybot_adapters.sqlite.database import datetime_to_micros
from timmybot_adapters.sqlite.link_states import MIGRATIONS as LINK_STATE_MIGRATIONS
from timmybot_adapters.sqlite.vault import MIGRATIONS as VAULT_MIGRATIONS
from timmybot_core.domain.errors import (
    StoreUnavailable,
    VaultIntegrityError,
    VaultUnavailable,
    VersionConflict,
)
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink, UserTokens
from timmybot_core.ports.erasure import ErasureEntry
from timmybot_core.ports.link_states import LinkState, TakeOutcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
KEY1 = bytes(range(32))
KEY2 = bytes(range(100, 132))
USER = 234567890123456789
OTHER = 345678901234567890
VERIFIER = "canary-verifier-0d9e1c7b5a3f"


def access_canary(user_id: int, platform: str = "spotify") -> str:
    return f"canary-at-{platform}-{user_id}-a41c"


def refresh_canary(user_id: int, platform: str = "spotify") -> str:
    return f"canary-rt-{platform}-{user_id}-77be"


def canaries(user_id: int) -> list[str]:
    return [f(user_id, p) for p in ("spotify", "deezer") for f in (access_canary, refresh_canary)]


def record(user_id: int, *, counter: int | None = None) -> UserTokens:
    result = UserTokens.new(user_id, now=T0)
    for platform in ("spotify", "deezer"):
        tokens = OAuthTokens(
            platform=platform,
            access_token=access_canary(user_id, platform),
            refresh_token=refresh_canary(user_id, platform),
            scopes=("streaming",),
            expires_at=T0 + HOUR,
        )
        result = result.with_link(PlatformLink(tokens=tokens, linked_at=T0), now=T0)
    if counter is not None:
        result = with_counter(result, counter)
    return result


def counter_of(stored: UserTokens) -> int:
    link = stored.links["counter"]
    return int(link.tokens.scopes[0])


def with_counter(stored: UserTokens, value: int) -> UserTokens:
    tokens = OAuthTokens(
        platform="counter",
        access_token="canary-at-counter",
        scopes=(str(value),),
        expires_at=T0 + HOUR,
    )
    return stored.with_link(PlatformLink(tokens=tokens, linked_at=T0), now=T0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "timmybot.db"


@pytest.fixture
def keys1() -> VaultKeys:
    return VaultKeys.single("k1", KEY1)


def raw_rows(path: Path) -> dict[int, tuple[str, bytes, bytes, int]]:
    with closing(sqlite3.connect(path)) as raw:
        rows = raw.execute(
            "SELECT user_id, key_id, nonce, ciphertext, version FROM vault_records"
        ).fetchall()
    return {
        int(user): (key_id, nonce, ciphertext, version)
        for user, key_id, nonce, ciphertext, version in rows
    }


def raw_execute(path: Path, sql: str, parameters: tuple[Any, ...] = ()) -> None:
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(sql, parameters)
        raw.commit()


def file_bytes(path: Path) -> bytes:
    found = b""
    for suffix in ("", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            found += side.read_bytes()
    return found


def exists(path: Path) -> bool:
    return path.exists()


def write_garbage(path: Path) -> None:
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"this is not a database, canary-at-file " * 200)


def assert_says_nothing_secret(text: str, *user_ids: int) -> None:
    assert "canary" not in text
    for user_id in user_ids:
        assert str(user_id) not in text


async def fill(vault: SqliteTokenVault, users: range | list[int]) -> None:
    for user_id in users:
        await vault.put(user_id, record(user_id), expected_version=None)


# Keys


def test_vault_keys_show_key_ids_but_never_key_bytes() -> None:
    keys = VaultKeys.single("k1", KEY1).with_new_current("k2", KEY2)
    for text in (repr(keys), str(keys), repr(AeadCipher(keys, context="c"))):
        assert "k1" in text and "k2" in text
        assert KEY1.hex() not in text and KEY2.hex() not in text
        assert repr(KEY1) not in text and repr(KEY2) not in text
    assert keys.current == "k2"
    assert keys.key_ids == ("k1", "k2")
    assert keys.without("k1").key_ids == ("k2",)


@pytest.mark.parametrize(
    ("current", "keys", "message"),
    [
        ("k1", {"k1": b"short"}, "32 bytes"),
        ("k1", {"k1": bytes(33)}, "32 bytes"),
        ("k2", {"k1": KEY1}, "not among"),
        ("bad id", {"bad id": KEY1}, "key ID"),
        ("", {"": KEY1}, "key ID"),
        ("k\n1", {"k\n1": KEY1}, "key ID"),
        ("k1\n", {"k1\n": KEY1}, "key ID"),
        ("k1", {}, "at least one"),
    ],
)
def test_vault_keys_refuse_bad_material(current: str, keys: dict[str, bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        VaultKeys(current=current, keys=keys)
    assert KEY1.hex() not in str(caught.value)


def test_vault_keys_refuse_reusing_a_key_id_or_dropping_the_current_key() -> None:
    keys = VaultKeys.single("k1", KEY1)
    with pytest.raises(ValueError, match="different key"):
        keys.with_new_current("k1", KEY2)
    assert keys.with_new_current("k1", KEY1).current == "k1"
    with pytest.raises(ValueError, match="cannot be removed"):
        keys.without("k1")
    with pytest.raises(ValueError, match="two different keys"):
        keys.merged_with(VaultKeys.single("k1", KEY2))
    with pytest.raises(TypeError):
        keys.keys["k3"] = KEY2  # type: ignore[index]


def test_associated_data_is_unambiguous() -> None:
    assert associated_data(["ab", "c"]) != associated_data(["a", "bc"])
    assert associated_data(["1", "23"]) != associated_data(["12", "3"])
    assert associated_data(["a"]) != associated_data(["a", ""])


# Encryption at rest


async def test_tokens_are_encrypted_at_rest(db_path: Path, keys1: VaultKeys) -> None:
    users = [USER, OTHER, 2**64 - 1]
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, users)
        for user_id in users:
            # A second version of each record, so the WAL holds several.
            stored = await vault.get(user_id)
            assert stored is not None
            await vault.put(user_id, stored, expected_version=stored.version)
        links = await SqliteLinkStateStore.open(db, keys=keys1)
        await links.add(
            LinkState(
                state_hash="ab" * 32,
                user_id=USER,
                platform="spotify",
                code_verifier=VERIFIER,
                created_at=T0,
                expires_at=T0 + HOUR,
            )
        )
        assert db_path.with_name(db_path.name + "-wal").stat().st_size > 0
        while_open = file_bytes(db_path)
    after_close = file_bytes(db_path)
    for content in (while_open, after_close):
        for user_id in users:
            for canary in canaries(user_id):
                assert canary.encode() not in content
        assert b"canary" not in content
        assert VERIFIER.encode() not in content
        assert b"access_token" not in content
        assert b"refresh_token" not in content
    rows = raw_rows(db_path)
    assert sorted(rows) == sorted(users)
    for key_id, nonce, ciphertext, _version in rows.values():
        assert key_id == "k1"
        assert len(nonce) == 12
        assert b"canary" not in ciphertext


async def test_every_write_uses_a_fresh_nonce(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        seen: set[bytes] = set()
        version = None
        for _ in range(20):
            version = await vault.put(USER, record(USER), expected_version=version)
            _key_id, nonce, _ciphertext, _version = raw_rows(db_path)[USER]
            seen.add(nonce)
        assert len(seen) == 20


# Integrity


@pytest.mark.parametrize("where", ["first", "middle", "tag"])
async def test_a_tampered_ciphertext_is_refused_without_leaking(
    db_path: Path, keys1: VaultKeys, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, [USER, OTHER])
        _key_id, _nonce, ciphertext, _version = raw_rows(db_path)[USER]
        index = {"first": 0, "middle": len(ciphertext) // 2, "tag": len(ciphertext) - 1}[where]
        damaged = bytearray(ciphertext)
        damaged[index] ^= 0x01
        raw_execute(
            db_path,
            "UPDATE vault_records SET ciphertext = ? WHERE user_id = ?",
            (bytes(damaged), f"{USER:020d}"),
        )
        caplog.set_level(logging.ERROR, logger="timmybot.vault")
        with pytest.raises(VaultIntegrityError, match="integrity check") as caught:
            await vault.get(USER)
        assert_says_nothing_secret(str(caught.value), USER)
        assert_says_nothing_secret(repr(caught.value), USER)
        logged = [r for r in caplog.records if r.name == "timmybot.vault"]
        assert logged and all(r.levelno == logging.ERROR for r in logged)
        for entry in logged:
            assert_says_nothing_secret(entry.getMessage(), USER)
        # The other user's record is untouched, and the damage is findable.
        assert await vault.get(OTHER) == record(OTHER)
        assert await vault.find_damaged() == [USER]


async def test_a_tampered_nonce_is_refused(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, [USER])
        for nonce in (bytes(12), b"short", b"x" * 13):
            raw_execute(
                db_path,
                "UPDATE vault_records SET nonce = ? WHERE user_id = ?",
                (nonce, f"{USER:020d}"),
            )
            with pytest.raises(VaultIntegrityError, match="integrity check") as caught:
                await vault.get(USER)
            assert_says_nothing_secret(str(caught.value), USER)


async def test_a_ciphertext_moved_to_another_user_is_refused(
    db_path: Path, keys1: VaultKeys
) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, [USER, OTHER])
        key_id, nonce, ciphertext, _version = raw_rows(db_path)[USER]
        raw_execute(
            db_path,
            "UPDATE vault_records SET key_id = ?, nonce = ?, ciphertext = ? WHERE user_id = ?",
            (key_id, nonce, ciphertext, f"{OTHER:020d}"),
        )
        with pytest.raises(VaultIntegrityError, match="integrity check") as caught:
            await vault.get(OTHER)
        assert_says_nothing_secret(str(caught.value), USER, OTHER)
        assert await vault.get(USER) == record(USER)


async def test_a_ciphertext_relabelled_with_another_key_id_is_refused(db_path: Path) -> None:
    both = VaultKeys.single("k1", KEY1).with_new_current("k2", KEY2)
    async with SqliteDatabase(db_path) as db:
        # Written under k1 by a vault whose current key is k1...
        await fill(await SqliteTokenVault.open(db, VaultKeys.single("k1", KEY1)), [USER])
        raw_execute(db_path, "UPDATE vault_records SET key_id = 'k2'")
        # ...then read as if it were under k2: the key ID is authenticated too.
        with pytest.raises(VaultIntegrityError, match="integrity check"):
            await SqliteTokenVault(db, both).get(USER)


async def test_the_wrong_key_is_refused(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        await fill(await SqliteTokenVault.open(db, keys1), [USER])
        impostor = SqliteTokenVault(db, VaultKeys.single("k1", KEY2))
        with pytest.raises(VaultIntegrityError, match="integrity check") as caught:
            await impostor.get(USER)
        assert_says_nothing_secret(str(caught.value), USER)


async def test_an_unknown_key_id_is_named(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        await fill(await SqliteTokenVault.open(db, keys1), [USER])
        other_keys = SqliteTokenVault(db, VaultKeys.single("k2", KEY2))
        with pytest.raises(VaultIntegrityError, match="key 'k1', which is not configured") as e:
            await other_keys.get(USER)
        assert_says_nothing_secret(str(e.value), USER)
        # A key ID that is not a slug is not echoed into messages and logs.
        raw_execute(db_path, "UPDATE vault_records SET key_id = ?", ("evil\nline canary",))
        with pytest.raises(VaultIntegrityError, match="<invalid key ID>") as e:
            await other_keys.get(USER)
        assert "\n" not in str(e.value)
        assert "canary" not in str(e.value)


async def test_a_malformed_plaintext_is_refused(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, [USER])
        stored = await vault.get(USER)
        assert stored is not None
        # Validly encrypted, but not a record: only the key holder could do
        # this, yet the vault still refuses to hand out garbage.
        sealed = AeadCipher(keys1, context="timmybot/vault/v1").seal(
            (str(USER), "record-version", str(stored.version)), b'{"v": 1, "canary-at-x": true}'
        )
        raw_execute(
            db_path,
            "UPDATE vault_records SET nonce = ?, ciphertext = ?",
            (sealed.nonce, sealed.ciphertext),
        )
        with pytest.raises(VaultIntegrityError, match="malformed") as caught:
            await vault.get(USER)
        assert_says_nothing_secret(str(caught.value), USER)


# Versions


async def test_versions_are_never_reused_after_a_delete(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        first = await vault.put(USER, record(USER), expected_version=None)
        await vault.delete(USER)
        again = await vault.put(USER, record(USER), expected_version=None)
        assert again != first
        # A writer still holding the version from before the delete loses.
        with pytest.raises(VersionConflict):
            await vault.put(USER, record(USER), expected_version=first)


async def test_the_vault_migrates_on_its_first_call(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = SqliteTokenVault(db, keys1)
        links = SqliteLinkStateStore(db, keys=keys1)
        assert not exists(db_path)
        assert await vault.get(USER) is None
        assert await links.take("00" * 32, now=T0) is not None
        assert await db.schema_version("token_vault") == len(VAULT_MIGRATIONS)
        assert await db.schema_version("link_states") == len(LINK_STATE_MIGRATIONS)
        assert "k1" in repr(vault) and KEY1.hex() not in repr(vault)


# Rekey


async def test_rekey_reencrypts_every_record_and_the_old_key_can_go(
    db_path: Path, keys1: VaultKeys
) -> None:
    users = list(range(1, 26))
    new_keys = keys1.with_new_current("k2", KEY2)
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, users)
        before = raw_rows(db_path)
        assert await vault.rekey(new_keys, batch=7) == 25
        after = raw_rows(db_path)
        assert {row[0] for row in after.values()} == {"k2"}
        for user_id in users:
            assert after[user_id][1] != before[user_id][1]  # fresh nonce
            assert after[user_id][3] != before[user_id][3]  # new version
        assert vault.keys is new_keys
        assert await vault.rekey(new_keys) == 0  # idempotent
        only_new = SqliteTokenVault(db, VaultKeys.single("k2", KEY2))
        for user_id in users:
            assert await only_new.get(user_id) == record(user_id)
        old_only = SqliteTokenVault(db, keys1)
        with pytest.raises(VaultIntegrityError, match="'k2'"):
            await old_only.get(users[0])


async def test_rekey_to_keys_without_the_old_key_forgets_it(
    db_path: Path, keys1: VaultKeys
) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, [USER, OTHER])
        assert await vault.rekey(VaultKeys.single("k2", KEY2)) == 2
        assert vault.keys.key_ids == ("k2",)
        assert await vault.get(USER) == record(USER)


async def test_rekey_of_an_empty_vault_just_switches_keys(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        assert await vault.rekey(VaultKeys.single("k2", KEY2)) == 0
        await fill(vault, [USER])
        assert raw_rows(db_path)[USER][0] == "k2"


async def test_rekey_is_resumable_after_an_error(db_path: Path, keys1: VaultKeys) -> None:
    users = list(range(1, 26))
    new_keys = keys1.with_new_current("k2", KEY2)
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, users)

        def interrupt(done: int) -> None:
            if done == 5:
                raise RuntimeError("simulated crash")

        with pytest.raises(RuntimeError, match="simulated crash"):
            await vault.rekey(new_keys, batch=1, progress=interrupt)
        key_ids = [row[0] for row in raw_rows(db_path).values()]
        assert key_ids.count("k2") == 5
        assert key_ids.count("k1") == 20
        # Half-way, every record still reads, and new writes use the new key.
        for user_id in users:
            assert await vault.get(user_id) == record(user_id)
        await fill(vault, [USER])
        assert raw_rows(db_path)[USER][0] == "k2"
        # A fresh process resumes with the same keys.
        resumed = SqliteTokenVault(db, new_keys)
        assert await resumed.rekey(new_keys, batch=3) == 20
        assert {row[0] for row in raw_rows(db_path).values()} == {"k2"}
        assert await resumed.rekey(new_keys) == 0


async def test_rekey_is_resumable_after_a_cancellation(db_path: Path, keys1: VaultKeys) -> None:
    users = list(range(1, 41))
    new_keys = keys1.with_new_current("k2", KEY2)
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, users)
        started = asyncio.Event()

        def note(done: int) -> None:
            if done >= 3:
                started.set()

        task = asyncio.create_task(vault.rekey(new_keys, batch=1, progress=note))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The batch the worker thread was running when the task was cancelled
        # still commits whole (a thread cannot be interrupted): let it end
        # (the database's one worker runs this after it) before counting.
        await db.read(lambda connection: None)
        moved = [row[0] for row in raw_rows(db_path).values()].count("k2")
        assert 3 <= moved < 40
        assert await vault.rekey(new_keys) == 40 - moved
        assert {row[0] for row in raw_rows(db_path).values()} == {"k2"}
        for user_id in users:
            assert await vault.get(user_id) == record(user_id)


async def test_rekey_refuses_unknown_key_ids_before_changing_anything(
    db_path: Path, keys1: VaultKeys
) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, [USER])
        stray = SqliteTokenVault(db, VaultKeys.single("stray", os.urandom(32)))
        await fill(stray, [OTHER])
        before = raw_rows(db_path)
        with pytest.raises(VaultIntegrityError, match="'stray'") as caught:
            await vault.rekey(VaultKeys.single("k2", KEY2))
        assert "nothing was changed" in str(caught.value)
        assert_says_nothing_secret(str(caught.value), USER, OTHER)
        assert raw_rows(db_path) == before
        assert vault.keys is keys1
        with pytest.raises(ValueError, match="two different keys"):
            await vault.rekey(VaultKeys.single("k1", KEY2))
        with pytest.raises(ValueError, match="batch"):
            await vault.rekey(VaultKeys.single("k2", KEY2), batch=0)
        assert raw_rows(db_path) == before


async def test_rekey_skips_a_damaged_record_and_reports_it(db_path: Path, keys1: VaultKeys) -> None:
    users = list(range(1, 11))
    new_keys = keys1.with_new_current("k2", KEY2)
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, users)
        raw_execute(
            db_path,
            "UPDATE vault_records SET ciphertext = zeroblob(80) WHERE user_id = ?",
            (f"{4:020d}",),
        )
        with pytest.raises(VaultIntegrityError, match="1 failed") as caught:
            await vault.rekey(new_keys, batch=3)
        assert_says_nothing_secret(str(caught.value))
        rows = raw_rows(db_path)
        assert rows[4][0] == "k1"
        assert {rows[u][0] for u in users if u != 4} == {"k2"}
        assert await vault.find_damaged() == [4]
        # Deleting the damaged record (the user links again) lets rekey finish.
        await vault.delete(4)
        assert await vault.rekey(new_keys) == 0
        assert vault.keys is new_keys


async def test_compare_and_set_writers_during_a_rekey_lose_no_update(
    db_path: Path, keys1: VaultKeys
) -> None:
    users = list(range(1, 61))
    counted = users[:5]
    new_keys = keys1.with_new_current("k2", KEY2)
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        for user_id in users:
            await vault.put(user_id, record(user_id, counter=0), expected_version=None)
        conflicts = 0

        async def increment(user_id: int) -> None:
            nonlocal conflicts
            while True:
                stored = await vault.get(user_id)
                assert stored is not None
                await asyncio.sleep(0)  # let the rekey slip in between
                try:
                    await vault.put(
                        user_id,
                        with_counter(stored, counter_of(stored) + 1),
                        expected_version=stored.version,
                    )
                except VersionConflict:
                    conflicts += 1
                    continue
                return

        async def writers() -> None:
            for _ in range(10):
                await asyncio.gather(*(increment(u) for u in counted for _ in range(3)))

        rekeyed, _ = await asyncio.gather(vault.rekey(new_keys, batch=1), writers())
        assert rekeyed >= 55
        assert conflicts > 0
        for user_id in counted:
            stored = await vault.get(user_id)
            assert stored is not None
            assert counter_of(stored) == 30
        assert {row[0] for row in raw_rows(db_path).values()} == {"k2"}


# Failures


async def test_a_closed_database_raises_vault_unavailable(db_path: Path, keys1: VaultKeys) -> None:
    db = SqliteDatabase(db_path)
    vault = await SqliteTokenVault.open(db, keys1)
    await db.close()
    with pytest.raises(VaultUnavailable):
        await vault.get(USER)
    with pytest.raises(VaultUnavailable):
        await vault.put(USER, record(USER), expected_version=None)
    with pytest.raises(VaultUnavailable):
        await vault.delete(USER)
    with pytest.raises(VaultUnavailable):
        _ = [u async for u in vault.user_ids()]


@pytest.fixture
def locked(db_path: Path) -> Iterator[None]:
    with closing(sqlite3.connect(db_path, isolation_level=None)) as blocker:
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")


async def test_a_locked_database_raises_vault_unavailable_without_secrets(
    db_path: Path, keys1: VaultKeys, request: pytest.FixtureRequest
) -> None:
    async with SqliteDatabase(db_path, busy_timeout=0.05) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, [USER])
        request.getfixturevalue("locked")
        with pytest.raises(VaultUnavailable) as caught:
            await vault.put(USER, record(USER), expected_version="1")
        assert "SQLITE_BUSY" in str(caught.value) or "Operational" in str(caught.value)
        assert_says_nothing_secret(str(caught.value), USER)
        with pytest.raises(VaultUnavailable):
            await vault.rekey(VaultKeys.single("k2", KEY2))


async def test_a_corrupt_file_raises_vault_unavailable(db_path: Path, keys1: VaultKeys) -> None:
    write_garbage(db_path)
    async with SqliteDatabase(db_path) as db:
        vault = SqliteTokenVault(db, keys1)
        with pytest.raises(VaultUnavailable) as caught:
            await vault.get(USER)
        assert_says_nothing_secret(str(caught.value), USER)


# Link states at rest


def link_state(user_id: int = USER) -> LinkState:
    return LinkState(
        state_hash="cd" * 32,
        user_id=user_id,
        platform="spotify",
        code_verifier=VERIFIER,
        created_at=T0,
        expires_at=T0 + timedelta(minutes=10),
    )


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE link_states SET user_id = '345678901234567890'",
        "UPDATE link_states SET platform = 'deezer'",
        "UPDATE link_states SET expires_at = expires_at + 3600000000",
        "UPDATE link_states SET code_verifier = zeroblob(length(code_verifier))",
        "UPDATE link_states SET key_id = NULL, nonce = NULL",
    ],
)
async def test_an_edited_link_state_is_refused_and_not_consumed(
    db_path: Path, keys1: VaultKeys, edit: str
) -> None:
    async with SqliteDatabase(db_path) as db:
        store = await SqliteLinkStateStore.open(db, keys=keys1)
        await store.add(link_state())
        raw_execute(db_path, edit)
        with pytest.raises(StoreUnavailable) as caught:
            await store.take("cd" * 32, now=T0 + timedelta(minutes=1))
        assert VERIFIER not in str(caught.value)
        assert_says_nothing_secret(str(caught.value), USER, OTHER)
        with closing(sqlite3.connect(db_path)) as raw:
            assert raw.execute("SELECT count(*) FROM link_states").fetchone()[0] == 1


async def test_a_link_state_under_an_unknown_key_names_the_key(
    db_path: Path, keys1: VaultKeys
) -> None:
    async with SqliteDatabase(db_path) as db:
        await (await SqliteLinkStateStore.open(db, keys=keys1)).add(link_state())
        rotated = SqliteLinkStateStore(db, keys=VaultKeys.single("k2", KEY2))
        with pytest.raises(StoreUnavailable, match="'k1', which is not configured"):
            await rotated.take("cd" * 32, now=T0)
        # With the old key kept beside the new one, the pending state completes.
        both = SqliteLinkStateStore(db, keys=keys1.with_new_current("k2", KEY2))
        taken = await both.take("cd" * 32, now=T0)
        assert taken.outcome is TakeOutcome.TAKEN
        assert taken.state is not None
        assert taken.state.code_verifier == VERIFIER


async def test_spent_markers_hold_no_user(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        store = await SqliteLinkStateStore.open(db, keys=keys1)
        await store.add(link_state())
        assert (await store.take("cd" * 32, now=T0)).outcome is TakeOutcome.TAKEN
    with closing(sqlite3.connect(db_path)) as raw:
        assert raw.execute("SELECT * FROM link_states_spent").fetchall() == [
            ("cd" * 32, datetime_to_micros(T0 + timedelta(minutes=10)))
        ]
        assert raw.execute("SELECT count(*) FROM link_states").fetchone()[0] == 0


# Several processes

WORKER = r"""
import asyncio, json, os, sys, time
from datetime import UTC, datetime
from pathlib import Path

from timmybot_adapters.sqlite import SqliteDatabase, SqliteTokenVault, VaultKeys
from timmybot_core.domain.errors import VersionConflict
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink


async def main(db_path, barrier, index, increments, user):
    keys = VaultKeys.single("race1", bytes.fromhex(os.environ["TIMMYBOT_TEST_VAULT_KEY"]))
    async with SqliteDatabase(Path(db_path), busy_timeout=30) as db:
        vault = await SqliteTokenVault.open(db, keys)
        assert await vault.get(user) is not None
        (barrier / f"ready-{index}").touch()
        while not (barrier / "go").exists():
            await asyncio.sleep(0.001)
        conflicts = 0
        for _ in range(increments):
            while True:
                stored = await vault.get(user)
                link = stored.links["counter"]
                value = int(link.tokens.scopes[0])
                tokens = OAuthTokens(
                    platform="counter",
                    access_token=link.tokens.access_token,
                    scopes=(str(value + 1),),
                    expires_at=link.tokens.expires_at,
                )
                updated = stored.with_link(
                    PlatformLink(tokens=tokens, linked_at=link.linked_at),
                    now=datetime.now(UTC),
                )
                try:
                    await vault.put(user, updated, expected_version=stored.version)
                except VersionConflict:
                    conflicts += 1
                    continue
                break
    print(json.dumps({"conflicts": conflicts}))


barrier, index, db_path, increments, user = sys.argv[1:]
asyncio.run(main(db_path, Path(barrier), int(index), int(increments), int(user)))
"""

PROCESSES = 4
INCREMENTS = 50


def run_together(db_path: Path, barrier: Path, key: bytes) -> list[dict[str, int]]:
    """Start the workers, release them at once, and return each one's report."""
    outputs = processes.run_together(
        WORKER,
        barrier,
        [str(db_path), str(INCREMENTS), str(USER)],
        processes=PROCESSES,
        env={**os.environ, "TIMMYBOT_TEST_VAULT_KEY": key.hex()},
        start_timeout=60,
        run_timeout=120,
    )
    reports = []
    for out, err in outputs:
        assert "canary" not in out and "canary" not in err
        reports.append(json.loads(out))
    return reports


async def test_processes_incrementing_one_record_lose_no_update(
    db_path: Path, tmp_path: Path
) -> None:
    key = os.urandom(32)
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, VaultKeys.single("race1", key))
        await vault.put(USER, record(USER, counter=0), expected_version=None)
        # The workers block this thread while they run; the event loop has
        # nothing else to do meanwhile.
        reports = run_together(db_path, tmp_path / "barrier", key)
        stored = await vault.get(USER)
        assert stored is not None
        assert counter_of(stored) == PROCESSES * INCREMENTS
        # The other links survived every read-modify-write.
        assert stored.links["spotify"] == record(USER).links["spotify"]
        # The processes really raced: some writes lost a compare-and-set.
        assert sum(report["conflicts"] for report in reports) > 0


def test_the_record_helpers_agree() -> None:
    # Guards the helpers the tests above rely on.
    stored = record(USER, counter=3)
    assert counter_of(with_counter(stored, 4)) == 4
    assert attrs.evolve(stored, version="x") == stored


# The record version in the associated data


async def test_an_older_ciphertext_put_back_is_refused(db_path: Path, keys1: VaultKeys) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, [USER])
        _, old_nonce, old_ciphertext, _ = raw_rows(db_path)[USER]
        first = await vault.get(USER)
        assert first is not None
        # The refresh token rotates: the old ciphertext holds a spent one.
        await vault.put(USER, record(USER, counter=2), expected_version=first.version)
        raw_execute(
            db_path,
            "UPDATE vault_records SET nonce = ?, ciphertext = ?",
            (old_nonce, old_ciphertext),
        )
        with pytest.raises(VaultIntegrityError, match="integrity check"):
            await vault.get(USER)


async def test_a_row_relabelled_with_another_version_is_refused(
    db_path: Path, keys1: VaultKeys
) -> None:
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        await fill(vault, [USER])
        raw_execute(db_path, "UPDATE vault_records SET version = version + 7")
        with pytest.raises(VaultIntegrityError):
            await vault.get(USER)


async def test_records_of_the_previous_format_are_migrated_then_the_format_is_refused(
    db_path: Path, keys1: VaultKeys
) -> None:
    async with SqliteDatabase(db_path) as db:
        # Build the old schema through the database's own migration, step 1 only.
        await db.migrate("token_vault", VAULT_MIGRATIONS[:1])
    cipher = AeadCipher(keys1, context="timmybot/vault/v1")
    old = {}
    for version, user_id in enumerate([USER, USER + 1], start=1):
        sealed = cipher.seal((str(user_id),), record(user_id).to_json().encode())
        old[user_id] = sealed
        raw_execute(
            db_path,
            "INSERT INTO vault_records (user_id, key_id, nonce, ciphertext, version, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 0)",
            (f"{user_id:020d}", sealed.key_id, sealed.nonce, sealed.ciphertext, version),
        )
    async with SqliteDatabase(db_path) as db:
        vault = await SqliteTokenVault.open(db, keys1)
        for user_id in (USER, USER + 1):
            stored = await vault.get(user_id)
            assert stored is not None and stored.user_id == user_id
            assert stored.version == str(user_id - USER + 1)  # versions kept
    with closing(sqlite3.connect(db_path)) as raw:
        assert {row[0] for row in raw.execute("SELECT aad FROM vault_records")} == {2}
    # Putting a format-1 row back (the old ciphertext, flagged as old) is refused now.
    sealed = old[USER]
    raw_execute(
        db_path,
        "UPDATE vault_records SET nonce = ?, ciphertext = ?, aad = 1 WHERE user_id = ?",
        (sealed.nonce, sealed.ciphertext, f"{USER:020d}"),
    )
    async with SqliteDatabase(db_path) as db:
        vault = SqliteTokenVault(db, keys1)
        with pytest.raises(VaultIntegrityError, match="refused since the upgrade"):
            await vault.get(USER)
        assert await vault.get(USER + 1) is not None


# -- durability: vault writes outlive a power cut ----------------------------------


async def test_a_durable_write_waits_for_the_disk_and_others_do_not(db_path: Path) -> None:
    # SQLite's synchronous level: 1 = NORMAL (WAL: a crash loses nothing, a
    # power cut may lose the last commits), 2 = FULL (a power cut neither).
    db = SqliteDatabase(db_path)
    try:

        def level(connection: sqlite3.Connection) -> int:
            return int(connection.execute("PRAGMA synchronous").fetchone()[0])

        assert await db.write(level) == 1
        assert await db.write(level, durable=True) == 2
        assert await db.write(level) == 1  # set back after the durable one
        with pytest.raises(RuntimeError):
            await db.write(lambda connection: (_ for _ in ()).throw(RuntimeError()), durable=True)
        assert await db.write(level) == 1  # and after one that rolled back
    finally:
        await db.close()


async def test_the_vault_and_the_erasure_journal_write_durably(
    db_path: Path, keys1: VaultKeys
) -> None:
    db = SqliteDatabase(db_path)
    statements: list[str] = []
    try:
        await db.write(lambda connection: connection.set_trace_callback(statements.append))
        vault = await SqliteTokenVault.open(db, keys1)
        journal = await SqliteErasureJournal.open(db)
        links = await SqliteLinkStateStore.open(db, keys=keys1)

        def durable_commits() -> list[bool]:
            # Each write transaction, and whether FULL was set just before it.
            found = [
                index > 0 and statements[index - 1] == "PRAGMA synchronous = FULL"
                for index, text in enumerate(statements)
                if text == "BEGIN IMMEDIATE"
            ]
            statements.clear()
            return found

        durable_commits()
        await vault.put(USER, record(USER), expected_version=None)  # (and its first upgrade)
        written = durable_commits()
        assert written and all(written)
        now = datetime.now(UTC)
        await journal.begin(
            ErasureEntry(request_id="r-durable", user_id=USER, requester="user", requested_at=now)
        )
        written = durable_commits()
        assert written and all(written)
        # A pending link state lost to a power cut only means /link again.
        await links.add(
            LinkState(
                state_hash="s" * 43,
                user_id=USER,
                platform="spotify",
                code_verifier="v" * 43,
                created_at=now,
                expires_at=now + timedelta(minutes=10),
            )
        )
        written = durable_commits()
        assert written and not any(written)
    finally:
        await db.close()
