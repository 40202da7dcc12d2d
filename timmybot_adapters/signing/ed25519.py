"""Ed25519 signer and key ring for audit digests.

A key's ID is derived from its *public* key (``a`` + 8 hex digits of its
SHA-256), so a verifier holding only public keys can name them, and a
digest's ``key_id`` tells which one to use. Rotation adds a new key to the
ring and keeps the old public keys: digests signed before stay verifiable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["Ed25519KeyRing", "Ed25519Signer", "public_key_id"]

SEED_BYTES = 32
PUBLIC_BYTES = 32


def public_key_id(public_key: bytes) -> str:
    """Return the key ID of a raw 32-byte Ed25519 public key."""
    return "a" + hashlib.sha256(b"timmybot/audit-key/v1\x00" + public_key).hexdigest()[:8]


class Ed25519Signer:
    """Signs with one Ed25519 private key, built from its 32-byte seed.

    The seed never appears in ``repr``; only the public half leaves the object.
    """

    __slots__ = ("_key", "_key_id", "_public", "_seed")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 signing key is a {SEED_BYTES}-byte seed")
        self._seed = bytes(seed)
        self._key = Ed25519PrivateKey.from_private_bytes(self._seed)
        self._public = self._key.public_key().public_bytes_raw()
        self._key_id = public_key_id(self._public)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        """Return a signer with a fresh random key (tests, the memory backend)."""
        return cls(Ed25519PrivateKey.generate().private_bytes_raw())

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self._key_id!r}, key=<redacted>)"

    @property
    def key_id(self) -> str:
        """The ID of this key, written into each digest it signs."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key, for the key ring."""
        return self._public

    def seed_hex(self) -> str:
        """Return the private seed as hex, for writing a key file (never log it)."""
        return self._seed.hex()

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte signature of ``message``."""
        return self._key.sign(message)


class Ed25519KeyRing:
    """Every public key digests may be signed with: the current one and the retired ones."""

    def __init__(self, public_keys: Mapping[str, bytes] | None = None) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key_id, raw in (public_keys or {}).items():
            self.add(raw, expected_id=key_id)

    def __repr__(self) -> str:
        return f"Ed25519KeyRing(keys={sorted(self._keys)!r})"

    def add(self, public_key: bytes, *, expected_id: str | None = None) -> str:
        """Add a raw public key and return its ID.

        ``expected_id``: the ID it was stored under; a mismatch (a damaged or
        altered key ring) raises ``ValueError`` rather than trusting the key.
        """
        if not isinstance(public_key, bytes | bytearray) or len(public_key) != PUBLIC_BYTES:
            raise ValueError(f"an Ed25519 public key is {PUBLIC_BYTES} bytes")
        key_id = public_key_id(bytes(public_key))
        if expected_id is not None and expected_id != key_id:
            raise ValueError(f"key ring entry {expected_id!r} does not hold the key it names")
        self._keys[key_id] = Ed25519PublicKey.from_public_bytes(bytes(public_key))
        return key_id

    def key_ids(self) -> list[str]:
        """Return the IDs of every key in the ring, sorted."""
        return sorted(self._keys)

    def knows(self, key_id: str) -> bool:
        """Tell whether ``key_id`` is in the ring."""
        return key_id in self._keys

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        """Tell whether ``signature`` is ``key_id``'s valid signature of ``message``."""
        key = self._keys.get(key_id)
        if key is None or not isinstance(signature, bytes | bytearray):
            return False
        try:
            key.verify(bytes(signature), message)
        except InvalidSignature:
            return False
        return True

    def to_json(self) -> str:
        """Return the ring as JSON (public keys only: safe to publish)."""
        keys = {key_id: key.public_bytes_raw().hex() for key_id, key in self._keys.items()}
        return json.dumps({"v": 1, "keys": dict(sorted(keys.items()))}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Ed25519KeyRing:
        """Parse :meth:`to_json`'s output; ``ValueError`` if it is damaged."""
        try:
            document = json.loads(text)
            entries = document["keys"]
            if not isinstance(entries, dict):
                raise TypeError
            keys = {str(key_id): bytes.fromhex(raw) for key_id, raw in entries.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError("the audit key ring is damaged") from error
        return cls(keys)
