"""AES-256-GCM for the embedded backend's secrets: the keys and the sealing.

:class:`VaultKeys` holds the local keys by key ID, one of them *current*
(used for every new encryption); the others only decrypt what was written
under them until a rekey moves it to the current key.

:class:`AeadCipher` seals one value at a time with AES-256-GCM: a fresh
random 96-bit nonce per encryption, and associated data binding the
ciphertext to where it belongs (a context string, the owning subject such
as the user ID, and the key ID). A ciphertext copied to another row, or
relabelled with another key ID, therefore fails authentication instead of
decrypting. Random 96-bit nonces keep the collision risk negligible up to
about 2**32 encryptions under one key, far beyond a bot's token writes;
rotate the key (and rekey) long before that.

The ``cryptography`` package (the ``local`` extra) is imported when a cipher
is first built, so importing :mod:`timmybot_adapters.sqlite` does not need it.

Nothing here caches plaintext, and no message, ``repr`` or log line includes
key bytes, plaintext or ciphertext. (Python cannot wipe ``bytes`` or ``str``
from memory; the guarantee is that no object keeps them after a call.)
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, NamedTuple

import attrs

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "AeadCipher",
    "IntegrityFailure",
    "Sealed",
    "VaultKeys",
    "associated_data",
    "safe_key_id",
    "valid_key_id",
]

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def valid_key_id(key_id: str) -> str:
    """Return ``key_id`` if it is a slug of 1-32 ``A-Za-z0-9_.-``, else raise ``ValueError``."""
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ValueError("a key ID is 1 to 32 characters of A-Z, a-z, 0-9, '_', '.' and '-'")
    return key_id


def safe_key_id(key_id: object) -> str:
    """Return ``key_id`` quoted for a message, or a placeholder if it is not a valid slug.

    Key IDs read back from a database are data: a damaged or hostile row
    must not put arbitrary text (a newline, a secret) into a log line.
    """
    if isinstance(key_id, str) and _KEY_ID.fullmatch(key_id):
        return repr(key_id)
    return "<invalid key ID>"


def _keys(keys: Mapping[str, bytes]) -> Mapping[str, bytes]:
    checked: dict[str, bytes] = {}
    for key_id, key in keys.items():
        valid_key_id(key_id)
        if not isinstance(key, bytes | bytearray | memoryview):
            raise TypeError("vault keys are bytes")
        material = bytes(key)
        if len(material) != KEY_BYTES:
            # The length is not secret; the key is.
            raise ValueError(
                f"vault key {key_id!r} must be {KEY_BYTES} bytes for AES-256 (got {len(material)})"
            )
        checked[key_id] = material
    if not checked:
        raise ValueError("at least one vault key is required")
    return MappingProxyType(dict(sorted(checked.items())))


@attrs.frozen(kw_only=True, eq=False, repr=False)
class VaultKeys:
    """The vault's AES-256 keys by key ID, and which one encrypts new writes.

    Equality is identity (comparing key bytes is not something to do
    casually), and ``repr`` shows the key IDs only.

    Attributes:
        current: The key ID used for every new encryption.
        keys: 32-byte keys by key ID; holds ``current``.

    """

    current: str = attrs.field(converter=valid_key_id)
    keys: Mapping[str, bytes] = attrs.field(converter=_keys, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError(f"the current key {self.current!r} is not among the vault keys")

    def __repr__(self) -> str:
        return f"VaultKeys(current={self.current!r}, key_ids={self.key_ids!r})"

    __str__ = __repr__

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every configured key ID, sorted."""
        return tuple(self.keys)

    @classmethod
    def single(cls, key_id: str, key: bytes) -> VaultKeys:
        """Return keys holding one key, which is current."""
        return cls(current=key_id, keys={key_id: key})

    def with_new_current(self, key_id: str, key: bytes) -> VaultKeys:
        """Return a copy that also holds ``key`` and encrypts with it from now on.

        The other keys stay, so records written under them still read until
        a rekey moves them. Reusing a key ID for different key bytes raises
        ``ValueError``: records under the old bytes would become unreadable.
        """
        existing = self.keys.get(key_id)
        if existing is not None and not hmac.compare_digest(existing, bytes(key)):
            raise ValueError(f"key ID {key_id!r} already names a different key")
        return VaultKeys(current=key_id, keys={**self.keys, key_id: key})

    def without(self, *key_ids: str) -> VaultKeys:
        """Return a copy without the given retired keys (never the current one)."""
        if self.current in key_ids:
            raise ValueError(f"the current key {self.current!r} cannot be removed")
        return VaultKeys(
            current=self.current,
            keys={kid: key for kid, key in self.keys.items() if kid not in key_ids},
        )

    def merged_with(self, newer: VaultKeys) -> VaultKeys:
        """Return every key of both, with ``newer``'s current key current.

        Raises ``ValueError`` if one key ID names different keys in the two.
        """
        for key_id, key in newer.keys.items():
            existing = self.keys.get(key_id)
            if existing is not None and not hmac.compare_digest(existing, key):
                raise ValueError(f"key ID {key_id!r} names two different keys")
        return VaultKeys(current=newer.current, keys={**self.keys, **newer.keys})


def associated_data(parts: Iterable[str]) -> bytes:
    """Encode ``parts`` unambiguously: each as a 4-byte big-endian length and its UTF-8.

    ``("ab", "c")`` and ``("a", "bc")`` encode differently, so no choice of
    user ID or key ID can make one binding look like another.
    """
    encoded = bytearray()
    for part in parts:
        data = part.encode("utf-8")
        encoded += len(data).to_bytes(4, "big")
        encoded += data
    return bytes(encoded)


class Sealed(NamedTuple):
    """One encrypted value as stored: key ID, nonce, and ciphertext with its GCM tag."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"Sealed(key_id={self.key_id!r}, nonce=<{len(self.nonce)} bytes>, ciphertext=<...>)"


class IntegrityFailure(Exception):
    """A sealed value could not be opened; the message is safe to show.

    ``unknown_key`` is ``True`` when the value names a key ID that is not
    configured (as opposed to failing authentication). Stores turn this into
    their own error type.
    """

    def __init__(self, message: str, *, unknown_key: bool) -> None:
        super().__init__(message)
        self.unknown_key = unknown_key


def _aesgcm(key: bytes) -> AESGCM:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "the encrypted SQLite vault needs the 'cryptography' package: "
            "install timmybot with the 'local' extra"
        ) from error
    return AESGCM(key)


class AeadCipher:
    """Seals and opens values with AES-256-GCM under :class:`VaultKeys`.

    The associated data of every value is ``associated_data((context,
    *subject, key_id))``: the caller names what the value belongs to in
    ``subject`` (for the vault, the user ID) and must pass the same subject
    to open it.
    """

    def __init__(self, keys: VaultKeys, *, context: str) -> None:
        """Build the AES-GCM instances for ``keys``; ``context`` separates uses of one key."""
        self._keys = keys
        self._context = context
        self._ciphers = {key_id: _aesgcm(key) for key_id, key in keys.keys.items()}

    def __repr__(self) -> str:
        return f"AeadCipher(context={self._context!r}, keys={self._keys!r})"

    @property
    def keys(self) -> VaultKeys:
        """The keys this cipher uses."""
        return self._keys

    def _aad(self, subject: Iterable[str], key_id: str) -> bytes:
        return associated_data((self._context, *subject, key_id))

    def seal(self, subject: Iterable[str], plaintext: bytes) -> Sealed:
        """Encrypt ``plaintext`` for ``subject`` under the current key, with a fresh nonce."""
        key_id = self._keys.current
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[key_id].encrypt(nonce, plaintext, self._aad(subject, key_id))
        return Sealed(key_id=key_id, nonce=nonce, ciphertext=ciphertext)

    def open(self, subject: Iterable[str], sealed: Sealed, *, what: str) -> bytes:
        """Decrypt ``sealed`` for ``subject``; never returns unauthenticated bytes.

        ``what`` names the value in error messages ("the token record of one
        user"); it must not hold anything secret.

        Raises:
            IntegrityFailure: the key ID is not configured, or authentication
                failed (tampered, moved to another subject, or another key).

        """
        from cryptography.exceptions import InvalidTag

        cipher = self._ciphers.get(sealed.key_id) if isinstance(sealed.key_id, str) else None
        if cipher is None:
            raise IntegrityFailure(
                f"{what} is encrypted with key {safe_key_id(sealed.key_id)}, "
                f"which is not configured",
                unknown_key=True,
            )
        if not isinstance(sealed.nonce, bytes) or len(sealed.nonce) != NONCE_BYTES:
            raise IntegrityFailure(
                f"{what} failed its integrity check (its nonce is damaged)", unknown_key=False
            )
        try:
            return cipher.decrypt(
                sealed.nonce, bytes(sealed.ciphertext), self._aad(subject, sealed.key_id)
            )
        except (InvalidTag, TypeError, ValueError):
            raise IntegrityFailure(
                f"{what} failed its integrity check "
                "(tampered, moved from elsewhere, or encrypted with another key)",
                unknown_key=False,
            ) from None
