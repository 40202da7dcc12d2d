"""The audit chain's canonical encoding and hashes.

A record's hash covers every field that says what happened, plus its place
in the chain (writer, sequence) and the previous record's hash. The
encoding is JSON with sorted keys, no insignificant whitespace, UTF-8 and
timestamps as fixed-width UTC strings, so any implementation (or a later
version of this one) that follows :func:`canonical_bytes` gets the same
bytes for the same record. The format is described in ``docs/audit.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from timmybot_core.domain.audit_records import AuditRecord, ChainHead, SignedDigest

__all__ = [
    "RECORD_FORMAT",
    "canonical_bytes",
    "digest_hash",
    "digest_message",
    "format_timestamp",
    "json_value",
    "record_hash",
]

RECORD_FORMAT = "timmybot.audit.record/v1"
DIGEST_FORMAT = "timmybot.audit.digest/v1"
_MAX_DEPTH = 8


def format_timestamp(moment: datetime) -> str:
    """Return ``moment`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

    Raises ``ValueError`` for a naive datetime: an audit time must be absolute.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_value(value: object, *, depth: int = 0) -> Any:
    """Return ``value`` as plain JSON data, or raise ``TypeError`` naming what is wrong.

    Accepted: str, int, finite float, bool, None, datetimes (as UTC text),
    lists/tuples and mappings with str keys, nested at most 8 deep. Tuples
    become lists, so a value reads back the same as it was hashed.
    """
    if depth > _MAX_DEPTH:
        raise TypeError("audit details are nested too deeply (more than 8 levels)")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError("audit details cannot hold NaN or infinity")
        return value
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, list | tuple):
        return [json_value(item, depth=depth + 1) for item in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit detail keys must be text, not {type(key).__name__}")
            out[key] = json_value(item, depth=depth + 1)
        return out
    raise TypeError(f"audit details cannot hold a {type(value).__name__}")


def canonical_bytes(value: object) -> bytes:
    """Return the canonical JSON encoding of ``value`` (see the module docstring)."""
    return json.dumps(
        json_value(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8", "surrogatepass")


def _record_fields(record: AuditRecord, *, sequence: int | None = None) -> dict[str, Any]:
    return {
        "format": RECORD_FORMAT,
        "event_id": record.event_id,
        "writer_id": record.writer_id,
        "sequence": record.sequence if sequence is None else sequence,
        "timestamp": format_timestamp(record.timestamp),
        "kind": record.kind.value,
        "action": record.action,
        "actor": record.actor,
        "subject": record.subject,
        "resource": record.resource,
        "details": record.details,
        "source": record.source,
        "prev_hash": record.prev_hash,
    }


def record_hash(record: AuditRecord, *, sequence: int | None = None) -> str:
    """Return the SHA-256 (hex) of ``record``'s canonical encoding.

    ``record.hash`` itself is not covered. ``sequence`` replaces the
    record's own, which lets a verifier tell a reordered record (its hash
    matches another position) from a modified one.
    """
    return hashlib.sha256(canonical_bytes(_record_fields(record, sequence=sequence))).hexdigest()


def _head(head: ChainHead) -> dict[str, Any]:
    return {"writer_id": head.writer_id, "sequence": head.sequence, "hash": head.hash}


def digest_message(digest: SignedDigest) -> bytes:
    """Return the bytes a digest's signature covers: every field but ``hash`` and ``signature``."""
    return canonical_bytes(
        {
            "format": DIGEST_FORMAT,
            "writer_id": digest.writer_id,
            "digest_sequence": digest.digest_sequence,
            "created_at": format_timestamp(digest.created_at),
            "head": _head(digest.head),
            "covers_from": digest.covers_from,
            "prev_digest_hash": digest.prev_digest_hash,
            "key_id": digest.key_id,
        }
    )


def digest_hash(digest: SignedDigest) -> str:
    """Return the SHA-256 (hex) of :func:`digest_message`; the next digest links to it."""
    return hashlib.sha256(digest_message(digest)).hexdigest()
