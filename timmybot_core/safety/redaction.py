"""Redacting secrets from free-form details before they are stored for good.

Audit details are written by code, but often from values that came from
elsewhere (an admin's argument, an exception's fields). Anything whose key
names a secret, or whose value looks like a credential, is replaced by
``[redacted]`` before it reaches the append-only log, where it could never
be removed again.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from timmybot_core.domain.events import bound_integer

__all__ = ["REDACTED", "looks_like_secret_key", "looks_like_secret_value", "redact_details"]

REDACTED: Final = "[redacted]"

_SECRET_WORDS: Final = frozenset(
    {
        "token",
        "tokens",
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "key",
        "keys",
        "apikey",
        "authorization",
        "auth",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "signature",
        "bearer",
        "otp",
        "private",
    }
)
# A key that ends by naming *something about* a secret is not the secret:
# token_type, key_id, secret_name, token_expires_at.
_DESCRIPTIVE_ENDINGS: Final = frozenset(
    {
        "id",
        "ids",
        "name",
        "names",
        "type",
        "kind",
        "count",
        "length",
        "fingerprint",
        "at",
        "expires",
        "expiry",
        "version",
        "scope",
        "scopes",
        "hint",
        "present",
        "set",
    }
)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_CREDENTIAL_VALUE: Final = re.compile(
    r"(?i)^\s*(bearer|basic|token)\s+\S"  # an Authorization header's value
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\."  # a JWT
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\b(xox[abpr]|gh[pousr]_|sk_live_|AKIA)[A-Za-z0-9_-]{8,}"
)
_MAX_KEYS: Final = 32
_MAX_ITEMS: Final = 50
_MAX_TEXT: Final = 500
_MAX_DEPTH: Final = 6
_MAX_TOTAL: Final = 16_384  # bytes of JSON, the details of one record


def looks_like_secret_key(key: str) -> bool:
    """Tell whether a detail's key names a secret (``refresh_token``, ``apiKey``, ``password``).

    Keys are split into words (snake, kebab and camel case); a key is
    secret when a word names a secret and the last word does not merely
    describe one (``token_type``, ``key_id``).
    """
    words = [word.lower() for word in _WORD.findall(key)]
    if not words:
        return False
    joined = "".join(words)
    compound = any(
        name in joined for name in ("apikey", "accesstoken", "refreshtoken", "clientsecret")
    )
    if words[-1] in _DESCRIPTIVE_ENDINGS:
        return False
    return compound or any(word in _SECRET_WORDS for word in words)


def looks_like_secret_value(text: str) -> bool:
    """Tell whether a text looks like a credential (a bearer header, a JWT, a private key)."""
    return _CREDENTIAL_VALUE.search(text) is not None


def redact_details(
    details: Mapping[str, object] | None, *, clean: Callable[[str], str]
) -> dict[str, Any]:
    """Return ``details`` as bounded JSON data with every secret replaced by ``[redacted]``.

    ``clean`` cleans each text (the response sanitizer's ``sanitize_string``:
    one line, no control characters). Keys are cleaned too. Values that are
    not JSON data (objects, bytes) become their type's name, never their
    ``repr``, which might hold a secret. At most 32 keys per mapping, 50
    items per list and 6 levels are kept, and integers of at most 500 digits;
    past 16 KiB in all, a top-level value is replaced by a note of its size.
    """
    if not details:
        return {}
    return _within_budget(_mapping(details, clean, 0))


def _within_budget(details: dict[str, Any]) -> dict[str, Any]:
    """Keep the encoded details under ``_MAX_TOTAL`` bytes, whole top-level values first.

    Each bound above holds, yet together they allow megabytes (32 keys of 50
    items, six levels deep), more than a store takes in one record (DynamoDB:
    400 KB): a value past the budget is replaced by a note of its size.
    """
    sizes = {key: len(json.dumps(value).encode("utf-8")) for key, value in details.items()}
    if sum(sizes.values()) <= _MAX_TOTAL:
        return details
    kept: dict[str, Any] = {}
    spent = 0
    for key, value in details.items():
        if spent + sizes[key] <= _MAX_TOTAL:
            kept[key] = value
            spent += sizes[key]
        else:
            kept[key] = f"[{sizes[key]} bytes, not kept]"
    return kept


def _mapping(
    value: Mapping[Any, object], clean: Callable[[str], str], depth: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, item in list(value.items())[:_MAX_KEYS]:
        if isinstance(raw_key, int):
            raw_key = bound_integer(raw_key)  # str() of a huge one raises ValueError
        key = clean(str(raw_key))[:100] or "_"
        out[key] = REDACTED if looks_like_secret_key(key) else _value(item, clean, depth + 1)
    return out


def _value(value: object, clean: Callable[[str], str], depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bound_integer(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        if looks_like_secret_value(value):
            return REDACTED
        return clean(value)[:_MAX_TEXT]
    if isinstance(value, datetime):
        return value.isoformat()
    if depth >= _MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, Mapping):
        return _mapping(value, clean, depth)
    if isinstance(value, list | tuple | set | frozenset):
        return [_value(item, clean, depth + 1) for item in list(value)[:_MAX_ITEMS]]
    return f"[{type(value).__name__}]"
