"""A data directory knows it has been used: real processes of both programs.

Each case sets up a used directory with one real start, breaks one part of
it as an operator might (a deleted key, an emptied or swapped database, a
foreign key ring, a mode too open), and starts ``timmybot`` and
``timmybot-admin`` again: both must refuse with one line naming the file
and the recovery section, exit with their configuration status, and leave
the directory as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.processes import offline_env
from timmybot_adapters.sqlite.database import write_identity

ROOT = Path(__file__).resolve().parents[2]
BOT_CONFIG_STATUS = 2  # timmybot_bot.__main__.EXIT_CONFIGURATION
ADMIN_CONFIG_STATUS = 3  # timmybot_bot.app.failures.EXIT_CONFIG


def environment(data_dir: Path) -> dict[str, str]:
    env = offline_env()
    env.update(TIMMYBOT_DATA_DIR=str(data_dir), TIMMYBOT_WEB_PORT="0")
    env["TIMMYBOT_PUBLIC_URL"] = "http://127.0.0.1:1"
    return env


def start_bot(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Start the offline console with no input: it sets up, then exits at end of input."""
    return subprocess.run(
        [sys.executable, "-m", "timmybot_bot"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(data_dir),
        cwd=ROOT,
        check=False,
    )


def run_admin(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "timmybot_bot.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(data_dir),
        cwd=ROOT,
        check=False,
    )


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and mode (the lock files aside)."""
    return {
        str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mode)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.endswith(".lock")
    }


@pytest.fixture
def used(tmp_path: Path) -> Path:
    """A data directory after one real start and one admin command that wrote data."""
    data_dir = tmp_path / "var"
    done = run_admin(data_dir, "guild", "allow", "123456789012345678")
    assert done.returncode == 0, done.stderr
    return data_dir


def test_a_first_start_on_an_empty_directory_creates_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    done = start_bot(data_dir)
    assert done.returncode == 0, done.stderr
    keys = data_dir / "keys"
    for name in (
        "vault.key",
        "pseudonym.key",
        "audit-signing.key",
        "audit-keyring.json",
        "data-identity.json",
    ):
        assert (keys / name).is_file(), name
    identity = json.loads((keys / "data-identity.json").read_text())["id"]
    assert (data_dir / "timmybot.db").stat().st_size > 0
    # A second start finds everything in place.
    again = start_bot(data_dir)
    assert again.returncode == 0, again.stderr
    assert json.loads((keys / "data-identity.json").read_text())["id"] == identity


def test_eight_processes_starting_on_one_fresh_directory_all_succeed(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env = environment(data_dir)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "timmybot_bot.cli.main", "guild", "list"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(8)
    ]
    try:
        results = [(p.wait(timeout=90), p.communicate()[1]) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [status for status, _ in results] == [0] * 8, results
    assert start_bot(data_dir).returncode == 0


def _delete(name: str) -> Callable[[Path], Path]:
    def breaking(data_dir: Path) -> Path:
        path = data_dir / "keys" / name
        path.unlink()
        return path

    return breaking


def _empty_database(data_dir: Path) -> Path:
    path = data_dir / "timmybot.db"
    for side in ("timmybot.db-wal", "timmybot.db-shm"):
        (data_dir / side).unlink(missing_ok=True)
    path.write_bytes(b"")
    return path


def _foreign(name: str) -> Callable[[Path], Path]:
    """Replace one file by the same file of another used directory."""

    def breaking(data_dir: Path) -> Path:
        other = data_dir.parent / "other"
        assert run_admin(other, "guild", "list").returncode == 0
        relative = Path(name)
        target = data_dir / relative
        for side in ("-wal", "-shm"):
            (data_dir / (name + side)).unlink(missing_ok=True)
        shutil.copy2(other / relative, target)
        return target

    return breaking


def _empty_key_ring(data_dir: Path) -> Path:
    # A valid ring with no keys: it does not know the signing key either.
    path = data_dir / "keys" / "audit-keyring.json"
    path.write_text('{"v": 1, "keys": {}}')
    return path


def _keys_replaced_by_a_file(data_dir: Path) -> Path:
    keys = data_dir / "keys"
    shutil.rmtree(keys)
    keys.write_text("not a directory\n")
    keys.chmod(0o600)
    return keys


def _chmod(name: str, mode: int) -> Callable[[Path], Path]:
    def breaking(data_dir: Path) -> Path:
        path = data_dir / name if name else data_dir
        path.chmod(mode)
        return path

    return breaking


BREAKAGES = {
    "vault key deleted": _delete("vault.key"),
    "pseudonym key deleted": _delete("pseudonym.key"),
    "audit signing key deleted": _delete("audit-signing.key"),
    "key ring deleted": _delete("audit-keyring.json"),
    "database emptied": _empty_database,
    "database from another directory": _foreign("timmybot.db"),
    "key ring from another directory": _foreign("keys/audit-keyring.json"),
    # Another directory's key reads fine, but would silently change every
    # pseudonym or leave every vault record unreadable.
    "pseudonym key from another directory": _foreign("keys/pseudonym.key"),
    "vault key from another directory": _foreign("keys/vault.key"),
    "key ring emptied": _empty_key_ring,
    "database world-writable": _chmod("timmybot.db", 0o666),
    "key ring world-writable": _chmod("keys/audit-keyring.json", 0o666),
    "key directory open to others": _chmod("keys", 0o755),
    "data directory world-writable": _chmod("", 0o777),
    "key directory replaced by a file": _keys_replaced_by_a_file,
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_used_directory_refuses_to_start_and_changes_nothing(
    used: Path, breakage: str
) -> None:
    broken = BREAKAGES[breakage](used)
    before = snapshot(used)
    bot = start_bot(used)
    admin = run_admin(used, "guild", "list")
    # Creating nothing: not even config check, which reads what exists.
    check = run_admin(used, "config", "check")

    for done, status in ((bot, BOT_CONFIG_STATUS), (admin, ADMIN_CONFIG_STATUS)):
        assert done.returncode == status, (breakage, done.returncode, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert str(broken) in lines[0]
        assert "recovery" in lines[0] or "chmod" in lines[0]
        assert "Traceback" not in done.stderr
        assert done.stdout == ""
    assert check.returncode == ADMIN_CONFIG_STATUS, check.stderr
    assert snapshot(used) == before


def test_a_used_directory_that_is_intact_starts_every_time(used: Path) -> None:
    started = time.monotonic()
    for _ in range(2):
        done = start_bot(used)
        assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 120
    listed = run_admin(used, "guild", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "123456789012345678" in listed.stdout


def _no_file_may_grow() -> None:
    # As on a full disk: every write that would grow a file fails (EFBIG).
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_a_full_disk_while_the_keys_are_made_is_one_line_and_the_next_start_finishes(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o700)
    # A first start that stopped after its database step: the ID is in the
    # database, no key file exists yet, so the next start must write them.
    write_identity(data_dir / "timmybot.db", str(uuid.uuid4()))
    commands = {
        "timmybot": ([sys.executable, "-m", "timmybot_bot"], BOT_CONFIG_STATUS),
        "timmybot-admin": (
            [sys.executable, "-m", "timmybot_bot.cli.main", "guild", "list"],
            ADMIN_CONFIG_STATUS,
        ),
    }
    for name, (command, status) in commands.items():
        done = subprocess.run(
            command,
            input="",
            capture_output=True,
            text=True,
            timeout=60,
            env=environment(data_dir),
            cwd=ROOT,
            check=False,
            preexec_fn=_no_file_may_grow,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == status, (name, done.returncode, done.stderr)
        assert len(lines) == 1, (name, done.stderr)
        assert "Traceback" not in done.stderr
        # The first file the full disk refuses is named: the database's
        # shared-memory file (WAL) before any key; see the next test for keys.
        assert f"database {data_dir / 'timmybot.db'} cannot be read" in lines[0], lines[0]
        assert "SQLITE_IOERR" in lines[0], (name, lines[0])
        # Nothing half-written: no key file, no temporary file, no identity file.
        keys = data_dir / "keys"
        assert not keys.exists() or list(keys.iterdir()) == [], name
    again = start_bot(data_dir)
    assert again.returncode == 0, again.stderr
    assert (data_dir / "keys" / "data-identity.json").is_file()


@pytest.mark.parametrize("purpose", ["vault", "pseudonym"])
def test_a_key_file_the_full_disk_refuses_is_named_and_never_half_written(
    tmp_path: Path, purpose: str
) -> None:
    path = tmp_path / "keys" / f"{purpose}.key"
    path.parent.mkdir(mode=0o700)
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from timmybot_bot.runtime.keys import load_or_create_key\n"
        "from timmybot_bot.runtime.settings import ConfigurationError\n"
        "try:\n"
        f"    load_or_create_key(Path({str(path)!r}), purpose={purpose!r})\n"
        "except ConfigurationError as error:\n"
        "    print(error)\n"
        "    sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
        preexec_fn=_no_file_may_grow,
    )
    assert done.returncode == 3, done.stderr
    assert f"key file {path} cannot be written (EFBIG)" in done.stdout
    assert "Traceback" not in done.stderr
    assert list(path.parent.iterdir()) == []  # no key, no temporary file


def test_a_database_that_cannot_be_read_now_is_refused_not_taken_for_none(
    used: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process holds the database exclusively: reading it fails with
    # SQLITE_BUSY. That is no reason to skip the directory's identity checks.
    from timmybot_adapters.sqlite import database
    from timmybot_bot.runtime import data_dir
    from timmybot_bot.runtime.settings import ConfigurationError, Settings

    monkeypatch.setattr(
        database, "inspect_database", functools.partial(database.inspect_database, wait=0.2)
    )
    holder = sqlite3.connect(used / "timmybot.db", isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("DELETE FROM data_identity WHERE 0")
        settings = Settings.from_env(environment(used))
        with pytest.raises(ConfigurationError, match=r"cannot be read \(SQLITE_BUSY\)"):
            data_dir.prepare(settings)
    finally:
        holder.close()
    assert data_dir.prepare(settings) is not None  # once free, it checks out as before


@pytest.mark.parametrize("lock", ["run.lock", ".init.lock"])
def test_a_lock_file_that_cannot_be_opened_is_one_line_naming_it(used: Path, lock: str) -> None:
    path = used / lock
    path.unlink(missing_ok=True)
    path.mkdir()
    done = start_bot(used)
    assert done.returncode == BOT_CONFIG_STATUS, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"lock file {path} cannot be opened (IsADirectoryError)" in lines[0]
    # doctor still answers every check: it only probes the run lock, read-only.
    doctor = run_admin(used, "doctor")
    assert "Traceback" not in doctor.stderr
    assert "processes" in doctor.stdout or "processes" in doctor.stderr


def _recorded_keys(data_dir: Path) -> dict[str, str]:
    document = json.loads((data_dir / "keys" / "data-identity.json").read_text())
    assert isinstance(document["keys"], dict)
    return document["keys"]


def _key_id(data_dir: Path, name: str) -> str:
    from timmybot_bot.runtime.keys import key_id_for, load_or_create_key

    key = load_or_create_key(data_dir / "keys" / name, purpose=name.removesuffix(".key"))
    return key_id_for(key, name[0])


def test_an_identity_file_without_key_ids_gets_them_on_the_next_start(used: Path) -> None:
    # As an earlier release wrote it: the ID only.
    path = used / "keys" / "data-identity.json"
    document = json.loads(path.read_text())
    path.write_text(json.dumps({"v": 1, "id": document["id"], "created": document["created"]}))
    path.chmod(0o600)
    done = start_bot(used)
    assert done.returncode == 0, done.stderr
    assert _recorded_keys(used) == {
        "pseudonym.key": _key_id(used, "pseudonym.key"),
        "vault.key": _key_id(used, "vault.key"),
    }
    assert json.loads(path.read_text())["id"] == document["id"]
    # From then on another directory's key is refused.
    broken = _foreign("keys/pseudonym.key")(used)
    refused = start_bot(used)
    assert refused.returncode == BOT_CONFIG_STATUS, refused.stderr
    assert str(broken) in refused.stderr


def test_a_vault_rekey_records_the_new_key_and_the_bot_starts_on_it(used: Path) -> None:
    done = run_admin(used, "vault", "rekey", "--generate", "--yes")
    assert done.returncode == 0, done.stderr
    assert _recorded_keys(used)["vault.key"] == _key_id(used, "vault.key")
    assert "vault_rekey_to" not in json.loads((used / "keys" / "data-identity.json").read_text())
    started = start_bot(used)
    assert started.returncode == 0, started.stderr
    # The audit signing key's rotation leaves the identity as it was.
    rotated = run_admin(used, "audit", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert start_bot(used).returncode == 0


def test_a_rekey_stopped_after_promoting_its_key_leaves_a_directory_that_starts(
    used: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from timmybot_bot.runtime import data_dir, vault_rekey
    from timmybot_bot.runtime.settings import Settings

    settings = Settings.from_env(environment(used))
    old_id = _key_id(used, "vault.key")
    plan = vault_rekey.plan_rekey(settings, vault_rekey.NewKeySource(generate=True), {})
    record = data_dir.record_vault_key

    def crash_once_promoted(
        settings: Settings, key_id: str, *, rekey_to: str | None = None
    ) -> None:
        if rekey_to is None:  # vault.key holds the new key already
            raise KeyboardInterrupt
        record(settings, key_id, rekey_to=rekey_to)

    monkeypatch.setattr(data_dir, "record_vault_key", crash_once_promoted)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(vault_rekey.rekey_vault(settings, plan))
    assert _key_id(used, "vault.key") == plan.new_key_id != old_id
    assert _recorded_keys(used)["vault.key"] == old_id
    done = start_bot(used)
    assert done.returncode == 0, done.stderr
    # That start recorded the promoted key: the rekey is over.
    assert _recorded_keys(used)["vault.key"] == plan.new_key_id
    assert "vault_rekey_to" not in json.loads((used / "keys" / "data-identity.json").read_text())
    # The old key back in vault.key is now refused (its records moved on).
    shutil.copy2(vault_rekey.retired_file(settings, old_id), used / "keys" / "vault.key")
    refused = start_bot(used)
    assert refused.returncode == BOT_CONFIG_STATUS, refused.stderr
    assert f"holds key {old_id}" in refused.stderr


def _store_tokens(data_dir: Path, *users: int) -> None:
    """Put a token record for each of ``users`` in the vault, under its keys of the moment."""
    from datetime import UTC, datetime, timedelta

    from timmybot_bot.runtime.bootstrap import bootstrap
    from timmybot_bot.runtime.settings import Settings
    from timmybot_core import OAuthTokens

    async def store() -> None:
        services = bootstrap(Settings.from_env(environment(data_dir)))
        await services.open()
        try:
            for user in users:
                await services.tokens.store_user_tokens(
                    user,
                    OAuthTokens(
                        platform="spotify",
                        access_token=f"canary-access-{user}",
                        refresh_token=f"canary-refresh-{user}",
                        scopes=("user-read-private",),
                        expires_at=datetime.now(UTC) + timedelta(hours=1),
                    ),
                )
        finally:
            await services.aclose()

    asyncio.run(store())


def _refused_naming(data_dir: Path, *parts: str) -> None:
    for done, status in (
        (start_bot(data_dir), BOT_CONFIG_STATUS),
        (run_admin(data_dir, "guild", "list"), ADMIN_CONFIG_STATUS),
    ):
        assert done.returncode == status, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "Traceback" not in done.stderr
        for part in parts:
            assert part in lines[0], lines[0]


def test_a_lost_staged_key_with_records_under_it_is_refused_at_start(used: Path) -> None:
    from timmybot_bot.runtime import vault_rekey
    from timmybot_bot.runtime.settings import Settings

    _store_tokens(used, 11, 12)
    settings = Settings.from_env(environment(used))
    plan = vault_rekey.plan_rekey(settings, vault_rekey.NewKeySource(generate=True), {})

    def crash_after_the_first_batch(phase: str, done: int, total: int) -> None:
        if phase == "records" and done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            vault_rekey.rekey_vault(settings, plan, batch=1, report=crash_after_the_first_batch)
        )
    staged = used / "keys" / "vault.next.key"
    assert start_bot(used).returncode == 0  # staged and current key both there
    staged.unlink()
    _refused_naming(used, f"'{plan.new_key_id}'", str(staged), "recovery")


def test_a_lost_retired_key_with_records_under_it_is_refused_at_start(used: Path) -> None:
    from timmybot_bot.runtime import data_dir, vault_rekey
    from timmybot_bot.runtime.keys import key_document, key_id_for, write_private_file
    from timmybot_bot.runtime.settings import Settings

    _store_tokens(used, 11)
    settings = Settings.from_env(environment(used))
    keys = used / "keys"
    old_id = _key_id(used, "vault.key")
    # As a promotion whose records did not all move leaves it (restored from
    # an older backup, say): the old key retired, a new one current.
    retired = vault_rekey.retired_file(settings, old_id)
    shutil.copy2(keys / "vault.key", retired)
    new = os.urandom(32)
    write_private_file(keys / "vault.key", key_document(new, purpose="vault"))
    data_dir.record_vault_key(settings, key_id_for(new, "v"))
    assert start_bot(used).returncode == 0  # records under the retired key still read
    retired.unlink()
    _refused_naming(used, f"'{old_id}'", str(retired), "recovery")
    doctor = run_admin(used, "doctor")
    assert doctor.returncode == 1
    assert "do not decrypt" in doctor.stdout


def test_a_rekey_planned_before_another_rekey_ran_is_refused_and_changes_nothing(
    used: Path,
) -> None:
    # Two operators: one waits at the confirmation while the other's rekey
    # runs to the end. Carried out then, the first plan used to stage its key
    # and record the old key as current, and every start was refused.
    from timmybot_bot.runtime import vault_rekey
    from timmybot_bot.runtime.settings import Settings

    _store_tokens(used, 11, 12)
    settings = Settings.from_env(environment(used))
    stale = vault_rekey.plan_rekey(settings, vault_rekey.NewKeySource(generate=True), {})
    done = run_admin(used, "vault", "rekey", "--generate", "--yes")
    assert done.returncode == 0, done.stderr
    promoted = _key_id(used, "vault.key")
    before = snapshot(used)
    with pytest.raises(vault_rekey.RekeyUsageError, match="another vault rekey ran"):
        asyncio.run(vault_rekey.rekey_vault(settings, stale))
    assert snapshot(used) == before
    assert not (used / "keys" / "vault.next.key").exists()
    assert _recorded_keys(used)["vault.key"] == promoted
    started = start_bot(used)
    assert started.returncode == 0, started.stderr


def test_a_second_rekey_while_one_runs_is_refused_in_one_line(used: Path) -> None:
    # Both would re-encrypt and promote the same staged key: the later
    # promotion found no vault.next.key left and crashed.
    from timmybot_bot.runtime import vault_rekey
    from timmybot_bot.runtime.settings import Settings

    _store_tokens(used, 11, 12)
    settings = Settings.from_env(environment(used))
    plan = vault_rekey.plan_rekey(settings, vault_rekey.NewKeySource(generate=True), {})
    second: list[subprocess.CompletedProcess[str]] = []

    def finish_it_meanwhile(phase: str, done: int, total: int) -> None:
        if phase == "records" and done == 1 and not second:
            second.append(run_admin(used, "vault", "rekey", "--yes"))

    outcome = asyncio.run(
        vault_rekey.rekey_vault(settings, plan, batch=1, report=finish_it_meanwhile)
    )
    (refused,) = second
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "another vault rekey is running" in line
    assert outcome.promoted
    assert _recorded_keys(used)["vault.key"] == _key_id(used, "vault.key") == plan.new_key_id
    started = start_bot(used)
    assert started.returncode == 0, started.stderr


def test_two_audit_key_rotations_at_once_keep_every_new_key_in_the_ring(
    used: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each rotation read the ring, then wrote it back with its own new key:
    # the later write dropped the other's, and digests signed with that key
    # by a process started in between never verified again.
    import threading

    from timmybot_adapters.signing import Ed25519Signer
    from timmybot_bot.runtime import audit_keys
    from timmybot_bot.runtime.settings import Settings

    settings = Settings.from_env(environment(used))
    generate = Ed25519Signer.generate
    go = threading.Event()

    def generate_after_the_other_rotation() -> Ed25519Signer:
        go.wait(timeout=30)
        return generate()

    monkeypatch.setattr(
        audit_keys.Ed25519Signer, "generate", staticmethod(generate_after_the_other_rotation)
    )
    rotated: list[tuple[str, str]] = []
    first = threading.Thread(
        target=lambda: rotated.append(audit_keys.rotate_audit_signing_key(settings))
    )
    first.start()
    try:
        second = subprocess.Popen(
            [sys.executable, "-m", "timmybot_bot.cli.main", "audit", "rotate-key", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(used),
            cwd=ROOT,
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            second.wait(timeout=3)  # done by now unless it waits for the first
    finally:
        go.set()
        first.join(timeout=30)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    (first_rotation,) = rotated
    ring = json.loads((used / "keys" / "audit-keyring.json").read_text())["keys"]
    assert {first_rotation[1], json.loads(out)["new_key_id"]} <= set(ring)
    # A process signing with whichever key is current now verifies, like every other.
    assert run_admin(used, "guild", "allow", "223456789012345678").returncode == 0
    verified = run_admin(used, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


NOBODY = 65534  # a user other than the one running the tests


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize(
    "name",
    ["", "keys", "keys/vault.key", "keys/pseudonym.key", "keys/audit-keyring.json", "timmybot.db"],
)
def test_a_file_owned_by_another_user_is_refused_at_start(used: Path, name: str) -> None:
    # Its owner may change its mode, then the file, whenever it likes: the
    # mode checks above mean nothing for it.
    path = used / name if name else used
    os.chown(path, NOBODY, -1)
    before = snapshot(used)
    for done, status in (
        (start_bot(used), BOT_CONFIG_STATUS),
        (run_admin(used, "guild", "list"), ADMIN_CONFIG_STATUS),
    ):
        assert done.returncode == status, (name, done.returncode, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert f"{path} is owned by another user (uid {NOBODY})" in lines[0], lines[0]
        assert "Traceback" not in done.stderr
    doctor = run_admin(used, "doctor")
    assert doctor.returncode == 1
    assert "owned by another user" in doctor.stdout
    assert snapshot(used) == before
    # Given back, it starts as before.
    os.chown(path, os.geteuid(), -1)
    assert start_bot(used).returncode == 0
