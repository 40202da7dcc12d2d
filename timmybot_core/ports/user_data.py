"""The user data store: users' preferences, so erasure and export reach them.

A preference is a named JSON value (``volume`` -> ``80``,
``default_platform`` -> ``"spotify"``) that a user set for themselves. The
seed classifies preferences as *sensitive* (see
:mod:`timmybot_core.domain.classification`): they are the user's own data, erased
on request and included in exports.

Validation lives here, in the core, so every adapter accepts and refuses
exactly the same values and stores them in one canonical JSON form
(:func:`encode_preference`). An adapter calls :func:`check_user_id` and
:func:`encode_preference` before any I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Final, Protocol, TypeAlias, runtime_checkable

import attrs

from timmybot_core.domain.errors import TimmyBotError
from timmybot_core.domain.snowflake import MAX_SNOWFLAKE, check_snowflake

__all__ = [
    "MAX_NESTING",
    "MAX_PREFERENCES",
    "MAX_USER_ID",
    "MAX_VALUE_BYTES",
    "Preference",
    "PreferenceError",
    "PreferenceValue",
    "UserDataStore",
    "check_preference_key",
    "check_user_id",
    "decode_preference",
    "encode_preference",
    "too_many_preferences",
]

PreferenceValue: TypeAlias = (
    "str | int | float | bool | list[PreferenceValue] | dict[str, PreferenceValue] | None"
)
"""A JSON value: text, a 64-bit integer, a finite float, a boolean, null, a list or an object."""

MAX_PREFERENCES: Final = 50
"""The most preferences one user may keep."""
MAX_VALUE_BYTES: Final = 4096
"""The largest value, measured as its canonical JSON in UTF-8."""
MAX_NESTING: Final = 8
"""The deepest nesting of lists and objects inside one value."""
MAX_USER_ID: Final = MAX_SNOWFLAKE
"""Discord snowflakes are unsigned 64-bit integers."""

_KEY: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1


class PreferenceError(TimmyBotError, ValueError):
    """A preference name or value was refused; the message says why.

    Also a ``ValueError``, so callers that treat bad input as such catch it.
    The message names the preference but never quotes its value.
    """


def check_user_id(user_id: int) -> int:
    """Return ``user_id`` if it is an int from 0 to 2**64 - 1, else raise ``ValueError``.

    ``0`` is allowed: the offline console's local operator acts as user 0.
    """
    try:
        return check_snowflake(user_id, what="a user ID", allow_zero=True)
    except TypeError as error:
        raise ValueError(str(error)) from None


def check_preference_key(key: str) -> str:
    """Return ``key`` if it is a preference name, else raise :class:`PreferenceError`.

    A name is 1 to 64 characters: a lowercase letter, then lowercase
    letters, digits, ``_``, ``.`` or ``-`` (``volume``, ``ui.theme``).
    Names are chosen by the bot's code, never typed freely by users.
    """
    if not isinstance(key, str):
        raise PreferenceError(f"a preference name is text (got {type(key).__name__})")
    if not _KEY.fullmatch(key):
        raise PreferenceError(
            "a preference name is 1 to 64 characters: a lowercase letter, then lowercase "
            "letters, digits, '_', '.' or '-'"
        )
    return key


def _check_text(text: str, key: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: not Unicode text, and no JSON store keeps it.
        raise PreferenceError(
            f"preference {key!r}: {where} is not valid Unicode text (it holds a lone surrogate)"
        ) from None


def _check_value(value: object, key: str, depth: int) -> None:
    # Exact types (isinstance narrows for mypy, ``type() is`` excludes
    # subclasses): a bool is an int, and json flattens a str or int subclass
    # (an enum) into its base type, so it would read back as something else.
    if value is None or (isinstance(value, bool) and type(value) is bool):
        return
    if isinstance(value, int) and type(value) is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise PreferenceError(f"preference {key!r}: integers must fit in 64 bits (signed)")
        return
    if isinstance(value, float) and type(value) is float:
        if not math.isfinite(value):
            raise PreferenceError(f"preference {key!r}: numbers must be finite (no NaN or inf)")
        return
    if isinstance(value, str) and type(value) is str:
        _check_text(value, key, "a text")
        return
    if isinstance(value, list | dict) and type(value) in (list, dict):
        if depth >= MAX_NESTING:
            raise PreferenceError(
                f"preference {key!r}: lists and objects nest at most {MAX_NESTING} deep"
            )
        if isinstance(value, list):
            for item in value:
                _check_value(item, key, depth + 1)
            return
        for name, item in value.items():
            if not (isinstance(name, str) and type(name) is str):
                raise PreferenceError(
                    f"preference {key!r}: object keys are text (got {type(name).__name__})"
                )
            _check_text(name, key, "an object key")
            _check_value(item, key, depth + 1)
        return
    raise PreferenceError(
        f"preference {key!r}: a value is text, a number, true/false, null, a list or an object "
        f"(got {type(value).__name__})"
    )


def encode_preference(key: str, value: PreferenceValue) -> str:
    """Check a preference and return its value's canonical JSON text.

    Canonical: object keys sorted, no spaces, non-ASCII kept as is. Every
    adapter stores this text (or its encryption), so all of them give back
    equal values.

    Raises:
        PreferenceError: a bad name, an unsupported type (tuples, sets,
            bytes, datetimes), an integer beyond 64 bits, NaN or infinity,
            a lone surrogate, nesting deeper than :data:`MAX_NESTING`, or
            more than :data:`MAX_VALUE_BYTES` of JSON.

    """
    check_preference_key(key)
    _check_value(value, key, 0)
    text = json.dumps(
        value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
    )
    size = len(text.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise PreferenceError(
            f"preference {key!r} is too large: {size} bytes of JSON, at most {MAX_VALUE_BYTES}"
        )
    return text


def decode_preference(text: str) -> PreferenceValue:
    """Return the value that :func:`encode_preference` encoded as ``text``."""
    value: PreferenceValue = json.loads(text)
    return value


def too_many_preferences(key: str) -> PreferenceError:
    """Return the error for adding ``key`` to a user who has :data:`MAX_PREFERENCES` already."""
    return PreferenceError(
        f"a user keeps at most {MAX_PREFERENCES} preferences; delete one before adding {key!r}"
    )


@attrs.frozen(kw_only=True)
class Preference:
    """One stored preference: its name, its value and when it was last set."""

    key: str
    value: PreferenceValue = attrs.field(hash=False)
    updated_at: datetime


@runtime_checkable
class UserDataStore(Protocol):
    """Keeps users' preferences. Every method may raise ``StoreUnavailable``.

    User IDs are checked with :func:`check_user_id` and names and values
    with :func:`encode_preference` before the store is touched: bad input
    raises ``ValueError`` (:class:`PreferenceError` for names and values)
    and changes nothing. Values read back equal the values stored, as fresh
    objects the caller may change.
    """

    async def get_preferences(self, user_id: int) -> list[Preference]:
        """Return every preference of ``user_id``, sorted by name (empty if none)."""
        ...

    async def get_preference(self, user_id: int, key: str) -> Preference | None:
        """Return one preference, or ``None`` if the user has not set it."""
        ...

    async def set_preference(
        self, user_id: int, key: str, value: PreferenceValue, *, at: datetime
    ) -> None:
        """Set (insert or replace) a preference, stamped ``at`` (timezone-aware).

        Raises :class:`PreferenceError` if it is a new name and the user
        already keeps :data:`MAX_PREFERENCES`; the check and the write are
        one atomic step, so concurrent writers cannot exceed the limit.
        """
        ...

    async def delete_preference(self, user_id: int, key: str) -> bool:
        """Delete one preference; ``True`` if it existed."""
        ...

    async def delete_user(self, user_id: int) -> int:
        """Delete every preference of ``user_id``; return how many. Idempotent."""
        ...

    def user_ids(self) -> AsyncIterator[int]:
        """Iterate over every user with at least one preference, each once, in no set order."""
        ...
