"""The distribution's promises: a pure core, typed packages, public exports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import timmybot_core

HEAVY = ("boto3", "botocore", "hikari", "lightbulb", "aiohttp", "opentelemetry", "cryptography")


def test_importing_the_core_loads_no_heavy_dependency() -> None:
    # A fresh interpreter: this test process has imported everything already.
    code = (
        "import json, sys, timmybot_core\n"
        "import timmybot_core.safety.validation, timmybot_core.safety.sanitizer, timmybot_core.safety.pseudonymizer\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = json.loads(output)
    offenders = [m for m in loaded if m.split(".")[0] in HEAVY]
    assert offenders == []
    assert "timmybot_adapters" not in loaded and "timmybot_bot" not in loaded


def test_the_core_imports_only_the_standard_library_and_attrs() -> None:
    # import-linter forbids the known heavy packages; this catches any other.
    allowed = set(sys.stdlib_module_names) | {"attrs", "attr", "timmybot_core", "__future__"}
    root = Path(timmybot_core.__file__).parent
    found: dict[str, str] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(root)))
    assert {top: where for top, where in found.items() if top not in allowed} == {}


@pytest.mark.parametrize("package", ["timmybot_core", "timmybot_adapters", "timmybot_bot"])
def test_every_package_is_marked_typed(package: str) -> None:
    assert resources.files(package).joinpath("py.typed").is_file()


def test_core_exports_its_public_names() -> None:
    for name in timmybot_core.__all__:
        assert getattr(timmybot_core, name) is not None
    for name in (
        "InputValidator",
        "ValidationPolicy",
        "ValidationResult",
        "ResponseSanitizer",
        "TrackInfo",
        "Pseudonymizer",
        "Clock",
        "SystemClock",
        "FakeClock",
    ):
        assert name in timmybot_core.__all__


def test_public_api_has_docstrings() -> None:
    for name in timmybot_core.__all__:
        obj = getattr(timmybot_core, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_the_built_wheel_holds_the_three_packages_and_nothing_else(tmp_path: Path) -> None:
    # The tests import the packages from the checkout; only the wheel shows what
    # an installer receives, so a packaging mistake cannot hide behind the tree.
    import zipfile

    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("timmybot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("timmybot-")}
    assert tops == {"timmybot_core", "timmybot_adapters", "timmybot_bot"}
    for package in tops:
        assert f"{package}/py.typed" in names
        assert f"{package}/__init__.py" in names
    # Every module of the checkout's packages is in the wheel.
    for package in tops:
        for path in (root / package).rglob("*.py"):
            assert path.relative_to(root).as_posix() in names
