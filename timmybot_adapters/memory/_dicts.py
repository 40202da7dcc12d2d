"""What several memory adapters do to their dictionaries."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def delete_where(entries: dict[K, V], doomed: Callable[[K, V], bool]) -> int:
    """Delete every entry for which ``doomed(key, value)`` holds; return how many."""
    keys = [key for key, value in entries.items() if doomed(key, value)]
    for key in keys:
        del entries[key]
    return len(keys)
