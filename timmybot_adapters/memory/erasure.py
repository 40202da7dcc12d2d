"""ErasureJournal in memory: pending erasure requests of one process."""

from __future__ import annotations

import threading

import attrs

from timmybot_core.ports.erasure import ErasureEntry, ErasureStep

__all__ = ["MemoryErasureJournal"]


class MemoryErasureJournal:
    """Pending erasure requests in a dictionary (nothing survives the process)."""

    def __init__(self) -> None:
        """Start with no request."""
        self._entries: dict[str, ErasureEntry] = {}
        self._lock = threading.Lock()

    async def begin(self, entry: ErasureEntry) -> None:
        """Record a new request; a known ``request_id`` is kept as is."""
        with self._lock:
            self._entries.setdefault(entry.request_id, entry)

    async def record_step(self, request_id: str, store: str, step: ErasureStep) -> bool:
        """Record one store's outcome; ``False`` if the request is not pending."""
        with self._lock:
            entry = self._entries.get(request_id)
            if entry is None:
                return False
            self._entries[request_id] = attrs.evolve(entry, steps={**entry.steps, store: step})
            return True

    async def finish(self, request_id: str) -> bool:
        """Remove the request; ``True`` if it was pending."""
        with self._lock:
            return self._entries.pop(request_id, None) is not None

    async def pending(self, *, limit: int = 100) -> list[ErasureEntry]:
        """Return up to ``limit`` pending requests, oldest first."""
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: (e.requested_at, e.request_id))
        return entries[: max(limit, 0)]
