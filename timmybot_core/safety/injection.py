"""Detectors for script- and SQL-injection *shapes* in user text.

A music search must accept "Drop It Like It's Hot" and "Union of the Snake",
so nothing here blocks a bare word. Each detector looks for the structure an
attack needs (a quote that closes a string and opens a condition, a statement
after a semicolon, a script URL scheme, an event-handler attribute inside a
tag) and names what it found.

Every pattern is written so that the regex engine cannot backtrack
quadratically: starts are anchored on rare characters, repetitions are single
character classes or bounded windows, and the text has its whitespace
collapsed before it gets here. ``bench/`` checks that the cost stays linear.
"""

from __future__ import annotations

import functools
import re

from timmybot_core.safety.text import collapse_whitespace, strip_invisible

__all__ = ["detection_forms", "find_forbidden_word", "find_injection"]


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    # Compiled on first use, not at import: compiling these patterns is most
    # of what importing this module would cost, and a bot that imports the
    # validator and never validates (or imports it for the sanitizer) should
    # not pay for it.
    return re.compile(source)


# -- script shapes --------------------------------------------------------

# URL schemes that make a browser run code. Browsers ignore whitespace and
# controls inside a scheme ("java\tscript:" runs), so a space may stand
# between any two letters; a scheme starts a token, so "olive script:" or
# "Big Data: ..." are not schemes.
_SCHEME_START = r"(?<![\w+.-])"
_SCRIPT_SCHEME = _SCHEME_START + r"(?:j\s?a\s?v\s?a|v\s?b)\s?s\s?c\s?r\s?i\s?p\s?t\s?:"
# data: URLs whose media type (right after the colon) renders as a document
# that can hold script.
_DATA_DOCUMENT = (
    _SCHEME_START + r"d\s?a\s?t\s?a\s?:\s?(?:text/(?:html|xml|javascript|ecmascript)"
    r"|application/(?:xhtml\+xml|xml|javascript|ecmascript)|image/svg\+xml)"
)
# Elements that run script or load another document on their own.
_ACTIVE_ELEMENT = r"<\s?/?\s?(script|iframe)\b"
# A tag-like segment: '<' and a name, up to the next angle bracket. Segments
# never contain '<', so finditer visits each character once.
_TAG_SEGMENT = r"<[a-z!/?][^<>]*"
_HANDLER_IN_TAG = r"[\s/\"'`]on[a-z]{3,}\s?="
# An attribute break-out without a tag: `" onmouseover="...`, or right after
# the quote when the value calls something (`"onfocus=alert(1)`); 'he said
# "online=yes"' is neither.
_HANDLER_AFTER_QUOTE = r"[\"'`](?:[\s/]on[a-z]{3,}\s?=|on[a-z]{3,}\s?=\s?[\"'`]?[\w.$]+\s?[(`])"

# -- SQL shapes -----------------------------------------------------------

_QUOTE = r"[\"'`]"
# A quote that closes a string literal, then a boolean operator, then a
# condition an attacker can complete: a comparison ("'1'='1", "1=1", "x LIKE
# '%"), a constant followed by a comment or terminator ("true--"), or a call
# of a function used for blind injection. "Ramblin' and True" or "Ain't
# Nothin' and Nobody Like You" are none of these.
_SQL_FUNCTIONS = (
    r"sleep|benchmark|pg_sleep|waitfor|ascii|ord|substr|substring|mid|char|chr|concat|"
    r"extractvalue|updatexml|load_file|version|database|user|current_user|if|count|length"
)
_QUOTE_CONDITION = (
    _QUOTE
    + r"[\s)]*(?:\b(?:or|and|xor)\b|\|\||&&)[\s(]*(?:not\s)?"
    + r"(?:"
    + r"([\"'`]?)[\w.@$]*\1\s?(?:<=>|=|<>|!=|<=|>=|<|>|\blike\s?[\"'`%]|\bis\s(?:not\s)?null\b"
    + r"|\bin\s?\(|\bregexp\s?[\"'`]|\brlike\s?[\"'`])"
    + r"|(?:\btrue\b|\bfalse\b|\bnull\b|\d+)\s?(?:--|#|;|/\*|(?:or|and|\|\||&&)\s?[\"'`])"
    + r"|[\"'`]0*[1-9]\d*[\"'`]?\s?(?:$|--|#|;|/\*)"
    + r"|\b(?:"
    + _SQL_FUNCTIONS
    + r")\s?\("
    + r")"
)
# A quote that closes a literal and then comments out the rest of the query:
# SQL's "--", C-style "/*" (MySQL's "/*!" too), MySQL's "#" ("admin'#",
# "x') #"). A "#" followed by a letter or digit is a hashtag or a number
# ('"Hello" #1 hit'), not a comment, and passes.
_QUOTE_COMMENT = _QUOTE + r"[\s);]*(?:--|/\*|#(?!\w))"
# A second statement stacked after a semicolon.
_STACKED_STATEMENT = (
    r";[\s(]*(?:"
    r"select\s[^;]{0,200}?\bfrom\b"
    r"|select\s(?:\*|@@|\d|null\b|sleep\s?\(|pg_sleep|version\s?\(|user\s?\(|load_file|char\s?\()"
    r"|insert\sinto\b"
    r"|update\s[\w.`\"\[\]]+\sset\s[\w.`\"\[\]]+\s?="
    r"|delete\sfrom\b"
    r"|(?:drop|create|alter)\s(?:table|database|schema|view|index|user|procedure|function|trigger)\b"
    r"|truncate\s(?:table\s)?[\w`\"]"
    r"|exec(?:ute)?\s?\(?\s?(?:xp_|sp_|master\.|@)"
    r"|shutdown\s?(?:$|;|--|/\*)"
    r"|declare\s@"
    r"|waitfor\sdelay\b"
    r"|(?:grant|revoke)\s[\w\s,]{1,60}\bon\b"
    r")"
)
_UNION_SELECT = r"\bunion(?:\s(?:all|distinct))?\s?\(?\s?select\b"

_FORBIDDEN_WORD_TEMPLATE = r"\b(?:{})\b"


def _strip_sql_comments(text: str) -> str:
    """Replace each ``/* ... */`` with a space (``UNION/**/SELECT``); linear."""
    if "/*" not in text:
        return text
    out: list[str] = []
    position = 0
    while True:
        start = text.find("/*", position)
        if start < 0:
            break
        end = text.find("*/", start + 2)
        if end < 0:
            break
        out.append(text[position:start])
        out.append(" ")
        position = end + 2
    out.append(text[position:])
    return "".join(out)


def _decode_once(text: str) -> str:
    # Imported on first need: html (with its entity table) and urllib.parse
    # are a large share of what importing the validator would otherwise cost.
    if "%" in text:
        from urllib.parse import unquote

        text = unquote(text, errors="replace")
    if "&" in text:
        import html

        text = html.unescape(text)
    return text


def detection_forms(normalized: str) -> list[str]:
    """Return the case-folded forms of ``normalized`` that detectors look at.

    The text itself, then up to two rounds of percent- and HTML-entity
    decoding (``%27``, ``&#x27;``, ``&colon;``) in case the value is decoded
    again somewhere downstream. Each form is cleaned of invisible characters
    and has its whitespace collapsed, which the patterns rely on.
    """
    forms = [collapse_whitespace(strip_invisible(normalized.casefold()))]
    current = normalized
    for _ in range(2):
        decoded = _decode_once(current)
        if decoded == current:
            break
        current = decoded
        forms.append(collapse_whitespace(strip_invisible(decoded.casefold())))
    return forms


def _find_script(form: str) -> str | None:
    if match := _pattern(_SCRIPT_SCHEME).search(form):
        return f"a script URL ({''.join(match.group().split())})"
    if _pattern(_DATA_DOCUMENT).search(form):
        return "a data: URL that holds a document"
    if match := _pattern(_ACTIVE_ELEMENT).search(form):
        return f"an HTML <{match.group(1)}> element"
    if "<" in form:
        for segment in _pattern(_TAG_SEGMENT).finditer(form):
            if _pattern(_HANDLER_IN_TAG).search(segment.group()):
                return "an HTML event handler (on...=)"
    if _pattern(_HANDLER_AFTER_QUOTE).search(form):
        return "an HTML event handler (on...=)"
    return None


def _find_sql(form: str) -> str | None:
    if _pattern(_QUOTE_COMMENT).search(form):
        return "SQL injection (a quote followed by a comment)"
    uncommented = collapse_whitespace(_strip_sql_comments(form))
    if _pattern(_QUOTE_CONDITION).search(uncommented):
        return "SQL injection (a quote followed by an OR/AND condition)"
    if ";" in uncommented and _pattern(_STACKED_STATEMENT).search(uncommented):
        return "SQL injection (a statement after ';')"
    if _pattern(_UNION_SELECT).search(uncommented):
        return "SQL injection (UNION SELECT)"
    return None


def find_injection(forms: list[str], *, scripts: bool, sql: bool) -> str | None:
    """Describe the first injection shape found in any of ``forms``, or ``None``."""
    for form in forms:
        if scripts and (found := _find_script(form)):
            return found
        if sql and (found := _find_sql(form)):
            return found
    return None


def compile_forbidden_words(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """Compile the strict policy's whole-word blocklist (case-insensitive)."""
    if not words:
        return None
    return re.compile(
        _FORBIDDEN_WORD_TEMPLATE.format("|".join(re.escape(w) for w in words)), re.IGNORECASE
    )


def find_forbidden_word(pattern: re.Pattern[str] | None, forms: list[str]) -> str | None:
    """Return the first blocklisted word found in ``forms`` (upper-cased), or ``None``."""
    if pattern is None:
        return None
    for form in forms:
        if match := pattern.search(form):
            return match.group().upper()
    return None
