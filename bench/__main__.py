"""`python -m bench`: measure the mesh's deploy graph and the program's cost, offline, as markdown.

Examples:
    python -m bench                      # critical path, flip blast radius, evaluation (~30 s)
    python -m bench --suite              # ... and time the whole offline test suite
    python -m bench --output perf.md     # also write the tables to a file
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import measure, report


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="also write the markdown to this file")
    parser.add_argument("--suite", action="store_true",
                        help="also time the offline test suite in a subprocess (adds about a minute)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per cluster count for the evaluation table (fastest is kept; default 3)")
    parser.add_argument("--no-durations", action="store_true", help="leave the duration table out")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be at least 1")
    if args.output is not None and not args.output.parent.is_dir():
        parser.error(f"--output {args.output}: directory {args.output.parent} does not exist")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    path = measure.critical_path()
    flips = measure.flips()
    evals = measure.evaluations(repeats=args.repeats)
    suite = measure.suite() if args.suite else None
    text = report.render(path, flips, evals, suite, with_durations=not args.no_durations)
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
