"""A bot started during a vault rekey reads every record and writes under the staged key."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from timmybot_bot.runtime import data_dir
from timmybot_bot.runtime.bootstrap import Settings, bootstrap
from timmybot_bot.runtime.keys import key_id_for
from timmybot_bot.runtime.vault_rekey import STAGED_FILE, retired_file, running_vault_keys
from timmybot_core import OAuthTokens

USER = 444_444_444_444_444_444
OTHER = 555_555_555_555_555_555


def settings(data_dir: Path) -> Settings:
    return Settings(backend="sqlite", data_dir=data_dir)


def key_file(path: Path, key: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"v": 1, "purpose": "vault", "key": key.hex()}, handle)


def tokens(marker: str) -> OAuthTokens:
    return OAuthTokens(
        platform="spotify",
        access_token=f"canary-access-{marker}",
        refresh_token=f"canary-refresh-{marker}",
        scopes=("user-read-private",),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


async def test_a_staged_key_encrypts_new_records_and_old_ones_still_read(
    tmp_path: Path,
) -> None:
    before = bootstrap(settings(tmp_path))
    await before.open()
    await before.tokens.store_user_tokens(USER, tokens("old"))
    await before.aclose()
    staged = secrets.token_bytes(32)
    key_file(tmp_path / "keys" / STAGED_FILE, staged)

    during = bootstrap(settings(tmp_path))
    await during.open()
    await during.tokens.store_user_tokens(OTHER, tokens("new"))
    old = await during.vault.get(USER)
    await during.aclose()

    keys = running_vault_keys(settings(tmp_path), secrets.token_bytes(32))
    assert keys.current == key_id_for(staged, "v")
    assert old is not None
    assert old.link("spotify") is not None
    connection = sqlite3.connect(tmp_path / "timmybot.db")
    rows = dict(connection.execute("SELECT user_id, key_id FROM vault_records").fetchall())
    connection.close()
    assert rows[f"{OTHER:020d}"] == key_id_for(staged, "v")
    assert rows[f"{USER:020d}"] != key_id_for(staged, "v")


async def test_records_under_a_retired_key_stay_readable(tmp_path: Path) -> None:
    first = bootstrap(settings(tmp_path))
    await first.open()
    await first.tokens.store_user_tokens(USER, tokens("kept"))
    await first.aclose()
    keys_dir = tmp_path / "keys"
    old = json.loads((keys_dir / "vault.key").read_text())["key"]
    old_key = bytes.fromhex(old)
    # As a promotion leaves it: the old key retired, a new one current.
    key_file(retired_file(settings(tmp_path), key_id_for(old_key, "v")), old_key)
    (keys_dir / "vault.key").unlink()
    new_key = secrets.token_bytes(32)
    key_file(keys_dir / "vault.key", new_key)
    # A promotion records the new key in the identity file, which binds vault.key to it.
    data_dir.record_vault_key(settings(tmp_path), key_id_for(new_key, "v"))

    later = bootstrap(settings(tmp_path))
    await later.open()
    record = await later.vault.get(USER)
    await later.aclose()

    assert record is not None
    assert record.link("spotify") is not None
