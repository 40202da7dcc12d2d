"""Every relative link of README.md and docs/*.md leads to a file and heading that exist.

A newcomer follows these links from docs/index.md; a heading renamed without
its links becomes a link that opens the page at the top, which no reader
reports. Anchors are made as GitHub makes them from a heading: lower case,
punctuation but ``-`` and ``_`` dropped, spaces become ``-``, a repeated heading
gets ``-1``, ``-2``, ...
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.*)$", re.MULTILINE)


def _prose(page: Path) -> str:
    """Return the page without its code blocks, where ``](...)`` is not a link."""
    return _FENCE.sub("", page.read_text(encoding="utf-8"))


def _anchors(page: Path) -> set[str]:
    seen: Counter[str] = Counter()
    anchors = set()
    for heading in _HEADING.findall(_prose(page)):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
        slug = slug.replace(" ", "-")
        anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return anchors


def test_the_check_reads_the_pages_and_their_links() -> None:
    assert ROOT / "docs" / "index.md" in PAGES
    assert "the-application-layer" in _anchors(ROOT / "docs" / "architecture.md")
    assert len(_LINK.findall(_prose(ROOT / "docs" / "index.md"))) >= 15


def test_every_relative_link_resolves_to_a_file_and_heading() -> None:
    broken = []
    for page in PAGES:
        for target in _LINK.findall(_CODE_SPAN.sub("", _prose(page))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
