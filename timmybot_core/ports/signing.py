"""Signing the audit log's digests: a signer for the current key, a ring of public keys.

The core never sees key material: it asks a :class:`DigestSigner` to sign
and a :class:`SignatureVerifier` to check. Keeping every retired public
key in the verifier is what keeps old digests verifiable after a rotation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["DigestSigner", "SignatureVerifier"]


@runtime_checkable
class DigestSigner(Protocol):
    """Signs with the current private key."""

    @property
    def key_id(self) -> str:
        """The ID of the key that :meth:`sign` uses, written into each digest."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Return the signature of ``message``."""
        ...


@runtime_checkable
class SignatureVerifier(Protocol):
    """Checks signatures against every known public key, current and retired."""

    def knows(self, key_id: str) -> bool:
        """Tell whether a public key with ``key_id`` is known."""
        ...

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        """Tell whether ``signature`` is ``key_id``'s valid signature of ``message``.

        ``False`` for an unknown key or a malformed signature; never raises
        for bad input.
        """
        ...
