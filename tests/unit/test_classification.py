"""The data classification table and what is rendered from it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest

from timmybot_bot.cli import privacy_doc as doc
from timmybot_bot.cli.privacy_doc import END_MARKER, START_MARKER
from timmybot_core.domain import classification as c
from timmybot_core.domain.classification import (
    CLASSIFICATION,
    NOT_COLLECTED,
    STORES,
    DataClass,
    OnErasure,
)

DOCS = Path(__file__).parents[2] / "docs"
PRIVACY_PAGE = DOCS / "privacy.md"


def entry(store: str, words: str) -> c.StoredField:
    [found] = [e for e in c.fields_of(store) if words in e.field]
    return found


# The table itself


def test_every_field_names_a_known_store_and_every_store_has_fields() -> None:
    names = [store.name for store in STORES]
    assert len(set(names)) == len(names)
    assert {e.store for e in CLASSIFICATION} == set(names)


def test_no_field_is_listed_twice() -> None:
    keys = [(e.store, e.field) for e in CLASSIFICATION]
    assert len(set(keys)) == len(keys)


def test_the_seeds_classification_is_followed() -> None:
    # Sensitive in the seed: OAuth access and refresh tokens, user preferences.
    assert entry("vault", "access token").data_class is DataClass.SENSITIVE
    assert entry("vault", "refresh token").data_class is DataClass.SENSITIVE
    assert entry("preferences", "names and values").data_class is DataClass.SENSITIVE
    # Public in the seed: Discord user IDs (hashed in logs), guild IDs, anonymous statistics.
    assert entry("vault", "user ID").data_class is DataClass.PUBLIC
    assert entry("access", "allowlisted guild IDs").data_class is DataClass.PUBLIC
    assert entry("metrics", "counters").data_class is DataClass.PUBLIC
    # Not collected in the seed: real names, email, voice or message content, location.
    not_collected = " ".join(item.what.lower() for item in NOT_COLLECTED)
    for what in ("real names", "email", "voice", "message content", "location", "ip address"):
        assert what in not_collected


def test_secrets_are_never_exported() -> None:
    for words in ("access token", "refresh token", "refresh claim"):
        assert entry("vault", words).exported is False
    assert entry("link_states", "code verifier").exported is False
    for e in c.fields_of("keys"):
        assert e.exported is False


def test_everything_kept_after_erasure_is_pseudonymous_or_not_about_a_user() -> None:
    # The only things about a user that survive erasure are pseudonymous ones.
    identifying = [e for e in CLASSIFICATION if e.identifies_user]
    assert {e.store for e in identifying} == {"vault", "link_states", "preferences"}
    for e in CLASSIFICATION:
        if e.identifies_user:
            assert e.on_erasure is OnErasure.DELETED, e
        if e.store in {"audit", "security_log"} and e.about_user:
            assert e.on_erasure is OnErasure.KEPT_PSEUDONYMOUS, e


def test_every_field_says_why_and_for_how_long() -> None:
    for e in CLASSIFICATION:
        assert e.purpose.strip() and e.retention.strip() and e.field.strip(), e
    for item in NOT_COLLECTED:
        assert item.what.strip() and item.note.strip()


def test_fields_of_an_unknown_store_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown store 'nope'"):
        c.fields_of("nope")


# docs/privacy.md


def test_the_privacy_page_is_generated_from_the_table() -> None:
    document = PRIVACY_PAGE.read_text(encoding="utf-8")
    assert doc.replace_generated_section(document) == document, (
        "docs/privacy.md is stale: run python -m timmybot_bot.cli.privacy_doc --write docs/privacy.md"
    )


def test_the_generated_section_has_a_row_per_field_and_per_thing_not_collected() -> None:
    section = doc.markdown_section()
    for e in CLASSIFICATION:
        assert f"| {e.field.replace('|', chr(92) + '|')} |" in section
    for item in NOT_COLLECTED:
        assert f"| {item.what} | {item.note} |" in section


def test_replacing_the_section_keeps_the_hand_written_prose() -> None:
    document = f"# Title\n\nBefore.\n\n{START_MARKER}\nold table\n{END_MARKER}\n\nAfter.\n"
    updated = doc.replace_generated_section(document, "NEW\n")
    assert updated == f"# Title\n\nBefore.\n\n{START_MARKER}\n\nNEW\n\n{END_MARKER}\n\nAfter.\n"
    assert doc.replace_generated_section(updated, "NEW\n") == updated


@pytest.mark.parametrize(
    "document",
    ["no markers at all", f"{END_MARKER}\n{START_MARKER}\n", f"{START_MARKER} only"],
)
def test_a_page_without_its_markers_is_refused(document: str) -> None:
    with pytest.raises(ValueError, match="no generated section"):
        doc.replace_generated_section(document)


def test_the_command_line_checks_and_rewrites_a_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "privacy.md"
    page.write_text(f"Intro\n\n{START_MARKER}\nstale\n{END_MARKER}\n", encoding="utf-8")
    assert doc.main(["--check", str(page)]) == 1
    assert "stale" in capsys.readouterr().err
    assert doc.main(["--write", str(page)]) == 0
    assert doc.main(["--check", str(page)]) == 0
    assert doc.markdown_section() in page.read_text(encoding="utf-8")
    assert doc.main(["--check", str(tmp_path / "missing.md")]) == 2
    assert doc.main(["--markdown"]) == 0
    assert capsys.readouterr().out == doc.markdown_section()


# /privacy info


def test_the_info_reply_fits_one_discord_message_and_names_the_rights() -> None:
    text = c.privacy_info_text()
    assert len(text) <= 2000
    assert "/privacy delete" in text and "/privacy export" in text
    assert "365 days" in text
    for item in NOT_COLLECTED:
        assert item.what in text
    for e in CLASSIFICATION:
        if e.data_class is DataClass.SENSITIVE and e.about_user:
            assert e.field in text


def test_the_info_reply_states_the_configured_audit_retention() -> None:
    assert "90 days" in c.privacy_info_text(audit_retention=timedelta(days=90))


# The data statement in exports


def test_the_data_statement_lists_every_field_and_matches_the_export_schema() -> None:
    statement = c.data_statement(audit_retention=timedelta(days=30))
    assert json.loads(json.dumps(statement)) == statement
    assert len(statement["stored"]) == len(CLASSIFICATION)
    assert statement["audit_retention_days"] == 30
    assert {r["right"] for r in statement["rights"]} == {"erasure", "portability", "minimization"}
    schema = json.loads((DOCS / "schemas" / "user-export.schema.json").read_text("utf-8"))
    sub = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/data_statement"}
    jsonschema.Draft202012Validator(sub).validate(statement)
