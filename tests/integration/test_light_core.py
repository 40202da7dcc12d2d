"""``import timmybot_core`` stays light: which modules each import loads.

Times are the benchmark's business (``bench/import_time.py``); this test
checks the modules, which is what makes the time: the package alone loads
nothing of its own, and the validators and the sanitizer never load asyncio,
ssl or the services.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import timmybot_core

HEAVY_STDLIB = ("asyncio", "ssl", "socket", "concurrent", "sqlite3", "logging")


def loaded_after(statement: str) -> list[str]:
    code = (
        "import sys\nbefore = set(sys.modules)\n"
        f"{statement}\n"
        "import json\nprint(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [name for name in json.loads(out) if name != "json" and not name.startswith("json.")]


def test_the_package_alone_loads_none_of_its_modules() -> None:
    loaded = loaded_after("import timmybot_core")
    assert [m for m in loaded if m.startswith("timmybot_core.")] == []
    assert [m for m in loaded if m.split(".")[0] in ("attrs", "attr", *HEAVY_STDLIB)] == []


@pytest.mark.parametrize(
    "statement",
    [
        "from timmybot_core import InputValidator",
        "from timmybot_core import ResponseSanitizer, TrackInfo",
        "from timmybot_core import Pseudonymizer, safe_url",
        "from timmybot_core import InputValidator, ValidationResult, Accepted, Rejected",
    ],
)
def test_the_validators_load_no_asyncio_ssl_or_services(statement: str) -> None:
    loaded = loaded_after(statement)
    assert [m for m in loaded if m.split(".")[0] in HEAVY_STDLIB] == []
    ours = {m for m in loaded if m.startswith("timmybot_core")}
    assert ours <= {
        "timmybot_core",
        "timmybot_core.safety",
        "timmybot_core.safety.validation",
        "timmybot_core.safety.injection",
        "timmybot_core.safety.text",
        "timmybot_core.safety.sanitizer",
        "timmybot_core.safety.urls",
        "timmybot_core.safety.special_addresses",
        "timmybot_core.safety.pseudonymizer",
    }


def test_every_lazy_export_resolves_to_the_object_of_its_module() -> None:
    import importlib

    assert set(timmybot_core.__all__) == set(timmybot_core._EXPORTS)
    for name, module in timmybot_core._EXPORTS.items():
        assert getattr(timmybot_core, name) is getattr(importlib.import_module(module), name)
    assert set(timmybot_core.__all__) <= set(dir(timmybot_core))


def test_type_checkers_see_the_same_exports_as_the_lazy_table() -> None:
    # The imports under TYPE_CHECKING are what mypy and pyright read; the
    # table is what runs. A name in one and not the other is a drift.
    import ast
    from pathlib import Path

    tree = ast.parse(Path(timmybot_core.__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If))
    seen = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module != "typing"
        for alias in node.names
        if alias.asname == alias.name  # ``X as X``: an explicit re-export
    }
    assert seen == timmybot_core._EXPORTS


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'NoSuchThing'"):
        _ = timmybot_core.NoSuchThing  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from timmybot_core import NoSuchThing", {})  # noqa: S102 - the import statement itself
