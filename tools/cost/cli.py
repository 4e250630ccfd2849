"""The `cost` command: `python -m tools.cost --stack dev`.

Runs the program offline with the stack file's config (as `tools.render` does) and prices
what it declares with tools/cost/prices.yaml.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from components.config import stack_file
from offline.engine import FROM_STACK_FILE, ProgramError, run_program
from tools.cost.estimate import PriceError, estimate, render


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.cost",
        description="Monthly list-price estimate of a stack's declared resources, offline.")
    parser.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml is used (default: dev)")
    args = parser.parse_args(argv)
    path = stack_file.path_for(args.stack)
    if not path.is_file():
        print(f"cost: --stack {args.stack}: there is no {path.name} in {path.parent}", file=sys.stderr)
        return 2
    try:
        program = run_program(None, stack=args.stack, gcp_project=FROM_STACK_FILE)
        print(render(estimate(program), f"stack '{args.stack}'"))
    except ProgramError as error:
        print(f"cost: Pulumi.{args.stack}.yaml: the program stopped:\n{error}", file=sys.stderr)
        return 2
    except PriceError as error:
        print(f"cost: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
