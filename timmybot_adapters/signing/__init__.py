"""Ed25519 signing of the audit log's digests (needs the ``cryptography`` package)."""

from __future__ import annotations

from timmybot_adapters.signing.ed25519 import Ed25519KeyRing, Ed25519Signer, public_key_id

__all__ = ["Ed25519KeyRing", "Ed25519Signer", "public_key_id"]
