"""The erasure journal: an erasure request survives a crash and is finished later.

An erasure touches several stores one after the other; a process killed
in between must not leave a user half-erased with nobody knowing. So the
request is written here before the first store is touched, each store's
outcome is written as soon as it is known, and the entry is removed only
once every step is done and the audit trail holds the final record. The
clean-up job resumes whatever is left (``pending``).

The entry holds the user's ID only while the request is pending: it is
what lets the request be resumed, and it goes with the entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["ErasureEntry", "ErasureJournal", "ErasureStep", "decode_steps", "encode_steps"]


@attrs.frozen(kw_only=True)
class ErasureStep:
    """The recorded outcome of erasing one store.

    Attributes:
        ok: the store holds nothing of the user any more.
        deleted: how many items went.
        detail: what happened, for the report (never a token or the user's ID).
        final: a failure that running the step again cannot mend (a token
            that could not be revoked at its platform was still deleted
            here, so there is nothing left to revoke with).

    """

    ok: bool
    deleted: int = 0
    detail: str = ""
    final: bool = False


@attrs.frozen(kw_only=True)
class ErasureEntry:
    """One pending erasure request."""

    request_id: str
    user_id: int
    requester: str
    requested_at: datetime
    steps: Mapping[str, ErasureStep] = attrs.field(factory=dict)


def encode_steps(steps: Mapping[str, ErasureStep]) -> str:
    """Return ``steps`` as canonical JSON text (for stores that keep text)."""
    data = {name: attrs.asdict(step) for name, step in steps.items()}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def decode_steps(text: str) -> dict[str, ErasureStep]:
    """Read :func:`encode_steps`' text back; ``ValueError`` if it is not that."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("erasure steps must be a JSON object")
    steps: dict[str, ErasureStep] = {}
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ValueError("an erasure step must be a JSON object")
        steps[str(name)] = ErasureStep(
            ok=bool(value["ok"]),
            deleted=int(value["deleted"]),
            detail=str(value["detail"]),
            final=bool(value.get("final", False)),
        )
    return steps


@runtime_checkable
class ErasureJournal(Protocol):
    """Keeps pending erasure requests. Every method may raise ``StoreUnavailable``."""

    async def begin(self, entry: ErasureEntry) -> None:
        """Record a new request (its ``steps`` as given); a known ``request_id`` is kept as is."""
        ...

    async def record_step(self, request_id: str, store: str, step: ErasureStep) -> bool:
        """Record one store's outcome; ``False`` if the request is not pending (any more)."""
        ...

    async def finish(self, request_id: str) -> bool:
        """Remove the request, the user's ID with it; ``True`` if it was pending."""
        ...

    async def pending(self, *, limit: int = 100) -> list[ErasureEntry]:
        """Return up to ``limit`` pending requests, oldest first."""
        ...
