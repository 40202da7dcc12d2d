"""Keyed pseudonymization of identifiers for logs and audit events.

Discord IDs are guessable (snowflakes encode a timestamp), so an unkeyed or
salted hash of one can be reversed by enumerating candidates. A keyed
HMAC-SHA256 cannot be reversed without the key, and the key ID in every
pseudonym lets the key rotate without mixing pseudonyms of different keys.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re

__all__ = ["MIN_KEY_BYTES", "PseudonymKind", "Pseudonymizer"]

MIN_KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_DOMAIN = b"timmybot/pseudonym/v1"


class PseudonymKind(enum.StrEnum):
    """What an identifier names; each kind is a separate pseudonym domain."""

    USER = "user"
    GUILD = "guild"
    IP = "ip"
    ADMIN = "admin"


class Pseudonymizer:
    """Turns identifiers into stable pseudonyms ``"{key_id}:{32 hex chars}"``.

    The same key, kind and value always give the same pseudonym; another key
    or another kind gives an unrelated one, so a user ID and a guild ID with
    the same digits never collide. The key never appears in ``repr``.
    """

    __slots__ = ("_key", "_key_id")

    def __init__(self, *, key: bytes, key_id: str) -> None:
        if not isinstance(key, bytes | bytearray):
            raise TypeError(
                "Pseudonymizer key must be bytes (decode a hex or base64 key first), "
                f"not {type(key).__name__}"
            )
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"Pseudonymizer key must be at least {MIN_KEY_BYTES} bytes (got {len(key)})"
            )
        if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
            raise ValueError(
                "Pseudonymizer key_id must be 1 to 32 characters of A-Z, a-z, 0-9, '_', '.', '-'"
            )
        self._key = bytes(key)
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        """The ID of the key, written in front of every pseudonym."""
        return self._key_id

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self._key_id!r}, key=<redacted>)"

    def pseudonymize(self, kind: PseudonymKind | str, value: str | int) -> str:
        """Return the pseudonym of ``value`` in the domain ``kind``.

        ``value`` may be a string or an integer (snowflakes); ``123`` and
        ``"123"`` give the same pseudonym. Any text is accepted, lone
        surrogates included.
        """
        domain = _kind(kind)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(f"can only pseudonymize str or int, not {type(value).__name__}")
        text = str(value)
        # The key ID is bound in too: the same key material under two IDs
        # must not produce interchangeable pseudonyms.
        message = b"\x00".join(
            (
                _DOMAIN,
                self._key_id.encode(),
                domain.value.encode(),
                text.encode("utf-8", "surrogatepass"),
            )
        )
        digest = hmac.new(self._key, message, hashlib.sha256).hexdigest()
        return f"{self._key_id}:{digest[:32]}"

    def user(self, user_id: str | int) -> str:
        """Shorthand for ``pseudonymize("user", user_id)``."""
        return self.pseudonymize(PseudonymKind.USER, user_id)

    def guild(self, guild_id: str | int) -> str:
        """Shorthand for ``pseudonymize("guild", guild_id)``."""
        return self.pseudonymize(PseudonymKind.GUILD, guild_id)


def _kind(kind: PseudonymKind | str) -> PseudonymKind:
    try:
        return PseudonymKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in PseudonymKind)
        raise ValueError(f"unknown pseudonym kind {kind!r} (expected one of: {known})") from None
