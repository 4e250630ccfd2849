"""Run one tree's program offline and print what it declared as JSON (used by `render --diff`).

Run as a script, `python snapshot.py TREE STACK`: it puts TREE first on the import path, so
the program, its components and the offline engine all come from that tree (a git ref's
checkout or the working tree), and prints the recorded resources on stdout. Nothing of the
calling tree is imported.
"""

from __future__ import annotations

import json
import sys


def main(tree: str, stack: str) -> int:
    sys.path.insert(0, tree)
    from offline.engine import FROM_STACK_FILE, ProgramError, run_program

    try:
        program = run_program(None, stack=stack, gcp_project=FROM_STACK_FILE)
    except ProgramError as error:
        print(f"the program stopped:\n{error}", file=sys.stderr)
        return 2
    resources = [{k: sorted(v) if isinstance(v, set) else v for k, v in vars(r).items()} for r in program.resources]
    json.dump({"resources": resources, "exports": program.exports, "secret_exports": sorted(program.secret_exports)},
              sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
