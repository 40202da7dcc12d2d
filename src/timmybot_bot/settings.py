"""Settings of the bot, read from ``TIMMYBOT_*`` environment variables.

Every problem is reported as a :class:`ConfigurationError` that names the
variable and says what is wrong; secret values are never echoed.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Literal, get_args

import attrs

from timmybot_core import TimmyBotError

__all__ = ["Backend", "ConfigurationError", "MetricsExporter", "PolicyName", "Settings"]

Backend = Literal["memory", "sqlite", "aws"]
PolicyName = Literal["default", "strict"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
MetricsExporter = Literal["none", "console", "otlp", "prometheus", "emf"]
TlsVersion = Literal["1.2", "1.3"]

MAX_SNOWFLAKE: Final = 2**64 - 1

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
        if not part.isdigit() or not 0 < int(part) <= MAX_SNOWFLAKE:
            raise ConfigurationError(
                f"{name} must be Discord IDs (positive integers) separated by commas "
                f"(got {part[:30]!r})"
            )
        ids.add(int(part))
    return frozenset(ids)


def _positive_int(name: str, raw: str) -> int:
    value = raw.strip()
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(f"{name} must be a whole number of at least 1 (got {value!r})")
    return int(value)


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _duration(name: str, raw: str) -> timedelta:
    value = raw.strip().lower()
    if value.isdigit():
        seconds = int(value)
    else:
        match = _DURATION.match(value)
        if not value or match is None:
            raise ConfigurationError(
                f"{name} must be a duration such as 90, 90s, 15m, 1h or 1h30m (got {value!r})"
            )
        days, hours, minutes, secs = (int(group or 0) for group in match.groups())
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds < 1:
        raise ConfigurationError(f"{name} must be at least one second (got {value!r})")
    return timedelta(seconds=seconds)


def _port(name: str, raw: str) -> int:
    value = raw.strip()
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise ConfigurationError(f"{name} must be a TCP port, 0 to 65535 (got {value!r})")
    return int(value)


def _host(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() or c in "/@" for c in value):
        raise ConfigurationError(f"{name} must be a host name or IP address (got {value!r})")
    return value


def _public_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/@]+(?::\d+)?(?:/[^\s]*)?$", value):
        raise ConfigurationError(
            f"{name} must be the URL users' browsers reach the bot at, such as "
            f"https://bot.example.com (got {value!r})"
        )
    return value


def _secret(name: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigurationError(f"{name} is set but empty; unset it or give a value")
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
    "TIMMYBOT_WEB_HOST": ("web_host", _host),
    "TIMMYBOT_WEB_PORT": ("web_port", _port),
    "TIMMYBOT_PUBLIC_URL": ("public_url", _public_url),
    "TIMMYBOT_OAUTH_MIN_TLS": ("oauth_min_tls", _choice(get_args(TlsVersion))),
    "TIMMYBOT_SPOTIFY_CLIENT_ID": ("spotify_client_id", _secret),
    "TIMMYBOT_SPOTIFY_CLIENT_SECRET": ("spotify_client_secret", _secret),
    "TIMMYBOT_DISCORD_CLIENT_ID": ("discord_client_id", _secret),
    "TIMMYBOT_DISCORD_CLIENT_SECRET": ("discord_client_secret", _secret),
    # Discord's own conventional name, and a prefixed alias.
    "DISCORD_TOKEN": ("discord_token", _secret),
    "TIMMYBOT_DISCORD_TOKEN": ("discord_token", _secret),
}


def _id_set(values: Iterable[int]) -> frozenset[int]:
    return frozenset(values)


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
        web_host, web_port: where the web server (OAuth callback, health)
            listens; 127.0.0.1:8080 by default.
        public_url: the base URL browsers reach the web server at; the OAuth
            redirect URI is ``{public_url}/oauth/callback``.
        oauth_min_tls: the lowest TLS version for OAuth providers (1.2 or 1.3).
        spotify_client_id, spotify_client_secret, discord_client_id,
        discord_client_secret: OAuth client credentials; a platform is
            offered for linking when its client ID is set.
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
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    public_url: str | None = None
    oauth_min_tls: TlsVersion = "1.2"
    spotify_client_id: str | None = None
    spotify_client_secret: str | None = attrs.field(default=None, repr=False)
    discord_client_id: str | None = None
    discord_client_secret: str | None = attrs.field(default=None, repr=False)

    @property
    def redirect_uri(self) -> str:
        """The OAuth redirect URI: ``{public_url}/oauth/callback``."""
        base = self.public_url or f"http://{self.web_host}:{self.web_port}"
        return f"{base}/oauth/callback"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default: ``os.environ``).

        Unset variables keep their defaults. A malformed value, or an unknown
        ``TIMMYBOT_*`` variable (usually a typo that would otherwise be
        silently ignored), raises :class:`ConfigurationError`.
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
        for name, (field, parse) in _VARIABLES.items():
            raw = env.get(name)
            if raw is None:
                continue
            if field in values:
                continue  # DISCORD_TOKEN wins over its alias
            values[field] = parse(name, raw)
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
            "web": f"{self.web_host}:{self.web_port}",
            "redirect_uri": self.redirect_uri,
            "oauth_min_tls": self.oauth_min_tls,
            "spotify": "configured" if self.spotify_client_id else "not configured",
            "discord": "configured" if self.discord_client_id else "not configured",
        }
