"""The audit log's signing key and key ring, kept beside the other local keys.

The private seed lives in ``keys/audit-signing.key`` (mode 0600, like the
vault key) or in ``TIMMYBOT_AUDIT_SIGNING_KEY``; it never reaches the log.
``keys/audit-keyring.json`` holds the public keys, current and retired, so a
digest signed before a rotation still verifies after it. The ring holds
nothing secret, but it is what verification trusts: keep a copy off the
machine (see docs/audit.md).
"""

from __future__ import annotations

from pathlib import Path

from timmybot_adapters.signing import Ed25519KeyRing, Ed25519Signer
from timmybot_bot.runtime.keys import (
    IDENTITY_FILE,
    RECOVERY,
    key_document,
    load_or_create_key,
    not_written,
    parse_key,
    write_private_file,
)
from timmybot_bot.runtime.locks import keys_lock
from timmybot_bot.runtime.settings import ConfigurationError, Settings

__all__ = [
    "KEYRING_FILE",
    "SIGNING_KEY_FILE",
    "audit_keys",
    "check_keyring",
    "rotate_audit_signing_key",
]

SIGNING_KEY_FILE = "audit-signing.key"
KEYRING_FILE = "audit-keyring.json"


def _keys_dir(settings: Settings) -> Path:
    return settings.data_dir / "keys"


def load_keyring(path: Path) -> Ed25519KeyRing:
    """Read the key ring at ``path`` (an empty ring if there is none yet)."""
    if not path.exists():
        return Ed25519KeyRing()
    try:
        return Ed25519KeyRing.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            f"audit key ring {path} is unreadable or damaged ({error}); restore it from a "
            "backup: without it, signed digests cannot be verified"
        ) from None


def _mismatch(settings: Settings, ring_path: Path, key_id: str) -> ConfigurationError:
    return ConfigurationError(
        f"audit key ring {ring_path} does not match the signing key "
        f"{_keys_dir(settings) / SIGNING_KEY_FILE} (key {key_id} is not in it); "
        f"restore the matching ring: {RECOVERY}"
    )


def check_keyring(settings: Settings) -> None:
    """Refuse a key ring that does not know the signing key file's key; change nothing."""
    if settings.backend == "memory" or settings.audit_signing_key is not None:
        return
    key_file = _keys_dir(settings) / SIGNING_KEY_FILE
    ring_path = _keys_dir(settings) / KEYRING_FILE
    if not key_file.exists() or not ring_path.exists():
        return
    signer = Ed25519Signer(load_or_create_key(key_file, purpose="audit-signing")[:32])
    ring = load_keyring(ring_path)
    if not _matches(settings, ring, signer):
        raise _mismatch(settings, ring_path, signer.key_id)


def _matches(settings: Settings, ring: Ed25519KeyRing, signer: Ed25519Signer) -> bool:
    """Tell whether a ring file of this directory may be used with the signing key file.

    The key file and the ring are made together, so a ring that does not
    know the key is another directory's, or was replaced; an empty one too,
    once the directory has been used (before that, a ring with no keys yet is
    simply being set up).
    """
    if ring.knows(signer.key_id):
        return True
    return not ring.key_ids() and not (_keys_dir(settings) / IDENTITY_FILE).exists()


def audit_keys(settings: Settings) -> tuple[Ed25519Signer, Ed25519KeyRing]:
    """Return the signer for new digests and the ring that verifies old and new ones.

    The signer's public key is added to the ring file on first use.
    """
    if settings.audit_signing_key is not None:
        seed = parse_key("TIMMYBOT_AUDIT_SIGNING_KEY", settings.audit_signing_key, exact=32)
    elif settings.backend == "memory":
        # Nothing persists with the memory backend, the log included.
        signer = Ed25519Signer.generate()
        ring = Ed25519KeyRing()
        ring.add(signer.public_key)
        return signer, ring
    else:
        seed = load_or_create_key(_keys_dir(settings) / SIGNING_KEY_FILE, purpose="audit-signing")[
            :32
        ]
    signer = Ed25519Signer(seed)
    ring_path = _keys_dir(settings) / KEYRING_FILE
    if not ring_path.exists() and (_keys_dir(settings) / IDENTITY_FILE).exists():
        raise ConfigurationError(
            f"audit key ring {ring_path} is missing, but this data directory has been used; "
            f"restore it from your off-machine copy: {RECOVERY}"
        )
    ring = load_keyring(ring_path)
    if not ring.knows(signer.key_id):
        if settings.audit_signing_key is None and not _matches(settings, ring, signer):
            raise _mismatch(settings, ring_path, signer.key_id)
        ring.add(signer.public_key)
        if settings.backend != "memory":
            try:
                write_private_file(ring_path, ring.to_json(), mode=0o644)
            except OSError as error:
                raise not_written("audit key ring", ring_path, error) from None
    return signer, ring


def rotate_audit_signing_key(settings: Settings) -> tuple[str, str]:
    """Replace the signing key file by a new key; return ``(old_key_id, new_key_id)``.

    The old public key stays in the ring, so digests it signed still verify;
    the old private key is gone, so nobody can sign with it again. Running
    processes go on signing with the key they loaded until restarted.
    """
    if settings.audit_signing_key is not None:
        raise ConfigurationError(
            "TIMMYBOT_AUDIT_SIGNING_KEY is set: rotate by setting a new value there "
            "(and keep the old public key in the ring: run this with the old value first)"
        )
    # Locked: two rotations at once both read the ring, and the later write
    # dropped the other's new public key (and could leave a signing key the
    # ring does not know, which every start refuses).
    with keys_lock(settings):
        old_signer, ring = audit_keys(settings)
        new_signer = Ed25519Signer.generate()
        ring.add(new_signer.public_key)
        keys = _keys_dir(settings)
        # The ring first: a crash in between leaves an extra public key, never a
        # signing key whose public half is unknown.
        write_private_file(keys / KEYRING_FILE, ring.to_json(), mode=0o644)
        seed = bytes.fromhex(new_signer.seed_hex())
        write_private_file(keys / SIGNING_KEY_FILE, key_document(seed, purpose="audit-signing"))
    return old_signer.key_id, new_signer.key_id
