"""The audit chain's canonical encoding and hashes.

A record's hash covers every field that says what happened, plus its place
in the chain (writer, sequence) and the previous record's hash. The
encoding is JSON with sorted keys, no insignificant whitespace, UTF-8 and
timestamps as fixed-width UTC strings, so any implementation (or a later
version of this one) that follows :func:`canonical_bytes` gets the same
bytes for the same record. The format is described in ``docs/audit.md``.

Stores keep those exact bytes (:func:`record_bytes`) and rebuild a record
from them (:func:`record_from_bytes`), so what a reader sees is what was
hashed, and verification hashes stored bytes instead of re-encoding each
record (it runs near the cost of SHA-256 itself). A record stored without
its bytes (written before they were kept) is re-encoded, as before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from timmybot_core.domain.audit_records import AuditKind, AuditRecord, ChainHead, SignedDigest
from timmybot_core.domain.clock import as_utc

__all__ = [
    "RECORD_FORMAT",
    "canonical_bytes",
    "digest_bytes",
    "digest_from_bytes",
    "digest_hash",
    "digest_message",
    "format_timestamp",
    "json_value",
    "parse_timestamp",
    "record_bytes",
    "record_from_bytes",
    "record_hash",
    "sealed",
]

RECORD_FORMAT = "timmybot.audit.record/v1"
DIGEST_FORMAT = "timmybot.audit.digest/v1"
_MAX_DEPTH = 8


def format_timestamp(moment: datetime) -> str:
    """Return ``moment`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

    Raises ``ValueError`` for a naive datetime: an audit time must be absolute.
    """
    return as_utc(moment, "audit timestamps").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Parse :func:`format_timestamp`'s output; ``ValueError`` for anything else."""
    if len(text) != 27 or not text.endswith("Z"):
        raise ValueError("an audit timestamp is YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


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


def record_bytes(record: AuditRecord) -> bytes:
    """Return the bytes ``record``'s hash covers: its canonical encoding.

    The bytes a record was sealed with or read back from are kept on it, so
    they are encoded at most once per record object.
    """
    body = record._body
    if body is None:
        body = canonical_bytes(_record_fields(record))
        object.__setattr__(record, "_body", body)
    return body


def record_hash(record: AuditRecord, *, sequence: int | None = None) -> str:
    """Return the SHA-256 (hex) of ``record``'s canonical encoding.

    ``record.hash`` itself is not covered. ``sequence`` replaces the
    record's own, which lets a verifier tell a reordered record (its hash
    matches another position) from a modified one.
    """
    if sequence is None or sequence == record.sequence:
        return hashlib.sha256(record_bytes(record)).hexdigest()
    return hashlib.sha256(canonical_bytes(_record_fields(record, sequence=sequence))).hexdigest()


def sealed(draft: AuditRecord) -> AuditRecord:
    """Return ``draft`` with its ``hash`` set, keeping the bytes that were hashed."""
    body = record_bytes(draft)
    record = attrs.evolve(draft, hash=hashlib.sha256(body).hexdigest())
    object.__setattr__(record, "_body", body)
    return record


def record_from_bytes(body: bytes, *, hash: str) -> AuditRecord:
    """Rebuild a record from the exact bytes that were hashed (:func:`record_bytes`).

    Every field comes from ``body``, so the record read is the record that
    was hashed: a store's other columns only serve its indexes. Raises
    ``ValueError`` for bytes that are not a version-1 record encoding.
    """
    try:
        fields = json.loads(body.decode("utf-8", "surrogatepass"))
        if not isinstance(fields, dict) or fields.get("format") != RECORD_FORMAT:
            raise ValueError("not an audit record encoding")
        details = fields["details"]
        if not isinstance(details, dict):
            raise TypeError("details must be an object")
        record = AuditRecord(
            event_id=fields["event_id"],
            writer_id=fields["writer_id"],
            sequence=fields["sequence"],
            timestamp=parse_timestamp(fields["timestamp"]),
            kind=AuditKind(fields["kind"]),
            action=fields["action"],
            actor=fields["actor"],
            subject=fields["subject"],
            resource=fields["resource"],
            details=details,
            source=fields["source"],
            prev_hash=fields["prev_hash"],
            hash=hash,
        )
    except (KeyError, TypeError, UnicodeError) as error:
        raise ValueError(f"malformed audit record encoding ({type(error).__name__})") from None
    object.__setattr__(record, "_body", body)
    return record


def _digest_fields(digest: SignedDigest, form: str) -> dict[str, Any]:
    return {
        "format": form,
        "writer_id": digest.writer_id,
        "digest_sequence": digest.digest_sequence,
        "created_at": format_timestamp(digest.created_at),
        "head": attrs.asdict(digest.head),
        "covers_from": digest.covers_from,
        "prev_digest_hash": digest.prev_digest_hash,
        "key_id": digest.key_id,
    }


def digest_message(digest: SignedDigest) -> bytes:
    """Return the bytes a digest's signature covers: every field but ``hash`` and ``signature``."""
    return canonical_bytes(_digest_fields(digest, DIGEST_FORMAT))


def digest_hash(digest: SignedDigest) -> str:
    """Return the SHA-256 (hex) of :func:`digest_message`; the next digest links to it."""
    return hashlib.sha256(digest_message(digest)).hexdigest()


ANCHOR_FORMAT = "timmybot.audit.anchored-digest/v1"


def digest_bytes(digest: SignedDigest) -> bytes:
    """Return a digest as canonical JSON with its hash and signature (what anchors keep)."""
    return canonical_bytes(
        {
            **_digest_fields(digest, ANCHOR_FORMAT),
            "hash": digest.hash,
            "signature": base64.b64encode(digest.signature).decode("ascii"),
        }
    )


def digest_from_bytes(data: bytes) -> SignedDigest:
    """Parse :func:`digest_bytes`' output; ``ValueError`` for anything else."""
    try:
        fields = json.loads(data.decode("utf-8"))
        if not isinstance(fields, dict) or fields.get("format") != ANCHOR_FORMAT:
            raise ValueError("not an anchored audit digest")
        head = fields["head"]
        digest = SignedDigest(
            writer_id=fields["writer_id"],
            digest_sequence=fields["digest_sequence"],
            created_at=parse_timestamp(fields["created_at"]),
            head=ChainHead(
                writer_id=head["writer_id"], sequence=head["sequence"], hash=head["hash"]
            ),
            covers_from=fields["covers_from"],
            prev_digest_hash=fields["prev_digest_hash"],
            key_id=fields["key_id"],
            hash=fields["hash"],
            signature=base64.b64decode(fields["signature"], validate=True),
        )
    except (KeyError, TypeError, UnicodeError, binascii.Error) as error:
        raise ValueError(f"malformed anchored audit digest ({type(error).__name__})") from None
    if not all(
        isinstance(v, int) and not isinstance(v, bool)
        for v in (digest.digest_sequence, digest.covers_from, digest.head.sequence)
    ):
        raise ValueError("malformed anchored audit digest (a position is not a number)")
    return digest
