"""Settings of the bot, read from ``TIMMYBOT_*`` environment variables.

An optional TOML file (``--config PATH`` or ``TIMMYBOT_CONFIG_FILE``) may
hold the same settings, under the variable's name without the prefix, in
lower case (``backend = "sqlite"``); environment variables override it.

Every problem is reported as a :class:`ConfigurationError` that names the
variable (or the file's key) and says what is wrong; secret values are
never echoed.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import socket
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Literal, get_args
from urllib.parse import urlsplit

import attrs

from timmybot_bot.cron import CronError, CronSchedule
from timmybot_bot.web_clients import IPNetwork, parse_networks
from timmybot_core import TimmyBotError
from timmybot_core.domain.snowflake import (
    MAX_SNOWFLAKE,
    SnowflakeError,
    parse_snowflake,
    parse_whole_number,
)

__all__ = [
    "MAX_SNOWFLAKE",
    "Backend",
    "ConfigurationError",
    "MetricsExporter",
    "PolicyName",
    "Settings",
    "format_host",
    "listens_everywhere",
]

Backend = Literal["memory", "sqlite", "aws"]
PolicyName = Literal["default", "strict"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
MetricsExporter = Literal["none", "console", "otlp", "prometheus", "emf"]
TlsVersion = Literal["1.2", "1.3"]

PREFIX: Final = "TIMMYBOT_"


class ConfigurationError(TimmyBotError):
    """A setting is missing or malformed; the message names the variable."""


def _choice(options: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in {option.lower() for option in options}:
            raise ConfigurationError(
                f"{name} must be one of {', '.join(options)} (got {raw.strip()!r})"
            )
        return next(option for option in options if option.lower() == value)

    return parse


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false (got {raw.strip()!r})")


def _path(name: str, raw: str) -> Path:
    if not raw.strip():
        raise ConfigurationError(f"{name} must be a directory path (got an empty value)")
    return Path(raw.strip()).expanduser()


def _snowflakes(name: str, raw: str) -> frozenset[int]:
    ids: set[int] = set()
    for part in re.split(r"[\s,]+", raw.strip()):
        if not part:
            continue
        try:
            ids.add(parse_snowflake(part))
        except SnowflakeError:
            raise ConfigurationError(
                f"{name} must be Discord IDs (the digits 0-9, 1 to 2**64 - 1, no leading zero) "
                f"separated by commas (got {part[:30]!r})"
            ) from None
    return frozenset(ids)


def _positive_int(name: str, raw: str) -> int:
    value = raw.strip()
    try:
        return parse_whole_number(value, minimum=1, maximum=10**12)
    except SnowflakeError:
        raise ConfigurationError(
            f"{name} must be a whole number of at least 1, in the digits 0-9 (got {value[:30]!r})"
        ) from None


# ASCII digits only (``\d`` would take any script's digits); at most 9 per part.
_DURATION = re.compile(
    r"(?:([0-9]{1,9})d)?(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m)?(?:([0-9]{1,9})s)?", re.ASCII
)
_MAX_DURATION_SECONDS: Final = 100 * 365 * 86400


def _duration(name: str, raw: str) -> timedelta:
    value = raw.strip().lower()
    if re.fullmatch(r"[0-9]{1,12}", value, re.ASCII):
        seconds = int(value)
    else:
        match = _DURATION.fullmatch(value)
        if not value or match is None:
            raise ConfigurationError(
                f"{name} must be a duration such as 90, 90s, 15m, 1h or 1h30m (got {value!r})"
            )
        days, hours, minutes, secs = (int(group or 0) for group in match.groups())
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds < 1:
        raise ConfigurationError(f"{name} must be at least one second (got {value[:30]!r})")
    if seconds > _MAX_DURATION_SECONDS:
        raise ConfigurationError(f"{name} must be at most 100 years (got {value[:30]!r})")
    return timedelta(seconds=seconds)


def _port(name: str, raw: str) -> int:
    value = raw.strip()
    try:
        return parse_whole_number(value, maximum=65535)
    except SnowflakeError:
        raise ConfigurationError(
            f"{name} must be a TCP port, 0 to 65535 (got {value[:30]!r})"
        ) from None


def _host(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() or c in "/@" for c in value):
        raise ConfigurationError(f"{name} must be a host name or IP address (got {value!r})")
    return value


def listens_everywhere(host: str) -> bool:
    """Whether binding ``host`` listens on every interface (an unspecified address).

    Read as the socket layer reads it, not as text: ``0``, ``0.0``,
    ``0x0``, ``000.0.0.0`` (``inet_aton``'s legacy forms), ``::``, ``::0``,
    ``0:0::0``, ``[::]``, ``::ffff:0.0.0.0`` and the empty host all mean
    "everywhere". A name is not resolved: it listens where it resolves to.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text:
        return True
    if ":" in text:
        try:
            packed = socket.inet_pton(socket.AF_INET6, text.partition("%")[0])
        except OSError:
            return False
        # :: itself, or an IPv4-mapped / IPv4-compatible unspecified address.
        return packed == bytes(16) or packed == bytes(10) + b"\xff\xff" + bytes(4)
    try:
        return socket.inet_aton(text) == bytes(4)
    except OSError:
        return False


def format_host(host: str) -> str:
    """Return ``host`` as it goes in a URL: an IPv6 address in brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _public_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/@]+(?::[0-9]{1,5})?(?:/[^\s]*)?$", value):
        raise ConfigurationError(
            f"{name} must be the URL users' browsers reach the bot at, such as "
            f"https://bot.example.com (got {value!r})"
        )
    return value


def _networks(name: str, raw: str) -> tuple[IPNetwork, ...]:
    try:
        return parse_networks(raw)
    except ValueError as error:
        raise ConfigurationError(
            f"{name} must be IP addresses or CIDR networks separated by commas: {error}"
        ) from None


def _file(name: str, raw: str) -> Path:
    if not raw.strip():
        raise ConfigurationError(f"{name} must be a file path (got an empty value)")
    return Path(raw.strip()).expanduser()


def _secret(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigurationError(f"{name} is set but empty; unset it or give a value")
    return value


_MAX_SHARD: Final = 65_535


def _shard_ids(name: str, raw: str) -> tuple[int, ...]:
    ids: set[int] = set()
    for part in re.split(r"[\s,]+", raw.strip()):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low = parse_whole_number(first, maximum=_MAX_SHARD)
            high = parse_whole_number(last, maximum=_MAX_SHARD) if dash else low
        except SnowflakeError:
            raise ConfigurationError(
                f"{name} must be shard numbers (0, 1, ...) or ranges such as 0-3, separated "
                f"by commas (got {part[:30]!r})"
            ) from None
        if low > high:
            raise ConfigurationError(f"{name}: the range {part!r} goes backwards")
        ids.update(range(low, high + 1))
    if not ids:
        raise ConfigurationError(f"{name} must list at least one shard number (got an empty value)")
    return tuple(sorted(ids))


_AWS_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$", re.ASCII)
_KMS_KEY = re.compile(
    r"^(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key|alias)/[A-Za-z0-9/_-]+"
    r"|alias/[A-Za-z0-9/_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|mrk-[0-9a-f]{32})$",
    re.ASCII,
)
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$", re.ASCII)
_SECRET_PREFIX = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,400}/$")
_TABLE_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def _pattern(pattern: re.Pattern[str], example: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        if not pattern.match(value):
            raise ConfigurationError(f"{name} must look like {example} (got {value[:80]!r})")
        return value

    return parse


def _endpoint_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/@]+(?::[0-9]{1,5})?(?:/[^\s]*)?$", value):
        raise ConfigurationError(
            f"{name} must be an http(s) URL such as http://127.0.0.1:4566 (got {value[:80]!r})"
        )
    return value


def _loopback_url(name: str, raw: str) -> str:
    """Parse the test-only Discord API URL: loopback only, never a real host."""
    value = raw.strip().rstrip("/")
    # Credentials in a URL stay out of the message.
    shown = "a URL with credentials" if "@" in value else repr(value[:80])
    refused = ConfigurationError(
        f"{name} is for tests only and must be an http(s) URL on a loopback address, such as "
        f"http://127.0.0.1:8080/api/v10 (got {shown})"
    )
    try:
        parts = urlsplit(value)
        host = ipaddress.ip_address(parts.hostname or "")
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        raise refused from None
    if parts.scheme not in ("http", "https") or not host.is_loopback or parts.username:
        raise refused
    return value


def _cron(name: str, raw: str) -> CronSchedule:
    try:
        return CronSchedule.parse(raw)
    except CronError as error:
        raise ConfigurationError(f"{name} must be a cron expression (UTC): {error}") from None


_LOG_GROUP = re.compile(r"^[A-Za-z0-9_\-/.#]{1,512}$")


def _log_group(name: str, raw: str) -> str:
    value = raw.strip()
    if not _LOG_GROUP.match(value):
        raise ConfigurationError(
            f"{name} must be a CloudWatch Logs group name (1 to 512 of A-Z a-z 0-9 _ - / . #), "
            "for example /timmybot/security"
        )
    return value


# environment variable -> (Settings field, parser)
_VARIABLES: Final[dict[str, tuple[str, Callable[[str, str], Any]]]] = {
    "TIMMYBOT_BACKEND": ("backend", _choice(get_args(Backend))),
    "TIMMYBOT_DATA_DIR": ("data_dir", _path),
    "TIMMYBOT_VALIDATION_POLICY": ("validation_policy", _choice(get_args(PolicyName))),
    "TIMMYBOT_ALLOW_HTTP_URLS": ("allow_http_urls", _boolean),
    "TIMMYBOT_LOG_LEVEL": ("log_level", _choice(get_args(LogLevel))),
    "TIMMYBOT_OWNER_IDS": ("owner_ids", _snowflakes),
    "TIMMYBOT_ADMIN_ROLE_IDS": ("admin_role_ids", _snowflakes),
    "TIMMYBOT_ALLOWED_GUILDS": ("allowed_guilds", _snowflakes),
    "TIMMYBOT_ALLOW_DMS": ("allow_direct_messages", _boolean),
    "TIMMYBOT_ATTEMPT_LIMIT": ("attempt_limit", _positive_int),
    "TIMMYBOT_ATTEMPT_WINDOW": ("attempt_window", _duration),
    "TIMMYBOT_BAN_DURATION": ("ban_duration", _duration),
    "TIMMYBOT_LOCKDOWN_ATTEMPT_LIMIT": ("lockdown_attempt_limit", _positive_int),
    "TIMMYBOT_LOCKDOWN_DURATION": ("lockdown_duration", _duration),
    "TIMMYBOT_METRICS_EXPORTER": ("metrics_exporter", _choice(get_args(MetricsExporter))),
    "TIMMYBOT_METRICS_INTERVAL": ("metrics_interval", _duration),
    "TIMMYBOT_PSEUDONYM_KEY": ("pseudonym_key", _secret),
    "TIMMYBOT_VAULT_KEY": ("vault_key", _secret),
    "TIMMYBOT_AUDIT_SIGNING_KEY": ("audit_signing_key", _secret),
    "TIMMYBOT_AUDIT_RETENTION": ("audit_retention", _duration),
    "TIMMYBOT_AUDIT_DIGEST_INTERVAL": ("audit_digest_interval", _duration),
    "TIMMYBOT_WEB_HOST": ("web_host", _host),
    "TIMMYBOT_WEB_PORT": ("web_port", _port),
    "TIMMYBOT_PUBLIC_URL": ("public_url", _public_url),
    "TIMMYBOT_WEB_TRUSTED_PROXIES": ("web_trusted_proxies", _networks),
    "TIMMYBOT_WEB_CALLBACK_RATE_LIMIT": ("web_callback_rate_limit", _positive_int),
    "TIMMYBOT_WEB_TLS_CERT": ("web_tls_cert", _file),
    "TIMMYBOT_WEB_TLS_KEY": ("web_tls_key", _file),
    "TIMMYBOT_WEB_METRICS_CLIENT_CA": ("web_metrics_client_ca", _file),
    "TIMMYBOT_OAUTH_MIN_TLS": ("oauth_min_tls", _choice(get_args(TlsVersion))),
    "TIMMYBOT_OAUTH_TIMEOUT": ("oauth_timeout", _duration),
    "TIMMYBOT_TOKEN_CLAIM_TIMEOUT": ("token_claim_timeout", _duration),
    "TIMMYBOT_SPOTIFY_CLIENT_ID": ("spotify_client_id", _secret),
    "TIMMYBOT_SPOTIFY_CLIENT_SECRET": ("spotify_client_secret", _secret),
    "TIMMYBOT_DISCORD_CLIENT_ID": ("discord_client_id", _secret),
    "TIMMYBOT_DISCORD_CLIENT_SECRET": ("discord_client_secret", _secret),
    "TIMMYBOT_CONFIG_FILE": ("config_file", _path),
    "TIMMYBOT_SHARD_IDS": ("shard_ids", _shard_ids),
    "TIMMYBOT_SHARD_COUNT": ("shard_count", _positive_int),
    "TIMMYBOT_ROTATION_SCHEDULE": ("rotation_schedule", _cron),
    "TIMMYBOT_CLEANUP_SCHEDULE": ("cleanup_schedule", _cron),
    "TIMMYBOT_AWS_REGION": ("aws_region", _pattern(_AWS_REGION, "eu-west-1")),
    "TIMMYBOT_AWS_ENDPOINT_URL": ("aws_endpoint_url", _endpoint_url),
    "TIMMYBOT_AWS_DYNAMODB_ENDPOINT_URL": ("aws_dynamodb_endpoint_url", _endpoint_url),
    "TIMMYBOT_AWS_TABLE_PREFIX": (
        "aws_table_prefix",
        _pattern(_TABLE_PREFIX, "timmybot- (letters, digits, '_', '-', '.')"),
    ),
    "TIMMYBOT_AWS_SECRET_PREFIX": (
        "aws_secret_prefix",
        _pattern(_SECRET_PREFIX, "/timmybot/users/ (ending with '/')"),
    ),
    "TIMMYBOT_AWS_KMS_KEY_ID": (
        "aws_kms_key_id",
        _pattern(_KMS_KEY, "a KMS key ID, key ARN, alias/name or alias ARN"),
    ),
    "TIMMYBOT_AWS_ALERT_TOPIC_ARN": (
        "aws_alert_topic_arn",
        _pattern(_TOPIC_ARN, "arn:aws:sns:eu-west-1:123456789012:timmybot-security-alerts"),
    ),
    "TIMMYBOT_AWS_CONNECT_TIMEOUT": ("aws_connect_timeout", _duration),
    "TIMMYBOT_AWS_READ_TIMEOUT": ("aws_read_timeout", _duration),
    "TIMMYBOT_AWS_MAX_ATTEMPTS": ("aws_max_attempts", _positive_int),
    "TIMMYBOT_AWS_SECURITY_LOG_GROUP": ("aws_security_log_group", _log_group),
    "TIMMYBOT_AWS_AUDIT_LOG_GROUP": ("aws_audit_log_group", _log_group),
    # Tests only: point hikari's REST client at a Discord stand-in on loopback.
    "TIMMYBOT_TEST_DISCORD_API_URL": ("test_discord_api_url", _loopback_url),
    # Discord's own conventional name, and a prefixed alias.
    "DISCORD_TOKEN": ("discord_token", _secret),
    "TIMMYBOT_DISCORD_TOKEN": ("discord_token", _secret),
}


def _network_tuple(values: str | Iterable[IPNetwork | str]) -> tuple[IPNetwork, ...]:
    if isinstance(values, str):
        return parse_networks(values)
    return tuple(parse_networks(value)[0] if isinstance(value, str) else value for value in values)


def _id_set(values: Iterable[int]) -> frozenset[int]:
    return frozenset(values)


def _shard_tuple(values: Iterable[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(sorted(set(values)))


def _schedule(value: CronSchedule | str) -> CronSchedule:
    return value if isinstance(value, CronSchedule) else CronSchedule.parse(value)


DEFAULT_ROTATION_SCHEDULE: Final = CronSchedule.parse("0 2 * * *")
DEFAULT_CLEANUP_SCHEDULE: Final = CronSchedule.parse("0 3 * * *")


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the composition root needs to build the services.

    Attributes:
        backend: where state lives: ``memory`` (nothing persists), ``sqlite``
            (the embedded default, files under ``data_dir``) or ``aws``.
        data_dir: directory for the SQLite databases and local key files.
        validation_policy: ``default`` (shape-based) or ``strict`` (the seed's
            keyword blocklist on top).
        allow_http_urls: accept plain ``http`` thumbnails and links.
        log_level: the root log level.
        discord_token: the bot token; without it the offline console runs.
        owner_ids: users who pass every access check and may run admin commands.
        admin_role_ids: Discord roles whose members may run admin commands in
            their guild (they still pass the access guard like anyone else).
        allowed_guilds: guilds always allowed, besides the run-time allowlist.
        allow_direct_messages: whether commands work in direct messages.
        attempt_limit: denied attempts per guild within ``attempt_window``
            before a temporary ban.
        attempt_window: the sliding window for counting attempts.
        ban_duration: how long a ban lasts.
        lockdown_attempt_limit: the attempt limit during a P1 lockdown.
        lockdown_duration: how long a P1 lockdown lasts.
        metrics_exporter: where security metrics go: ``none`` (kept in
            memory), ``console``, ``otlp``, ``prometheus`` (served by the web
            server) or ``emf`` (CloudWatch Embedded Metric Format on stdout).
        metrics_interval: how often periodic exporters export.
        pseudonym_key: the key for pseudonyms in logs (hex or base64, at
            least 32 bytes); without it a key file under ``data_dir`` is used
            (``memory`` backend: a key per process).
        vault_key: the AES-256 key of the token vault (hex or base64, exactly
            32 bytes); without it ``data_dir/keys/vault.key`` is used.
        audit_signing_key: the Ed25519 seed that signs audit digests (hex or
            base64, exactly 32 bytes); without it
            ``data_dir/keys/audit-signing.key`` is used. Public keys, current
            and retired, are kept in ``data_dir/keys/audit-keyring.json``.
        audit_retention: how long audit records are kept (365 days), unless
            an incident's retention hold covers them.
        audit_digest_interval: the longest an audit record waits for a
            signed digest (5 minutes; a digest is also written on shutdown).
        web_host, web_port: where the web server (OAuth callback, health)
            listens; 127.0.0.1:8080 by default.
        public_url: the base URL browsers reach the web server at; the OAuth
            redirect URI is ``{public_url}/oauth/callback``.
        web_trusted_proxies: proxies whose ``X-Forwarded-For`` names the
            client (none by default: the TCP peer is the client).
        web_callback_rate_limit: callback requests per minute one client
            address (an IPv6 /64) may make before answers are 429 (30).
        web_tls_cert, web_tls_key: a PEM certificate chain and its private
            key: the web server then speaks HTTPS itself.
        web_metrics_client_ca: with TLS, a PEM CA bundle: ``/metrics`` then
            answers only clients presenting a certificate it issued.
        oauth_min_tls: the lowest TLS version for OAuth providers (1.2 or 1.3).
        oauth_timeout: the bound of one call to an OAuth provider (connect,
            send and answer together; 10 s).
        token_claim_timeout: how long another process must see a refresh
            claim unchanged before it takes over (30 s); at least twice the
            OAuth timeout plus 5 s for the vault write, checked at start-up.
        spotify_client_id, spotify_client_secret, discord_client_id,
        discord_client_secret: OAuth client credentials; a platform is
            offered for linking when its client ID is set.
        config_file: the TOML file the settings were read from, if any.
        shard_ids: the Discord shards this process runs (``None``: all of
            ``shard_count``, or as many as Discord recommends).
        shard_count: the total number of shards of the bot (``None``: as
            many as Discord recommends).
        rotation_schedule: when the token rotation job runs (cron, UTC).
        cleanup_schedule: when the data clean-up job runs (cron, UTC).
        aws_region: the AWS region of the ``aws`` backend (``None``: boto3's
            own lookup, ``AWS_REGION`` and so on).
        aws_endpoint_url, aws_dynamodb_endpoint_url: endpoints replacing
            AWS's own, for local servers and tests (moto, dynalite); the
            DynamoDB one defaults to ``aws_endpoint_url``.
        aws_table_prefix: the DynamoDB tables are ``{prefix}access``,
            ``{prefix}link-states``, ``{prefix}incidents``, ``{prefix}audit``
            and ``{prefix}user-data`` (the stack's ``TablePrefix`` output).
        aws_secret_prefix: users' token secrets are ``{prefix}{user}/oauth``.
        aws_kms_key_id: the customer-managed KMS key the token secrets are
            created with (``None``: the account's ``aws/secretsmanager`` key).
        aws_alert_topic_arn: the SNS topic alerts go to (``None``: alerts are
            log lines only).
        aws_connect_timeout, aws_read_timeout: per-call timeouts of boto3.
        aws_max_attempts: attempts per AWS call, the first included
            (botocore's standard retry mode).
        aws_security_log_group, aws_audit_log_group: CloudWatch Logs groups
            the ``timmybot.security`` and ``timmybot.audit`` log lines are
            also sent to (``aws`` backend; ``None``: not sent). Lines that
            cannot be delivered wait in ``data_dir/spool/``.
        test_discord_api_url: tests only. The base URL of Discord's REST API
            for hikari (``None``: Discord's own); it names the gateway in its
            ``/gateway/bot`` answer. Refused unless it is on a loopback
            address, so it can only point the bot at a stand-in on this
            machine, never at another host.
    """

    backend: Backend = "sqlite"
    data_dir: Path = Path("var")
    validation_policy: PolicyName = "default"
    allow_http_urls: bool = False
    log_level: LogLevel = "INFO"
    discord_token: str | None = attrs.field(default=None, repr=False)
    owner_ids: frozenset[int] = attrs.field(factory=frozenset, converter=_id_set)
    admin_role_ids: frozenset[int] = attrs.field(factory=frozenset, converter=_id_set)
    allowed_guilds: frozenset[int] = attrs.field(factory=frozenset, converter=_id_set)
    allow_direct_messages: bool = False
    attempt_limit: int = 10
    attempt_window: timedelta = timedelta(hours=1)
    ban_duration: timedelta = timedelta(hours=1)
    lockdown_attempt_limit: int = 3
    lockdown_duration: timedelta = timedelta(hours=6)
    metrics_exporter: MetricsExporter = "none"
    metrics_interval: timedelta = timedelta(seconds=60)
    pseudonym_key: str | None = attrs.field(default=None, repr=False)
    vault_key: str | None = attrs.field(default=None, repr=False)
    audit_signing_key: str | None = attrs.field(default=None, repr=False)
    audit_retention: timedelta = timedelta(days=365)
    audit_digest_interval: timedelta = timedelta(minutes=5)
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    public_url: str | None = None
    web_trusted_proxies: tuple[IPNetwork, ...] = attrs.field(default=(), converter=_network_tuple)
    web_callback_rate_limit: int = 30
    web_tls_cert: Path | None = None
    web_tls_key: Path | None = None
    web_metrics_client_ca: Path | None = None
    oauth_min_tls: TlsVersion = "1.2"
    oauth_timeout: timedelta = timedelta(seconds=10)
    token_claim_timeout: timedelta = timedelta(seconds=30)
    spotify_client_id: str | None = None
    spotify_client_secret: str | None = attrs.field(default=None, repr=False)
    discord_client_id: str | None = None
    discord_client_secret: str | None = attrs.field(default=None, repr=False)
    config_file: Path | None = None
    shard_ids: tuple[int, ...] | None = attrs.field(default=None, converter=_shard_tuple)
    shard_count: int | None = None
    rotation_schedule: CronSchedule = attrs.field(
        default=DEFAULT_ROTATION_SCHEDULE, converter=_schedule
    )
    cleanup_schedule: CronSchedule = attrs.field(
        default=DEFAULT_CLEANUP_SCHEDULE, converter=_schedule
    )
    aws_region: str | None = None
    aws_endpoint_url: str | None = None
    aws_dynamodb_endpoint_url: str | None = None
    aws_table_prefix: str = "timmybot-"
    aws_secret_prefix: str = "/timmybot/users/"  # noqa: S105 - a name prefix, not a secret
    aws_kms_key_id: str | None = None
    aws_alert_topic_arn: str | None = None
    aws_connect_timeout: timedelta = timedelta(seconds=3)
    aws_read_timeout: timedelta = timedelta(seconds=10)
    aws_max_attempts: int = 4
    aws_security_log_group: str | None = None
    aws_audit_log_group: str | None = None
    test_discord_api_url: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_shards(self.shard_ids, self.shard_count, "shard_ids", "shard_count")

    @property
    def redirect_uri(self) -> str:
        """The OAuth redirect URI: ``{public_url}/oauth/callback``."""
        scheme = "https" if self.web_tls_cert else "http"
        base = self.public_url or f"{scheme}://{format_host(self.web_host)}:{self.web_port}"
        return f"{base}/oauth/callback"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, config_file: Path | None = None
    ) -> Settings:
        """Read settings from ``environ`` (default: ``os.environ``) and a TOML file.

        The file is ``config_file`` if given (``--config``), else the one
        ``TIMMYBOT_CONFIG_FILE`` names, else none. Environment variables
        override the file's values. Unset settings keep their defaults. A
        malformed value, a value of the wrong TOML type, an unknown
        ``TIMMYBOT_*`` variable or file key (usually a typo that would
        otherwise be silently ignored), or a file holding secrets that others
        can read raises :class:`ConfigurationError`.
        """
        env = os.environ if environ is None else environ
        unknown = sorted(name for name in env if name.startswith(PREFIX) and name not in _VARIABLES)
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, list(_VARIABLES), n=1, cutoff=0.8)
                hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
            raise ConfigurationError(
                "unknown setting " + ", ".join(hints) + "; known: " + ", ".join(sorted(_VARIABLES))
            )
        values: dict[str, Any] = {}
        names = {field: name for name, (field, _) in reversed(_VARIABLES.items())}
        for name, (field, parse) in _VARIABLES.items():
            raw = env.get(name)
            if raw is None:
                continue
            if field in values:
                continue  # DISCORD_TOKEN wins over its alias
            values[field] = parse(name, raw)
            names[field] = name
        path = config_file if config_file is not None else values.get("config_file")
        if path is not None:
            in_file, file_names = _read_config_file(Path(path))
            for field, value in in_file.items():
                if field not in values:  # the environment overrides the file
                    values[field] = value
                    names[field] = file_names[field]
            values["config_file"] = Path(path)
        _check_shards(
            values.get("shard_ids"),
            values.get("shard_count"),
            names["shard_ids"],
            names["shard_count"],
        )
        return cls(**values)

    def describe(self) -> dict[str, str]:
        """Return the settings as text, secrets replaced by whether they are set."""
        return {
            "backend": self.backend,
            "data_dir": str(self.data_dir),
            "validation_policy": self.validation_policy,
            "allow_http_urls": str(self.allow_http_urls).lower(),
            "log_level": self.log_level,
            "discord_token": "set" if self.discord_token else "not set",
            "owner_ids": ",".join(str(i) for i in sorted(self.owner_ids)) or "(none)",
            "admin_role_ids": ",".join(str(i) for i in sorted(self.admin_role_ids)) or "(none)",
            "allowed_guilds": ",".join(str(i) for i in sorted(self.allowed_guilds)) or "(none)",
            "allow_direct_messages": str(self.allow_direct_messages).lower(),
            "attempt_limit": str(self.attempt_limit),
            "attempt_window": str(self.attempt_window),
            "ban_duration": str(self.ban_duration),
            "lockdown_attempt_limit": str(self.lockdown_attempt_limit),
            "lockdown_duration": str(self.lockdown_duration),
            "metrics_exporter": self.metrics_exporter,
            "metrics_interval": str(self.metrics_interval),
            "pseudonym_key": "set" if self.pseudonym_key else "key file / per process",
            "vault_key": "set" if self.vault_key else "key file / per process",
            "audit_signing_key": "set" if self.audit_signing_key else "key file / per process",
            "audit_retention": str(self.audit_retention),
            "audit_digest_interval": str(self.audit_digest_interval),
            "web": f"{self.web_host}:{self.web_port}",
            "web_trusted_proxies": ", ".join(str(n) for n in self.web_trusted_proxies)
            or "(none: the TCP peer is the client)",
            "web_callback_rate_limit": f"{self.web_callback_rate_limit} per minute per client",
            "web_tls": f"{self.web_tls_cert} (key {self.web_tls_key})"
            if self.web_tls_cert
            else "off (plain HTTP)",
            "web_metrics_client_ca": str(self.web_metrics_client_ca)
            if self.web_metrics_client_ca
            else "(none: /metrics needs no client certificate)",
            "redirect_uri": self.redirect_uri,
            "oauth_min_tls": self.oauth_min_tls,
            "oauth_timeout": str(self.oauth_timeout),
            "token_claim_timeout": str(self.token_claim_timeout),
            "spotify": "configured" if self.spotify_client_id else "not configured",
            "discord": "configured" if self.discord_client_id else "not configured",
            "config_file": str(self.config_file) if self.config_file else "(none)",
            "shard_ids": ",".join(str(i) for i in self.shard_ids) if self.shard_ids else "(all)",
            "shard_count": str(self.shard_count) if self.shard_count else "(Discord's choice)",
            "rotation_schedule": f"{self.rotation_schedule} (UTC)",
            "cleanup_schedule": f"{self.cleanup_schedule} (UTC)",
            "aws_region": self.aws_region or "(boto3 default)",
            "aws_endpoints": ", ".join(
                url for url in (self.aws_endpoint_url, self.aws_dynamodb_endpoint_url) if url
            )
            or "(AWS)",
            "aws_table_prefix": self.aws_table_prefix,
            "aws_secret_prefix": self.aws_secret_prefix,
            "aws_kms_key_id": self.aws_kms_key_id or "(aws/secretsmanager)",
            "aws_alert_topic_arn": self.aws_alert_topic_arn or "(alerts in the log only)",
            "aws_timeouts": (
                f"connect {self.aws_connect_timeout}, read {self.aws_read_timeout}, "
                f"{self.aws_max_attempts} attempts"
            ),
            "aws_log_groups": ", ".join(
                group for group in (self.aws_security_log_group, self.aws_audit_log_group) if group
            )
            or "(container output only)",
        } | (
            # Shown only when set: a test-only setting that must never go unnoticed.
            {"test_discord_api_url": f"{self.test_discord_api_url} (TESTS ONLY)"}
            if self.test_discord_api_url
            else {}
        )


def _check_shards(
    ids: tuple[int, ...] | None, count: int | None, ids_name: str, count_name: str
) -> None:
    if ids is None:
        return
    if count is None:
        raise ConfigurationError(
            f"{ids_name} needs {count_name}: shard numbers only mean something out of a total"
        )
    beyond = [shard for shard in ids if shard >= count]
    if beyond:
        raise ConfigurationError(
            f"{ids_name} lists shard {beyond[0]}, but {count_name} is {count}: "
            f"shards are numbered 0 to {count - 1}"
        )


# What a TOML value of each parser's setting must be; a parser not listed
# here takes a TOML string, like an environment variable.
_TOML_INTEGER: Final = (_positive_int, _port)
_TOML_DURATION: Final = (_duration,)
_TOML_BOOLEAN: Final = (_boolean,)
_TOML_INTEGER_LIST: Final = (_snowflakes, _shard_ids)


def _toml_type(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    if type(value) in names:
        return names[type(value)]
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def _toml_text(key: str, value: object, parse: Callable[[str, str], Any]) -> str:
    """Turn a TOML value into the text its parser reads, or refuse its type."""
    if parse in _TOML_BOOLEAN:
        if type(value) is bool:
            return "true" if value else "false"
        wanted = "true or false (a TOML boolean, without quotes)"
    elif parse in _TOML_INTEGER:
        if type(value) is int:
            return str(value)
        wanted = "an integer (without quotes)"
    elif parse in _TOML_DURATION:
        if type(value) is int or type(value) is str:
            return str(value)
        wanted = 'a duration: a string such as "15m" or a whole number of seconds'
    elif parse in _TOML_INTEGER_LIST:
        if isinstance(value, list) and all(type(item) is int for item in value):
            return ",".join(str(item) for item in value)
        if parse is _shard_ids and type(value) is str:
            return value  # ranges such as "0-3" are written as a string
        wanted = "an array of integers, such as [1, 2]"
    elif type(value) is str:
        return value
    else:
        wanted = "a string (in quotes)"
    raise ConfigurationError(f"{key} must be {wanted} (got {_toml_type(value)})")


def _file_keys() -> dict[str, tuple[str, Callable[[str, str], Any]]]:
    return {
        name.removeprefix(PREFIX).lower(): (field, parse)
        for name, (field, parse) in _VARIABLES.items()
        if field != "config_file"
    }


def _read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a TOML settings file; return values by field, and the name each came under."""
    where = f"config file {path}"
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise ConfigurationError(f"{where} is not a regular file")
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise ConfigurationError(f"{where} is not a regular file") from None
    except PermissionError:
        raise ConfigurationError(f"{where} cannot be read (permission denied)") from None
    except OSError as error:
        raise ConfigurationError(f"{where} cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{where} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        # tomllib's messages give the position, never the file's content.
        raise ConfigurationError(f"{where} is not valid TOML: {error}") from None
    keys = _file_keys()
    if "config_file" in data:
        raise ConfigurationError(f"{where}: config_file cannot be set inside a config file")
    unknown = sorted(key for key in data if key not in keys)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.8)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ConfigurationError(
            f"{where}: unknown setting " + ", ".join(hints) + "; known: " + ", ".join(sorted(keys))
        )
    secret_fields = {field.name for field in attrs.fields(Settings) if not field.repr}
    secrets_held = sorted(key for key in data if keys[key][0] in secret_fields)
    if secrets_held and stat.S_IMODE(mode) & 0o077:
        raise ConfigurationError(
            f"{where} holds secrets ({', '.join(secrets_held)}) but group or others may read "
            f"it (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    for key, value in data.items():
        field, parse = keys[key]
        name = f"{key} in {where}"
        values[field] = parse(name, _toml_text(name, value, parse))
        names[field] = f"{key} (in {path})"
    return values, names
