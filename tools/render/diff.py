"""`render --diff REF`: what the working tree changes against a git ref, per cluster and per object.

Both sides are run offline in their own interpreter (the program, its components and the
engine may differ at REF): REF from `git archive` into a temporary folder, the working tree
as it is. Both are rendered with this tree's renderer, so what differs is what the program
declares, and priced with this tree's price table.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from components.config import stack_file
from offline.engine import ROOT, Program, Resource
from offline.manifests import GRAPH_FILE, render
from offline.progress import Progress
from tools.cost.estimate import PriceError, estimate, render_change

SNAPSHOT = Path(__file__).with_name("snapshot.py")
MAX_VALUE = 70


class DiffError(Exception):
    """The diff could not be made (bad ref, a side's program stopped)."""


def checkout(ref: str, into: Path, repo: Path = ROOT) -> None:
    """The tree of `ref` (committed files only) into `into`."""
    done = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", ref], capture_output=True, check=False)
    if done.returncode != 0:
        raise DiffError(f"--diff {ref}: {done.stderr.decode().strip() or 'git archive failed'}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(into, filter="data")


def snapshot(tree: Path, stack: str, label: str) -> Program:
    """Run `tree`'s program in a fresh interpreter and rebuild what it declared."""
    if not stack_file.path_for(stack, tree).is_file():
        raise DiffError(f"{label}: there is no {stack_file.path_for(stack, tree).name}")
    done = subprocess.run([sys.executable, str(SNAPSHOT), str(tree), stack], cwd=tree,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DiffError(f"{label}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}"
                        if done.returncode != 2 else f"{label}: {done.stderr.strip()}")
    data = json.loads(done.stdout)
    known = {f.name for f in fields(Resource)}
    resources = []
    for raw in data["resources"]:
        values = {k: v for k, v in raw.items() if k in known}
        values["secret_inputs"] = set(values.get("secret_inputs", ()))
        values.setdefault("deleted_with", "")
        resources.append(Resource(**values))
    return Program(resources, data["exports"], set(data["secret_exports"]))


# ------------------------------------------------------------------ comparing two renders


@dataclass(frozen=True)
class Change:
    group: str  # clusters/<name>, gcp, other
    path: str  # the object's file (and document name for multi-document files)
    kind: str  # "+" added, "-" removed, "~" changed
    fields: tuple[str, ...] = ()


def _documents(path: PurePosixPath, text: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(docs) == 1 and "name" not in docs[0]:
        return {str(path): docs[0]}
    return {f"{path} {d.get('name', i)}": d for i, d in enumerate(docs)}


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            yield from _flat(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def field_changes(old: Any, new: Any) -> tuple[str, ...]:
    a, b = dict(_flat(old)), dict(_flat(new))
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            out.append(f"{key}: + {_short(b[key])}")
        elif key not in b:
            out.append(f"{key}: - {_short(a[key])}")
        elif a[key] != b[key]:
            out.append(f"{key}: {_short(a[key])} → {_short(b[key])}")
    return tuple(out)


def _group(path: PurePosixPath) -> tuple[str, str]:
    parts = path.parts
    if parts[0] == "clusters":
        return f"clusters/{parts[1]}", str(PurePosixPath(*parts[2:]))
    return parts[0], str(PurePosixPath(*parts[1:]))


def compare(before: Mapping[PurePosixPath, str], after: Mapping[PurePosixPath, str]) -> list[Change]:
    """Per object: added, removed or changed (with its changed fields). The graph file is left out."""
    changes: list[Change] = []
    for path in sorted(set(before) | set(after)):
        if str(path) == GRAPH_FILE or before.get(path) == after.get(path):
            continue
        group, rel = _group(path)
        old = _documents(path, before[path]) if path in before else {}
        new = _documents(path, after[path]) if path in after else {}
        for key in sorted(set(old) | set(new)):
            label = rel + key.removeprefix(str(path))
            if key not in old:
                changes.append(Change(group, label, "+"))
            elif key not in new:
                changes.append(Change(group, label, "-"))
            elif old[key] != new[key]:
                changes.append(Change(group, label, "~", field_changes(old[key], new[key])))
    return changes


def report(changes: list[Change], ref: str, stack: str) -> str:
    counts = {k: sum(1 for c in changes if c.kind == k) for k in "+-~"}
    total = len(changes)
    lines = [f"render --diff {ref} (stack {stack}): " + (
        f"{total} change{'' if total == 1 else 's'} ({counts['~']} changed, {counts['+']} added, "
        f"{counts['-']} removed)" if changes else "0 changes: nothing changes")]
    for group in sorted({c.group for c in changes}):
        lines.append(f"{group}:")
        for c in (c for c in changes if c.group == group):
            lines.append(f"  {c.kind} {c.path}")
            lines += [f"      {f}" for f in c.fields]
    return "\n".join(lines)


def run(ref: str, stack: str, repo: Path = ROOT, tree: Path | None = None,
        progress: Progress | None = None) -> tuple[str, bool]:
    """(the report, whether anything changes); raises DiffError."""
    say = progress.step if progress else (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="render-diff-") as tmp:
        say(f"running the program as committed at {ref} (stack {stack}) …")
        checkout(ref, Path(tmp), repo)
        before = snapshot(Path(tmp), stack, f"at {ref}")
    say(f"running the program of the working tree ({len(before.resources)} resources at {ref}) …")
    after = snapshot(tree or repo, stack, "working tree")
    say(f"comparing {len(before.resources)} and {len(after.resources)} resources, object by object …")
    changes = compare(render(before, stack).files(), render(after, stack).files())
    text = report(changes, ref, stack)
    try:
        text += "\n" + render_change(estimate(before), estimate(after))
    except PriceError as error:
        text += f"\ncost: not estimated: {error}"
    return text, bool(changes)
