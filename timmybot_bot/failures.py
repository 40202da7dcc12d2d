"""Describing an unexpected exception for a log line without its message.

An exception's message may quote what it failed on (a URL, a file, a value),
so the bot logs where an error happened and its class, never its text.
"""

from __future__ import annotations

import os
import traceback

__all__ = ["describe"]


def describe(error: BaseException, *, frames: int = 3) -> str:
    """Return ``"ErrorClass at file.py:12 in f <- other.py:40 in g"``, innermost first."""
    stack = traceback.extract_tb(error.__traceback__)[-frames:]
    where = " <- ".join(
        f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
        for frame in reversed(stack)
    )
    name = type(error).__name__
    return f"{name} at {where}" if where else name
