"""`python -m tools.config_docs`: regenerate docs/config.md's config table and schema/Pulumi.stack.schema.json."""

from __future__ import annotations

import sys

from tools.config_docs.generate import ROOT, write


def main() -> int:
    changed = write()
    for path in changed:
        print(f"wrote {path.relative_to(ROOT)}")
    if not changed:
        print("docs/config.md and schema/Pulumi.stack.schema.json are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
