"""Reporting a flip: the live hold line, the closing table, the plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tools.flip.judge import ClusterMeasurement, StepVerdict
from tools.flip.plan import Step, format_weights
from tools.flip.request import FlipRequest


@dataclass
class StepRecord:
    step: Step
    result: str = "not run"
    verdict: StepVerdict | None = None
    measured: dict[str, ClusterMeasurement] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def report(records: Sequence[StepRecord], request: FlipRequest) -> str:
    """The closing table: one row per step and receiving cluster."""
    header = ("step", "weights", "cluster", "requests", "success", "p99", "result")
    rows: list[tuple[str, ...]] = []
    for rec in records:
        clusters = [c for c, w in rec.step.weights.items() if w > 0]
        for j, c in enumerate(clusters):
            m = rec.measured.get(c)
            rows.append((
                f"{rec.step.index} ({rec.step.percent}%)" if j == 0 else "",
                format_weights(rec.step.weights) if j == 0 else "",
                c,
                "-" if m is None else f"{m.requests:.0f}",
                "-" if m is None or m.success_rate is None else f"{m.success_rate:.2f}%",
                "-" if m is None or m.p99_ms is None else f"{m.p99_ms:.0f} ms",
                rec.result if j == 0 else "",
            ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    t = request.cfg.flip
    lines.append(f"thresholds: success >= {t.min_success_rate:g}%, p99 <= {t.max_p99_ms:g} ms, "
                 f">= {t.min_requests} requests per receiving cluster; hold {request.hold}s")
    return "\n".join(lines)


def format_plan(request: FlipRequest) -> str:
    lines = [f"flip plan for stack {request.stack}: {format_weights(request.start)} -> "
             f"{format_weights(request.final)}, hold {request.hold}s per step",
             f"  services: {', '.join(s.fqdn for s in request.moved_services)}"]
    lines += [f"  step {s.index} ({s.percent:>3}%): {format_weights(s.weights)}" for s in request.steps]
    lines.append("nothing was written or applied (--plan)")
    return "\n".join(lines)

