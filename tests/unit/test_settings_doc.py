"""docs/configuration.md lists the settings exactly as they are declared."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import attrs
import pytest

from timmybot_bot.runtime.settings import _VARIABLES, ConfigurationError, Settings, settings_rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
HEADER = "| environment variable | `Settings` field | type | default | meaning |"


def _documented() -> list[tuple[str, str, str, str]]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


def test_the_docs_table_matches_the_declarations() -> None:
    expected = settings_rows()
    documented = _documented()
    missing = [row for row in expected if row not in documented]
    stale = [row for row in documented if row not in expected]
    assert (missing, stale) == ([], []), (
        "docs/configuration.md's settings table and the setting() declarations in "
        "timmybot_bot/runtime/settings.py differ: add the missing rows, fix or drop the stale"
    )
    assert documented == expected, "the rows are there but not in declaration order"


def test_the_check_reads_the_real_table() -> None:
    assert len(_documented()) == len(attrs.fields(Settings)) >= 40


def test_every_field_is_a_setting_with_a_variable() -> None:
    fields = {field.name for field in attrs.fields(Settings)}
    assert {field for field, _ in _VARIABLES.values()} == fields
    assert _VARIABLES["DISCORD_TOKEN"][0] == _VARIABLES["TIMMYBOT_DISCORD_TOKEN"][0]
    assert list(_VARIABLES).index("DISCORD_TOKEN") < list(_VARIABLES).index(
        "TIMMYBOT_DISCORD_TOKEN"
    )


def test_check_config_lists_every_setting_and_hides_secrets() -> None:
    settings = Settings(discord_token="canary-token", spotify_client_secret="canary-secret")
    described = settings.describe()
    assert set(described) == {field.name for field in attrs.fields(Settings)} | {"redirect_uri"}
    assert described["discord_token"] == "set"
    assert described["spotify_client_secret"] == "set"
    assert "canary" not in str(described)


def _transcript(heading: str) -> list[str]:
    """Return the lines of the first text block after ``heading`` in configuration.md."""
    section = DOC.read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1]
    block = re.search(r"^```text\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert block is not None, f"no text block under {heading!r}"
    return block.group(1).splitlines()


def _variables_of(command: str) -> dict[str, str]:
    """Return the ``NAME=value`` assignments before ``python`` in a shell command line."""
    variables = {}
    for word in shlex.split(command.removeprefix("$ ")):
        name, equals, value = word.partition("=")
        if not equals:
            break
        # The shell expands ~ in an assignment; the transcript ran as root.
        variables[name] = value.replace("~/", "/root/", 1)
    return variables


def test_the_typo_examples_are_the_errors_the_settings_raise() -> None:
    lines = _transcript("## Typos are errors")
    examples = [(line, lines[i + 1]) for i, line in enumerate(lines) if line.startswith("$ ")]
    assert len(examples) == 2
    for command, shown in examples:
        with pytest.raises(ConfigurationError) as raised:
            Settings.from_env(_variables_of(command))
        # As python -m timmybot_bot prints it (runtime/main.py's _fail).
        assert f"timmybot: configuration error: {raised.value}" == shown, command


def test_the_check_config_example_is_what_the_check_prints() -> None:
    lines = _transcript("## Checking the configuration")
    command = [line.removesuffix("\\") for line in lines if line.startswith(("$ ", "  "))]
    settings = Settings.from_env(_variables_of(" ".join(command)))
    # As python -m timmybot_bot --check-config prints it (runtime/main.py).
    printed = [f"{key} = {value}" for key, value in settings.describe().items()]
    assert lines[len(command) :] == [*printed, "configuration OK"]
