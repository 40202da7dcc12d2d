"""What ``import timmybot_core`` costs, against ``import attrs`` measured in the same run.

Run ``.venv/bin/python bench/import_time.py`` (``--quick`` for a smoke run,
``--json`` for the figures as JSON). Each row is one statement run in a fresh
interpreter that times the statement itself with ``perf_counter_ns``, so
interpreter start-up is not counted. The interpreter runs with ``-S`` and is
given the checkout and this environment's site-packages on ``sys.path``, so
the ``.pth`` hooks of an editable install (which import pathlib, re,
urllib and ipaddress at start-up) neither hide our imports' cost nor add to
it: the modules load as from an ordinary install. The rows are interleaved (one round
over every statement, then the next), 40 rounds (10 with ``--quick``), and
the median is kept.

Rows
    import attrs                      the baseline: what the core's one
                                      dependency costs on its own.
    import timmybot_core              the package: lazy exports (PEP 562),
                                      so it loads none of its modules.
    from timmybot_core import InputValidator, ResponseSanitizer
                                      what a bot that wants the validators
                                      pays (attrs included).
    import timmybot_core.services.tokens
                                      a service, for reference: it loads
                                      asyncio, which the validators never do.

The ratio column is the row's median over the baseline's. The verdict holds
the design's limit: the package and the validators each cost at most 1.5
times ``import attrs``. The exit status is 1 when a verdict row is over it.
"""

from __future__ import annotations

import argparse
import json
import site
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

LIMIT = 1.5
BASELINE = "import attrs"
ROWS: tuple[tuple[str, bool], ...] = (
    (BASELINE, False),
    ("import timmybot_core", True),
    ("from timmybot_core import InputValidator, ResponseSanitizer", True),
    ("import timmybot_core.services.tokens", False),
)

ROOT = Path(__file__).resolve().parents[1]
_PROBE = (
    "import sys, time\n"
    "sys.path[:0] = {paths!r}\n"
    "t = time.perf_counter_ns()\n"
    "{statement}\n"
    "print(time.perf_counter_ns() - t)\n"
)
_PATHS = [str(ROOT), *site.getsitepackages()]


def measure(statement: str) -> float:
    """Milliseconds that ``statement`` takes in a fresh interpreter."""
    out = subprocess.run(  # noqa: S603 - our own fixed statements, no shell
        [sys.executable, "-S", "-c", _PROBE.format(paths=_PATHS, statement=statement)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out) / 1e6


def run(rounds: int) -> dict[str, list[float]]:
    """Interleave ``rounds`` fresh-interpreter samples of every row."""
    samples: dict[str, list[float]] = {statement: [] for statement, _ in ROWS}
    for _ in range(rounds):
        for statement, _ in ROWS:
            samples[statement].append(measure(statement))
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table (or JSON) and return 1 if a verdict row is over the limit."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 rounds instead of 40")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    rounds = 10 if args.quick else 40
    samples = run(rounds)
    base = statistics.median(samples[BASELINE])
    figures = []
    for statement, judged in ROWS:
        median = statistics.median(samples[statement])
        ratio = median / base
        figures.append(
            {
                "statement": statement,
                "median_ms": round(median, 3),
                "min_ms": round(min(samples[statement]), 3),
                "ratio": round(ratio, 3),
                "limit": LIMIT if judged else None,
                "ok": (ratio <= LIMIT) if judged else None,
            }
        )
    within = all(row["ok"] is not False for row in figures)
    if args.json:
        print(json.dumps({"rounds": rounds, "baseline": BASELINE, "rows": figures}, indent=2))
        return 0 if within else 1
    print(f"Import time, fresh interpreter each, median of {rounds} interleaved rounds")
    print()
    width = max(len(statement) for statement, _ in ROWS)
    print(f"{'statement':<{width}}  {'median ms':>9}  {'min ms':>7}  {'ratio':>6}  verdict")
    for row in figures:
        verdict = "-" if row["ok"] is None else ("ok" if row["ok"] else f"OVER {LIMIT}x")
        print(
            f"{row['statement']:<{width}}  {row['median_ms']:>9.2f}  {row['min_ms']:>7.2f}"
            f"  {row['ratio']:>5.2f}x  {verdict}"
        )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
