"""Markdown tables for the bench's results (pure: rows in, text out)."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence

from bench import durations
from bench.measure import (
    EVAL_TARGET,
    PATH_TARGET,
    SUITE_COMMAND,
    SUITE_TARGET_SECONDS,
    CriticalPath,
    EvalRow,
    FlipRow,
    SuiteRow,
)


def verdict(passed: bool | None) -> str:
    return "—" if passed is None else ("PASS" if passed else "MISS")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {sys.version.split()[0]}")


def duration_table() -> str:
    rows = [(row.label, f"`{row.key}`", f"{row.seconds:g}", "published" if row.published else "estimate", row.source)
            for row in durations.TABLE.values()]
    return _table(("resource", "matched by", "seconds", "kind", "source"), rows)


def critical_path_section(result: CriticalPath) -> str:
    rows = [(r.label, r.resources or "—", minutes(r.chain.weight), r.depth, minutes(r.serial_seconds),
             f"{r.ratio:.3f}", verdict(r.passed)) for r in result.rows]
    out = [
        "### 1. Deploy critical path",
        "",
        _table(("stack", "resources", "critical chain (min)", "resources on it",
                "serial, one cluster after another (min)", "chain ÷ one cluster's chain",
                f"target ≤ {PATH_TARGET}"), rows),
    ]
    for row in result.rows:
        for hop in row.hops:
            out += ["", f"**{row.label}: serialised by** `{hop.waiter.type}` {hop.waiter.name} "
                        f"({hop.waiter_cluster}) waiting on `{hop.target.type}` {hop.target.name} "
                        f"({hop.target_cluster}) through `{hop.via}`."]
    worst = max((r for r in result.rows if r.clusters > 1), key=lambda r: r.clusters)
    steps, at = [], 0.0
    for r in worst.chain.resources:
        if not r.custom:
            continue
        took = durations.seconds(r)
        at += took
        steps.append((r.name, f"`{r.type}`", f"{took:g}", minutes(at)))
    out += ["", f"Critical chain of the {worst.label} stack:", "",
            _table(("resource", "type", "seconds", "done at (min)"), steps)]
    return "\n".join(out)


def flip_section(rows: Sequence[FlipRow]) -> str:
    body = [(r.label, f"{r.clusters} × {r.services}", r.expected, len(r.changed), r.virtual_services,
             ", ".join(f"{t} {n}" for t, n in r.others) or "nothing", verdict(r.passed)) for r in rows]
    return "\n".join(["### 2. Flip blast radius", "", _table(
        ("stack", "clusters × routed services", "expected VirtualServices", "resources changed",
         "of which VirtualServices", "anything else", "target: exactly the VirtualServices"), body)])


def evaluation_section(rows: Sequence[EvalRow]) -> str:
    base, last = rows[0], rows[-1]
    body = []
    for r in rows:
        t, m = r.seconds / base.seconds, r.peak_bytes / base.peak_bytes
        body.append((r.clusters, r.resources, r.remote_secrets, f"{r.seconds:.2f}", f"{t:.1f}",
                     f"{r.cpu_seconds / base.cpu_seconds:.1f}",
                     f"{r.seconds_gc_paused / base.seconds_gc_paused:.1f}",
                     f"{r.peak_bytes / 2**20:.1f}", f"{m:.1f}",
                     verdict(t <= EVAL_TARGET) if r is last else "—",
                     verdict(m <= EVAL_TARGET) if r is last else "—"))
    out = ["### 3. Program evaluation under mocks", "", _table(
        ("clusters", "resources", "remote secrets", "wall time (s, fastest of 3)", f"× N={base.clusters}",
         f"× N={base.clusters}, CPU time", f"× N={base.clusters}, GC paused",
         "peak traced memory (MiB)", f"× N={base.clusters}",
         f"time ≤ {EVAL_TARGET:g}× N={base.clusters}", f"memory ≤ {EVAL_TARGET:g}× N={base.clusters}"), body)]
    missed = [what for what, ratio in (("time", last.seconds / base.seconds),
                                       ("memory", last.peak_bytes / base.peak_bytes)) if ratio > EVAL_TARGET]
    if missed:
        targets = f"{' and '.join(missed).capitalize()} target{'s' if len(missed) > 1 else ''}"
        out += ["", f"{targets} missed at N={last.clusters}: the stack has "
                    f"{last.resources / base.resources:.1f}× the resources of N={base.clusters} "
                    f"({last.remote_secrets} of {last.resources} are remote secrets, N×(N−1)). Peak memory per "
                    f"resource is {base.peak_bytes / base.resources / 1024:.0f} KiB at N={base.clusters} and "
                    f"{last.peak_bytes / last.resources / 1024:.0f} KiB at N={last.clusters}; with the cyclic GC "
                    f"paused the time grows {last.seconds_gc_paused / base.seconds_gc_paused:.1f}×, the rest is "
                    "the collector re-scanning a live heap that grows with the stack. No dependency is involved: "
                    "evaluation does not wait on the graph."]
    return "\n".join(out)


def suite_section(row: SuiteRow | None) -> str:
    command = " ".join(["python", *SUITE_COMMAND[1:]])
    if row is None:
        return "\n".join(["### 4. Offline test suite", "", f"Not run (add `--suite` to time `{command}`)."])
    return "\n".join(["### 4. Offline test suite", "", _table(
        ("command", "wall time (s)", "result", "cores", f"target ≤ {SUITE_TARGET_SECONDS:g} s"),
        [(f"`{command}`", f"{row.seconds:.1f}", row.summary, row.cores, verdict(row.passed))])])


def render(path: CriticalPath, flip_rows: Sequence[FlipRow], evals: Sequence[EvalRow],
           suite_row: SuiteRow | None, *, with_durations: bool = True) -> str:
    parts = [f"## Performance (measured on {machine()})", ""]
    if with_durations:
        parts += ["### Durations used for the critical path", "", duration_table(), ""]
    parts += [critical_path_section(path), "", flip_section(flip_rows), "", evaluation_section(evals), "",
              suite_section(suite_row), ""]
    return "\n".join(parts)
