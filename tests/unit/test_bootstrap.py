"""Specification of the composition root."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from timmybot_adapters.memory import MemoryAccessPolicyStore
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap, check_settings
from timmybot_bot.runtime.keys import key_id_for, load_or_create_key, parse_key
from timmybot_bot.runtime.settings import ConfigurationError
from timmybot_core import AccessReason, FakeClock, SystemClock


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_every_local_backend_composes_working_services(backend: str, tmp_path: Path) -> None:
    services = bootstrap(
        Settings(backend=backend, data_dir=tmp_path, owner_ids={7}, allowed_guilds={42})  # type: ignore[arg-type]
    )
    try:
        assert isinstance(services, Services)
        assert isinstance(services.clock, SystemClock)
        assert services.validator.validate_search_query("Halo").value == "Halo"
        assert services.sanitizer.for_discord("@here") == "\uff20here"
        assert (await services.access.check(42, 1, "search")).allowed
        assert (await services.access.check(43, 1, "search")).reason is (
            AccessReason.NOT_ALLOWLISTED
        )
        assert services.metrics.snapshot().unauthorized_access == 1
        # The rate limits on the backend's own store (SQLite: the same database file).
        for _ in range(5):
            assert (await services.limiter.check(user_id=1, guild_id=42, command="p")).allowed
        assert not (await services.limiter.check(user_id=1, guild_id=42, command="p")).allowed
    finally:
        await services.aclose()


def test_the_memory_backend_uses_memory_stores(tmp_path: Path) -> None:
    services = bootstrap(Settings(backend="memory", data_dir=tmp_path))
    assert isinstance(services.access._store, MemoryAccessPolicyStore)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_new_data_directory_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "var"
    bootstrap(Settings(backend="sqlite", data_dir=data_dir))
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


async def test_the_sqlite_backend_persists_across_restarts(tmp_path: Path) -> None:
    first = bootstrap(Settings(backend="sqlite", data_dir=tmp_path))
    await first.access.allow_guild(42, actor=7)
    await first.aclose()
    second = bootstrap(Settings(backend="sqlite", data_dir=tmp_path))
    try:
        assert await second.access.is_guild_allowed(42)
        assert second.pseudonymizer.key_id == first.pseudonymizer.key_id
    finally:
        await second.aclose()


async def test_the_aws_backend_composes_the_aws_adapters_without_calling_aws(
    tmp_path: Path,
) -> None:
    from timmybot_adapters.aws import DynamoUserDataStore, SecretsManagerTokenVault, SnsAlerter

    topic = "arn:aws:sns:eu-west-1:123456789012:timmybot-security-alerts"
    services = bootstrap(
        Settings(
            backend="aws",
            data_dir=tmp_path,
            aws_region="eu-west-1",
            # Nothing listens there: building the services must not call AWS.
            aws_endpoint_url="http://127.0.0.1:9",
            aws_alert_topic_arn=topic,
            aws_kms_key_id="alias/timmybot",
        )
    )
    try:
        assert isinstance(services.vault, SecretsManagerTokenVault)
        assert services.vault.secret_name(7) == "/timmybot/users/7/oauth"
        assert isinstance(services.user_data, DynamoUserDataStore)
        assert services.user_data.table == "timmybot-user-data"
        assert isinstance(services.alerter, SnsAlerter)
    finally:
        await services.aclose()


def test_bootstrap_uses_the_given_clock_and_policy(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    services = bootstrap(
        Settings(backend="memory", validation_policy="strict", allow_http_urls=True),
        clock=clock,
    )
    assert services.clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    assert not services.validator.validate_search_query("Drop It Like It's Hot").ok
    assert services.sanitizer.validate_url("http://example.com/") == "http://example.com/"


class TestKeys:
    def test_a_key_file_is_created_once_with_mode_0600(self, tmp_path: Path) -> None:
        path = tmp_path / "keys" / "pseudonym.key"
        key = load_or_create_key(path, purpose="pseudonym")
        assert len(key) == 32
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert load_or_create_key(path, purpose="pseudonym") == key
        assert key.hex() not in key_id_for(key, "p")

    def test_a_key_file_readable_by_others_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "pseudonym.key"
        load_or_create_key(path, purpose="pseudonym")
        path.chmod(0o644)
        with pytest.raises(ConfigurationError, match="chmod 600"):
            load_or_create_key(path, purpose="pseudonym")

    def test_a_damaged_key_file_is_refused_not_replaced(self, tmp_path: Path) -> None:
        path = tmp_path / "pseudonym.key"
        path.write_text("{not json")
        path.chmod(0o600)
        with pytest.raises(ConfigurationError, match="damaged"):
            load_or_create_key(path, purpose="pseudonym")
        assert path.read_text() == "{not json"

    @pytest.mark.parametrize(
        "raw",
        [
            "ab" * 32,
            "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=",
            "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng",
        ],
    )
    def test_keys_parse_from_hex_or_base64(self, raw: str) -> None:
        assert len(parse_key("TIMMYBOT_PSEUDONYM_KEY", raw)) == 32

    @pytest.mark.parametrize("raw", ["ab" * 16, "not a key!", ""])
    def test_short_or_malformed_keys_are_refused_without_echo(self, raw: str) -> None:
        with pytest.raises(ConfigurationError) as caught:
            parse_key("TIMMYBOT_PSEUDONYM_KEY", raw)
        assert "TIMMYBOT_PSEUDONYM_KEY" in str(caught.value)
        if raw:
            assert raw not in str(caught.value)

    def test_the_configured_key_drives_the_pseudonyms(self) -> None:
        services = bootstrap(Settings(backend="memory", pseudonym_key="cd" * 32))
        again = bootstrap(Settings(backend="memory", pseudonym_key="cd" * 32))
        assert services.pseudonymizer.user(1) == again.pseudonymizer.user(1)


def test_bad_aws_settings_fail_before_anything_is_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with pytest.raises(ConfigurationError, match="TIMMYBOT_BACKEND=aws: the secret prefix"):
        bootstrap(Settings(backend="aws", data_dir=data_dir, aws_secret_prefix="no-slash"))
    assert not data_dir.exists()


@pytest.mark.parametrize("key", [None, "alias/aws/secretsmanager"])
def test_the_aws_backend_refuses_to_start_without_a_customer_managed_key(
    tmp_path: Path, key: str | None
) -> None:
    settings = Settings(backend="aws", data_dir=tmp_path / "var", aws_kms_key_id=key)
    with pytest.raises(ConfigurationError, match=r"^TIMMYBOT_AWS_KMS_KEY_ID must name"):
        check_settings(settings)
    with pytest.raises(ConfigurationError, match="TIMMYBOT_AWS_KMS_KEY_ID"):
        bootstrap(settings)
    assert not (tmp_path / "var").exists()


def test_check_settings_finds_a_bad_key_without_side_effects(tmp_path: Path) -> None:
    from timmybot_bot.runtime.bootstrap import check_settings

    with pytest.raises(ConfigurationError, match="TIMMYBOT_PSEUDONYM_KEY"):
        check_settings(Settings(backend="sqlite", data_dir=tmp_path / "v", pseudonym_key="abcd"))
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("client_id", ["c" * 257, "tab\tinside", "zero\u200bwidth"])
def test_a_client_id_the_provider_refuses_names_the_setting(tmp_path: Path, client_id: str) -> None:
    settings = Settings(backend="sqlite", data_dir=tmp_path / "v", spotify_client_id=client_id)
    with pytest.raises(ConfigurationError, match=r"^TIMMYBOT_SPOTIFY_CLIENT_ID: ") as caught:
        check_settings(settings)
    assert client_id not in str(caught.value)
    with pytest.raises(ConfigurationError, match=r"^TIMMYBOT_SPOTIFY_CLIENT_ID: "):
        bootstrap(settings)
    assert not (tmp_path / "v").exists()


async def test_the_prometheus_exporter_is_reachable_for_the_web_server(tmp_path: Path) -> None:
    services = bootstrap(Settings(backend="memory", metrics_exporter="prometheus"))
    try:
        services.metrics.record_unauthorized_access()
        assert services.metrics_source is not None
        assert b"timmybot_security_unauthorized_access_total" in (
            services.metrics_source.prometheus_text()
        )
    finally:
        await services.aclose()


@pytest.mark.parametrize("env", [{"web_port": 0}, {"web_host": "0.0.0.0"}])
def test_a_callback_address_browsers_cannot_reach_needs_a_public_url(
    env: dict[str, object], tmp_path: Path
) -> None:
    from timmybot_bot.runtime.bootstrap import check_settings

    with pytest.raises(ConfigurationError, match="TIMMYBOT_PUBLIC_URL is needed"):
        check_settings(Settings(backend="memory", **env))  # type: ignore[arg-type]
    check_settings(Settings(backend="memory", public_url="https://bot.example.com", **env))  # type: ignore[arg-type]
