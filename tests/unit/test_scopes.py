"""RFC 6749 scopes, with caps on length and count."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timmybot_core.domain.scopes import (
    MAX_SCOPE_TEXT,
    MAX_SCOPES,
    ScopeError,
    check_scopes,
    is_scope_token,
    parse_scope,
    salvage_scopes,
)
from timmybot_core.domain.tokens import OAuthTokens

AT = datetime(2026, 12, 3, tzinfo=UTC)


def test_the_rfc_grammar() -> None:
    assert parse_scope("user-read-private playlist:read @everyone") == (
        "@everyone",
        "playlist:read",
        "user-read-private",
    )
    assert parse_scope("") == ()
    for bad in ('a"b', "a\\b", "a\tb", "a  b", " a", "a ", "é", "a\x7f"):
        with pytest.raises(ScopeError):
            parse_scope(bad)


def test_length_and_count_caps() -> None:
    with pytest.raises(ScopeError):
        parse_scope("x" * 129)
    with pytest.raises(ScopeError):
        check_scopes([f"s{n}" for n in range(MAX_SCOPES + 1)])
    with pytest.raises(ScopeError):
        check_scopes([f"{n:02d}" + "y" * 120 for n in range(10)])  # over 1,024 in all
    with pytest.raises(ScopeError):
        parse_scope("@everyone" * 3400)


def test_tokens_refuse_bad_scopes_and_a_stored_record_keeps_its_good_ones() -> None:
    with pytest.raises(ScopeError):
        OAuthTokens(platform="spotify", access_token="a", scopes=("x" * 30_000,), expires_at=AT)
    stored = {
        "platform": "spotify",
        "access_token": "a",
        "scopes": ["ok", "x" * 30_000, 'bad"', *(f"s{n}" for n in range(100))],
        "expires_at": AT.isoformat(),
    }
    tokens = OAuthTokens.from_dict(stored)
    assert "ok" in tokens.scopes
    assert len(tokens.scopes) <= MAX_SCOPES


@given(st.lists(st.text(max_size=200), max_size=60))
def test_salvaged_scopes_always_pass_the_check(values: list[str]) -> None:
    kept = salvage_scopes(values)
    assert check_scopes(kept) == kept
    assert all(is_scope_token(v) for v in kept)
    assert sum(len(v) + 1 for v in kept) - 1 <= MAX_SCOPE_TEXT
