"""Unicode hygiene shared by the validator and the sanitizer.

Everything here is pure, linear in the length of its input, and total: it
accepts any ``str`` (lone surrogates included) and never raises.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

__all__ = [
    "MAX_COMBINING_RUN",
    "collapse_whitespace",
    "fixed_point",
    "is_invisible",
    "limit_combining_marks",
    "strip_invisible",
]

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) outside the
# Cc/Cf/Cs categories: fillers and selectors that render as nothing and are
# used to smuggle "empty" names or split keywords.
_EXTRA_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # hangul choseong/jungseong fillers
    (0x17B4, 0x17B5),  # khmer inherent vowels
    (0x180B, 0x180F),  # mongolian free variation selectors
    (0x3164, 0x3164),  # hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth hangul filler
    (0xFFF0, 0xFFF8),  # unassigned specials
    (0xE0000, 0xE0FFF),  # tags and variation selectors supplement
)

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})

# Only characters outside printable ASCII need a closer look, so plain ASCII
# text is scanned by one C-level regex pass and left untouched.
_SUSPECT = re.compile(r"[^\x20-\x7e]")
_WHITESPACE_RUN = re.compile(r"\s+")


def is_invisible(char: str) -> bool:
    """Tell whether ``char`` is a control, format, surrogate or ignorable code point.

    Whitespace controls (tab, newline, ...) count as invisible here; callers
    that want to keep them as spaces map them first (see :func:`strip_invisible`).
    """
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _EXTRA_IGNORABLE)


def _replacement(keep_newlines: bool) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if char == "\n" and keep_newlines:
            return "\n"
        if char.isspace():
            # Tabs, CR, NEL, U+2028/2029 and friends become one plain space,
            # so "Drop\tIt" stays two words and no line break survives.
            return " "
        return "" if is_invisible(char) else char

    return replace


_REPLACE_ALL = _replacement(keep_newlines=False)
_REPLACE_KEEP_NL = _replacement(keep_newlines=True)


def strip_invisible(text: str, *, keep_newlines: bool = False) -> str:
    r"""Remove control, format (bidi, zero-width, BOM), surrogate and ignorable characters.

    Whitespace characters become a plain space instead of vanishing; with
    ``keep_newlines`` a ``\n`` is kept (``\r\n`` and ``\r`` become ``\n``).
    """
    if keep_newlines:
        text = text.replace("\r\n", "\n")
        return _SUSPECT.sub(_REPLACE_KEEP_NL, text.replace("\r", "\n"))
    return _SUSPECT.sub(_REPLACE_ALL, text)


# UAX #15 "Stream-Safe Text Format": no real text needs more than 30
# combining marks in a row. Longer runs are "zalgo" noise, and they make
# Unicode normalization quadratic (canonical reordering sorts each run).
MAX_COMBINING_RUN = 30


def limit_combining_marks(text: str, *, limit: int = MAX_COMBINING_RUN) -> str:
    """Drop combining marks beyond ``limit`` in a row; linear, idempotent."""
    if text.isascii():
        return text
    out: list[str] = []
    run = 0
    changed = False
    combining = unicodedata.combining
    for char in text:
        if combining(char):
            run += 1
            if run > limit:
                changed = True
                continue
        else:
            run = 0
        out.append(char)
    return "".join(out) if changed else text


def collapse_whitespace(text: str) -> str:
    """Collapse every run of whitespace into one space and trim both ends."""
    return _WHITESPACE_RUN.sub(" ", text).strip()


def fixed_point(step: Callable[[str], str], text: str, *, rounds: int = 6) -> str | None:
    """Apply ``step`` until the text stops changing; ``None`` if it never settles.

    Normalization steps interact (dropping a character can bring a base letter
    next to a combining mark that NFKC then composes), and a value that is not
    a fixed point would validate differently the second time. Every step used
    here shrinks or composes, so a handful of rounds always suffices; the
    bound keeps a pathological input from looping, and ``None`` lets the caller
    reject it rather than return a value that is not stable.
    """
    for _ in range(rounds):
        result = step(text)
        if result == text:
            return result
        text = result
    return None
