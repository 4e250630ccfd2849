"""The `render` command: `python -m tools.render --stack dev --out build/render`.

Runs __main__.py under the offline mocks (no cloud, no credentials, no Pulumi CLI) with
the stack file's config, so a bad config fails exactly as `pulumi preview` would, and
writes what `offline.manifests.render` makes of it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.config import stack_file
from offline.engine import FROM_STACK_FILE, ProgramError, run_program
from offline.manifests import GRAPH_FILE, Rendered, RenderError, render
from offline.progress import Progress
from tools.cost import estimate as cost
from tools.render import diff


def read_config_file(path: Path) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """A stack-format YAML -> (project keys without namespace, gcp:project, other namespaced keys)."""
    stack = stack_file.read(path)
    return stack.project, stack.gcp_project, stack.other


def write(rendered: Rendered, out: Path) -> None:
    """Replace `out` with the render; refuse to wipe a folder that is not a previous render."""
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / GRAPH_FILE).is_file()):
            raise RenderError(f"--out {out} exists and is not a previous render (no {GRAPH_FILE}); "
                              "choose an empty or new folder")
        shutil.rmtree(out)
    for rel, text in rendered.files().items():
        target = out / Path(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.render",
        description="Render the program offline: Kubernetes objects and Helm releases per cluster, "
                    "GCP resources, and the resource graph. No cloud, no credentials, no Pulumi CLI.")
    parser.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml is used (default: dev)")
    parser.add_argument("--config", type=Path, help="a stack-format YAML to use instead of Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, default=Path("build/render"),
                        help="output folder, replaced on each run (default: build/render)")
    parser.add_argument("--diff", metavar="REF",
                        help="instead of writing, print what the working tree changes against git REF, per cluster "
                             "and object, and the monthly cost change (exit 0 unless the diff cannot be made)")
    parser.add_argument("--exit-code", action="store_true",
                        help="with --diff: exit 1 when something changes, like `git diff --exit-code` (for CI gates)")
    args = parser.parse_args(argv)
    if args.exit_code and args.diff is None:
        parser.error("--exit-code goes with --diff REF")
    if args.diff is not None:
        if args.config is not None:
            parser.error("--diff compares the stack files at REF and in the working tree; drop --config")
        try:
            text, changed = diff.run(args.diff, args.stack, progress=Progress("render --diff"))
        except diff.DiffError as error:
            print(f"render: {error}", file=sys.stderr)
            return 2
        print(text)
        return 1 if changed and args.exit_code else 0

    own_file = stack_file.path_for(args.stack)
    if not own_file.is_file():
        # The stack file is read with --config too: it names the stack the program runs as.
        print(f"render: --stack {args.stack}: there is no {own_file.name} in {own_file.parent}", file=sys.stderr)
        return 2
    source = str(args.config) if args.config is not None else own_file.name
    progress = Progress("render")
    progress.step(f"running the program offline with {source} …")
    try:
        if args.config is not None:
            project, gcp_project, extra = read_config_file(args.config)
            program = run_program(project, stack=args.stack, gcp_project=gcp_project, extra=extra)
        else:
            program = run_program(None, stack=args.stack, gcp_project=FROM_STACK_FILE)
    except ProgramError as error:
        print(f"render: {source}: the program stopped, nothing was written:\n{error}", file=sys.stderr)
        return 2
    except stack_file.StackFileError as error:
        print(f"render: --config: {error}", file=sys.stderr)
        return 2
    try:
        progress.step(f"rendering {len(program.resources)} resources into {args.out} …")
        rendered = render(program, args.stack)
        write(rendered, args.out)
        progress.step("done; pricing them …")
    except RenderError as error:
        print(f"render: {error}", file=sys.stderr)
        return 2
    print(rendered.summary(args.out))
    try:
        print("  " + cost.render(cost.estimate(program), "cost").splitlines()[0] + " (details: make cost)")
    except cost.PriceError as error:
        print(f"  cost: not estimated: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
