"""docs/configuration.md lists the settings exactly as they are declared."""

from __future__ import annotations

from pathlib import Path

import attrs

from timmybot_bot.runtime.settings import _VARIABLES, Settings, settings_rows

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
