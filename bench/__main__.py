"""`python -m bench`: time and count the mesh's operations offline, and write docs/performance.md.

Examples:
    python -m bench                          # operations, create against N, evaluation (about a minute)
    python -m bench --suite                  # ... and time the whole offline test suite
    python -m bench --output perf.md         # write somewhere else ("-" for stdout only)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import measure, replace, report
from offline.engine import ROOT
from offline.progress import Progress

DEFAULT_OUTPUT = ROOT / "docs" / "performance.md"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT),
                        help="markdown file to write (default: docs/performance.md; '-' prints only)")
    parser.add_argument("--suite", action="store_true",
                        help="also time the offline test suite in a subprocess (adds about a minute)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="evaluations per cluster count; the median and the spread are reported (default 5)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be at least 1")
    if args.output != "-" and not Path(args.output).parent.is_dir():
        parser.error(f"--output {args.output}: directory {Path(args.output).parent} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    progress = Progress("bench")
    progress.step("1/4 operations: running the program offline before and after each operation …")
    ops = measure.operations()
    progress.step("2/4 critical path: the program at 2, 4 and 8 clusters …")
    path = measure.critical_path()
    progress.step("3/4 evaluation CPU time:")
    evals = measure.evaluations(repeats=args.repeats, say=lambda m: progress.step("    " + m))
    if args.suite:
        progress.step("4/4 the offline test suite in a fresh interpreter (about a minute) …")
    suite = measure.suite() if args.suite else None
    text = report.render(ops, path, evals, suite, repeats=args.repeats,
                         command=" ".join(["python -m bench", *argv]), footprint=measure.flip_footprint(),
                         replacement=replace.replacement())
    print(text)
    if args.output != "-":
        Path(args.output).write_text(text)
        progress.step(f"done: wrote {args.output}")
    else:
        progress.step("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
