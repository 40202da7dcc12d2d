"""The documented examples type-check under ``mypy --strict``, with no assert added.

docs/validation.md's Python code and the README's "Using the core from another
bot" pattern are extracted from the pages as they stand, given a preamble that
declares the names they leave to the reader (``text``, ``use``, ...) with
``str`` parameters, and checked in one mypy run. A control snippet that uses
``result.value`` without ``if result.ok:`` must fail, so the check can fail.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.DOTALL | re.MULTILINE)

PREAMBLE = """\
from __future__ import annotations

text: str = "Halo"
user_text: str = "Halo"
track_title: str = "Halo"
key_bytes: bytes = bytes(32)


def use(value: str) -> None: ...
def show(message: str) -> None: ...
def search(query: str) -> list[str]: return [query]
async def reply(message: str) -> None: ...
"""


def python_blocks(markdown: str) -> list[str]:
    """Every ```python block, doctest prompts turned into plain source."""
    blocks = []
    for match in _FENCE.finditer(markdown):
        code = textwrap.dedent(match.group(2))
        if code.lstrip().startswith(">>>"):
            # Keep the statements, drop the printed results.
            code = "\n".join(
                line[4:] for line in code.splitlines() if line.startswith((">>> ", "... "))
            )
        blocks.append(code)
    return blocks


def readme_pattern() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using the core from another bot", 1)[1]
    (block,) = [b for b in python_blocks(section.split("\n## ", 1)[0]) if "result.ok" in b]
    # The README awaits at top level, as in a command handler: check it in one.
    return "async def _readme() -> None:\n" + textwrap.indent(block, "    ")


def run_mypy(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(PREAMBLE + "\n\n" + source + "\n", encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--config-file",
            "/dev/null",
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
        check=False,
    )


def test_the_validation_page_and_the_readme_type_check(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")
    blocks = python_blocks(page)
    assert any("if result.ok:" in block for block in blocks)  # the example is still there
    source = "\n\n".join([*blocks, readme_pattern()])
    result = run_mypy(tmp_path, "examples_from_docs.py", source)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("snippet", "complaint"),
    [
        # No narrowing: value is str | None and use() wants a str.
        ("use(InputValidator().validate_search_query(text).value)", "arg-type"),
        # The wrong branch: error is None once ok is True.
        (
            "r = InputValidator().validate_search_query(text)\nif r.ok:\n    show(r.error)",
            "arg-type",
        ),
        # The sanitizer takes str, not None.
        ("ResponseSanitizer().for_discord(None)", "arg-type"),
    ],
)
def test_the_check_fails_where_the_types_are_wrong(
    tmp_path: Path, snippet: str, complaint: str
) -> None:
    imports = "from timmybot_core import InputValidator, ResponseSanitizer\n"
    result = run_mypy(tmp_path, "control.py", imports + snippet)
    assert result.returncode == 1, result.stdout
    assert f"[{complaint}]" in result.stdout


def test_narrowing_reveals_str_in_both_branches(tmp_path: Path) -> None:
    source = (
        "from timmybot_core import InputValidator, ValidationResult\n"
        "def f(r: ValidationResult) -> None:\n"
        "    if r.ok:\n"
        "        reveal_type(r.value)\n"
        "    else:\n"
        "        reveal_type(r.error)\n"
    )
    result = run_mypy(tmp_path, "reveal.py", source)
    revealed = re.findall(r'Revealed type is "([^"]+)"', result.stdout)
    assert [t.removeprefix("builtins.") for t in revealed] == ["str", "str"], result.stdout
