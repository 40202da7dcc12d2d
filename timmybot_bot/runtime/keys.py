"""Local key material: parsing keys from settings, and key files kept with mode 0600.

A key file is created once, atomically (several processes may start at the
same moment and must end up with the same key), and refused if its
permissions let anyone but the owner read it. Once the data directory has
an identity (``keys/data-identity.json``, see :mod:`timmybot_bot.runtime.data_dir`),
a missing vault, pseudonym or audit signing key is never created again: a
new key would silently orphan what the lost one protects.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path

from timmybot_bot.runtime.settings import ConfigurationError

__all__ = [
    "IDENTITY_FILE",
    "PRIMARY_KEY_FILES",
    "RECOVERY",
    "check_private",
    "key_document",
    "key_id_for",
    "load_or_create_key",
    "not_written",
    "parse_key",
    "write_private_file",
]

MIN_KEY_BYTES = 32
#: The data directory's identity, beside the keys (see timmybot_bot.runtime.data_dir).
IDENTITY_FILE = "data-identity.json"
#: Keys created on a directory's first start only; later they must be there.
PRIMARY_KEY_FILES = frozenset({"vault.key", "pseudonym.key", "audit-signing.key"})
#: Where refusals point the operator.
RECOVERY = "see the recovery section of docs/operations.md"


def parse_key(name: str, raw: str, *, exact: int | None = None) -> bytes:
    """Decode a key given as hex or base64; at least 32 bytes (exactly ``exact`` if given)."""
    text = raw.strip()
    padded = text + "=" * (-len(text) % 4)
    decoded: bytes | None
    try:
        decoded = bytes.fromhex(text)
    except ValueError:
        # binascii.Error is a ValueError.
        try:
            decoded = base64.b64decode(padded, altchars=b"-_", validate=False)
        except ValueError:
            decoded = None
        if decoded is not None and len(decoded) < MIN_KEY_BYTES:
            try:
                decoded = base64.b64decode(padded, validate=True)
            except ValueError:
                decoded = None
    if decoded is None:
        raise ConfigurationError(f"{name} must be hex or base64")
    if len(decoded) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"{name} must hold at least {MIN_KEY_BYTES} bytes of key (got {len(decoded)})"
        )
    if exact is not None and len(decoded) != exact:
        raise ConfigurationError(
            f"{name} must hold exactly {exact} bytes of key (got {len(decoded)})"
        )
    return decoded


def key_id_for(key: bytes, prefix: str) -> str:
    """Return a short, stable ID for ``key`` that reveals nothing useful about it."""
    digest = hashlib.sha256(b"timmybot/key-id/v1\x00" + key).hexdigest()
    return f"{prefix}{digest[:8]}"


def check_private(path: Path) -> None:
    """Refuse a key file that anyone but its owner may read (``ConfigurationError``)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"key file {path} is readable by other users (mode {mode:04o}); run: chmod 600 {path}"
        )


def _read(path: Path) -> bytes:
    check_private(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        key = bytes.fromhex(document["key"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigurationError(
            f"key file {path} is unreadable or damaged ({type(error).__name__}); "
            "restore it from a backup: a new key would orphan what the old one protects"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(f"key file {path} holds a key shorter than {MIN_KEY_BYTES} bytes")
    return key


def load_or_create_key(path: Path, *, purpose: str) -> bytes:
    """Return the key stored at ``path``, creating it (mode 0600) on first use."""
    if path.exists():
        return _read(path)
    if path.name in PRIMARY_KEY_FILES and (path.parent / IDENTITY_FILE).exists():
        raise ConfigurationError(
            f"key file {path} is missing, but this data directory has been used "
            f"({path.parent / IDENTITY_FILE}); restore the key from a backup "
            f"(a new key would orphan what the old one protects): {RECOVERY}"
        )
    key = secrets.token_bytes(MIN_KEY_BYTES)
    # link() fails if the name exists: of several processes starting at
    # once, exactly one creates the key and the others read it.
    try:
        write_private_file(path, key_document(key, purpose=purpose), replace=False)
    except FileExistsError:
        return _read(path)
    except OSError as error:
        raise not_written("key file", path, error) from None
    return key


def not_written(what: str, path: Path, error: OSError) -> ConfigurationError:
    """Return the refusal for a file of the data directory that could not be written.

    A full disk or a directory that cannot be written: the file was written
    whole or not at all (:func:`write_private_file`), so the next start
    finishes the job.
    """
    reason = errno.errorcode.get(error.errno or 0, type(error).__name__)
    return ConfigurationError(
        f"{what} {path} cannot be written ({reason}); nothing was left half-written: "
        "free space or fix the directory's permissions, then start again"
    )


def key_document(key: bytes, *, purpose: str) -> str:
    """Return the text of a key file holding ``key`` (JSON: format, purpose, creation, hex key)."""
    created = datetime.now(UTC).isoformat()
    return json.dumps({"v": 1, "purpose": purpose, "created": created, "key": key.hex()})


def write_private_file(path: Path, text: str, *, replace: bool = True, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` (``mode``, 0600 unless given) atomically: synced, renamed.

    Readers see the old file or the whole new one, never a part. With
    ``replace=False`` the file is linked into place instead, which raises
    :class:`FileExistsError` when ``path`` exists (a key is never overwritten).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
