"""Properties of the validators over arbitrary Unicode, lone surrogates included."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given

from tests.strategies import any_text
from timmybot_core import InputValidator, ValidationPolicy
from timmybot_core.safety.text import is_invisible

VALIDATORS = {
    "default": InputValidator(),
    "strict": InputValidator(ValidationPolicy.strict()),
}
METHODS = {
    "search": ("validate_search_query", 200),
    "playlist": ("validate_playlist_name", 100),
}


@pytest.mark.parametrize("policy", sorted(VALIDATORS))
@pytest.mark.parametrize("field", sorted(METHODS))
@given(text=any_text)
@example(text="e<\u0301")
@example(text="java<>script:x")
@example(text="\ud800")
@example(text="x'<> OR 1=1")
@example(text="a" + "\u0301" * 500)
def test_validation_is_total_and_accepted_values_are_clean_and_stable(
    policy: str, field: str, text: str
) -> None:
    name, limit = METHODS[field]
    validate = getattr(VALIDATORS[policy], name)
    result = validate(text)  # never raises
    if not result.ok:
        assert result.value is None
        assert result.error
        result.error.encode("utf-8")
        return
    value = result.value
    assert value
    value.encode("utf-8")  # no lone surrogate survives
    assert len(value) <= limit
    assert "<" not in value and ">" not in value
    assert not any(is_invisible(c) for c in value)
    assert not any(unicodedata.category(c) in {"Cc", "Cf", "Cs"} for c in value)
    assert "\n" not in value
    assert value == value.strip()
    again = validate(value)
    assert again.ok and again.value == value


@given(text=any_text)
@example(text="x'<> OR 1=1")
@example(text="a" * 200 + "'")
def test_strict_accepts_nothing_the_default_rejects(text: str) -> None:
    if not VALIDATORS["default"].validate_search_query(text).ok:
        assert not VALIDATORS["strict"].validate_search_query(text).ok
