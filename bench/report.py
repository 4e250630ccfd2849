"""Markdown for the bench's results (pure: rows in, text out).

Every sentence here is either computed from the rows or states an assumption of the model;
none explains a result the run did not measure.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from collections.abc import Sequence

from bench import durations
from bench.durations import LEVELS
from bench.measure import (
    PATH_TARGET,
    SUITE_COMMAND,
    SUITE_TARGET_SECONDS,
    CriticalPath,
    EvalRow,
    FlipFootprint,
    OperationRow,
    SuiteRow,
)
from bench.replace import Phase, total
from components.names import GKE_CLUSTER
from offline.graph import CREATE, DELETE, UPDATE, skipped_on_delete


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def duration(seconds: float) -> str:
    """Seconds under 90 s, minutes above: a flip and a create read at their own scale."""
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def span(values: dict[str, float], fmt=minutes) -> str:  # noqa: ANN001
    return " / ".join(fmt(values[lv]) for lv in LEVELS)


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {sys.version.split()[0]}")


def assumptions() -> str:
    rows = list(durations.TABLE.values())
    estimates = sum(1 for r in rows if not r.published)
    return "\n".join([
        "### Model and assumptions",
        "",
        "- Times are critical paths of the engine's step graph (`offline.graph.operation_chain`): the edges are "
        "the dependencies, property dependencies, providers and parents the program registers, exactly as "
        "`pulumi up` orders them; every step waits for the steps of what it depends on and nothing else.",
        "- Each step is weighed with the duration table at the end, read at its low, typical and high figure; "
        f"every path is given as low / typical / high. {estimates} of the table's {len(rows)} rows are "
        "estimates (each says what it rests on); none is measured here, because there is no cloud here.",
        "- A Helm release waits for its pods and, for a LoadBalancer Service, its address at the same time "
        "(`offline.graph.concurrent_waits`): its step is the slowest of those waits, not their sum.",
        "- A changed input counts as an update. Offline there is no provider to say which changes replace a "
        "resource; a replacement would add a create and a delete.",
        "- The engine deletes what the program no longer declares only after every other step, in reverse "
        "dependency order; a resource `deletedWith` a resource deleted in the same run takes no time.",
        "- The flip is counted until istiod has pushed the new routes (the `istio:push` row), after the last "
        "VirtualService update.",
    ])


def operations_section(rows: Sequence[OperationRow]) -> str:
    body = []
    for r in rows:
        typical = r.chains["typical"]
        gone = {u for u, k in r.kinds.items() if k == DELETE}
        steps = [f"{x.name} ({r.kinds[x.urn]})" for x in typical.resources
                 if x.custom and durations.seconds(x, r.kinds[x.urn]) > 0
                 and not (r.kinds[x.urn] == DELETE and skipped_on_delete(x, gone))]
        body.append((r.name, r.what, r.radius.of(CREATE), r.radius.of(UPDATE), r.radius.of(DELETE),
                     r.radius.of(UPDATE, GKE_CLUSTER),
                     span({lv: r.seconds(lv) for lv in LEVELS}, duration),
                     " → ".join(steps) or "—"))
    out = ["### 1. What each operation waits for, and what it touches", "", _table(
        ("operation", "change", "created", "updated", "deleted", "of the updates: GKE control planes",
         "critical path (low / typical / high)", "steps on the typical critical path (those that take time)"),
        body)]
    for r in rows:
        if r.radius.of(UPDATE, GKE_CLUSTER):
            out += ["", f"*{r.name}*: {r.radius.of(UPDATE)} existing resources change, "
                        f"{r.radius.of(UPDATE, GKE_CLUSTER)} of them GKE control-plane updates "
                        "(the peers' master authorized networks)."]
    return "\n".join(out)


def critical_path_section(result: CriticalPath) -> str:
    rows = [(r.clusters, r.resources, span(r.weights), r.depth, f"{r.ratio:.3f}", f"{r.mixed_ratio:.3f}",
             verdict(r.passed)) for r in result.rows]
    out = ["### 2. Creating the stack against the number of clusters", "", _table(
        ("clusters", "resources", "critical path, min (low / typical / high)", "resources on it",
         f"typical ÷ one cluster's typical ({minutes(result.one_cluster.weight)} min)",
         "clusters at different levels: chain ÷ slowest cluster's own", f"target: both ≤ {PATH_TARGET}"), rows),
        "",
        "With the same figures for every cluster the first ratio is 1 whenever the clusters have the same "
        "shape; the second gives cluster i the i-th level (low, typical, high, …) and compares the mesh's "
        "chain with the slowest cluster's own chain, which only a wait of one cluster on another can raise."]
    for row in result.rows:
        for hop in row.hops:
            out += ["", f"**{row.clusters} clusters: serialised by** `{hop.waiter.type}` {hop.waiter.name} "
                        f"({hop.waiter_cluster}) waiting on `{hop.target.type}` {hop.target.name} "
                        f"({hop.target_cluster}) through `{hop.via}`."]
    worst = max(result.rows, key=lambda r: max(r.ratio, r.mixed_ratio))
    out += ["", f"The largest ratio measured is {max(worst.ratio, worst.mixed_ratio):.3f} (N={worst.clusters})."]
    steps, at = [], 0.0
    for r in result.one_cluster.resources:
        if not r.custom:
            continue
        took = durations.seconds(r)
        at += took
        waits = " + ".join(row.key for row in durations.rows_for(r))
        steps.append((r.name, f"`{r.type}`", waits, f"{took:g}", minutes(at)))
    out += ["", f"One cluster's chain ({result.cluster}), typical figures:", "",
            _table(("resource", "type", "rows (overlapping waits: the slowest counts)", "seconds",
                    "done at (min)"), steps)]
    return "\n".join(out)


def evaluation_section(rows: Sequence[EvalRow], repeats: int) -> str:
    base = rows[0]
    body = [(r.clusters, r.resources, f"{r.median:.2f}", f"{r.spread[0]:.2f} – {r.spread[1]:.2f}",
             f"{r.median / base.median:.1f}", f"{r.resources / base.resources:.1f}") for r in rows]
    last = rows[-1]
    per = [r.median / r.resources * 1000 for r in rows]
    return "\n".join(["### 3. A preview's program evaluation (CPU time under the offline mocks)", "", _table(
        ("clusters", "resources", f"CPU s, median of {repeats}", "min – max", f"median × N={base.clusters}",
         f"resources × N={base.clusters}"), body), "",
        f"From N={base.clusters} to N={last.clusters} the median CPU time grows "
        f"{last.median / base.median:.1f}× while the resources grow {last.resources / base.resources:.1f}×; "
        f"per resource it is {per[0]:.1f} ms at N={base.clusters} and {per[-1]:.1f} ms at N={last.clusters}. "
        "This is the program's own evaluation (a real preview adds the providers' and the engine's work)."])


def duration_table() -> str:
    rows = [(row.label, f"`{row.key}`", " / ".join(f"{v:g}" for v in row.create),
             " / ".join(f"{v:g}" for v in row.update), " / ".join(f"{v:g}" for v in row.delete),
             "published" if row.published else "estimate", row.source)
            for row in durations.TABLE.values()]
    return "\n".join(["### Durations (seconds, low / typical / high)", "", _table(
        ("resource", "matched by", "create", "update", "delete", "typical create is", "source"), rows)])


def suite_section(row: SuiteRow | None) -> str:
    command = " ".join(["python", *SUITE_COMMAND[1:]])
    if row is None:
        return "\n".join(["### 4. Offline test suite", "", f"Not run (add `--suite` to time `{command}`)."])
    return "\n".join(["### 4. Offline test suite", "", _table(
        ("command", "wall time (s)", "result", "cores", f"target ≤ {SUITE_TARGET_SECONDS:g} s"),
        [(f"`{command}`", f"{row.seconds:.1f}", row.summary, row.cores, verdict(row.passed))])])


def replacement_section(phases: Sequence[Phase]) -> str:
    """A whole replacement as a critical path (docs/replace.md quotes it)."""
    rows = [(p.name, p.what, span(p.seconds), p.source) for p in phases]
    whole = total(tuple(phases))
    rows.append(("**whole replacement**", "the phases one after the other", f"**{span(whole)}**", "sum"))
    return "\n".join(["### 5. Replacing a cluster (add, parity, flip, soak, retire)", "", _table(
        ("phase", "what", "min (low / typical / high)", "figure from"), rows), "",
        f"A team should plan for {minutes(whole['typical'])} min typical and up to {minutes(whole['high'])} min "
        "(the high figures); the soak and the flip's "
        "holds are settings (`--soak`, `flip.hold`, `flip.steps`), not waits on the cloud, and dominate the typical "
        "path. Not counted: reviews and approvals between phases, `pulumi preview` before each `up`."])


def footprint_section(rows: Sequence[FlipFootprint]) -> str:
    body = [(r.clusters, r.resources, r.touched, f"{r.ratio:.3f}") for r in rows]
    return "\n".join(["### A flip's update against the stack", "",
                      "`tools.flip` applies only the routing resources its preview showed (`pulumi up --target`, "
                      "docs/flip.md), so a step's update grows with what changes, not with the stack:", "",
                      _table(("clusters", "resources in the stack", "resources a flip's update touches",
                              "touched ÷ stack"), body)])


def render(ops: Sequence[OperationRow], path: CriticalPath, evals: Sequence[EvalRow], suite_row: SuiteRow | None,
           *, repeats: int, command: str, footprint: Sequence[FlipFootprint] = (),
           replacement: Sequence[Phase] = ()) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    parts = [
        "# Performance",
        "",
        f"Written by `{command}` on {today} ({machine()}). Do not edit: run `make bench` again.",
        "",
        assumptions(), "",
        operations_section(ops), "",
        *([footprint_section(footprint), ""] if footprint else []),
        critical_path_section(path), "",
        evaluation_section(evals, repeats), "",
        suite_section(suite_row), "",
        *((replacement_section(replacement), "") if replacement else ()),
        duration_table(), "",
    ]
    return "\n".join(parts)
