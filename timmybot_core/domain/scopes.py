"""OAuth scopes as RFC 6749 defines them, with caps on length and count.

RFC 6749 section 3.3::

    scope       = scope-token *( SP scope-token )
    scope-token = 1*( %x21 / %x23-5B / %x5D-7E )

Printable ASCII without space, double quote or backslash. The RFC sets no size; a
provider answering with a 30,000-character scope would otherwise have it
stored with the tokens and shown back. Real scopes are short names
(``user-read-private``, ``identify``): at most 32 of them, 128 characters
each, 1,024 characters in all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "MAX_SCOPES",
    "MAX_SCOPE_LENGTH",
    "MAX_SCOPE_TEXT",
    "ScopeError",
    "check_scopes",
    "is_scope_token",
    "parse_scope",
    "salvage_scopes",
]

MAX_SCOPES: Final = 32
MAX_SCOPE_LENGTH: Final = 128
MAX_SCOPE_TEXT: Final = 1024

_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}", re.ASCII)


class ScopeError(ValueError):
    """Scopes that break RFC 6749's grammar or our caps; the message never quotes them."""


def is_scope_token(value: object) -> bool:
    """Whether ``value`` is one RFC 6749 scope-token within the length cap."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def check_scopes(values: Iterable[object]) -> tuple[str, ...]:
    """Return ``values`` as sorted, distinct scope-tokens, or raise :class:`ScopeError`."""
    if isinstance(values, str):
        raise ScopeError("scopes are a sequence of tokens, not one string (use parse_scope)")
    scopes: set[str] = set()
    for value in values:
        if not is_scope_token(value):
            raise ScopeError(
                "a scope is 1 to 128 printable ASCII characters without space, '\"' or '\\'"
            )
        assert isinstance(value, str)  # noqa: S101 - narrowing after is_scope_token
        scopes.add(value)
        if len(scopes) > MAX_SCOPES:
            raise ScopeError(f"at most {MAX_SCOPES} scopes")
    if sum(len(scope) + 1 for scope in scopes) - 1 > MAX_SCOPE_TEXT:
        raise ScopeError(f"scopes are at most {MAX_SCOPE_TEXT} characters in all")
    return tuple(sorted(scopes))


def salvage_scopes(values: Iterable[object]) -> tuple[str, ...]:
    """Return the valid scope-tokens of ``values`` that fit the caps; drop the rest.

    For records stored before scopes were checked: reading one never fails
    for its scopes, and what comes back passes :func:`check_scopes`.
    """
    kept: list[str] = []
    total = -1
    for value in values if not isinstance(values, str) else ():
        if not is_scope_token(value) or value in kept:
            continue
        assert isinstance(value, str)  # noqa: S101 - narrowing after is_scope_token
        if len(kept) == MAX_SCOPES or total + len(value) + 1 > MAX_SCOPE_TEXT:
            break
        kept.append(value)
        total += len(value) + 1
    return tuple(sorted(kept))


def parse_scope(text: str) -> tuple[str, ...]:
    """Parse a ``scope`` parameter (tokens separated by single spaces).

    Raises :class:`ScopeError` when it breaks the grammar or a cap.
    """
    if not isinstance(text, str):
        raise ScopeError("a scope parameter is text")
    if len(text) > MAX_SCOPE_TEXT:
        raise ScopeError(f"a scope parameter is at most {MAX_SCOPE_TEXT} characters")
    if text == "":
        return ()
    return check_scopes(text.split(" "))
