"""The one strict Discord ID type, and the strict whole-number parser beside it.

Every ID read from text (settings, slash-command options, console lines, the
admin CLI) and every ID a store is handed goes through here, so they all
agree on what an ID is:

* text: ASCII digits ``0-9`` only, no sign, no spaces, no leading zero, at
  most 20 digits. ``str.isdigit`` and ``int()`` accept far more (``²``,
  ``𝟷𝟸𝟹``, ``١٢٣``, ``+5``, ``1_000``, surrounding spaces), which let an
  ID be *read* one way and *written to the audit trail* another;
* value: an ``int`` (never a ``bool``) from 1 to 2**64 - 1 (Discord's IDs are
  unsigned 64-bit). Stores also accept 0, which their tests and some
  fixtures use as "nobody".

Audit resources and log lines are written from the parsed integer, never
from the text that was typed.
"""

from __future__ import annotations

import operator
import re
from typing import Final, NewType

__all__ = [
    "MAX_SNOWFLAKE",
    "Snowflake",
    "SnowflakeError",
    "check_snowflake",
    "is_snowflake_text",
    "parse_snowflake",
    "parse_whole_number",
]

MAX_SNOWFLAKE: Final = 2**64 - 1

Snowflake = NewType("Snowflake", int)
"""A checked Discord ID (1 to 2**64 - 1)."""

# ASCII only: ``re.ASCII`` keeps ``[0-9]`` from ever meaning more, and
# ``fullmatch`` refuses the trailing newline ``$`` would let through.
_ID_TEXT: Final = re.compile(r"[1-9][0-9]{0,19}", re.ASCII)
_NUMBER_TEXT: Final = re.compile(r"[0-9]{1,30}", re.ASCII)


class SnowflakeError(ValueError):
    """Text or a value that is not a Discord ID; the message says why (never echoes it long)."""


def _shown(text: str) -> str:
    return repr(text[:30] + ("…" if len(text) > 30 else ""))


def is_snowflake_text(text: object) -> bool:
    """Whether ``text`` is the canonical decimal form of a Discord ID."""
    return (
        isinstance(text, str)
        and _ID_TEXT.fullmatch(text) is not None
        and int(text) <= MAX_SNOWFLAKE
    )


def parse_snowflake(text: str, *, what: str = "a Discord ID") -> Snowflake:
    """Return the ID ``text`` spells, or raise :class:`SnowflakeError`.

    ``text`` must be ASCII digits without a leading zero, 1 to 2**64 - 1.
    Surrounding whitespace is the caller's to strip: an ID with spaces
    inside a longer text is not an ID.
    """
    if not isinstance(text, str) or _ID_TEXT.fullmatch(text) is None:
        raise SnowflakeError(
            f"{what} is written with the digits 0-9 only, without a leading zero "
            f"(got {_shown(text) if isinstance(text, str) else type(text).__name__})"
        )
    value = int(text)
    if value > MAX_SNOWFLAKE:
        raise SnowflakeError(f"{what} is at most 2**64 - 1 (got {_shown(text)})")
    return Snowflake(value)


def check_snowflake(value: object, *, what: str = "a Discord ID", allow_zero: bool = False) -> int:
    """Return ``value`` if it is an ``int`` ID in range, else raise.

    ``TypeError`` for a non-integer (a ``bool`` or ``str`` included: a
    string key would never match an integer lookup), :class:`SnowflakeError`
    when out of range. ``allow_zero`` is for stores, whose range starts at 0.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} is an integer, not {type(value).__name__}")
    number = operator.index(value)
    if not (0 if allow_zero else 1) <= number <= MAX_SNOWFLAKE:
        kind = "an unsigned 64-bit integer, 0" if allow_zero else "a positive 64-bit integer, 1"
        raise SnowflakeError(f"{what} is {kind} to 2**64 - 1 (got {number})")
    return int(number)


def parse_whole_number(
    text: str, *, what: str = "the number", minimum: int = 0, maximum: int | None = None
) -> int:
    """Return the whole number ``text`` spells in ASCII digits, within the bounds.

    Unlike IDs, leading zeros are fine (``05`` in a cron field); anything
    but ``0-9`` is refused, so ``²`` or ``١`` never reach ``int()``.
    """
    if not isinstance(text, str) or _NUMBER_TEXT.fullmatch(text) is None:
        raise SnowflakeError(
            f"{what} is written with the digits 0-9 only "
            f"(got {_shown(text) if isinstance(text, str) else type(text).__name__})"
        )
    value = int(text)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise SnowflakeError(f"{what} must be {bound} (got {_shown(text)})")
    return value
