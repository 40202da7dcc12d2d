"""Specification of the keyed Pseudonymizer."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import any_char
from timmybot_core import Pseudonymizer, PseudonymKind

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
p = Pseudonymizer(key=KEY, key_id="k1")
SHAPE = re.compile(r"^k1:[0-9a-f]{32}$")


def test_output_shape_is_key_id_and_32_hex_chars() -> None:
    assert SHAPE.match(p.pseudonymize("user", "80351110224678912"))


def test_is_keyed_hmac_not_a_plain_hash() -> None:
    value = "80351110224678912"
    out = p.pseudonymize("user", value)
    assert out.split(":")[1] != hashlib.sha256(value.encode()).hexdigest()[:32]
    assert out.split(":")[1] != hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()[:32]


def test_integers_and_strings_give_the_same_pseudonym() -> None:
    assert p.user(80351110224678912) == p.pseudonymize("user", "80351110224678912")


def test_kinds_are_separate_domains() -> None:
    values = {p.pseudonymize(kind, "123456789") for kind in PseudonymKind}
    assert len(values) == len(PseudonymKind)
    assert p.guild("1") == p.pseudonymize(PseudonymKind.GUILD, "1")


def test_the_key_id_is_bound_into_the_pseudonym() -> None:
    relabelled = Pseudonymizer(key=KEY, key_id="k2")
    assert relabelled.user(1).split(":")[1] != p.user(1).split(":")[1]


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown pseudonym kind 'usr'"):
        p.pseudonymize("usr", "1")


@pytest.mark.parametrize("size", [0, 16, 31])
def test_short_keys_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match=f"at least 32 bytes \\(got {size}\\)"):
        Pseudonymizer(key=b"x" * size, key_id="k1")


def test_text_keys_are_refused_with_advice() -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        Pseudonymizer(key="x" * 64, key_id="k1")  # type: ignore[arg-type]


@pytest.mark.parametrize("key_id", ["", "has:colon", "a" * 33, "spa ce", "ключ"])
def test_key_ids_that_would_break_the_format_are_refused(key_id: str) -> None:
    with pytest.raises(ValueError, match="key_id"):
        Pseudonymizer(key=KEY, key_id=key_id)


@pytest.mark.parametrize("value", [None, 1.5, b"123", True])
def test_non_identifiers_are_refused(value: object) -> None:
    with pytest.raises(TypeError, match="can only pseudonymize"):
        p.pseudonymize("user", value)  # type: ignore[arg-type]


def test_key_never_appears_in_repr() -> None:
    secret = b"S3CR3T-KEY-" + b"x" * 32
    text = repr(Pseudonymizer(key=secret, key_id="k9"))
    assert "S3CR3T" not in text and "k9" in text and "redacted" in text


kinds = st.sampled_from(list(PseudonymKind))
values = st.one_of(st.text(any_char, max_size=64), st.integers(min_value=0, max_value=2**64))


@given(kind=kinds, value=values)
def test_deterministic_and_well_formed_over_arbitrary_text(
    kind: PseudonymKind, value: object
) -> None:
    out = p.pseudonymize(kind, value)  # type: ignore[arg-type]
    assert SHAPE.match(out)
    assert Pseudonymizer(key=KEY, key_id="k1").pseudonymize(kind, value) == out  # type: ignore[arg-type]


@given(kind=kinds, value=values)
def test_another_key_gives_another_pseudonym(kind: PseudonymKind, value: object) -> None:
    other = Pseudonymizer(key=OTHER_KEY, key_id="k1")
    assert other.pseudonymize(kind, value) != p.pseudonymize(kind, value)  # type: ignore[arg-type]


@given(value=values, kinds_pair=st.lists(kinds, min_size=2, max_size=2, unique=True))
def test_another_kind_gives_another_pseudonym(
    value: object, kinds_pair: list[PseudonymKind]
) -> None:
    first, second = kinds_pair
    assert p.pseudonymize(first, value) != p.pseudonymize(second, value)  # type: ignore[arg-type]


@given(a=st.text(any_char, max_size=32), b=st.text(any_char, max_size=32))
def test_distinct_values_do_not_collide(a: str, b: str) -> None:
    if a != b:
        assert p.pseudonymize("user", a) != p.pseudonymize("user", b)
