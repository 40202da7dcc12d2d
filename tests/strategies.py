"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Every code point, lone surrogates included (hypothesis excludes them by default).
any_char = st.characters(codec=None, exclude_categories=())

FRAGMENTS = [
    "'",
    '"',
    "`",
    " OR ",
    " or 1=1",
    "'1'='1",
    "--",
    "/*",
    "*/",
    ";",
    " DROP TABLE x",
    " UNION SELECT ",
    "<",
    ">",
    "<script>",
    "javascript:",
    "java\tscript:",
    "onerror=",
    "<img src=x onerror=alert(1)>",
    "data:text/html,",
    "%27",
    "&#x27;",
    "&colon;",
    "@everyone",
    "@here",
    "<@",
    "<@&",
    "<#",
    "</",
    "123456789012345678>",
    "\\",
    "*",
    "_",
    "~",
    "|",
    "[",
    "]",
    "(",
    ")",
    "#",
    "-",
    ">",
    "\n",
    "\r\n",
    "\t",
    "\u202e",
    "\u2066",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\x00",
    "\u0301",
    "\u3164",
    "\ufe0f",
    "\ud800",
    "\udfff",
    "ｊａｖａｓｃｒｉｐｔ:",
    "＜",
    "＞",
    "＠",
    "é",
    "坂本",
    "Beyoncé",
    "Sigur Rós",
    " ",
    "  ",
    "https://",
    "127.0.0.1",
    "[::1]",
    "0x7f.1",
    "localhost",
    "\u3002",
    "％",
    "…",
]

# Text built from attack fragments and arbitrary characters, so that the
# interesting shapes come up far more often than in uniform random text.
adversarial_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(any_char, max_size=4)), max_size=40
).map("".join)

any_text = st.one_of(st.text(any_char, max_size=300), adversarial_text)
