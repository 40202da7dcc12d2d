"""``timmybot-admin``, the operator CLI, against a real SQLite data directory.

A handful of tests run the installed console script as a subprocess, as an
operator would; the rest call :func:`timmybot_bot.cli.main.main` in this
process (the same code, without half a second of interpreter start-up).
Every output of every test is checked at teardown: no canary token stored
in the vault, no key from the data directory and no traceback may appear in
standard output or standard error.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.integration.processes import offline_env
from timmybot_adapters.sqlite import SqliteAuditLog
from timmybot_bot.cli import commands as admin_commands
from timmybot_bot.cli.main import main
from timmybot_bot.runtime.audit_keys import load_keyring
from timmybot_bot.runtime.bootstrap import bootstrap
from timmybot_bot.runtime.keys import key_id_for
from timmybot_bot.runtime.settings import Settings
from timmybot_bot.runtime.vault_rekey import (
    NewKeySource,
    RekeyUsageError,
    plan_rekey,
    rekey_vault,
)
from timmybot_core import StoreUnavailable
from timmybot_core.domain.tokens import OAuthTokens, PlatformLink, UserTokens

SCRIPT = Path(sys.executable).parent / "timmybot-admin"

USER = 234_567_890_123_456_789
OTHER = 345_678_901_234_567_890
THIRD = 456_789_012_345_678_901
GUILD = 567_890_123_456_789_012
OPERATOR = 678_901_234_567_890_123

# Leaf commands: every one must answer --help with its own description.
LEAVES = [
    ("audit", "query"),
    ("audit", "verify"),
    ("audit", "rotate-key"),
    ("user", "export"),
    ("user", "delete"),
    ("guild", "allow"),
    ("guild", "remove"),
    ("guild", "unban"),
    ("guild", "list"),
    ("vault", "rekey"),
    ("rotation", "run"),
    ("incident", "declare"),
    ("switch", "list"),
    ("switch", "on"),
    ("switch", "off"),
    ("config", "check"),
]


def access_canary(user_id: int) -> str:
    return f"canary-access-{user_id}-3f9a"


def refresh_canary(user_id: int) -> str:
    return f"canary-refresh-{user_id}-c71d"


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal (prompts, progress bars)."""

    def isatty(self) -> bool:
        return True


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


@attrs.define
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@attrs.define
class Admin:
    """Runs ``timmybot-admin`` on one data directory and keeps everything it printed."""

    data_dir: Path
    capsys: pytest.CaptureFixture[str]
    env: dict[str, str]
    outputs: list[str] = attrs.Factory(list)
    secrets: set[str] = attrs.Factory(set)

    def __call__(
        self,
        *argv: str,
        stdin: str = "",
        tty: bool = False,
        stderr: io.StringIO | None = None,
        **env: str,
    ) -> Done:
        """Run ``main(argv)`` in this process."""
        saved = sys.stdin, sys.stderr
        sys.stdin = FakeTerminal(stdin) if tty else Pipe(stdin)
        if stderr is not None:
            sys.stderr = stderr
        try:
            code = main(list(argv), environ={**self.env, **env})
        finally:
            sys.stdin, sys.stderr = saved
        captured = self.capsys.readouterr()
        err = stderr.getvalue() if stderr is not None else captured.err
        return self._keep(Done(code=code, out=captured.out, err=err))

    def process(self, *argv: str, stdin: str = "", **env: str) -> Done:
        """Run the installed console script."""
        assert SCRIPT.exists(), "install the package: .venv/bin/pip install -e . --no-deps"
        done = subprocess.run(
            [str(SCRIPT), *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**self.env, **env},
            cwd=self.data_dir.parent,
            check=False,
        )
        return self._keep(Done(code=done.returncode, out=done.stdout, err=done.stderr))

    def _keep(self, done: Done) -> Done:
        self.outputs += [done.out, done.err]
        self.secrets |= key_material(self.data_dir)
        return done

    def settings(self, **env: str) -> Settings:
        return Settings.from_env({**self.env, **env})


def key_material(data_dir: Path) -> set[str]:
    """Every key in the data directory, as the hex text a leak would show."""
    found = set()
    for path in (data_dir / "keys").glob("*.key"):
        try:
            found.add(json.loads(path.read_text())["key"])
        except (OSError, ValueError, KeyError):
            continue
    return found


@pytest.fixture
def admin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Admin]:
    env = offline_env()
    data_dir = tmp_path / "var"
    env["TIMMYBOT_DATA_DIR"] = str(data_dir)
    runner = Admin(data_dir=data_dir, capsys=capsys, env=env)
    runner.secrets |= {access_canary(u) for u in (USER, OTHER, THIRD)}
    runner.secrets |= {refresh_canary(u) for u in (USER, OTHER, THIRD)}
    yield runner
    printed = "\n".join(runner.outputs)
    assert "Traceback" not in printed
    leaked = sorted(secret for secret in runner.secrets if secret in printed)
    assert leaked == [], "a secret reached the CLI's output"


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def seed(admin: Admin, *users: int, expires_in: timedelta = timedelta(days=5), **env: str) -> None:
    """Link a Spotify account (canary tokens) and set a preference for each user."""

    async def go() -> None:
        services = bootstrap(admin.settings(**env))
        try:
            await services.open()
            now = datetime.now(UTC)
            for user_id in users:
                tokens = OAuthTokens(
                    platform="spotify",
                    access_token=access_canary(user_id),
                    refresh_token=refresh_canary(user_id),
                    scopes=("streaming",),
                    expires_at=now + expires_in,
                )
                record = UserTokens.new(user_id, now=now).with_link(
                    PlatformLink(tokens=tokens, linked_at=now), now=now
                )
                await services.vault.put(user_id, record, expected_version=None)
                await services.user_data.set_preference(user_id, "volume", 70, at=now)
        finally:
            await services.aclose()

    run(go())


def stored(admin: Admin, user_id: int, **env: str) -> tuple[UserTokens | None, list[Any]]:
    """Read a user's tokens and preferences through the bot's own services."""

    async def go() -> tuple[UserTokens | None, list[Any]]:
        services = bootstrap(admin.settings(**env))
        try:
            return (
                await services.vault.get(user_id),
                await services.user_data.get_preferences(user_id),
            )
        finally:
            await services.aclose()

    result: tuple[UserTokens | None, list[Any]] = run(go())
    return result


def seed_audit(admin: Admin, count: int, **env: str) -> None:
    async def go() -> None:
        services = bootstrap(admin.settings(**env))
        try:
            for n in range(count):
                await services.audit.record_admin_action(
                    OPERATOR, "test.action", f"thing:{n}", {"n": n}, source="test"
                )
        finally:
            await services.aclose()

    run(go())


def database(admin: Admin) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(admin.data_dir / "timmybot.db"))


def vault_key_ids(admin: Admin) -> set[str]:
    with database(admin) as db:
        return {row[0] for row in db.execute("SELECT key_id FROM vault_records")}


def preference_key_ids(admin: Admin) -> set[str]:
    with database(admin) as db:
        return {row[0] for row in db.execute("SELECT key_id FROM user_preferences")}


def file_key_id(path: Path) -> str:
    return key_id_for(bytes.fromhex(json.loads(path.read_text())["key"]), "v")


def one_error_line(done: Done) -> str:
    lines = [
        line
        for line in done.err.splitlines()
        if line.startswith("timmybot-admin:") and not line.startswith("timmybot-admin: log:")
    ]
    assert len(lines) == 1, done.err
    return lines[0]


# -- the installed script ----------------------------------------------------------


def test_the_installed_script_lists_every_command_and_exit_code(admin: Admin) -> None:
    done = admin.process("--help")
    assert done.code == 0, done.err
    for command in ("audit", "user", "guild", "vault", "rotation", "incident", "config"):
        assert f"    {command} " in done.out
    assert "exit codes:" in done.out
    assert "3  configuration error" in done.out


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: " ".join(leaf))
def test_every_subcommand_has_its_own_help(admin: Admin, leaf: tuple[str, str]) -> None:
    done = admin(*leaf, "--help")
    assert done.code == 0
    assert done.out.startswith(f"usage: timmybot-admin {' '.join(leaf)}")
    description = done.out.split("\n\n")[1]
    assert len(description.split()) >= 8, description  # a sentence, not a stub
    assert "--config PATH" in done.out  # the common options are there too


@pytest.mark.parametrize("group", sorted({group for group, _ in LEAVES}))
def test_every_command_group_has_help_and_needs_a_subcommand(admin: Admin, group: str) -> None:
    assert admin(group, "--help").code == 0
    done = admin(group)
    assert done.code == 2
    assert "required: SUBCOMMAND" in done.err


def test_a_configuration_error_exits_3_with_one_line_naming_the_setting(admin: Admin) -> None:
    done = admin.process("guild", "list", TIMMYBOT_BACKEND="oracle")
    assert done.code == 3
    assert one_error_line(done).startswith("timmybot-admin: configuration error: TIMMYBOT_BACKEND")
    assert done.out == ""


def test_a_damaged_vault_key_exits_3_and_names_the_file(admin: Admin) -> None:
    keys = admin.data_dir / "keys"
    keys.mkdir(parents=True, mode=0o700)
    (keys / "vault.key").write_text("{not json")
    (keys / "vault.key").chmod(0o600)
    done = admin.process("user", "export", str(USER))
    assert done.code == 3
    line = one_error_line(done)
    assert "vault.key" in line
    assert "damaged" in line


def test_verify_finds_a_record_edited_in_the_raw_table_and_exits_1(admin: Admin) -> None:
    assert admin("guild", "allow", str(GUILD)).code == 0
    assert admin("audit", "verify").code == 0
    with database(admin) as db:
        changed = db.execute(
            "UPDATE audit_records SET action = 'guild.remove' WHERE action = 'guild.allow'"
        ).rowcount
        db.commit()
    assert changed == 1
    done = admin.process("audit", "verify")
    assert done.code == 1
    assert "1 problem(s)" in done.out
    assert "modified at writer w-" in done.out
    as_json = admin("audit", "verify", "--json")
    assert as_json.code == 1
    report = as_json.json()
    assert report["ok"] is False
    assert [p["kind"] for p in report["problems"]] == ["modified"]


def test_rekey_through_the_script_moves_every_record_and_keeps_the_old_key(admin: Admin) -> None:
    seed(admin, USER, OTHER)
    keys = admin.data_dir / "keys"
    old_id = file_key_id(keys / "vault.key")
    done = admin.process("vault", "rekey", "--generate", "--yes")
    assert done.code == 0, done.err
    new_id = file_key_id(keys / "vault.key")
    assert new_id != old_id
    assert f"from key {old_id} to {new_id}: 2 of 2 token record(s) and 2 preference(s)" in (
        done.out
    )
    assert vault_key_ids(admin) == {new_id}
    assert preference_key_ids(admin) == {new_id}
    assert file_key_id(keys / f"vault.retired-{old_id}.key") == old_id
    assert not (keys / "vault.next.key").exists()
    assert stat.S_IMODE((keys / "vault.key").stat().st_mode) == 0o600
    # The bot, started now with the new key file alone, reads everything.
    tokens, preferences = stored(admin, USER)
    assert tokens is not None
    assert tokens.links["spotify"].tokens.access_token == access_canary(USER)
    assert [p.value for p in preferences] == [70]
    (record,) = admin("audit", "query", "action:vault.rekey", "--json").json()["records"]
    assert record["source"] == "cli"
    assert record["details"]["old_key_id"] == old_id
    assert record["details"]["new_key_id"] == new_id
    assert record["details"]["outcome"] == "complete"


# -- config check ------------------------------------------------------------------


def test_config_check_shows_settings_and_key_ids_and_creates_nothing(admin: Admin) -> None:
    done = admin("config", "check")
    assert done.code == 0
    assert "backend = sqlite" in done.out
    assert "key vault = (created on first start)" in done.out
    assert done.out.rstrip().endswith("configuration OK")
    assert not admin.data_dir.exists()
    admin("guild", "list")  # the first real command creates the keys
    done = admin("config", "check", "--json")
    keys = done.json()["keys"]
    assert keys["vault"] == file_key_id(admin.data_dir / "keys" / "vault.key")
    assert keys["audit_keyring"] == [keys["audit_signing"]]


def test_config_check_reads_a_toml_file_and_refuses_a_missing_one(
    admin: Admin, tmp_path: Path
) -> None:
    config = tmp_path / "timmybot.toml"
    config.write_text('validation_policy = "strict"\nattempt_limit = 4\n')
    done = admin("--config", str(config), "config", "check")
    assert done.code == 0
    assert "validation_policy = strict" in done.out
    assert "attempt_limit = 4" in done.out
    # Common options work after the command too.
    assert admin("config", "check", "--config", str(config)).code == 0
    missing = admin("config", "check", "--config", str(tmp_path / "nope.toml"))
    assert missing.code == 3
    assert "does not exist" in one_error_line(missing)


def test_the_memory_backend_is_refused_since_nothing_would_persist(admin: Admin) -> None:
    done = admin("guild", "list", TIMMYBOT_BACKEND="memory")
    assert done.code == 3
    assert "memory" in one_error_line(done)
    assert admin("config", "check", TIMMYBOT_BACKEND="memory").code == 0


# -- guilds ------------------------------------------------------------------------


def test_guild_commands_change_the_shared_allowlist_and_are_audited(admin: Admin) -> None:
    assert admin("guild", "allow", str(GUILD)).out == f"Guild {GUILD} is now allowed.\n"
    assert admin("guild", "allow", str(GUILD)).out == f"Guild {GUILD} was already allowed.\n"
    listed = admin("guild", "list", "--json").json()
    assert listed == {"allowed": [{"guild_id": str(GUILD), "by_configuration": False}], "bans": []}
    assert admin("guild", "unban", str(GUILD)).out == f"Guild {GUILD} was not banned.\n"
    removed = admin("guild", "remove", str(GUILD), "--as", str(OPERATOR))
    assert removed.out == f"Guild {GUILD} was removed from the allowlist.\n"
    assert admin("guild", "list").out == "Allowed guilds: none\nBanned guilds: none\n"
    records = admin("audit", "query", "kind:admin", "--all", "--json").json()["records"]
    assert [r["action"] for r in records] == [
        "guild.remove",
        "guild.unban",
        "guild.allow",
        "guild.allow",
    ]
    assert {r["source"] for r in records} == {"cli"}
    assert all(r["resource"] == f"guild:{GUILD}" for r in records)
    # --as names the admin; without it, the local operator (user 0).
    by_operator = admin("audit", "query", f"admin:{OPERATOR}", "--json").json()["records"]
    assert [r["action"] for r in by_operator] == ["guild.remove"]
    assert records[1]["actor"] != records[0]["actor"]
    assert "os_user" in records[0]["details"]


def test_a_guild_allowed_by_configuration_cannot_be_removed_here(admin: Admin) -> None:
    done = admin("guild", "remove", str(GUILD), TIMMYBOT_ALLOWED_GUILDS=str(GUILD))
    assert done.code == 1
    assert "allowed by configuration (TIMMYBOT_ALLOWED_GUILDS)" in done.out


@pytest.mark.parametrize(
    "bad", ["abc", "0", "-5", "-1", str(2**64), "12 34", "²", "𝟷𝟸𝟹", "١٢٣", "00123"]
)
def test_a_bad_guild_id_is_a_usage_error(admin: Admin, bad: str) -> None:
    done = admin("guild", "allow", bad)
    assert done.code == 2
    assert "must be a Discord ID" in done.err
    assert not (admin.data_dir / "timmybot.db").exists()


# -- audit -------------------------------------------------------------------------


def test_audit_query_filters_and_pages_like_the_discord_command(admin: Admin) -> None:
    seed_audit(admin, 7)
    first = admin("audit", "query", "action:test.action", "limit:3")
    assert first.code == 0
    lines = first.out.splitlines()
    assert lines[0] == "Audit records, newest first (UTC):"
    for line, n in zip(lines[1:4], (6, 5, 4), strict=True):
        assert "  test.action  by " in line
        assert f"  on thing:{n}  (test)  " in line
    cursor = lines[-1].split("cursor:")[1].split()[0]
    second = admin("audit", "query", "action:test.action", "limit:3", f"cursor:{cursor}")
    assert "on thing:3" in second.out.splitlines()[1]
    everything = admin("audit", "query", "action:test.action", "--all", "--limit", "2", "--json")
    document = everything.json()
    assert [r["resource"] for r in document["records"]] == [f"thing:{n}" for n in range(6, -1, -1)]
    assert document["next_cursor"] is None
    assert admin("audit", "query", "action:nothing.like.this").out == "No audit records match.\n"


def test_audit_filters_and_options_mix_in_any_order(admin: Admin) -> None:
    # argparse collects FILTER words only up to the first option: a filter
    # after --all or --limit was "unrecognized arguments" (exit 2).
    seed_audit(admin, 5)
    page = admin("audit", "query", "action:test.action", "limit:2", "--json").json()
    expected = admin(
        "audit", "query", "action:test.action", f"cursor:{page['next_cursor']}", "--all", "--json"
    ).json()
    mixed = admin(
        "audit", "query", "--all", "action:test.action", "--json", f"cursor:{page['next_cursor']}"
    )
    assert mixed.code == 0, mixed.err
    assert mixed.json() == expected
    assert [r["resource"] for r in expected["records"]] == ["thing:2", "thing:1", "thing:0"]
    verify = admin("audit", "verify", "since:7d", "--json", "until:1m")
    assert verify.code == 0, verify.err
    # A filter the leaf does not take is still judged by the filter parser,
    # and anything else left over is still argparse's usage error.
    assert (
        "since:<when> and until:<when> only" in admin("audit", "verify", "--json", "kind:admin").err
    )
    for argv in (
        ("audit", "query", "action:x", "--all", "--bogus", "cursor:ABC"),
        ("user", "export", str(USER), "--json", "extra"),
    ):
        done = admin(*argv)
        assert done.code == 2
        assert "unrecognized arguments:" in done.err
        assert done.out == ""


@pytest.mark.parametrize("failing", [2, 3])
def test_a_later_page_failing_still_prints_a_whole_json_document_to_resume_from(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    # --all --json streams page by page; a store fault after the first page
    # must not leave '{"records": [' unfinished for the jq reading it.
    seed_audit(admin, 5)
    query = SqliteAuditLog.query
    calls = 0

    async def flaky(self: SqliteAuditLog, **filters: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == failing:
            raise StoreUnavailable("sqlite audit query: database is locked")
        return await query(self, **filters)

    monkeypatch.setattr(SqliteAuditLog, "query", flaky)
    options = ("--all", "--limit", "2", "--json")
    done = admin("audit", "query", "action:test.action", *options)
    assert done.code == 1
    assert "database is locked" in one_error_line(done)
    document = done.json()
    assert document["error"] == "sqlite audit query: database is locked"
    read = [r["resource"] for r in document["records"]]
    assert read == [f"thing:{n}" for n in range(4, 4 - 2 * (failing - 1), -1)]
    monkeypatch.setattr(SqliteAuditLog, "query", query)
    resumed = admin(
        "audit", "query", "action:test.action", f"cursor:{document['next_cursor']}", *options
    )
    assert resumed.code == 0, resumed.err
    rest = resumed.json()
    assert "error" not in rest
    assert read + [r["resource"] for r in rest["records"]] == [
        f"thing:{n}" for n in range(4, -1, -1)
    ]


def test_an_interrupted_query_still_prints_a_whole_json_document(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_audit(admin, 3)
    query = SqliteAuditLog.query
    calls = 0

    async def interrupted(self: SqliteAuditLog, **filters: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return await query(self, **filters)

    monkeypatch.setattr(SqliteAuditLog, "query", interrupted)
    done = admin("audit", "query", "action:test.action", "--all", "--limit", "2", "--json")
    assert done.code == 130
    document = done.json()
    assert (len(document["records"]), document["error"]) == (2, "interrupted")
    assert document["next_cursor"] is not None


def test_a_first_page_failing_prints_no_json_at_all(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_audit(admin, 1)

    async def down(self: SqliteAuditLog, **filters: Any) -> Any:
        raise StoreUnavailable("sqlite audit query: database is locked")

    monkeypatch.setattr(SqliteAuditLog, "query", down)
    done = admin("audit", "query", "--all", "--json")
    assert done.code == 1
    assert done.out == ""


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (["kind:nonsense"], "kind: must be one of"),
        (["since:yesterday"], "since: must be a duration"),
        (["limit:500"], "limit: must be a number from 1 to 25"),
        (["cursor:not-a-cursor"], "cursor"),
        (["cursor:not-a-cursor", "--json"], "cursor"),
        (["bogus"], "Filters are name:value"),
    ],
)
def test_a_bad_audit_filter_is_a_usage_error(
    admin: Admin, filters: list[str], message: str
) -> None:
    done = admin("audit", "query", *filters)
    assert done.code == 2
    assert message in one_error_line(done)
    assert done.out == ""


def test_verify_takes_a_time_range_only_and_shows_progress_by_writer(admin: Admin) -> None:
    seed_audit(admin, 2)
    seed_audit(admin, 3)  # a second process: a second writer
    terminal = FakeTerminal()
    done = admin("audit", "verify", "since:7d", stderr=terminal)
    assert done.code == 0
    assert done.out.startswith("audit log clean: 5 records and 2 digests of 2 writer(s)")
    assert "\rverify [" in terminal.getvalue()
    assert "2/2 writers 100%" in terminal.getvalue()
    done = admin("audit", "verify", "kind:admin")
    assert done.code == 2
    assert "since:<when> and until:<when> only" in done.err


def test_rotate_key_keeps_old_digests_verifiable_and_is_audited(admin: Admin) -> None:
    admin("guild", "allow", str(GUILD))
    done = admin("audit", "rotate-key", "--json")
    assert done.code == 0
    ids = done.json()
    assert ids["old_key_id"] != ids["new_key_id"]
    ring = load_keyring(admin.data_dir / "keys" / "audit-keyring.json")
    assert set(ring.key_ids()) == {ids["old_key_id"], ids["new_key_id"]}
    admin("guild", "unban", str(GUILD))  # signed with the new key
    assert admin("audit", "verify").code == 0
    records = admin("audit", "query", "action:audit.rotate_key", "--json").json()["records"]
    assert records[0]["details"]["new_key_id"] == ids["new_key_id"]


def test_rotate_key_is_refused_when_the_key_comes_from_the_environment(admin: Admin) -> None:
    done = admin("audit", "rotate-key", TIMMYBOT_AUDIT_SIGNING_KEY="11" * 32)
    assert done.code == 3
    assert "TIMMYBOT_AUDIT_SIGNING_KEY is set" in one_error_line(done)


# -- users -------------------------------------------------------------------------


def test_user_export_shows_what_is_kept_but_never_a_token(admin: Admin, tmp_path: Path) -> None:
    seed(admin, USER)
    done = admin("user", "export", str(USER))
    assert done.code == 0
    assert f"Data kept about user {USER}:" in done.out
    assert "spotify: active" in done.out
    assert "volume = 70" in done.out
    document = admin("user", "export", str(USER), "--json").json()
    assert document["format"] == "timmybot.user-export"
    assert [link["platform"] for link in document["linked_platforms"]] == ["spotify"]
    target = tmp_path / "export.json"
    written = admin("user", "export", str(USER), "--output", str(target))
    assert written.code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text())["user_id"] == str(USER)
    assert access_canary(USER) not in target.read_text()
    again = admin("user", "export", str(USER), "--output", str(target))
    assert again.code == 2
    assert "exists" in one_error_line(again)
    # Each export is a privacy request and an admin action in the audit trail.
    actions = [r["action"] for r in admin("audit", "query", "--all", "--json").json()["records"]]
    assert actions.count("export") == 3
    assert actions.count("user.export") == 3


def test_exporting_a_user_nothing_is_kept_about_succeeds_with_an_empty_export(
    admin: Admin,
) -> None:
    done = admin("user", "export", str(OTHER))
    assert done.code == 0
    assert "Linked platforms: none" in done.out


def test_user_delete_asks_for_the_user_id_and_erases_everything(admin: Admin) -> None:
    seed(admin, USER, OTHER)
    refused = admin("user", "delete", str(USER))  # no terminal to ask on
    assert refused.code == 2
    assert "add --yes" in one_error_line(refused)
    wrong = admin("user", "delete", str(USER), stdin="yes\n", tty=True)
    assert wrong.code == 1
    assert "cancelled: nothing was deleted" in wrong.err
    assert stored(admin, USER)[0] is not None
    done = admin("user", "delete", str(USER), stdin=f"{USER}\n", tty=True)
    # Spotify is not configured here, so its grant cannot be revoked: the
    # tokens are deleted all the same, and the failed revocation is said.
    assert done.code == 1
    assert "Type the user ID to confirm" in done.err
    assert "FAIL vault: 1 deleted (deleted, but revocation failed at spotify" in done.out
    assert "ok   preferences: 1 deleted" in done.out
    assert "the erasure is incomplete: vault failed; everything is erased here" in done.err
    assert stored(admin, USER) == (None, [])
    assert stored(admin, OTHER)[0] is not None
    scripted = admin("user", "delete", str(OTHER), "--yes", "--json")
    assert scripted.code == 1
    assert scripted.json()["ok"] is False
    assert scripted.json()["failed"] == ["vault"]
    # Nothing is left to do: running it again erases nothing more, and succeeds.
    again = admin("user", "delete", str(OTHER), "--yes", "--json")
    assert again.code == 0, again.err
    assert again.json()["ok"] is True
    actions = [r["action"] for r in admin("audit", "query", "--all", "--json").json()["records"]]
    assert actions.count("user.delete") == 3
    assert actions.count("erasure.requested") == 3
    assert actions.count("erasure") == 3


def test_an_incomplete_erasure_exits_1_and_says_which_store_failed(admin: Admin) -> None:
    seed(admin, USER)
    with database(admin) as db:
        db.execute("DROP TABLE user_preferences")
        db.commit()
    done = admin("user", "delete", str(USER), "--yes")
    assert done.code == 1
    assert "FAIL preferences" in done.out
    assert "FAIL vault: 1 deleted (deleted, but revocation failed" in done.out
    assert "the erasure is incomplete: vault, preferences failed" in one_error_line(done)


def test_a_bad_user_id_is_a_usage_error(admin: Admin) -> None:
    assert admin("user", "export", "me").code == 2
    assert admin("user", "delete", "0", "--yes").code == 2


# -- vault rekey -------------------------------------------------------------------


def test_rekey_takes_the_new_key_from_a_private_file(admin: Admin, tmp_path: Path) -> None:
    seed(admin, USER)
    new_key = bytes(range(32))
    key_file = tmp_path / "new.key"
    key_file.write_text(new_key.hex() + "\n")
    key_file.chmod(0o644)
    admin.secrets.add(new_key.hex())
    loose = admin("vault", "rekey", "--new-key-file", str(key_file), "--yes")
    assert loose.code == 2
    assert "chmod 600" in one_error_line(loose)
    key_file.chmod(0o600)
    done = admin("vault", "rekey", "--new-key-file", str(key_file), "--yes")
    assert done.code == 0, done.err
    assert vault_key_ids(admin) == {key_id_for(new_key, "v")}
    assert file_key_id(admin.data_dir / "keys" / "vault.key") == key_id_for(new_key, "v")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not a key", "must be hex or base64"),
        ("ab" * 16, "at least 32 bytes"),
        ("ab" * 40, "exactly 32 bytes"),
        ("{}", "not a key"),
    ],
)
def test_rekey_refuses_a_malformed_key_file(
    admin: Admin, tmp_path: Path, content: str, message: str
) -> None:
    key_file = tmp_path / "new.key"
    key_file.write_text(content)
    key_file.chmod(0o600)
    done = admin("vault", "rekey", "--new-key-file", str(key_file), "--yes")
    assert done.code == 2
    assert message in one_error_line(done)
    assert not (admin.data_dir / "keys" / "vault.next.key").exists()


def test_rekey_takes_the_new_key_from_an_environment_variable(admin: Admin) -> None:
    seed(admin, USER)
    new_hex = "5a" * 32
    admin.secrets.add(new_hex)
    # A TIMMYBOT_ name would be an unknown setting; the CLI keeps it out of settings.
    done = admin(
        "vault", "rekey", "--new-key-env", "TIMMYBOT_NEW_VAULT_KEY", "--yes",
        TIMMYBOT_NEW_VAULT_KEY=new_hex,
    )  # fmt: skip
    assert done.code == 0, done.err
    assert vault_key_ids(admin) == {key_id_for(bytes.fromhex(new_hex), "v")}
    unset = admin("vault", "rekey", "--new-key-env", "NOT_SET_ANYWHERE", "--yes")
    assert unset.code == 2
    assert "NOT_SET_ANYWHERE is not set" in one_error_line(unset)


def test_a_key_from_a_variable_conflicts_with_generating_or_reading_one(
    admin: Admin, tmp_path: Path
) -> None:
    seed(admin, USER)
    before = vault_key_ids(admin)
    new_hex = "5b" * 32
    admin.secrets.add(new_hex)
    key_file = tmp_path / "new.key"
    key_file.write_text("6c" * 32 + "\n")
    key_file.chmod(0o600)
    generate = admin("vault", "rekey", "--generate", "--new-key-env", "NEW_KEY", "--yes")
    assert generate.code == 2
    assert "argument --new-key-env: not allowed with argument --generate" in generate.err
    assert "is not set" not in generate.err
    # The key in the variable would win, and the file be silently ignored.
    done = admin(
        "vault", "rekey", "--new-key-file", str(key_file), "--new-key-env", "NEW_KEY", "--yes",
        NEW_KEY=new_hex,
    )  # fmt: skip
    assert done.code == 2
    assert one_error_line(done) == (
        "timmybot-admin: error: --new-key-env and --new-key-file both name the new key; "
        "give only one of them"
    )
    both = NewKeySource(env="NEW_KEY", generate=True, file=tmp_path / "other.key")
    with pytest.raises(RekeyUsageError, match="--new-key-env and --new-key-file"):
        plan_rekey(admin.settings(), both, {"NEW_KEY": new_hex})
    assert vault_key_ids(admin) == before
    assert not (admin.data_dir / "keys" / "vault.next.key").exists()
    assert not (tmp_path / "other.key").exists()


def test_rekey_needs_a_key_or_something_to_finish(admin: Admin) -> None:
    seed(admin, USER)
    done = admin("vault", "rekey", "--yes")
    assert done.code == 2
    assert "no new key given and nothing to finish" in one_error_line(done)


def test_rekey_asks_whether_the_bot_is_stopped(admin: Admin) -> None:
    seed(admin, USER)
    before = vault_key_ids(admin)
    assert admin("vault", "rekey", "--generate").code == 2  # nobody to ask
    declined = admin("vault", "rekey", "--generate", stdin="n\n", tty=True)
    assert declined.code == 1
    assert "must be stopped first" in declined.err
    assert vault_key_ids(admin) == before
    assert not (admin.data_dir / "keys" / "vault.next.key").exists()
    assert admin("vault", "rekey", "--generate", stdin="y\n", tty=True).code == 0
    assert vault_key_ids(admin) != before


def test_an_interrupted_rekey_keeps_both_keys_and_finishes_on_the_next_run(admin: Admin) -> None:
    seed(admin, USER, OTHER, THIRD)
    keys = admin.data_dir / "keys"
    old_id = file_key_id(keys / "vault.key")
    settings = admin.settings()
    plan = plan_rekey(settings, NewKeySource(generate=True), admin.env)

    def crash_after_the_first_batch(phase: str, done: int, total: int) -> None:
        if phase == "records" and done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(rekey_vault(settings, plan, batch=1, report=crash_after_the_first_batch))
    staged_id = file_key_id(keys / "vault.next.key")
    assert staged_id == plan.new_key_id
    assert file_key_id(keys / "vault.key") == old_id  # not promoted
    assert vault_key_ids(admin) == {old_id, staged_id}
    # Another new key now would strand the staged one's records: refused.
    other = admin("vault", "rekey", "--generate", "--yes")
    assert other.code == 2
    assert "is staged" in one_error_line(other)
    done = admin("vault", "rekey", "--yes")
    assert done.code == 0, done.err
    assert "2 of 3 token record(s)" in done.out
    assert vault_key_ids(admin) == {staged_id}
    assert file_key_id(keys / "vault.key") == staged_id
    assert not (keys / "vault.next.key").exists()
    assert stored(admin, THIRD)[0] is not None


def test_a_damaged_record_blocks_the_promotion_until_that_user_is_erased(admin: Admin) -> None:
    seed(admin, USER, OTHER)
    keys = admin.data_dir / "keys"
    old_id = file_key_id(keys / "vault.key")
    with database(admin) as db:
        db.execute(
            "UPDATE vault_records SET ciphertext = zeroblob(64) WHERE user_id = ?",
            (f"{OTHER:020d}",),
        )
        db.commit()
    done = admin("vault", "rekey", "--generate", "--yes")
    assert done.code == 1
    assert f"  {OTHER}" in done.out.splitlines()
    assert "failed its integrity check" in done.out
    assert file_key_id(keys / "vault.key") == old_id
    assert (keys / "vault.next.key").exists()
    assert admin("user", "delete", str(OTHER), "--yes").code == 0
    finished = admin("vault", "rekey", "--yes")
    assert finished.code == 0, finished.err
    assert file_key_id(keys / "vault.key") != old_id
    assert stored(admin, USER)[0] is not None


def test_rekey_with_the_key_in_the_environment_leaves_the_key_to_the_operator(
    admin: Admin,
) -> None:
    old_hex, new_hex = "a1" * 32, "b2" * 32
    admin.secrets |= {old_hex, new_hex}
    seed(admin, USER, TIMMYBOT_VAULT_KEY=old_hex)
    generated = admin("vault", "rekey", "--generate", "--yes", TIMMYBOT_VAULT_KEY=old_hex)
    assert generated.code == 2
    assert "--new-key-env or --new-key-file" in one_error_line(generated)
    done = admin(
        "vault", "rekey", "--new-key-env", "NEW_VAULT_KEY", "--yes",
        TIMMYBOT_VAULT_KEY=old_hex, NEW_VAULT_KEY=new_hex,
    )  # fmt: skip
    assert done.code == 0, done.err
    new_id = key_id_for(bytes.fromhex(new_hex), "v")
    assert f"set TIMMYBOT_VAULT_KEY to the new key (key ID {new_id})" in done.out
    assert not list((admin.data_dir / "keys").glob("vault*.key"))
    assert stored(admin, USER, TIMMYBOT_VAULT_KEY=new_hex)[0] is not None


def test_rekey_does_not_apply_to_the_aws_backend(admin: Admin) -> None:
    done = admin("vault", "rekey", "--generate", "--yes", TIMMYBOT_BACKEND="aws")
    assert done.code == 1
    assert "KMS" in one_error_line(done)


def test_rekey_draws_a_progress_bar_on_a_terminal_only(admin: Admin) -> None:
    seed(admin, USER, OTHER, THIRD)
    terminal = FakeTerminal()
    done = admin("vault", "rekey", "--generate", "--yes", "--batch", "1", stderr=terminal)
    assert done.code == 0
    drawn = terminal.getvalue()
    assert "\rrekey [" in drawn
    assert "3/3 records 100%" in drawn
    assert drawn.endswith("\r")  # the line is erased before the summary
    assert "\r" not in done.out
    quiet = FakeTerminal()
    again = admin("vault", "rekey", "--generate", "--yes", "--no-progress", stderr=quiet)
    assert again.code == 0
    assert quiet.getvalue() == ""


# -- rotation and incidents --------------------------------------------------------


def test_rotation_run_reports_counts_and_fails_on_a_configuration_problem(admin: Admin) -> None:
    seed(admin, USER, OTHER, expires_in=timedelta(days=5))
    done = admin("rotation", "run")
    assert done.code == 0
    assert done.out == (
        "Token rotation: 2 user(s), 0 refreshed, 2 unchanged, 0 need /link again, 0 failed.\n"
    )
    # Within ten days both are due, and no Spotify client is configured to refresh them:
    # a configuration problem, counted apart from failures (never authentication ones).
    failing = admin("rotation", "run", "--within", "10d", "--json")
    assert failing.code == 1
    assert (failing.json()["failed"], failing.json()["misconfigured"]) == (0, 2)
    told = admin("rotation", "run", "--within", "10d")
    assert "Configuration problem: 2 link(s)" in told.out
    actions = admin("audit", "query", "action:rotation.run", "--json").json()["records"]
    assert len(actions) == 3
    assert admin("rotation", "run", "--within", "soon").code == 2


def test_a_p0_incident_runs_its_playbook_and_pauses_rotation(admin: Admin) -> None:
    done = admin(
        "incident", "declare", "p0", "token", "leak", "--description", "found in a paste",
        "--as", str(OPERATOR),
    )  # fmt: skip
    assert done.code == 0, done.err
    first = done.out.splitlines()[0]
    assert "(P0, respond by" in first
    assert first.endswith(": token leak")
    steps = [line.split()[1].rstrip(":") for line in done.out.splitlines()[1:]]
    assert steps == [
        "kill_switch",
        "pause_token_refresh",
        "snapshot",
        "retention_hold",
        "alert",
        "record",
    ]
    paused = admin("rotation", "run")
    assert paused.code == 1
    assert "paused" in paused.out
    declared = admin("audit", "query", "action:incident.declare", "--json").json()["records"]
    assert declared[0]["details"]["severity"] == "P0"
    # Recovery: both switches the playbook left on are turned off from here too.
    switches = {s["switch"]: s for s in admin("switch", "list", "--json").json()["switches"]}
    assert switches["kill_switch"]["active"] is True
    assert "token leak" in switches["refresh_paused"]["reason"]
    assert admin("switch", "off", "refresh_paused").code == 0
    assert admin("switch", "off", "killswitch").out.startswith("kill_switch: off\n")
    assert admin("rotation", "run").code == 0
    assert admin("switch", "list").out.splitlines() == [
        "kill_switch: off",
        "refresh_paused: off",
        "lockdown: off",
    ]
    offs = admin("audit", "query", "action:switch.off", "--json").json()["records"]
    assert sorted(r["resource"] for r in offs) == ["switch:kill_switch", "switch:refresh_paused"]


def test_a_switch_turned_on_for_a_while_expires_by_itself(admin: Admin) -> None:
    done = admin("switch", "on", "lockdown", "--for", "2h", "--reason", "drill", "--json")
    assert done.code == 0
    state = done.json()
    assert state["active"] is True
    assert state["reason"] == "drill"
    changed = datetime.fromisoformat(state["changed_at"])
    assert datetime.fromisoformat(state["expires_at"]) - changed == timedelta(hours=2)
    assert admin("switch", "on", "everything").code == 2


def test_an_incident_needs_a_known_severity_and_a_title(admin: Admin) -> None:
    assert admin("incident", "declare", "P9", "x").code == 2
    assert admin("incident", "declare", "P3").code == 2
    blank = admin("incident", "declare", "P3", "   ")
    assert blank.code == 2
    assert "needs a title" in one_error_line(blank)
    done = admin("incident", "declare", "P3", "disk", "filling", "--json")
    assert done.code == 0
    report = done.json()
    assert report["title"] == "disk filling"
    assert [(step["name"], step["ok"]) for step in report["steps"]] == [("record", True)]


# -- failures ----------------------------------------------------------------------


ESCAPES = {"\x1b", "\x07", "\u202e", "\r"}


def test_paths_with_escape_sequences_reach_no_terminal_raw(admin: Admin, tmp_path: Path) -> None:
    # The data directory and a backup's destination are printed back: doctor,
    # backup, rotate-key and rekey's prompt clean them as config check does.
    hostile = tmp_path / "var\x1b[2J\x1b]0;owned\x07\u202e"
    env = {"TIMMYBOT_DATA_DIR": str(hostile)}
    seed(admin, USER, **env)
    printed = [
        admin("doctor", **env),
        admin("audit", "rotate-key", **env),
        admin("backup", str(tmp_path / "copy\x1b[31m"), **env),
        admin("vault", "rekey", "--generate", stdin="n\n", tty=True, **env),
    ]
    for done in printed:
        assert done.out or done.err
        assert not set(done.out + done.err) & ESCAPES, done
    assert "[2J]0;owned" in printed[0].out
    assert "copy[31m" in printed[2].out
    assert "cancelled: nothing was changed" in printed[3].err


def test_an_unexpected_error_is_one_line_without_its_message(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(ctx: Any) -> int:
        raise RuntimeError(access_canary(USER))

    monkeypatch.setattr(admin_commands, "guild_list", explode)
    done = admin("guild", "list")
    assert done.code == 1
    assert one_error_line(done) == (
        "timmybot-admin: unexpected error: RuntimeError (nothing more is shown)"
    )


def test_a_database_that_cannot_be_opened_exits_1_with_the_reason(admin: Admin) -> None:
    admin.data_dir.mkdir(mode=0o700)
    (admin.data_dir / "timmybot.db").write_bytes(b"this is not a database" * 100)
    done = admin("guild", "list")
    assert done.code == 1
    assert one_error_line(done).startswith("timmybot-admin: error: cannot open the sqlite stores")


def test_verify_compares_the_digests_with_the_anchor_as_every_front_end_does(
    admin: Admin, tmp_path: Path
) -> None:
    # The progress bar wraps the log verification reads; it must not skip the
    # anchor, the one copy of the digests an attacker with the store lacks.
    anchor = tmp_path / "digest-anchor"
    seed_audit(admin, 2, TIMMYBOT_AUDIT_DIGEST_DIR=str(anchor))
    clean = admin("audit", "verify", "--json", TIMMYBOT_AUDIT_DIGEST_DIR=str(anchor))
    assert clean.code == 0, clean.out
    assert clean.json()["anchor"] == str(anchor)
    copies = sorted(anchor.rglob("*.json"))
    assert copies
    for copy in copies:
        copy.chmod(0o644)
        copy.unlink()
    for terminal in (True, False):  # with and without the progress bar
        done = admin(
            "audit",
            "verify",
            stderr=FakeTerminal() if terminal else None,
            TIMMYBOT_AUDIT_DIGEST_DIR=str(anchor),
        )
        assert done.code == 1, done.out
        assert "anchor" in done.out
