"""docs/integrate.md's code is the example bot's, and the example type-checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "guarded_bot.py"
_FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_the_walkthrough_is_the_example_bot_in_order_and_whole() -> None:
    page = (ROOT / "docs" / "integrate.md").read_text(encoding="utf-8")
    blocks = _FENCE.findall(page)
    assert len(blocks) >= 5
    example = EXAMPLE.read_text(encoding="utf-8")
    # The example's code after its docstring, block by block: nothing left
    # out, nothing added, nothing reordered.
    body = example.split('"""', 2)[2]
    assert code_lines("\n".join(blocks)) == code_lines(body)


def test_the_example_uses_only_the_public_api() -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    imports = re.findall(r"^from (timmybot\w*(?:\.\w+)*) import", example, re.MULTILINE)
    assert set(imports) <= {"timmybot_bot.integrate", "timmybot_core"}
    assert "._" not in example and "import _" not in example


def test_the_example_is_type_clean_under_mypy_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path),
            "--config-file",
            "/dev/null",
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_integration_method_the_docs_name_exists() -> None:
    from timmybot_bot.integrate import Integration

    named = {
        name
        for page in [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]
        for name in re.findall(r"`Integration\.(\w+)", page.read_text(encoding="utf-8"))
    }
    assert [name for name in sorted(named) if not hasattr(Integration, name)] == []
