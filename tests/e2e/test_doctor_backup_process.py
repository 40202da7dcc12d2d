"""``timmybot-admin doctor`` and ``backup`` as an operator runs them: real processes.

Doctor on a healthy directory passes every check; on a damaged one (a
random page overwritten, a key file gone, a mode too open) it fails the
check that names the damage and exits 1. A backup is a data directory on
its own: doctor passes on it and the bot reads its data. ``vault rekey``
refuses while a bot process runs, unless told ``--force``.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.processes import offline_env
from timmybot_bot.runtime import data_dir as data_dir_module
from timmybot_bot.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RUN_LIMIT = 60
GUILD = "123456789012345678"

SEED = r"""
import asyncio, sys
from datetime import UTC, datetime, timedelta
from timmybot_bot.runtime.bootstrap import bootstrap
from timmybot_bot.runtime.settings import Settings
from timmybot_core import OAuthTokens, PlatformLink, UserTokens


async def main():
    services = bootstrap(Settings.from_env())
    await services.open()
    now = datetime.now(UTC)
    for user in range(1, 41):
        tokens = OAuthTokens(
            platform="spotify", access_token=f"canary-a-{user}", refresh_token=f"canary-r-{user}",
            scopes=("streaming",), expires_at=now + timedelta(days=1),
        )
        record = UserTokens.new(user, now=now).with_link(PlatformLink(tokens=tokens, linked_at=now), now=now)
        await services.vault.put(user, record, expected_version=None)
        await services.user_data.set_preference(user, "volume", user, at=now)
    for n in range(600):
        await services.audit.record_admin_action(1, "test.seed", f"thing:{n}", {"n": n}, source="test")
    await services.aclose()


asyncio.run(main())
"""


def environment(data_dir: Path) -> dict[str, str]:
    env = offline_env()
    env.update(
        TIMMYBOT_DATA_DIR=str(data_dir),
        TIMMYBOT_WEB_PORT="0",
        TIMMYBOT_PUBLIC_URL="http://127.0.0.1:1",
        TIMMYBOT_METRICS_EXPORTER="none",
    )
    return env


def admin(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "timmybot_bot.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
        env=environment(data_dir),
        cwd=ROOT,
        check=False,
    )
    assert "Traceback" not in done.stderr
    return done


def doctor(data_dir: Path) -> tuple[int, dict[str, dict[str, object]]]:
    done = admin(data_dir, "doctor", "--json")
    document = json.loads(done.stdout)
    return done.returncode, {check["name"]: check for check in document["checks"]}


@pytest.fixture
def used(tmp_path: Path) -> Path:
    data_dir = tmp_path / "var"
    assert admin(data_dir, "guild", "allow", GUILD).returncode == 0
    seeded = subprocess.run(
        [sys.executable, "-c", SEED],
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
        env=environment(data_dir),
        cwd=ROOT,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    return data_dir


def test_doctor_passes_every_check_on_a_healthy_directory(used: Path) -> None:
    status, checks = doctor(used)
    assert status == 0, checks
    assert set(checks) == {
        "identity",
        "modes",
        "integrity",
        "vault",
        "preferences",
        "processes",
        "audit",
    }
    assert all(check["ok"] for check in checks.values())
    assert "40 record(s), each decrypts" in str(checks["vault"]["detail"])
    text = admin(used, "doctor")
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert len(lines) == len(checks)
    assert all(line.startswith("ok   ") for line in lines)
    assert "canary" not in text.stdout


def _checkpoint(db: Path) -> None:
    connection = sqlite3.connect(db)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def test_doctor_finds_a_random_page_overwritten(used: Path) -> None:
    db = used / "timmybot.db"
    _checkpoint(db)
    connection = sqlite3.connect(db)
    page_size, pages = (
        connection.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_size", "page_count")
    )
    connection.close()
    assert pages > 10
    chosen = random.Random(13).randrange(2, pages)  # never the header page
    with db.open("r+b") as handle:
        handle.seek((chosen - 1) * page_size)
        handle.write(random.Random(chosen).randbytes(page_size))
    status, checks = doctor(used)
    assert status == 1
    assert checks["integrity"]["ok"] is False
    assert checks["identity"]["ok"] is True
    assert checks["modes"]["ok"] is True


def test_doctor_names_a_missing_key(used: Path) -> None:
    (used / "keys" / "vault.key").unlink()
    status, checks = doctor(used)
    assert status == 1
    assert checks["identity"]["ok"] is False
    assert "vault.key is missing" in str(checks["identity"]["detail"])
    assert checks["vault"]["ok"] is False
    assert checks["integrity"]["ok"] is True
    # And the key was not made again behind the operator's back.
    assert not (used / "keys" / "vault.key").exists()


def test_doctor_counts_records_that_do_not_decrypt(used: Path) -> None:
    db = used / "timmybot.db"
    connection = sqlite3.connect(db)
    try:
        # One bit flipped in one token record and in one user's preference:
        # the stores refuse them, and doctor counts each as not decrypting.
        for table, column in (("vault_records", "ciphertext"), ("user_preferences", "value")):
            user, sealed = connection.execute(
                f"SELECT user_id, {column} FROM {table} ORDER BY user_id LIMIT 1"  # noqa: S608
            ).fetchone()
            flipped = bytes([*sealed[:-1], sealed[-1] ^ 1])
            connection.execute(
                f"UPDATE {table} SET {column} = ? WHERE user_id = ?",  # noqa: S608 - fixed names
                (flipped, user),
            )
        connection.commit()
    finally:
        connection.close()
    status, checks = doctor(used)
    assert status == 1
    for name in ("vault", "preferences"):
        assert checks[name]["ok"] is False
        assert "1 of 40 record(s) do not decrypt" in str(checks[name]["detail"]), checks[name]
    assert checks["integrity"]["ok"] is True


def test_doctor_names_a_mode_too_open(used: Path) -> None:
    (used / "keys" / "audit-keyring.json").chmod(0o666)
    status, checks = doctor(used)
    assert status == 1
    assert checks["modes"]["ok"] is False
    assert "audit-keyring.json" in str(checks["modes"]["detail"])
    assert "chmod 644" in str(checks["modes"]["detail"])


def test_doctor_reports_every_check_when_the_key_directory_is_a_file(used: Path) -> None:
    keys = used / "keys"
    for path in keys.iterdir():
        path.unlink()
    keys.rmdir()
    keys.write_text("not a directory\n")
    keys.chmod(0o600)
    status, checks = doctor(used)
    assert status == 1
    assert set(checks) == {
        "identity",
        "modes",
        "integrity",
        "vault",
        "preferences",
        "processes",
        "audit",
    }
    assert not checks["identity"]["ok"]
    assert str(keys) in str(checks["identity"]["detail"])
    assert not checks["vault"]["ok"]
    assert checks["integrity"]["ok"]


def test_a_backup_is_a_data_directory_doctor_passes(used: Path, tmp_path: Path) -> None:
    copy = tmp_path / "backup"
    done = admin(used, "backup", str(copy), "--json")
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout)["files"]
    assert "timmybot.db" in files
    assert "keys/vault.key" in files
    assert "keys/data-identity.json" in files
    assert stat.S_IMODE(copy.stat().st_mode) == 0o700
    assert stat.S_IMODE((copy / "keys").stat().st_mode) == 0o700
    for name in ("vault.key", "pseudonym.key", "audit-signing.key"):
        assert stat.S_IMODE((copy / "keys" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((copy / "timmybot.db").stat().st_mode) == 0o600

    status, checks = doctor(copy)
    assert status == 0, checks
    listed = admin(copy, "guild", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert GUILD in listed.stdout
    # A backup never overwrites another one.
    again = admin(used, "backup", str(copy))
    assert again.returncode == 2
    assert "exists" in again.stderr


def test_vault_rekey_refuses_while_a_bot_runs_unless_forced(used: Path) -> None:
    bot = subprocess.Popen(
        [sys.executable, "-m", "timmybot_bot"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(used),
        cwd=ROOT,
    )
    settings = Settings.from_env(environment(used))
    try:
        deadline = time.monotonic() + RUN_LIMIT
        while not data_dir_module.bot_running(settings):
            assert bot.poll() is None, bot.communicate()[1]
            assert time.monotonic() < deadline, "the bot did not start"
            time.sleep(0.05)
        _, checks = doctor(used)
        assert "a bot process is running" in str(checks["processes"]["detail"])
        refused = admin(used, "vault", "rekey", "--generate", "--yes")
        assert refused.returncode == 2
        assert "a bot process is running" in refused.stderr
        assert not (used / "keys" / "vault.next.key").exists()
        forced = admin(used, "vault", "rekey", "--generate", "--yes", "--force")
        assert forced.returncode == 0, forced.stderr
    finally:
        if bot.stdin is not None:
            bot.stdin.close()
        try:
            bot.wait(timeout=RUN_LIMIT)
        finally:
            if bot.poll() is None:
                bot.kill()
                bot.wait()
    assert bot.returncode == 0
    assert not data_dir_module.bot_running(settings)
    assert admin(used, "vault", "rekey", "--generate", "--yes").returncode == 0


# A host bot (docs/integrate.md): compose() and Security.open(), no Runtime.
# It prints once its stores are open, then holds them until its stdin closes.
HOST_BOT = r"""
import asyncio, sys
from timmybot_bot.integrate import Settings, compose


async def main():
    security = compose(Settings.from_env(), guard=True, vault=True, audit=True)
    await security.open()
    print("open", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await security.aclose()


asyncio.run(main())
"""


def test_vault_rekey_refuses_while_a_host_bot_has_the_stores_open(tmp_path: Path) -> None:
    # A host bot keeps the vault key in memory as TimmyBot's bot does: a rekey
    # under it would leave it unable to read any record, so it must be seen.
    data_dir = tmp_path / "var"
    host = subprocess.Popen(
        [sys.executable, "-c", HOST_BOT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(data_dir),
        cwd=ROOT,
    )
    try:
        assert host.stdout is not None
        assert host.stdout.readline() == "open\n", host.communicate()[1]
        _, checks = doctor(data_dir)
        assert "a bot process is running" in str(checks["processes"]["detail"])
        refused = admin(data_dir, "vault", "rekey", "--generate", "--yes")
        assert refused.returncode == 2
        assert "a bot process is running" in refused.stderr
    finally:
        if host.stdin is not None:
            host.stdin.close()
        try:
            host.wait(timeout=RUN_LIMIT)
        finally:
            if host.poll() is None:
                host.kill()
                host.wait()
    assert host.returncode == 0
    # aclose() gave the lock back.
    assert admin(data_dir, "vault", "rekey", "--generate", "--yes").returncode == 0


# Runs timmybot-admin with the copy of one key file interrupted: by SIGKILL
# (the process dies there) or by Ctrl-C (KeyboardInterrupt), after the
# database is already copied.
INTERRUPTED_BACKUP = r"""
import os, shutil, signal, sys
from timmybot_bot.cli.main import main

name, how, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
real_copyfile = shutil.copyfile


def copyfile(source, target, *args, **kwargs):
    if os.path.basename(str(source)) == name:
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise KeyboardInterrupt
    return real_copyfile(source, target, *args, **kwargs)


shutil.copyfile = copyfile
sys.exit(main(argv))
"""


@pytest.mark.parametrize("how", ["kill", "interrupt"])
def test_an_interrupted_backup_leaves_no_half_copy_under_its_name(
    used: Path, tmp_path: Path, how: str
) -> None:
    copy = tmp_path / "backups" / "nightly"
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_BACKUP, "vault.key", how, "backup", str(copy)],
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
        env=environment(used),
        cwd=ROOT,
        check=False,
    )
    assert "Traceback" not in done.stderr
    if how == "kill":
        assert done.returncode == -signal.SIGKILL, done.stderr
    else:
        assert done.returncode == 130, done.stderr
        # Interrupted in the process itself: nothing of the copy is left anywhere.
        assert list(copy.parent.iterdir()) == []
    # A half copy (the database without the vault key) must never pass for a
    # backup; DEST appears only once it is whole, so the next run can write it.
    assert not copy.exists()
    again = admin(used, "backup", str(copy))
    assert again.returncode == 0, again.stderr
    status, checks = doctor(copy)
    assert status == 0, checks
