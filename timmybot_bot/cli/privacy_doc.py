"""Render the data classification into docs: ``python -m timmybot_bot.cli.privacy_doc``.

``--write docs/privacy.md`` regenerates the page's generated section,
``--check docs/privacy.md`` exits with status 1 when it is stale,
``--markdown`` prints the section and ``--info`` the ``/privacy info`` reply.
The table itself is :mod:`timmybot_core.domain.classification`; this generator
and its command line live in the bot so that the core holds data, not tools.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from timmybot_core.domain.classification import (
    CLASSIFICATION,
    NOT_COLLECTED,
    STORES,
    privacy_info_text,
)

__all__ = ["END_MARKER", "START_MARKER", "main", "markdown_section", "replace_generated_section"]

START_MARKER: Final = (
    "<!-- BEGIN GENERATED: data classification. Edit timmybot_core/domain/classification.py, "
    "then run: python -m timmybot_bot.cli.privacy_doc --write docs/privacy.md -->"
)
END_MARKER: Final = "<!-- END GENERATED: data classification -->"

_BY_STORE: Final = {store.name: store for store in STORES}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]


def markdown_section() -> str:
    """Return the generated part of ``docs/privacy.md`` (between the markers, exclusive)."""
    stored = (
        (
            _BY_STORE[entry.store].title,
            entry.field,
            entry.data_class.value,
            entry.purpose,
            entry.retention,
            entry.on_erasure.value,
            "yes" if entry.exported else "no",
        )
        for entry in CLASSIFICATION
    )
    header = ("store", "field", "class", "purpose", "kept for", "on erasure", "exported")
    lines = ["### What is stored", "", *_table(header, stored)]
    lines += ["", "### Where each store lives", ""]
    lines += _table(("store", "where"), [(store.title, store.where) for store in STORES])
    lines += ["", "### Not collected", ""]
    lines += _table(("what", "how it is avoided"), [(i.what, i.note) for i in NOT_COLLECTED])
    return "\n".join(lines) + "\n"


def replace_generated_section(document: str, section: str | None = None) -> str:
    """Return ``document`` with its generated section replaced by ``section``.

    ``section`` defaults to :func:`markdown_section`. Raises ``ValueError``
    if the markers are missing or out of order.
    """
    body = markdown_section() if section is None else section
    start = document.find(START_MARKER)
    end = document.find(END_MARKER)
    if start < 0 or end < 0 or end < start:
        raise ValueError(
            "the document has no generated section: add the two marker lines "
            f"{START_MARKER!r} and {END_MARKER!r}"
        )
    head = document[: start + len(START_MARKER)]
    return f"{head}\n\n{body}\n{document[end:]}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print, check or rewrite the generated section of a Markdown page."""
    parser = argparse.ArgumentParser(
        prog="python -m timmybot_bot.cli.privacy_doc",
        description="Render the data classification table.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--markdown", action="store_true", help="print the generated section")
    action.add_argument("--info", action="store_true", help="print the /privacy info reply")
    action.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE is stale")
    action.add_argument("--write", type=Path, metavar="FILE", help="rewrite FILE's section")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_section())
        return 0
    if args.info:
        sys.stdout.write(privacy_info_text() + "\n")
        return 0
    path: Path = args.check or args.write
    try:
        document = path.read_text(encoding="utf-8")
        updated = replace_generated_section(document)
    except (OSError, ValueError) as error:
        sys.stderr.write(f"{path}: {error}\n")
        return 2
    if args.check:
        if updated != document:
            sys.stderr.write(
                f"{path} is stale: run python -m timmybot_bot.cli.privacy_doc --write {path}\n"
            )
            return 1
        return 0
    path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
