"""Every bench script takes ``--quick`` and ``--json``, as the project's standard asks.

The benchmarks themselves are not run here (their times are noise on a test
machine); each script's command line is, through its own ``--help``, in a
fresh interpreter, so a script that drops or never had an option fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
# A script is one with a command line; corpus.py is data the others import.
SCRIPTS = sorted(
    path.name for path in BENCH.glob("*.py") if 'if __name__ == "__main__":' in path.read_text()
)


def test_the_bench_directory_has_its_scripts() -> None:
    assert {"run.py", "access.py", "audit.py", "aws.py", "tokens.py", "faults.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_bench_script_offers_quick_and_json(script: str) -> None:
    shown = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        cwd=BENCH,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "--quick" in shown
    assert "--json" in shown
