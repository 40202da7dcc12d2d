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
import functools
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

from timmybot_bot.runtime.schedules import CronError, CronSchedule
from timmybot_bot.web.clients import IPNetwork, parse_networks
from timmybot_core import RateLimit, RateLimitSettings, TimmyBotError
from timmybot_core.domain.snowflake import (
    MAX_SNOWFLAKE,
    SnowflakeError,
    parse_snowflake,
    parse_whole_number,
)
from timmybot_core.ports.rate_limits import MAX_LIMIT

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
FailMode = Literal["open", "closed"]

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


def _expanded(name: str, raw: str, what: str) -> Path:
    if not raw.strip():
        raise ConfigurationError(f"{name} must be {what} (got an empty value)")
    if "\0" in raw:
        # Only a TOML escape (\u0000) can put one here; every file call
        # would raise ValueError on it, past the configuration errors.
        raise ConfigurationError(f"{name} must be {what} (got one with a NUL character)")
    try:
        return Path(raw.strip()).expanduser()
    except RuntimeError:
        # pathlib raises RuntimeError for "~name" when no such user (or home) exists.
        raise ConfigurationError(
            f"{name} must be {what}: its '~' names no home here (got {raw.strip()[:30]!r})"
        ) from None


_path: Final = functools.partial(_expanded, what="a directory path")
_file: Final = functools.partial(_expanded, what="a file path")


def _snowflakes(name: str, raw: str) -> frozenset[int]:
    ids: set[int] = set()
    for part in filter(None, re.split(r"[\s,]+", raw.strip())):
        try:
            ids.add(parse_snowflake(part))
        except SnowflakeError:
            raise ConfigurationError(
                f"{name} must be Discord IDs (the digits 0-9, 1 to 2**64 - 1, no leading zero) "
                f"separated by commas (got {part[:30]!r})"
            ) from None
    return frozenset(ids)


def _whole_number(what: str, *, minimum: int, maximum: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        value = raw.strip()
        try:
            return parse_whole_number(value, minimum=minimum, maximum=maximum)
        except SnowflakeError:
            raise ConfigurationError(f"{name} must be {what} (got {value[:30]!r})") from None

    return parse


_positive_int: Final = _whole_number(
    "a whole number of at least 1, in the digits 0-9", minimum=1, maximum=10**12
)
_port: Final = _whole_number("a TCP port, 0 to 65535", minimum=0, maximum=65535)


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


def _rate(name: str, raw: str) -> RateLimit:
    count, slash, window = raw.strip().partition("/")
    try:
        limit = parse_whole_number(count.strip(), minimum=1, maximum=MAX_LIMIT)
        if not slash:
            raise SnowflakeError("no window")
    except SnowflakeError:
        raise ConfigurationError(
            f"{name} must be a count from 1 to {MAX_LIMIT}, '/' and a window, such as 5/10s "
            f"or 20/1m (got {raw.strip()[:30]!r})"
        ) from None
    seconds = _duration(name, window).total_seconds()
    if seconds > _MAX_RATE_WINDOW:
        raise ConfigurationError(f"{name}: the window must be at most 1d (got {window.strip()!r})")
    return RateLimit(limit=limit, window=seconds)


def _show_rate(rate: RateLimit) -> str:
    return f"{rate.limit} per {rate.window:g}s"


_RATES: Final = RateLimitSettings()
_MAX_RATE_WINDOW: Final = 86_400


def _host(name: str, raw: str) -> str:
    value = raw.strip()
    # Not printable: a NUL would reach the socket layer as a ValueError.
    if not value or any(c.isspace() or not c.isprintable() or c in "/@" for c in value):
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
    refused = ConfigurationError(
        f"{name} must be the URL users' browsers reach the bot at, such as "
        f"https://bot.example.com (got {value!r})"
    )
    # "/oauth/callback" is appended to it: after a query or a fragment it
    # would not be the path (and the OAuth client refuses a fragment).
    if not re.match(r"^https?://[^\s/@?#]+(?::[0-9]{1,5})?(?:/[^\s?#]*)?$", value):
        raise refused
    try:
        _ = urlsplit(value).port  # a port above 65535, or a broken [IPv6] host
    except ValueError:
        raise refused from None
    return value


def _networks(name: str, raw: str) -> tuple[IPNetwork, ...]:
    try:
        return parse_networks(raw)
    except ValueError as error:
        raise ConfigurationError(
            f"{name} must be IP addresses or CIDR networks separated by commas: {error}"
        ) from None


def _secret(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigurationError(f"{name} is set but empty; unset it or give a value")
    return value


_MAX_SHARD: Final = 65_535


def _shard_ids(name: str, raw: str) -> tuple[int, ...]:
    ids: set[int] = set()
    for part in filter(None, re.split(r"[\s,]+", raw.strip())):
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
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _regions(name: str, raw: str) -> tuple[str, ...]:
    regions = tuple(part.strip() for part in raw.split(",") if part.strip())
    for region in regions:
        if not _AWS_REGION.match(region):
            raise ConfigurationError(
                f"{name} must be AWS regions separated by commas, such as eu-central-1 "
                f"(got {region[:40]!r})"
            )
    return regions


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


Parser = Callable[[str, str], Any]
_SPEC: Final = "timmybot.setting"


def _text(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, frozenset | tuple):
        return ",".join(str(item) for item in sorted(value)) or "(none)"
    return str(value)


@attrs.frozen
class Setting:
    """What one field of :class:`Settings` is: how it is read, named and documented."""

    parse: Parser
    kind: str
    shown_default: str
    variables: tuple[str, ...] = ()
    #: What ``--check-config`` shows for a value; ``None``: the value as text.
    describe: Callable[[Any], str] | None = None

    def names(self, field: str) -> tuple[str, ...]:
        """Return the environment variables of the field, the first one winning."""
        return self.variables or (f"{PREFIX}{field.upper()}",)

    def show(self, value: object, *, secret: bool) -> str:
        """Return the value for ``--check-config``: a secret only says whether it is set."""
        if self.describe is not None:
            return self.describe(value)
        if secret:
            return "set" if value else "not set"
        return _text(value)


def setting(
    parse: Parser,
    kind: str,
    shown_default: str,
    *,
    variables: tuple[str, ...] = (),
    describe: Callable[[Any], str] | None = None,
    secret: bool = False,
    **field: Any,
) -> Any:
    """Declare a field of :class:`Settings` (``field``: attrs' default, factory, converter)."""
    spec = Setting(parse, kind, shown_default, variables, describe)
    return attrs.field(repr=not secret, metadata={_SPEC: spec}, **field)


def _spec(field: attrs.Attribute[Any]) -> Setting:
    spec: Setting = field.metadata[_SPEC]
    return spec


def _key_file(value: object) -> str:
    return "set" if value else "key file / per process"


def _network_tuple(values: str | Iterable[IPNetwork | str]) -> tuple[IPNetwork, ...]:
    if isinstance(values, str):
        return parse_networks(values)
    return tuple(parse_networks(value)[0] if isinstance(value, str) else value for value in values)


def _shard_tuple(values: Iterable[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(sorted(set(values)))


def _schedule(value: CronSchedule | str) -> CronSchedule:
    return value if isinstance(value, CronSchedule) else CronSchedule.parse(value)


def _duration_setting(default: str) -> Any:
    return setting(_duration, "duration", f"`{default}`", default=_duration(default, default))


def _count_setting(default: int) -> Any:
    return setting(_positive_int, "whole number, at least 1", f"`{default}`", default=default)


def _ids_setting() -> Any:
    return setting(
        _snowflakes, "list of Discord IDs", "none", factory=frozenset, converter=frozenset
    )


def _rate_setting(shown: str, default: RateLimit) -> Any:
    return setting(_rate, "count/duration", f"`{shown}`", default=default, describe=_show_rate)


def _choice_setting(options: Any, default: str) -> Any:
    names = [f"`{option}`" for option in get_args(options)]
    kind = " or ".join(names) if len(names) == 2 else f"one of {', '.join(names)}"
    return setting(_choice(get_args(options)), kind, f"`{default}`", default=default)


def _unset_setting(parse: Parser, kind: str, **more: Any) -> Any:
    return setting(parse, kind, "not set", default=None, **more)


def _key_setting(kind: str) -> Any:
    return _unset_setting(_secret, kind, secret=True, describe=_key_file)


def _schedule_setting(default: str) -> Any:
    return setting(
        _cron,
        "cron expression, UTC",
        f"`{default}`",
        default=CronSchedule.parse(default),
        converter=_schedule,
        describe=lambda schedule: f"{schedule} (UTC)",
    )


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the composition root needs to build the services.

    Each field is declared once, with :func:`setting`: its parser, its
    environment variables (``TIMMYBOT_<FIELD>`` unless named), its type and
    default as the docs show them. The variable table, the TOML keys,
    ``describe()`` (``--check-config``) and the first four columns of the
    table in docs/configuration.md (:func:`settings_rows`, checked by a
    test) all come from these declarations; what each setting means is
    written in that table.
    """

    backend: Backend = _choice_setting(Backend, "sqlite")
    data_dir: Path = setting(
        _path,
        "directory path (`~` is expanded)",
        "`var` (relative to the working directory)",
        default=Path("var"),
    )
    validation_policy: PolicyName = _choice_setting(PolicyName, "default")
    allow_http_urls: bool = setting(_boolean, "boolean", "`false`", default=False)
    log_level: LogLevel = _choice_setting(LogLevel, "INFO")
    discord_token: str | None = _unset_setting(
        _secret,
        "secret string",
        variables=("DISCORD_TOKEN", "TIMMYBOT_DISCORD_TOKEN"),
        secret=True,
    )
    owner_ids: frozenset[int] = _ids_setting()
    admin_role_ids: frozenset[int] = _ids_setting()
    allowed_guilds: frozenset[int] = _ids_setting()
    allow_direct_messages: bool = setting(
        _boolean, "boolean", "`false`", default=False, variables=("TIMMYBOT_ALLOW_DMS",)
    )
    attempt_limit: int = _count_setting(10)
    attempt_window: timedelta = _duration_setting("1h")
    ban_duration: timedelta = _duration_setting("1h")
    lockdown_attempt_limit: int = _count_setting(3)
    lockdown_duration: timedelta = _duration_setting("6h")
    rate_limit_command: RateLimit = _rate_setting("5/10s", _RATES.command)
    rate_limit_provider_command: RateLimit = _rate_setting("3/30s", _RATES.quota_command)
    rate_limit_user: RateLimit = _rate_setting("20/1m", _RATES.user)
    rate_limit_guild: RateLimit = _rate_setting("120/1m", _RATES.guild)
    rate_limit_fail_mode: FailMode = _choice_setting(FailMode, "open")
    rate_limit_provider_fail_mode: FailMode = _choice_setting(FailMode, "closed")
    metrics_exporter: MetricsExporter = _choice_setting(MetricsExporter, "none")
    metrics_interval: timedelta = _duration_setting("60s")
    pseudonym_key: str | None = _key_setting("secret: hex or base64, at least 32 bytes")
    vault_key: str | None = _key_setting("secret: hex or base64, exactly 32 bytes")
    audit_signing_key: str | None = _key_setting("secret: hex or base64, exactly 32 bytes")
    audit_retention: timedelta = _duration_setting("365d")
    audit_digest_interval: timedelta = _duration_setting("5m")
    audit_digest_dir: Path | None = _unset_setting(_path, "directory path (`~` is expanded)")
    web_host: str = setting(_host, "host name or IP address", "`127.0.0.1`", default="127.0.0.1")
    web_port: int = setting(_port, "TCP port, 0 to 65535", "`8080`", default=8080)
    public_url: str | None = _unset_setting(_public_url, "absolute `http` or `https` URL")
    web_trusted_proxies: tuple[IPNetwork, ...] = setting(
        _networks,
        "IP addresses and CIDR networks, separated by commas",
        "none",
        default=(),
        converter=_network_tuple,
        describe=lambda networks: ", ".join(map(str, networks)) or "(none)",
    )
    web_callback_rate_limit: int = _count_setting(30)
    web_tls_cert: Path | None = _unset_setting(_file, "PEM file path")
    web_tls_key: Path | None = _unset_setting(_file, "PEM file path")
    web_metrics_client_ca: Path | None = _unset_setting(_file, "PEM file path (CA certificates)")
    oauth_min_tls: TlsVersion = _choice_setting(TlsVersion, "1.2")
    oauth_timeout: timedelta = _duration_setting("10s")
    token_claim_timeout: timedelta = _duration_setting("30s")
    spotify_client_id: str | None = _unset_setting(_secret, "string")
    spotify_client_secret: str | None = _unset_setting(_secret, "secret string", secret=True)
    discord_client_id: str | None = _unset_setting(_secret, "string")
    discord_client_secret: str | None = _unset_setting(_secret, "secret string", secret=True)
    config_file: Path | None = _unset_setting(_file, "file path (`~` is expanded)")
    shard_ids: tuple[int, ...] | None = _unset_setting(
        _shard_ids,
        "shard numbers and ranges: `0,1` or `0-3`",
        converter=_shard_tuple,
        describe=lambda ids: ",".join(map(str, ids)) if ids else "(all)",
    )
    shard_count: int | None = _unset_setting(
        _positive_int,
        "whole number, at least 1",
        describe=lambda count: str(count) if count else "(Discord's choice)",
    )
    rotation_schedule: CronSchedule = _schedule_setting("0 2 * * *")
    cleanup_schedule: CronSchedule = _schedule_setting("0 3 * * *")
    aws_region: str | None = setting(
        _pattern(_AWS_REGION, "eu-west-1"),
        "AWS region name",
        "boto3's lookup (`AWS_REGION`, ...)",
        default=None,
    )
    aws_endpoint_url: str | None = setting(
        _endpoint_url, "`http` or `https` URL", "none (AWS)", default=None
    )
    aws_dynamodb_endpoint_url: str | None = setting(
        _endpoint_url, "`http` or `https` URL", "`TIMMYBOT_AWS_ENDPOINT_URL`", default=None
    )
    aws_table_prefix: str = setting(
        _pattern(_TABLE_PREFIX, "timmybot- (letters, digits, '_', '-', '.')"),
        "name prefix",
        "`timmybot-`",
        default="timmybot-",
    )
    aws_secret_prefix: str = setting(
        _pattern(_SECRET_PREFIX, "/timmybot/users/ (ending with '/')"),
        "name prefix ending with `/`",
        "`/timmybot/users/`",
        default="/timmybot/users/",
    )
    aws_kms_key_id: str | None = setting(
        _pattern(_KMS_KEY, "a KMS key ID, key ARN, alias/name or alias ARN"),
        "KMS key ID, key ARN, `alias/...` or alias ARN",
        "not set (required on the `aws` backend)",
        default=None,
    )
    aws_alert_topic_arn: str | None = setting(
        _pattern(_TOPIC_ARN, "arn:aws:sns:eu-west-1:123456789012:timmybot-security-alerts"),
        "SNS topic ARN",
        "none (alerts are log lines)",
        default=None,
    )
    aws_connect_timeout: timedelta = _duration_setting("3s")
    aws_read_timeout: timedelta = _duration_setting("10s")
    aws_max_attempts: int = _count_setting(4)
    aws_security_log_group: str | None = _unset_setting(_log_group, "CloudWatch Logs group names")
    aws_audit_log_group: str | None = _unset_setting(_log_group, "CloudWatch Logs group names")
    aws_replica_regions: tuple[str, ...] = setting(
        _regions, "AWS regions separated by commas", "none", default=(), converter=tuple
    )
    aws_digest_bucket: str | None = _unset_setting(
        _pattern(_BUCKET, "timmybot-digests-123456789012-eu-west-1 (an S3 bucket name)"),
        "S3 bucket name",
    )
    test_discord_api_url: str | None = _unset_setting(
        _loopback_url,
        "`http(s)` URL on a loopback address (`127.0.0.0/8`, `::1`)",
        # A test-only setting must never go unnoticed when it is set.
        describe=lambda url: f"{url} (TESTS ONLY)" if url else "(Discord)",
    )

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
            raise ConfigurationError(_unknown(unknown, _VARIABLES))
        values: dict[str, Any] = {}
        names = {field: name for name, (field, _) in reversed(_VARIABLES.items())}
        for name, (field, parse) in _VARIABLES.items():
            raw = env.get(name)
            if raw is None or field in values:
                continue  # unset, or DISCORD_TOKEN won over its alias
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
        shown = {
            field.name: _spec(field).show(getattr(self, field.name), secret=not field.repr)
            for field in attrs.fields(Settings)
        }
        return {**shown, "redirect_uri": self.redirect_uri}


def _variables() -> dict[str, tuple[str, Parser]]:
    """Environment variable -> (field, parser), in declaration order."""
    return {
        name: (field.name, _spec(field).parse)
        for field in attrs.fields(Settings)
        for name in _spec(field).names(field.name)
    }


_VARIABLES: Final = _variables()


def settings_rows() -> list[tuple[str, str, str, str]]:
    """Return the variables, field, type and default of each setting, as the docs show them."""
    return [
        (
            ", ".join(f"`{name}`" for name in _spec(field).names(field.name)),
            f"`{field.name}`",
            _spec(field).kind,
            _spec(field).shown_default,
        )
        for field in attrs.fields(Settings)
    ]


def _unknown(names: list[str], known: Iterable[str]) -> str:
    """Name the unknown settings, each with the known one it is likely a typo of."""
    known = sorted(known)
    hints = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return "unknown setting " + ", ".join(hints) + "; known: " + ", ".join(known)


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
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer, before
        # the check below could refuse it; reading a regular file is unaffected.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
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
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively: a few
        # thousand levels exhaust the stack before it finds any error.
        raise ConfigurationError(f"{where} is not valid TOML: nested too deeply") from None
    keys = _file_keys()
    if "config_file" in data:
        raise ConfigurationError(f"{where}: config_file cannot be set inside a config file")
    unknown = sorted(key for key in data if key not in keys)
    if unknown:
        raise ConfigurationError(f"{where}: {_unknown(unknown, keys)}")
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
