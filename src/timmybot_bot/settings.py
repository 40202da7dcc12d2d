"""Settings of the bot, read from ``TIMMYBOT_*`` environment variables.

Every problem is reported as a :class:`ConfigurationError` that names the
variable and says what is wrong; secret values are never echoed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, get_args

import attrs

from timmybot_core import TimmyBotError

__all__ = ["Backend", "ConfigurationError", "PolicyName", "Settings"]

Backend = Literal["memory", "sqlite", "aws"]
PolicyName = Literal["default", "strict"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

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
    # Discord's own conventional name, and a prefixed alias.
    "DISCORD_TOKEN": ("discord_token", _secret),
    "TIMMYBOT_DISCORD_TOKEN": ("discord_token", _secret),
}


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

    """

    backend: Backend = "sqlite"
    data_dir: Path = Path("var")
    validation_policy: PolicyName = "default"
    allow_http_urls: bool = False
    log_level: LogLevel = "INFO"
    discord_token: str | None = attrs.field(default=None, repr=False)

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
        }
