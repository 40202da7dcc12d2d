"""Validation of what users type: search queries and playlist names.

Two policies ship. The default one accepts real song titles in every script
and blocks injection by its *shape*; the strict one reproduces the seed
design's keyword blocklist for deployers who prefer it (see docs/validation.md).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs

from timmybot_core.safety.injection import (
    compile_forbidden_words,
    detection_forms,
    find_forbidden_word,
    find_injection,
)
from timmybot_core.safety.text import (
    collapse_whitespace,
    fixed_point,
    limit_combining_marks,
    strip_invisible,
)

__all__ = ["Accepted", "InputValidator", "Rejected", "ValidationPolicy", "ValidationResult"]

_SEED_FORBIDDEN_WORDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "DROP", "UNION")
# Removed by every policy; a policy may remove more.
_ALWAYS_REMOVED = "<>"


class _ErrorFactory:
    """``ValidationResult.error(message)`` builds a rejection; ``result.error`` reads it.

    The seed spells both with one name, and readers of the seed expect it, so
    this descriptor serves the constructor on the class; on an instance the
    ``error`` field of :class:`Accepted` or :class:`Rejected` answers first.
    """

    def __get__(self, instance: object, owner: type) -> Callable[[str], Rejected]:
        return _reject


def _reject(message: str) -> Rejected:
    return Rejected(error=message)


class _ResultBase:
    """The runtime base of :class:`Accepted` and :class:`Rejected` (see ``ValidationResult``)."""

    __slots__ = ()

    error: Any = _ErrorFactory()

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # ``ValidationResult(ok=..., value=..., error=...)`` as in the seed:
        # the base hands back the right subclass, or refuses an inconsistent one.
        if cls is not _ResultBase:
            return super().__new__(cls)
        ok, value, error = kwargs.get("ok"), kwargs.get("value"), kwargs.get("error")
        if args or set(kwargs) - {"ok", "value", "error"}:
            raise TypeError("ValidationResult takes the keywords ok, value and error")
        if ok is True:
            if not isinstance(value, str) or error is not None:
                raise ValueError("an accepted ValidationResult needs a value and no error")
            return Accepted(value=value)
        if ok is False:
            if not isinstance(error, str) or value is not None:
                raise ValueError("a rejected ValidationResult needs an error and no value")
            return Rejected(error=error)
        raise TypeError("ValidationResult needs ok=True or ok=False")

    @classmethod
    def success(cls, value: str) -> Accepted:
        """Build an accepted result holding the cleaned ``value``."""
        return Accepted(value=value)


@attrs.frozen(kw_only=True, init=False)
class Accepted(_ResultBase):
    """An accepted input: ``value`` holds the cleaned text to use instead of the raw input.

    ``ok`` is ``Literal[True]`` and ``error`` is ``None``, so a type checker
    narrows a :data:`ValidationResult` on ``if result.ok:``.
    """

    value: str
    ok: Literal[True] = True
    error: None = None

    def __init__(self, *, value: str, ok: Literal[True] = True, error: None = None) -> None:
        if not isinstance(value, str) or ok is not True or error is not None:
            raise ValueError("an accepted ValidationResult needs a value and no error")
        self.__attrs_init__(value=value)

    def __repr__(self) -> str:
        return f"ValidationResult.success({self.value!r})"

    # Names from the seed design, so its readers find their way.
    @property
    def is_valid(self) -> Literal[True]:
        """Alias of ``ok``."""
        return True

    @property
    def sanitized_value(self) -> str:
        """Alias of ``value``."""
        return self.value

    @property
    def error_message(self) -> None:
        """Alias of ``error``."""
        return None


@attrs.frozen(kw_only=True, init=False)
class Rejected(_ResultBase):
    """A rejected input: ``error`` names the problem in words fit to show the user.

    ``ok`` is ``Literal[False]`` and ``value`` is ``None``.
    """

    error: str
    ok: Literal[False] = False
    value: None = None

    def __init__(self, *, error: str, ok: Literal[False] = False, value: None = None) -> None:
        if not isinstance(error, str) or ok is not False or value is not None:
            raise ValueError("a rejected ValidationResult needs an error and no value")
        self.__attrs_init__(error=error)

    def __repr__(self) -> str:
        return f"ValidationResult.error({self.error!r})"

    @property
    def is_valid(self) -> Literal[False]:
        """Alias of ``ok``."""
        return False

    @property
    def sanitized_value(self) -> None:
        """Alias of ``value``."""
        return None

    @property
    def error_message(self) -> str:
        """Alias of ``error``."""
        return self.error


if TYPE_CHECKING:
    #: The outcome of validating one input: :class:`Accepted` or :class:`Rejected`.
    #: ``if result.ok:`` narrows it, so ``result.value`` is a ``str`` there and
    #: ``result.error`` a ``str`` otherwise. Type-checked code builds results
    #: with ``Accepted(value=...)`` and ``Rejected(error=...)``.
    ValidationResult: TypeAlias = Accepted | Rejected
else:
    # At run time the name is the common base, so the seed's spellings work:
    # ``ValidationResult.success(v)``, ``ValidationResult.error(m)``,
    # ``ValidationResult(ok=..., value=..., error=...)`` and isinstance().
    ValidationResult = _ResultBase
    _ResultBase.__name__ = _ResultBase.__qualname__ = "ValidationResult"


def _as_word_tuple(words: Any) -> tuple[str, ...]:
    return tuple(str(w) for w in words)


@attrs.frozen(kw_only=True)
class ValidationPolicy:
    """What the validator accepts. Build one with :meth:`default` or :meth:`strict`.

    Attributes:
        name: shown in docs and logs.
        max_search_length: longest accepted search query, after normalization.
        max_playlist_length: longest accepted playlist name, after normalization.
        max_raw_length: inputs longer than this are rejected before any
            normalization work, so a huge paste costs nothing.
        normalization: the Unicode normal form applied (``NFKC`` folds
            fullwidth and compatibility forms, so ``ｊａｖａｓｃｒｉｐｔ:`` is seen
            as ``javascript:``).
        block_script_shapes: reject script URLs, ``<script`` and event handlers.
        block_sql_shapes: reject SQL-injection shapes (never bare words).
        forbidden_words: whole words rejected case-insensitively (the seed's list).
        removed_characters: dropped from the accepted value.

    """

    name: str
    max_search_length: int = 200
    max_playlist_length: int = 100
    max_raw_length: int = 4096
    normalization: Literal["NFKC", "NFC"] = "NFKC"
    block_script_shapes: bool = True
    block_sql_shapes: bool = True
    forbidden_words: tuple[str, ...] = attrs.field(default=(), converter=_as_word_tuple)
    removed_characters: str = "<>"

    def __attrs_post_init__(self) -> None:
        for label, limit in (
            ("max_search_length", self.max_search_length),
            ("max_playlist_length", self.max_playlist_length),
        ):
            if limit < 1:
                raise ValueError(f"ValidationPolicy.{label} must be at least 1 (got {limit})")
        if self.max_raw_length < max(self.max_search_length, self.max_playlist_length):
            raise ValueError("ValidationPolicy.max_raw_length must not be below the length limits")
        if not set(_ALWAYS_REMOVED) <= set(self.removed_characters):
            raise ValueError("ValidationPolicy.removed_characters must include '<' and '>'")

    @classmethod
    def default(cls) -> ValidationPolicy:
        """Return the shape-based policy: real titles pass, injection shapes do not."""
        return cls(name="default")

    @classmethod
    def strict(cls) -> ValidationPolicy:
        """Return the seed design's rules, on top of the default policy's shape checks.

        Rejects the whole words SELECT, INSERT, UPDATE, DELETE, DROP and UNION
        (so "Drop It Like It's Hot" is refused) and removes ``< > " ' &`` from
        accepted values. Being strict, it keeps every check of the default
        policy too: switching to it never lets more through.
        """
        return cls(
            name="strict", forbidden_words=_SEED_FORBIDDEN_WORDS, removed_characters="<>\"'&"
        )


class InputValidator:
    """Validates user input against a :class:`ValidationPolicy`.

    Every method accepts any object and never raises: non-text, empty, too
    long or malicious input yields a rejected :class:`ValidationResult` whose
    ``error`` names the problem.
    """

    __slots__ = ("_drop", "_drop_base", "_forbidden", "_policy")

    def __init__(self, policy: ValidationPolicy | None = None) -> None:
        self._policy = policy if policy is not None else ValidationPolicy.default()
        self._forbidden = compile_forbidden_words(self._policy.forbidden_words)
        self._drop = str.maketrans("", "", self._policy.removed_characters)
        self._drop_base = str.maketrans("", "", _ALWAYS_REMOVED)

    @property
    def policy(self) -> ValidationPolicy:
        """The policy this validator applies."""
        return self._policy

    def validate_search_query(self, text: object) -> ValidationResult:
        """Validate a music search query (at most ``max_search_length`` characters)."""
        return self._validate(text, "Search query", self._policy.max_search_length)

    def validate_playlist_name(self, text: object) -> ValidationResult:
        """Validate a playlist name: single line, at most ``max_playlist_length`` characters."""
        return self._validate(text, "Playlist name", self._policy.max_playlist_length)

    def normalize(self, text: str) -> str | None:
        """Apply the policy's normalization without judging the result.

        Invisible characters go, runs of more than 30 combining marks are cut
        (UAX #15's stream-safe limit, which also keeps normalization linear),
        whitespace (line breaks included) collapses to single spaces, and the
        normal form is applied until the text is stable. ``None`` only for
        input that never settles.
        """
        form = self._policy.normalization

        def step(value: str) -> str:
            safe = limit_combining_marks(strip_invisible(value))
            return collapse_whitespace(unicodedata.normalize(form, safe))

        return fixed_point(step, text)

    def _clean_value(self, normalized: str, drop: dict[int, int | None]) -> str | None:
        def step(value: str) -> str:
            return self.normalize(value.translate(drop)) or ""

        return fixed_point(step, normalized)

    def _validate(self, text: object, label: str, max_length: int) -> ValidationResult:
        if not isinstance(text, str):
            return Rejected(error=f"{label} must be text")
        too_long = f"{label} too long (max {max_length} characters)"
        # A cheap guard before any Unicode work: a megabyte of input is
        # refused in constant time.
        if len(text) > self._policy.max_raw_length:
            return Rejected(error=too_long)
        normalized = self.normalize(text)
        if normalized is None:
            return Rejected(error=f"{label} contains text that cannot be normalized")
        # ``base`` is what the default policy would hand out; a policy that
        # removes more characters is judged on it too, so that removing a
        # quote can never hide a shape the default policy would have seen
        # (a stricter policy must never let more through).
        base = self._clean_value(normalized, self._drop_base)
        value = base if self._drop == self._drop_base else self._clean_value(normalized, self._drop)
        if base is None or value is None:
            return Rejected(error=f"{label} contains text that cannot be normalized")
        if not value:
            return Rejected(error=f"{label} cannot be empty")
        if len(base) > max_length or len(value) > max_length:
            return Rejected(error=too_long)
        # Judge the text as typed and every value derived from it: dropping
        # characters must never assemble a shape ("java<>script:").
        for candidate in dict.fromkeys((normalized, base, value)):
            problem = self._find_problem(candidate)
            if problem is not None:
                return Rejected(error=f"{label} contains {problem}")
        return Accepted(value=value)

    def _find_problem(self, text: str) -> str | None:
        forms = detection_forms(text)
        found = find_injection(
            forms, scripts=self._policy.block_script_shapes, sql=self._policy.block_sql_shapes
        )
        if found is not None:
            return found
        word = find_forbidden_word(self._forbidden, forms)
        if word is not None:
            return f"a forbidden word ({word})"
        return None
