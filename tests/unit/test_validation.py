"""Specification of InputValidator under the default and the strict policy."""

from __future__ import annotations

import unicodedata

import pytest

from timmybot_core import InputValidator, ValidationPolicy, ValidationResult

default = InputValidator()
strict = InputValidator(ValidationPolicy.strict())

REAL_TITLES = [
    "Drop It Like It's Hot",
    "Union of the Snake",
    "Insert Coin",
    "Guns N' Roses - Sweet Child O' Mine",
    "Simon & Garfunkel",
    "Beyoncé - Halo",
    "Sigur Rós - Hoppípolla",
    "坂本龍一",
    "AC/DC - Back In Black",
    "Panic! At The Disco",
    "Ke$ha - TiK ToK",
    "Rock 'n' Roll Ain't Noise Pollution",
    "Don't Stop Me Now",
    'The "Heroes" Session',
    "Delete Forever",
    "Select All",
    "Update Your Heart",
    "Or Nah",
    "And I Love Her",
    "Sweet Child O' Mine - Or Not",
    "Livin' On A Prayer",
    "Кино - Группа крови",
    "عمرو دياب - تملي معاك",
    "BTS - 피 땀 눈물",
    "Ménage à trois; live",
    "100% Pure Love",
    "Data: The Musical",
    "R&B Classics",
    "50 Cent - In Da Club",
    # Shapes that look like SQL or script to a naive matcher:
    "Ain't Nothin' and Nobody Like You",
    "Ramblin' and True",
    "Lovin' and Not Leavin'",
    "Take Me Home; Union",
    "Hello; Update me set it free",
    "Olive Script: Green",
    "Big Data: Songs about JavaScript",
    'he said "online=yes"',
    "Rock <3 Roll",
]


class TestDefaultPolicyAcceptsRealMusic:
    @pytest.mark.parametrize("title", REAL_TITLES)
    def test_real_titles_are_accepted_unchanged(self, title: str) -> None:
        result = default.validate_search_query(title)
        assert result.ok, result.error
        assert result.value == title.replace("<", "").replace(">", "")

    @pytest.mark.parametrize("title", REAL_TITLES)
    def test_real_titles_are_valid_playlist_names(self, title: str) -> None:
        assert default.validate_playlist_name(title).ok

    def test_apostrophes_ampersands_and_quotes_are_kept(self) -> None:
        assert default.validate_search_query('Rock & Roll "Live" \'77').value == (
            'Rock & Roll "Live" \'77'
        )


class TestNormalization:
    def test_whitespace_is_collapsed_and_trimmed(self) -> None:
        assert default.validate_search_query("  Drop \t It\n\nLike   It's Hot ").value == (
            "Drop It Like It's Hot"
        )

    @pytest.mark.parametrize(
        "invisible",
        [
            "\u202e",
            "\u202d",
            "\u2066",
            "\u2067",
            "\u2068",
            "\u2069",
            "\u200b",
            "\u200c",
            "\u200d",
            "\u2060",
            "\ufeff",
            "\x00",
            "\x07",
            "\x1b",
            "\x7f",
            "\u00ad",
            "\u3164",
            "\U000e0041",
        ],
    )
    def test_control_and_format_characters_are_removed(self, invisible: str) -> None:
        assert default.validate_search_query(f"Ha{invisible}lo").value == "Halo"

    def test_nfkc_folds_fullwidth_and_compatibility_forms(self) -> None:
        assert default.validate_search_query("Ｈａｌｏ ﬁre").value == "Halo fire"

    def test_decomposed_accents_are_composed(self) -> None:
        assert default.validate_search_query("Beyonce\u0301").value == "Beyoncé"

    def test_zalgo_runs_are_cut_to_the_stream_safe_limit(self) -> None:
        value = default.validate_search_query("Ha" + "\u0301\u0316" * 100 + "lo").value
        assert value is not None
        assert value.startswith("H") and value.endswith("lo")
        assert sum(1 for c in value if unicodedata.combining(c)) <= 30

    def test_angle_brackets_are_dropped(self) -> None:
        assert default.validate_search_query("I <3 NY").value == "I 3 NY"

    def test_lone_surrogates_are_removed(self) -> None:
        assert default.validate_search_query("Halo\ud800").value == "Halo"

    def test_playlist_names_become_a_single_line(self) -> None:
        assert default.validate_playlist_name("Road\ntrip\r\n2026\u2028mix").value == (
            "Road trip 2026 mix"
        )


class TestLimits:
    @pytest.mark.parametrize("text", ["", " ", "\n\t", "\u200b\u202e", "<>", "<<>>"])
    def test_empty_after_normalization(self, text: str) -> None:
        assert default.validate_search_query(text).error == "Search query cannot be empty"
        assert default.validate_playlist_name(text).error == "Playlist name cannot be empty"

    def test_search_length_limit_is_200(self) -> None:
        assert default.validate_search_query("a" * 200).ok
        assert default.validate_search_query("a" * 201).error == (
            "Search query too long (max 200 characters)"
        )

    def test_playlist_length_limit_is_100(self) -> None:
        assert default.validate_playlist_name("a" * 100).ok
        assert default.validate_playlist_name("a" * 101).error == (
            "Playlist name too long (max 100 characters)"
        )

    def test_length_counts_after_normalization(self) -> None:
        assert default.validate_search_query("a\u200b" * 200).value == "a" * 200

    def test_absurdly_long_raw_input_is_rejected_before_normalizing(self) -> None:
        result = default.validate_search_query("\u200b" * 1_000_000)
        assert result.error == "Search query too long (max 200 characters)"

    @pytest.mark.parametrize("value", [None, 42, b"bytes", ["list"]])
    def test_non_text_is_rejected_with_a_clear_error(self, value: object) -> None:
        assert default.validate_search_query(value).error == "Search query must be text"


SCRIPT_ATTACKS = [
    ("javascript:alert(1)", "script URL"),
    ("JaVaScRiPt:alert(1)", "script URL"),
    ("java\tscript:alert(1)", "script URL"),
    ("java\x00script:alert(1)", "script URL"),
    ("java script:alert(1)", "script URL"),
    ("jav\u200bascript:alert(1)", "script URL"),
    ("ｊａｖａｓｃｒｉｐｔ：alert(1)", "script URL"),
    ("javascript&colon;alert(1)", "script URL"),
    ("javascript%3Aalert(1)", "script URL"),
    ("play x javascript:alert(1)", "script URL"),
    ("vbscript:msgbox(1)", "script URL"),
    ("data:text/html,<b>x</b>", "data: URL"),
    ("data:text/html;base64,PHNjcmlwdD4=", "data: URL"),
    ("da ta:text/html,x", "data: URL"),
    ("<script>alert(1)</script>", "<script>"),
    ("<SCRIPT src=//evil>", "<script>"),
    ("＜script＞alert(1)", "<script>"),
    ("&lt;script&gt;alert(1)", "<script>"),
    ("<iframe src=x>", "<iframe>"),
    ("<img src=x onerror=alert(1)>", "event handler"),
    ("<svg/onload=alert(1)>", "event handler"),
    ("<body onload = alert(1)", "event handler"),
    ('" onmouseover="alert(1)', "event handler"),
    ('x"onfocus=alert(1) autofocus="', "event handler"),
]


class TestScriptShapes:
    @pytest.mark.parametrize(("attack", "named"), SCRIPT_ATTACKS)
    def test_rejected_by_both_policies_with_the_shape_named(self, attack: str, named: str) -> None:
        for validator in (default, strict):
            result = validator.validate_search_query(attack)
            assert not result.ok
            assert named in (result.error or "")

    def test_dropping_brackets_never_assembles_a_scheme(self) -> None:
        result = default.validate_search_query("java<>script:alert(1)")
        assert not result.ok
        assert "script URL" in (result.error or "")


SQL_ATTACKS = [
    "' OR '1'='1",
    "' or 1=1 --",
    "admin'--",
    "admin' /* comment",
    "' OR 'a'='a",
    '" or ""="',
    "') OR ('1'='1",
    "x' AND 1=1",
    "' or true--",
    "' || 1=1",
    "' and sleep(5)",
    "'or'1'='1",
    "'; DROP TABLE users; --",
    "1; DELETE FROM tracks",
    "x; update users set admin=1",
    "x;insert into users values(1)",
    "x; SELECT * FROM users",
    "x; exec xp_cmdshell 'dir'",
    "x; shutdown --",
    "1 UNION SELECT password FROM users",
    "1 union all select null",
    "1 UNION/**/SELECT 1",
    "%27%20OR%201%3D1",
    "&#39; OR 1=1",
    "＇ ＯＲ ＇１＇＝＇１",
    "' and not 1=0",
    "' or name like '%a",
    "' or 1=1#",
    "' or true;",
    "x'or user()",
    "' or x is null--",
    "x' or true or '",
    "x' or '1",
    "x' OR '1'--",
    # A quote, then a comment in any of its forms.
    "admin'#",
    "admin' #",
    "admin')#",
    "admin'# rest of the query",
    "admin';--",
    "admin'; --",
    "admin'/*",
    "admin'/*!50000 or*/",
    'admin"#',
    "admin`#",
    "admin%27%23",
    "admin&#39;#",
    "admin＇＃",
]


HASHTAG_TITLES = [
    '"Hello" #1 Hit',
    "Don't Stop #BelieveIt",
    "Rock 'n' Roll #9 Dream",
    "'74-'75",
    "Y'all #2",
]


class TestSqlShapes:
    @pytest.mark.parametrize("title", HASHTAG_TITLES)
    def test_a_hash_that_starts_a_hashtag_or_number_is_no_comment(self, title: str) -> None:
        for validator in (default, strict):
            assert validator.validate_search_query(title).ok, title

    @pytest.mark.parametrize("attack", SQL_ATTACKS)
    def test_rejected_by_both_policies(self, attack: str) -> None:
        for validator in (default, strict):
            result = validator.validate_search_query(attack)
            assert not result.ok, attack
            assert "SQL injection" in (result.error or "") or "forbidden word" in (
                result.error or ""
            )

    @pytest.mark.parametrize(
        "title",
        [
            "Union of the Snake",
            "Drop It Like It's Hot",
            "Insert Coin",
            "Select All; Remix",
            "Rock 'n' Roll or 'Ballad'",
            "Swingin' or 'Sway' 1958",
            "Rock 'n' Roll And More",
            "Sweet Child O' Mine",
            "Delete; Repeat",
            "I Or You",
        ],
    )
    def test_bare_words_are_not_injection_for_the_default_policy(self, title: str) -> None:
        assert default.validate_search_query(title).ok


class TestStrictPolicyReproducesTheSeed:
    """The seed's examples, with both policies side by side."""

    @pytest.mark.parametrize(
        ("query", "default_value", "strict_value"),
        [
            ("Never Gonna Give You Up", "Never Gonna Give You Up", "Never Gonna Give You Up"),
            ("Guns N' Roses", "Guns N' Roses", "Guns N Roses"),
            ("Simon & Garfunkel", "Simon & Garfunkel", "Simon Garfunkel"),
            ('The "Heroes" Session', 'The "Heroes" Session', "The Heroes Session"),
            ("Beyoncé - Halo", "Beyoncé - Halo", "Beyoncé - Halo"),
            ("  lots   of   space  ", "lots of space", "lots of space"),
        ],
    )
    def test_accepted_values(self, query: str, default_value: str, strict_value: str) -> None:
        assert default.validate_search_query(query).value == default_value
        assert strict.validate_search_query(query).value == strict_value

    @pytest.mark.parametrize(
        ("query", "word"),
        [
            ("Drop It Like It's Hot", "DROP"),
            ("Union of the Snake", "UNION"),
            ("Insert Coin", "INSERT"),
            ("select all", "SELECT"),
            ("Update Your Heart", "UPDATE"),
            ("Delete Forever", "DELETE"),
        ],
    )
    def test_keyword_blocklist_rejects_what_the_default_accepts(
        self, query: str, word: str
    ) -> None:
        assert default.validate_search_query(query).ok
        result = strict.validate_search_query(query)
        assert result.error == f"Search query contains a forbidden word ({word})"

    @pytest.mark.parametrize("query", ["Dropkick Murphys", "Selective Memory", "Reunion"])
    def test_blocklist_matches_whole_words_only(self, query: str) -> None:
        assert strict.validate_search_query(query).ok

    def test_seed_limits(self) -> None:
        assert strict.validate_search_query("a" * 201).error == (
            "Search query too long (max 200 characters)"
        )
        assert strict.validate_playlist_name("a" * 101).error == (
            "Playlist name too long (max 100 characters)"
        )
        assert strict.validate_search_query("").error == "Search query cannot be empty"

    def test_seed_script_patterns(self) -> None:
        assert not strict.validate_search_query("javascript:alert(1)").ok
        assert not strict.validate_search_query("<script>alert('xss')</script>").ok

    def test_only_removed_characters_is_empty(self) -> None:
        assert strict.validate_search_query("\"'&").error == "Search query cannot be empty"

    @pytest.mark.parametrize("attack", ["x'<> OR 1=1", "a'<>--", 'x"<> or ""="'])
    def test_removing_quotes_cannot_hide_a_shape(self, attack: str) -> None:
        assert not default.validate_search_query(attack).ok
        assert not strict.validate_search_query(attack).ok

    def test_length_is_judged_before_the_extra_removals(self) -> None:
        assert not strict.validate_search_query("a" * 200 + "'").ok

    def test_strict_never_accepts_what_default_rejects(self) -> None:
        for attack, _ in SCRIPT_ATTACKS:
            assert not strict.validate_search_query(attack).ok
        for attack in SQL_ATTACKS:
            assert not strict.validate_search_query(attack).ok


class TestValidationResult:
    def test_constructors_as_in_the_seed(self) -> None:
        ok = ValidationResult.success("Halo")
        bad = ValidationResult.error("Search query cannot be empty")
        assert (ok.ok, ok.value, ok.error) == (True, "Halo", None)
        assert (bad.ok, bad.value, bad.error) == (False, None, "Search query cannot be empty")

    def test_seed_attribute_names(self) -> None:
        ok = ValidationResult.success("Halo")
        assert (ok.is_valid, ok.sanitized_value, ok.error_message) == (True, "Halo", None)

    def test_inconsistent_results_cannot_be_built(self) -> None:
        with pytest.raises(ValueError, match="accepted"):
            ValidationResult(ok=True, value=None, error=None)
        with pytest.raises(ValueError, match="rejected"):
            ValidationResult(ok=False, value="x", error="y")

    def test_repr_reads_like_the_constructor(self) -> None:
        assert repr(ValidationResult.error("nope")) == "ValidationResult.error('nope')"


class TestPolicyConfiguration:
    def test_limits_are_configurable(self) -> None:
        import attrs

        short = InputValidator(attrs.evolve(ValidationPolicy.default(), max_search_length=5))
        assert short.validate_search_query("abcdef").error == (
            "Search query too long (max 5 characters)"
        )

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"max_search_length": 0}, "max_search_length"),
            ({"max_raw_length": 10}, "max_raw_length"),
            ({"removed_characters": ""}, "removed_characters"),
        ],
    )
    def test_unsafe_policies_are_refused(self, changes: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            ValidationPolicy(name="custom", **changes)  # type: ignore[arg-type]
