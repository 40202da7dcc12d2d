"""Throughput and growth benchmarks for the validator and the sanitizer.

Run ``make bench`` (or ``.venv/bin/python bench/run.py``; ``--quick`` for a
smoke run with fewer, shorter repeats; ``--json`` for the figures of every
bench it runs as one JSON object, keyed by bench, instead of the tables).
This script's own tables use only the standard library and
``timmybot_core``; the tables go to stdout; the exit status is 1 when a row
of our own code grows superlinearly or importing the core is heavy, else 0.

How it measures
    Every case is timed like ``timeit``: the number of calls per repeat is
    chosen so that one repeat takes about 20 ms, the garbage collector is off
    while a repeat runs, five repeats are made and the *minimum* is kept
    (the minimum is the run least disturbed by the rest of the machine).
    The repeats of all the cases of a table are interleaved (one round over
    every case, then the next round), so a burst of load on the machine
    disturbs one sample of many cases rather than every sample of one case.
    Times are per call, in microseconds. Absolute numbers depend on the
    machine; compare the ratios, which are computed within one run.

Table 1: validator and sanitizer throughput on a realistic corpus
    About 180 real music searches and playlist names (``bench/corpus.py``):
    accents, CJK, Korean, Cyrillic, Arabic, emoji, apostrophes, ampersands,
    quotes. Each row is the mean time of one call over the whole corpus, for
    ``InputValidator()`` (default policy) and
    ``InputValidator(ValidationPolicy.strict())``, with the ratio
    strict/default; "accepted" counts the inputs each policy lets through (the
    strict policy refuses titles such as "Drop It Like It's Hot" on
    purpose). ``str.lower`` is the baseline: the cost of a trivial call on the
    same strings.

Table 2: growth on adversarial inputs
    Each family repeats a fragment (``' or a``, ``<a``, ``/*``, zero-width
    and bidi controls, stacked combining marks, ...) to exactly 400, 1000,
    2000 and 4000 characters ("combining-reversed" uses blocks of marks in
    descending combining class instead, the worst order for Unicode
    canonical reordering), all at most ``max_raw_length`` (4096), so the
    default policy's cheap length guard never fires and the whole input is
    processed. For every function the table gives the time per call at each
    length, the growth t(4000)/t(400) next to the length ratio 10, and
    t(4000)/t(2000) next to 2 (a quadratic part that is still small at 400
    characters shows up there first). The verdict is "linear" when
    t(4000)/t(400) <= 10 * 1.5 (the factor absorbs noise and fixed costs),
    else "SUPERLINEAR".

    Rows per family:
      str.lower            the baseline.
      NFKC (stdlib, raw)   ``unicodedata.normalize("NFKC", s)`` alone on the
                           raw input, a reference row: CPython's canonical
                           reordering is quadratic in the length of a run of
                           combining marks, which is why the validator cuts
                           runs to 30 marks (UAX #15) before normalizing.
                           Reference rows are not verdicts on our code.
      search default       ``InputValidator().validate_search_query``.
      search strict        the same with ``ValidationPolicy.strict()``.
      search wide          the default policy with ``max_search_length``
                           raised to ``max_raw_length``. The default and
                           strict policies refuse a normalized value longer
                           than 200 characters *before* the injection
                           detectors run, so on long inputs they measure
                           normalization only; this row makes the detectors
                           see the whole input, as they would for a deployer
                           who raises the limit.
      for_discord          ``ResponseSanitizer().for_discord``.

    A row found SUPERLINEAR is measured again (as many repeats more, minima
    merged) before the verdict is printed, so one disturbed sample cannot
    flag it; "(re-measured)" marks such rows. The block after the table
    shows what each policy answered at the shortest and the longest length
    (an input that normalizes to at most 200 characters goes through the
    detectors, a longer one stops at "too long"), and the summary lists
    every SUPERLINEAR row with its numbers.

Then the access guard's tables
    ``bench/access.py`` (the cost of ``ServerAccessControl.check`` on the
    memory and SQLite stores, cached and uncached, allowed and denied) runs
    after table 2, with ``--quick`` passed through; see its docstring. Those
    tables have no verdict and never change the exit status.

Then the token service's tables
    ``bench/tokens.py`` (rotation of 2,000 users against the demo OAuth
    provider with 20 ms latency at concurrency 16, beside the ideal wall
    time; cached and uncached ``get_valid_access_token`` on the memory and
    SQLite vaults) runs after the access tables, the same way; see its
    docstring. No verdict either.

Then the audit trail's tables
    ``bench/audit.py`` (appends per second with chaining and signing against
    the store's own append, and ``verify`` time per 10,000 records against
    reading the chain, on the memory and SQLite logs). No verdict either.

Then the AWS tables
    ``bench/aws.py`` (against moto's server on 127.0.0.1: Secrets Manager
    calls per 1,000 token reads of 100 users, our cache against
    ``aws-secretsmanager-caching``'s ``SecretCache`` at the same refresh
    interval, and the latency of a cached read of both; DynamoDB calls and
    wall time per 1,000 audit appends). No verdict either.

Then the import-time table
    ``bench/import_time.py`` (``import timmybot_core`` and the validators'
    import against ``import attrs``, fresh interpreters, in the same run). Its
    verdict (at most 1.5 times ``import attrs``) counts in the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import itertools
import json
import math
import platform
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from corpus import ADVERSARIAL_FAMILIES, CORPUS, build_adversarial
from timmybot_core import InputValidator, ResponseSanitizer, ValidationPolicy

LENGTHS: tuple[int, ...] = (400, 1000, 2000, 4000)
LENGTH_RATIO = LENGTHS[-1] / LENGTHS[0]
NOISE_ALLOWANCE = 1.5
VERDICT_LIMIT = LENGTH_RATIO * NOISE_ALLOWANCE

Body = Callable[[int], None]
Func = Callable[[str], object]


@dataclass(frozen=True)
class Settings:
    """How long each case is timed."""

    target_ns: int
    repeats: int


FULL = Settings(target_ns=20_000_000, repeats=5)
QUICK = Settings(target_ns=2_000_000, repeats=2)


# -- timing ---------------------------------------------------------------


def _timed(body: Body, number: int) -> int:
    """Run ``body(number)`` with the garbage collector off; return elapsed nanoseconds."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        body(number)
        return time.perf_counter_ns() - start
    finally:
        if was_enabled:
            gc.enable()


def _calibrate(body: Body, target_ns: int) -> int:
    """Choose how many loops make one repeat last about ``target_ns``."""
    number = 1
    while True:
        elapsed = _timed(body, number)
        if elapsed >= target_ns // 10:
            break
        number *= 10
    return max(1, round(number * target_ns / max(elapsed, 1)))


@dataclass
class Case:
    """One timed case: ``body(n)`` makes n loops of ``calls_per_loop`` calls each."""

    body: Body
    calls_per_loop: int = 1
    number: int = 0
    best_ns: float = math.inf
    samples: int = field(default=0)

    @property
    def per_call_us(self) -> float:
        """The best time of one call, in microseconds."""
        return self.best_ns / self.number / self.calls_per_loop / 1000


def measure_all(cases: Sequence[Case], settings: Settings) -> None:
    """Calibrate every case, then run ``settings.repeats`` interleaved rounds over them."""
    for case in cases:
        if not case.number:
            case.number = _calibrate(case.body, settings.target_ns)
    for _ in range(settings.repeats):
        for case in cases:
            case.best_ns = min(case.best_ns, _timed(case.body, case.number))
            case.samples += 1


def one_input(func: Func, text: str) -> Body:
    """A loop body calling ``func(text)`` ``number`` times."""

    def body(number: int) -> None:
        for _ in itertools.repeat(None, number):
            func(text)

    return body


def over_corpus(func: Func, corpus: Sequence[str]) -> Body:
    """A loop body calling ``func`` on every corpus entry, ``number`` times over."""

    def body(number: int) -> None:
        for _ in itertools.repeat(None, number):
            for text in corpus:
                func(text)

    return body


def nfkc(text: str) -> str:
    """The standard library's NFKC, the normalization the default policy applies."""
    return unicodedata.normalize("NFKC", text)


# -- command line ------------------------------------------------------------


def parse_options(
    argv: Sequence[str] | None,
    doc: str | None,
    help_text: str = "smoke run: ~2 ms per repeat and 2 repeats (numbers are noisy)",
) -> argparse.Namespace:
    """Parse a bench script's command line: ``--quick`` and ``--json``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help=help_text)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser.parse_args(argv)


def json_of(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, object]:
    """Run another bench script's ``main`` with ``--json``: its exit status and its figures."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main([*argv, "--json"])
    return status, json.loads(printed.getvalue())


# -- output ---------------------------------------------------------------


def fmt_us(value: float) -> str:
    """Format microseconds with about three significant digits."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(header))
    print(title)
    print(rule)
    print(line(header))
    print(rule)
    for row in rows:
        print(line(row))
    print(rule)


def outcome(result: object) -> str:
    """Summarize a validation result in a few words ("accepted", "too long", ...)."""
    if getattr(result, "ok", False):
        return "accepted"
    error = str(getattr(result, "error", ""))
    if " too long" in error:
        return "too long"
    if " contains " in error:
        return "refused: " + error.split(" contains ", 1)[1]
    return "refused: " + error


# -- table 1 --------------------------------------------------------------


def table_corpus(settings: Settings) -> dict[str, dict[str, float]]:
    """Table 1: time per call over the realistic corpus; return its figures by function."""
    default = InputValidator()
    strict = InputValidator(ValidationPolicy.strict())
    sanitizer = ResponseSanitizer()
    corpus = CORPUS
    size = len(corpus)

    pairs: tuple[tuple[str, Func, Func], ...] = (
        ("validate_search_query", default.validate_search_query, strict.validate_search_query),
        ("validate_playlist_name", default.validate_playlist_name, strict.validate_playlist_name),
    )
    singles: tuple[tuple[str, Func], ...] = (
        ("str.lower (baseline)", str.lower),
        ("sanitize_string", sanitizer.sanitize_string),
        ("for_discord", sanitizer.for_discord),
    )
    pair_cases = [
        (Case(over_corpus(d, corpus), size), Case(over_corpus(s, corpus), size))
        for _, d, s in pairs
    ]
    single_cases = [Case(over_corpus(func, corpus), size) for _, func in singles]
    measure_all([case for pair in pair_cases for case in pair] + single_cases, settings)

    rows: list[list[str]] = []
    figures: dict[str, dict[str, float]] = {}
    for (label, d, s), (d_case, s_case) in zip(pairs, pair_cases, strict=True):
        ok_default = sum(bool(getattr(d(text), "ok", False)) for text in corpus)
        ok_strict = sum(bool(getattr(s(text), "ok", False)) for text in corpus)
        figures[label] = {
            "default_us": d_case.per_call_us,
            "strict_us": s_case.per_call_us,
            "accepted_default": ok_default,
            "accepted_strict": ok_strict,
        }
        rows.append(
            [
                label,
                fmt_us(d_case.per_call_us),
                fmt_us(s_case.per_call_us),
                f"{s_case.per_call_us / d_case.per_call_us:.2f}",
                f"{ok_default}/{size}",
                f"{ok_strict}/{size}",
            ]
        )
    for (label, _), case in zip(singles, single_cases, strict=True):
        rows.append([label, fmt_us(case.per_call_us), "", "", "", ""])
        figures[label] = {"default_us": case.per_call_us}
    chars = sum(len(text) for text in corpus)
    print_table(
        f"Table 1: time per call on the realistic corpus ({size} inputs, "
        f"mean {chars / size:.0f} characters), microseconds",
        ["function", "default", "strict", "strict/default", "accepted default", "accepted strict"],
        rows,
    )
    print("The baseline and the sanitizer have no policy: their one time is in the default column.")
    print()
    return figures


# -- table 2 --------------------------------------------------------------


@dataclass
class GrowthRow:
    """One function's cases on one adversarial family, one per length."""

    family: str
    function: str
    cases: list[Case]
    remeasured: bool = False

    @property
    def times(self) -> tuple[float, ...]:
        """Time per call at each length, microseconds."""
        return tuple(case.per_call_us for case in self.cases)

    @property
    def growth(self) -> float:
        """t(longest) / t(shortest)."""
        return self.times[-1] / self.times[0]

    @property
    def last_step(self) -> float:
        """t(longest) / t(second longest)."""
        return self.times[-1] / self.times[-2]

    @property
    def verdict(self) -> str:
        """ "linear" within the noise allowance, else "SUPERLINEAR"."""
        return "linear" if self.growth <= VERDICT_LIMIT else "SUPERLINEAR"


def table_growth(settings: Settings) -> list[GrowthRow]:
    """Table 2: time per call on adversarial inputs of growing length."""
    default = InputValidator()
    strict = InputValidator(ValidationPolicy.strict())
    raw_limit = default.policy.max_raw_length
    wide = InputValidator(
        ValidationPolicy(name="wide", max_search_length=raw_limit, max_playlist_length=raw_limit)
    )
    sanitizer = ResponseSanitizer()
    functions: tuple[tuple[str, Func], ...] = (
        ("str.lower (baseline)", str.lower),
        ("NFKC (stdlib, raw)", nfkc),
        ("search default", default.validate_search_query),
        ("search strict", strict.validate_search_query),
        ("search wide", wide.validate_search_query),
        ("for_discord", sanitizer.for_discord),
    )
    results: list[GrowthRow] = []
    outcomes: list[list[str]] = []
    for family in ADVERSARIAL_FAMILIES:
        texts = [build_adversarial(family, length) for length in LENGTHS]
        for text, length in zip(texts, LENGTHS, strict=True):
            assert len(text) == length
            assert len(text) <= raw_limit, "the cheap length guard would short-circuit"
        for label, func in functions:
            results.append(GrowthRow(family, label, [Case(one_input(func, t)) for t in texts]))
        shortest, longest = texts[0], texts[-1]
        outcomes.append(
            [
                family,
                outcome(default.validate_search_query(shortest)),
                outcome(strict.validate_search_query(shortest)),
                outcome(default.validate_search_query(longest)),
                outcome(strict.validate_search_query(longest)),
                outcome(wide.validate_search_query(longest)),
            ]
        )

    measure_all([case for row in results for case in row.cases], settings)
    # Confirm every SUPERLINEAR verdict with as many repeats again.
    flagged = [row for row in results if row.verdict != "linear"]
    measure_all([case for row in flagged for case in row.cases], settings)
    for row in flagged:
        row.remeasured = True

    header = ["family", "function", *(f"t({n})" for n in LENGTHS)]
    header += [
        f"t({LENGTHS[-1]})/t({LENGTHS[0]})",
        "len ratio",
        f"t({LENGTHS[-1]})/t({LENGTHS[-2]})",
        "verdict",
    ]
    rows: list[list[str]] = []
    previous = ""
    for result in results:
        rows.append(
            [
                result.family if result.family != previous else "",
                result.function,
                *(fmt_us(t) for t in result.times),
                f"{result.growth:.1f}",
                f"{LENGTH_RATIO:.0f}",
                f"{result.last_step:.2f}",
                result.verdict + (" (re-measured)" if result.remeasured else ""),
            ]
        )
        previous = result.family
    print_table(
        "Table 2: time per call on adversarial inputs of growing length, microseconds "
        f"(verdict: linear when t({LENGTHS[-1]})/t({LENGTHS[0]}) <= {VERDICT_LIMIT:g})",
        header,
        rows,
    )
    print()
    first, last = LENGTHS[0], LENGTHS[-1]
    print_table(
        "What the validators answered (the default and strict policies refuse a value that "
        "normalizes to more than 200 characters before any detector runs)",
        [
            "family",
            f"default @{first}",
            f"strict @{first}",
            f"default @{last}",
            f"strict @{last}",
            f"wide @{last}",
        ],
        outcomes,
    )
    print()
    return results


REFERENCE_ROWS = frozenset({"str.lower (baseline)", "NFKC (stdlib, raw)"})


def summarize(results: Sequence[GrowthRow]) -> bool:
    """List every SUPERLINEAR row; return whether all of the project's rows are linear."""
    flagged = [result for result in results if result.verdict != "linear"]
    ours = [result for result in flagged if result.function not in REFERENCE_ROWS]
    if not ours:
        print(
            f"Summary: every row of the project's code grew at most {VERDICT_LIMIT:g}x "
            "for a 10x longer input."
        )
    if not flagged:
        return True
    print("SUPERLINEAR rows (reference rows measure the standard library, not our code):")
    for result in flagged:
        times = ", ".join(
            f"{fmt_us(t)} us @ {n}" for t, n in zip(result.times, LENGTHS, strict=True)
        )
        print(
            f"  {result.family} / {result.function}: {times}; "
            f"t({LENGTHS[-1]})/t({LENGTHS[0]}) = {result.growth:.1f} "
            f"(length ratio {LENGTH_RATIO:.0f}), t({LENGTHS[-1]})/t({LENGTHS[-2]}) = "
            f"{result.last_step:.2f} (length ratio 2)"
        )
    return not ours


def main(argv: Sequence[str] | None = None) -> int:
    """Run every bench and print its tables (or, with ``--json``, all figures as one object).

    The exit status is 1 when a row of our own code grows superlinearly or
    importing the core is heavy, else 0: a regression is loud.
    """
    options = parse_options(argv, __doc__)
    started = time.perf_counter()
    if options.json:
        # This script's tables are computed as usual and their text discarded;
        # the figures are what the tables show, as numbers rather than text.
        with contextlib.redirect_stdout(io.StringIO()):
            figures, passed = run_all(options.quick, as_json=True)
        print(json.dumps(figures, sort_keys=True))
    else:
        figures, passed = run_all(options.quick, as_json=False)
        print(f"Total bench time: {time.perf_counter() - started:.1f} s")
    return 0 if passed else 1


def run_all(quick: bool, *, as_json: bool) -> tuple[dict[str, object], bool]:
    """This script's tables, then every other bench's; the figures and whether all passed."""
    settings = QUICK if quick else FULL
    print(
        f"timmybot bench: Python {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.machine()}, {settings.repeats} interleaved repeats of ~"
        f"{settings.target_ns / 1e6:g} ms, best kept{' [--quick]' if quick else ''}"
    )
    print()
    corpus = table_corpus(settings)
    results = table_growth(settings)
    linear = summarize(results)
    print()
    figures: dict[str, object] = {
        "quick": quick,
        "linear": linear,
        "corpus_us_per_call": corpus,
        "growth": [
            {
                "family": row.family,
                "function": row.function,
                "lengths": list(LENGTHS),
                "us_per_call": list(row.times),
                "growth": row.growth,
                "verdict": row.verdict,
            }
            for row in results
        ],
    }
    # Imported here because these scripts import this module.
    from access import main as access_main
    from audit import main as audit_main
    from aws import main as aws_main
    from import_time import main as import_time_main
    from tokens import main as tokens_main

    sub_argv = ["--quick"] if quick else []
    # access, tokens, audit and aws have no verdict: they never change the exit
    # status. What importing the core costs, against attrs, has one.
    imports_light = True
    for name, sub_main in (
        ("access", access_main),  # the access guard (bench/access.py)
        ("tokens", tokens_main),  # the token service (bench/tokens.py)
        ("audit", audit_main),  # the audit trail (bench/audit.py)
        ("aws", aws_main),  # the AWS adapters, against moto's server (bench/aws.py)
        ("import_time", import_time_main),  # importing the core (bench/import_time.py)
    ):
        if as_json:
            status, figures[name] = json_of(sub_main, sub_argv)
        else:
            status = sub_main(sub_argv)
            print()
        imports_light &= name != "import_time" or status == 0
    figures["passed"] = linear and imports_light
    return figures, linear and imports_light


if __name__ == "__main__":
    sys.exit(main())
