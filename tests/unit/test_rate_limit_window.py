"""The rate-limit port's shared pieces: the window step and the stored hit log."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timmybot_core.ports.rate_limits import (
    MAX_LIMIT,
    MAX_MOMENT,
    RateLimit,
    check_key,
    decode_hits,
    encode_hits,
    take_hit,
)

_moments = st.floats(min_value=0, max_value=MAX_MOMENT, allow_nan=False)
_hits = st.lists(st.tuples(_moments, st.text(max_size=20)), max_size=30)


@given(_hits)
def test_a_hit_log_comes_back_bit_for_bit(hits: list[tuple[float, str]]) -> None:
    back = decode_hits(encode_hits(hits))
    assert back == hits
    assert all(
        math.copysign(1, a[0]) == math.copysign(1, b[0]) for a, b in zip(back, hits, strict=True)
    )


@given(st.text(max_size=60) | st.from_regex(r"\[\[[-0-9.e]{1,8},\"[a-f]{0,4}\"\](,\[.*\])?\]"))
def test_anything_but_a_hit_log_is_refused_without_quoting_it(text: str) -> None:
    problem = _decode_problem(text)
    if problem is None:
        assert encode_hits(decode_hits(text)) == encode_hits(
            decode_hits(encode_hits(decode_hits(text)))
        )
    else:
        assert problem in _PROBLEMS


_PROBLEMS = {
    "rate limit: the stored hit log is not JSON",
    "rate limit: the stored hit log is not a list",
    "rate limit: the stored hit log holds an entry that is not a hit",
}


def _decode_problem(text: str) -> str | None:
    try:
        decode_hits(text)
    except ValueError as error:
        return str(error)
    return None


@given(
    _hits,
    st.integers(min_value=1, max_value=20),
    st.floats(min_value=0.001, max_value=1e6),
    _moments,
)
def test_the_window_step_counts_exactly_the_hits_inside_the_window(
    hits: list[tuple[float, str]], limit: int, window: float, now: float
) -> None:
    rate = RateLimit(limit=limit, window=window)
    decision, kept = take_hit(hits, rate, now=now, hit_id="new")
    inside = [hit for hit in hits if hit[0] > now - window]
    assert kept == sorted(kept)
    if len(inside) < limit:
        assert decision.allowed and decision.hit_id == "new"
        assert sorted(kept) == sorted([*inside, (now, "new")])
        assert decision.remaining == limit - len(inside) - 1
    else:
        assert not decision.allowed and decision.hit_id is None
        assert sorted(kept) == sorted(inside)
        # Half the wait, the window is still full; just past it, there is room.
        # A refusal never says "0 s" (at least a microsecond, which is a floor).
        assert decision.retry_after >= 1e-6
        half = now + decision.retry_after / 2
        later = now + decision.retry_after
        # A few units in the last place absorb the rounding of the subtractions.
        slack = 8 * math.ulp(max(later, window))
        if decision.retry_after > 2e-6 and half - now > slack:
            assert not take_hit(kept, rate, now=half, hit_id="x")[0].allowed
        assert take_hit(kept, rate, now=later + slack, hit_id="y")[0].allowed


def test_the_largest_log_fits_a_dynamodb_item_many_times() -> None:
    hits = [(MAX_MOMENT - n / 7, "0123456789abcdef") for n in range(MAX_LIMIT)]
    assert len(encode_hits(hits).encode()) < 64_000


@given(st.text(max_size=210))
def test_the_key_check_accepts_exactly_short_visible_ascii(key: str) -> None:
    valid = 1 <= len(key) <= 200 and all("!" <= c <= "~" for c in key)
    if valid:
        assert check_key(key) == key
    else:
        with pytest.raises(ValueError, match="rate limit key: "):
            check_key(key)
