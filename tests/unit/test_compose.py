"""compose(): only the parts asked for, key files as TimmyBot keeps them, host stores in privacy."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from timmybot_bot.integrate import ConfigurationError, HostUserData, Security, Settings, compose
from timmybot_bot.integrate.composition import METRICS_CLOSE_BUDGET, close_all
from timmybot_bot.runtime import bootstrap as bootstrap_module
from timmybot_core import DataDeletionError, StoreUnavailable

ROOT = Path(__file__).resolve().parents[2]
USER = 444_444_444_444_444_444


def sqlite(tmp_path: Path) -> Settings:
    return Settings(backend="sqlite", data_dir=tmp_path / "var")


def key_files(settings: Settings) -> set[str]:
    keys = settings.data_dir / "keys"
    return {path.name for path in keys.iterdir()} if keys.exists() else set()


async def test_the_guard_alone_builds_no_vault_audit_or_privacy(tmp_path: Path) -> None:
    settings = sqlite(tmp_path)
    security = compose(settings, guard=True)
    try:
        assert security.access is not None
        assert (security.vault, security.tokens, security.audit, security.privacy) == (
            None,
            None,
            None,
            None,
        )
        await security.open()
        assert await security.access.check(1, 2, "ping") is not None
        # Only the access store was opened: the database holds its tables alone.
        with sqlite3.connect(settings.data_dir / "timmybot.db") as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert not any("vault" in name or "audit" in name for name in tables), tables
        # The data directory is TimmyBot's: its keys exist from the first start,
        # so a later composition with more parts finds them (never new ones).
        assert {"pseudonym.key", "vault.key", "data-identity.json"} <= key_files(settings)
    finally:
        await security.aclose()


async def test_a_later_composition_with_more_parts_uses_the_same_keys(tmp_path: Path) -> None:
    settings = sqlite(tmp_path)
    await compose(settings, guard=True).aclose()
    vault_key = (settings.data_dir / "keys" / "vault.key").read_bytes()
    security = compose(settings, privacy=True)
    try:
        await security.open()
        assert (settings.data_dir / "keys" / "vault.key").read_bytes() == vault_key
    finally:
        await security.aclose()


async def test_each_part_brings_its_own_keys_private(tmp_path: Path) -> None:
    settings = sqlite(tmp_path)
    security = compose(settings, guard=False, vault=True, audit=True)
    try:
        assert security.access is None and security.tokens is not None
        assert security.audit is not None
        files = key_files(settings)
        assert {"pseudonym.key", "vault.key"} <= files
        assert any("audit" in name for name in files)
        # Secret key files are 0600 (the audit keyring holds public keys only).
        for path in (settings.data_dir / "keys").glob("*.key"):
            if path.is_file():
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    finally:
        await security.aclose()


async def test_a_key_file_others_can_read_is_refused_as_timmybot_refuses_it(
    tmp_path: Path,
) -> None:
    settings = sqlite(tmp_path)
    await compose(settings, vault=True).aclose()
    (settings.data_dir / "keys" / "vault.key").chmod(0o644)
    with pytest.raises(ConfigurationError, match=r"vault\.key"):
        compose(settings, vault=True)


def test_privacy_brings_in_what_it_needs() -> None:
    security = compose(Settings(backend="memory"), guard=False, privacy=True)
    assert security.access is not None and security.tokens is not None
    assert security.audit is not None and security.privacy is not None


def test_host_data_needs_privacy() -> None:
    with pytest.raises(ValueError, match="privacy=True"):
        compose(Settings(backend="memory"), host_data=[Notes()])


def test_our_own_bootstrap_composes_with_the_same_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []
    real = bootstrap_module.compose

    def spy(settings: Settings, **kwargs: Any) -> Security:
        calls.append(kwargs)
        return real(settings, **kwargs)

    monkeypatch.setattr(bootstrap_module, "compose", spy)
    services = bootstrap_module.bootstrap(Settings(backend="memory"))
    assert len(calls) == 1 and calls[0]["privacy"] is True
    assert services.retention is not None


class Notes:
    """A host bot's own store keyed by the Discord user (HostUserData)."""

    name = "notes"

    def __init__(self) -> None:
        self.notes: dict[int, list[str]] = {}
        self.broken = False

    async def export_user(self, user_id: int) -> Mapping[str, Any]:
        if self.broken:
            raise StoreUnavailable("notes: the database is down")
        return {"notes": list(self.notes.get(user_id, []))}

    async def erase_user(self, user_id: int) -> int:
        if self.broken:
            raise StoreUnavailable("notes: the database is down")
        return len(self.notes.pop(user_id, []))


def test_a_host_store_is_host_user_data() -> None:
    assert isinstance(Notes(), HostUserData)


async def test_host_stores_join_the_export_and_the_erasure_report() -> None:
    notes = Notes()
    notes.notes[USER] = ["play more ABBA", "the bridge at 2:10"]
    security = compose(Settings(backend="memory"), privacy=True, host_data=[notes])
    assert security.privacy is not None
    try:
        export = await security.privacy.export_user_data(USER)
        assert export["host_data"] == {"notes": {"notes": ["play more ABBA", "the bridge at 2:10"]}}
        schema = json.loads((ROOT / "docs" / "schemas" / "user-export.schema.json").read_text())
        jsonschema.validate(json.loads(json.dumps(export)), schema)
        report = await security.privacy.delete_user_data(USER, "user")
        assert report.store("notes").deleted == 2
        assert "notes" in [store.store for store in report.stores]
        assert notes.notes == {}
        # Erasure is idempotent for the host's store too.
        again = await security.privacy.delete_user_data(USER, "user")
        assert again.store("notes").deleted == 0
    finally:
        await security.aclose()


async def test_a_failing_host_store_is_named_and_the_rest_is_erased() -> None:
    notes = Notes()
    notes.broken = True
    security = compose(Settings(backend="memory"), privacy=True, host_data=[notes])
    assert security.privacy is not None
    try:
        with pytest.raises(DataDeletionError) as caught:
            await security.privacy.delete_user_data(USER, "user")
        assert caught.value.failed == ("notes",)
        # An export is complete or not given at all.
        with pytest.raises(StoreUnavailable):
            await security.privacy.export_user_data(USER)
    finally:
        await security.aclose()


def test_a_host_store_needs_a_plain_unique_name() -> None:
    bad = Notes()
    bad.name = "my notes"  # type: ignore[misc]
    with pytest.raises(ValueError, match="name"):
        compose(Settings(backend="memory"), privacy=True, host_data=[bad])
    clash = Notes()
    clash.name = "vault"  # type: ignore[misc]
    with pytest.raises(ValueError, match="its own name"):
        compose(Settings(backend="memory"), privacy=True, host_data=[clash])
    with pytest.raises(TypeError, match="HostUserData"):
        compose(Settings(backend="memory"), privacy=True, host_data=[object()])  # type: ignore[list-item]


async def test_a_closer_that_fails_does_not_skip_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[str] = []

    async def database() -> None:
        closed.append("database")

    async def exporter() -> None:
        closed.append("exporter")
        raise OSError("the exporter's socket is gone")

    async def audit() -> None:
        closed.append("audit")

    with pytest.raises(OSError, match="socket is gone"):
        await close_all([database, exporter, audit])
    # Last created first, every one of them, and the failure named in the log.
    assert closed == ["audit", "exporter", "database"]
    assert "closing" in caplog.text and "OSError" in caplog.text


async def test_a_metrics_endpoint_that_never_answers_does_not_hold_the_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A collector that accepts the connection and never answers: the SDK
    # would wait its own 30 s (and retry) for the last export at shutdown.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{port}/v1/metrics")
    try:
        security = compose(
            Settings.from_env({"TIMMYBOT_BACKEND": "memory", "TIMMYBOT_METRICS_EXPORTER": "otlp"}),
            guard=True,
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        # Bounded by the close budget (METRICS_CLOSE_BUDGET), far below the SDK's own 30 s.
        await asyncio.wait_for(security.aclose(), timeout=METRICS_CLOSE_BUDGET.total_seconds() + 3)
        ticker.cancel()
        # The event loop kept running meanwhile: the export is off the loop.
        assert ticks >= int((loop.time() - started) / 0.05) // 2
    finally:
        server.close()
