"""Specification of ResponseSanitizer: plain strings, tracks and Discord messages."""

from __future__ import annotations

import re

import pytest

from timmybot_core import DiscordLimits, ResponseSanitizer, TrackInfo

sanitizer = ResponseSanitizer()


class TestSanitizeString:
    def test_readable_text_is_kept(self) -> None:
        assert sanitizer.sanitize_string("Don't Stop Me Now") == "Don't Stop Me Now"
        assert sanitizer.sanitize_string("Simon & Garfunkel") == "Simon & Garfunkel"
        assert sanitizer.sanitize_string("Sigur Rós — Hoppípolla") == "Sigur Rós — Hoppípolla"

    def test_angle_brackets_controls_and_format_characters_go(self) -> None:
        assert sanitizer.sanitize_string("<b>Halo</b>\x00\u202e\u200b") == "bHalo/b"

    def test_whitespace_is_collapsed(self) -> None:
        assert sanitizer.sanitize_string("  a \n\t b  ") == "a b"

    def test_long_text_is_cut_to_200_with_an_ellipsis(self) -> None:
        out = sanitizer.sanitize_string("x" * 500)
        assert len(out) == 200
        assert out.endswith("…")

    @pytest.mark.parametrize("value", [None, 42, b"bytes", ["list"]])
    def test_none_and_non_text_raise_a_type_error_naming_the_type(self, value: object) -> None:
        # str in, str out: None is a caller's bug, not an empty reply.
        kind = type(value).__name__
        with pytest.raises(TypeError, match=rf"sanitize_string takes a str, got {kind}\b"):
            sanitizer.sanitize_string(value)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=rf"for_discord takes a str, got {kind}\b"):
            sanitizer.for_discord(value)  # type: ignore[arg-type]

    def test_the_type_error_never_shows_the_value(self) -> None:
        class Secretive:
            def __str__(self) -> str:
                return "s3cr3t-token"

        with pytest.raises(TypeError) as caught:
            sanitizer.for_discord(Secretive())  # type: ignore[arg-type]
        assert "s3cr3t" not in str(caught.value)

    def test_max_length_is_configurable_and_checked(self) -> None:
        assert ResponseSanitizer(max_string_length=5).sanitize_string("abcdefgh") == "abcd…"
        with pytest.raises(ValueError, match="max_string_length"):
            ResponseSanitizer(max_string_length=0)


class TestSanitizeTrackInfo:
    def test_text_is_cleaned_and_unsafe_urls_dropped(self) -> None:
        track = TrackInfo(
            title="<script>Halo</script>\u202e",
            artist="Beyoncé\x00",
            thumbnail_url="http://169.254.169.254/latest/meta-data",
            url="https://open.spotify.com/track/abc",
        )
        clean = sanitizer.sanitize_track_info(track)
        assert clean == TrackInfo(
            title="scriptHalo/script",
            artist="Beyoncé",
            thumbnail_url=None,
            url="https://open.spotify.com/track/abc",
        )

    def test_empty_fields_get_placeholders_discord_accepts(self) -> None:
        clean = sanitizer.sanitize_track_info(TrackInfo(title="\u200b", artist=""))
        assert (clean.title, clean.artist) == ("Unknown title", "Unknown artist")


LIVE_MENTION = re.compile(r"@(everyone|here)|<@[!&]?\d+>|<#\d+>|</[\w -]+:\d+>", re.IGNORECASE)


class TestForDiscord:
    @pytest.mark.parametrize(
        "text",
        [
            "@everyone",
            "@here",
            "@EVERYONE look",
            "x@everyone",
            "<@80351110224678912>",
            "<@!80351110224678912>",
            "<@&80351110224678912>",
            "<#80351110224678912>",
            "</play:80351110224678912>",
            "@\u200beveryone",
            "<\u200b@123456789012345678>",
        ],
    )
    def test_mentions_are_neutralized(self, text: str) -> None:
        out = sanitizer.for_discord(text)
        assert not LIVE_MENTION.search(out)
        assert "@" not in out

    def test_neutralized_mentions_stay_readable(self) -> None:
        assert sanitizer.for_discord("@everyone") == "\uff20everyone"
        assert sanitizer.for_discord("<@123>") == "<\uff20123>"

    def test_email_addresses_are_left_alone(self) -> None:
        assert sanitizer.for_discord("mail me@example.com") == "mail me@example.com"

    @pytest.mark.parametrize(
        ("text", "escaped"),
        [
            ("**bold**", r"\*\*bold\*\*"),
            ("__under__", r"\_\_under\_\_"),
            ("~~strike~~", r"\~\~strike\~\~"),
            ("||spoiler||", r"\|\|spoiler\|\|"),
            ("`code`", r"\`code\`"),
            ("[free nitro](https://evil.example)", r"\[free nitro\](https://evil.example)"),
            ("# Huge", r"\# Huge"),
            ("-# tiny", r"\-# tiny"),
            ("> quote", r"\> quote"),
            ("- item\n+ item", "\\- item\n\\+ item"),
            ("AC/DC - Back In Black", "AC/DC - Back In Black"),
            ("a > b # c", "a > b # c"),
            ("back\\slash", "back\\\\slash"),
        ],
    )
    def test_markdown_is_escaped(self, text: str, escaped: str) -> None:
        assert sanitizer.for_discord(text) == escaped

    def test_existing_escapes_are_not_doubled(self) -> None:
        assert sanitizer.for_discord(r"\*not bold\*") == r"\*not bold\*"

    def test_bidi_and_zero_width_characters_are_removed_line_breaks_kept(self) -> None:
        assert sanitizer.for_discord("a\u202eb\u2066c\u200bd\r\ne\tf") == "abcd\ne f"

    def test_cut_to_the_limit_with_an_ellipsis(self) -> None:
        out = sanitizer.for_discord("x" * 5000)
        assert len(out) == DiscordLimits.MESSAGE
        assert out.endswith("…")
        assert sanitizer.for_discord("abcdef", limit=4) == "abc…"

    def test_no_space_is_left_before_the_ellipsis(self) -> None:
        assert sanitizer.for_discord("abc defgh", limit=5) == "abc…"

    def test_zalgo_is_cut_to_thirty_marks(self) -> None:
        assert sanitizer.for_discord("a" + "\u0301" * 100) == "a" + "\u0301" * 30
        assert sanitizer.sanitize_string("a" + "\u0301" * 100) == "a" + "\u0301" * 30

    def test_never_cuts_an_escape_in_half(self) -> None:
        out = sanitizer.for_discord("ab*c", limit=4)
        assert out == "ab…"
        assert sanitizer.for_discord(out, limit=4) == out

    def test_limit_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="limit"):
            sanitizer.for_discord("x", limit=0)

    def test_none_is_refused_before_the_limit_is_judged(self) -> None:
        with pytest.raises(TypeError, match="got NoneType"):
            sanitizer.for_discord(None, limit=0)  # type: ignore[arg-type]
