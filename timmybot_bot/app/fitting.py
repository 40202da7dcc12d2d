"""Reply texts that fit one Discord message, saying what was left out.

A reply past Discord's 2,000 characters is cut by the sender, which drops
its end without a word: the lines that matter most there (what was left,
how to see the rest) go first. These lists are cut between items instead,
with a last line that counts what did not fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from timmybot_core.safety.sanitizer import DiscordLimits

__all__ = ["fit_lines"]


def fit_lines(
    head: Sequence[str],
    items: Sequence[str],
    *,
    more: Callable[[int], str],
    total: int | None = None,
    limit: int = DiscordLimits.MESSAGE,
) -> str:
    """Return ``head`` and as many whole ``items`` as fit in ``limit``, then ``more(left)``.

    ``total`` counts the items there are (default: ``items``, when all are
    offered); ``more`` is called, and its line added, only when some are left.
    """
    total = len(items) if total is None else total
    lines = list(head)
    for index, item in enumerate(items):
        left = total - index - 1
        tail = [more(left)] if left else []
        if len("\n".join([*lines, item, *tail])) > limit:
            return "\n".join([*lines, more(total - index)])
        lines.append(item)
    if total > len(items):
        lines.append(more(total - len(items)))
    return "\n".join(lines)
