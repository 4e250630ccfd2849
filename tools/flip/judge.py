"""Pure: the measurements of one step -> its verdict, per destination cluster.

A cluster that receives weight in the step passes when it answered at least
`min_requests` requests, at least `min_success_rate` % of them not 5xx, with a p99 at
most `max_p99_ms`. Too few requests is its own verdict, never a pass: analysis that
passes with no traffic is the failure users of canary tools report most.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from components.config import FlipSpec


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_TRAFFIC = "too little traffic"
    ERROR = "metrics unavailable"


@dataclass(frozen=True)
class ClusterMeasurement:
    """What reached one destination cluster during the window."""

    requests: float
    errors: float
    p99_ms: float | None  # None: no latency samples

    @property
    def success_rate(self) -> float | None:
        return None if self.requests <= 0 else 100.0 * (self.requests - self.errors) / self.requests


@dataclass(frozen=True)
class ClusterVerdict:
    cluster: str
    verdict: Verdict
    measurement: ClusterMeasurement
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepVerdict:
    verdict: Verdict
    clusters: tuple[ClusterVerdict, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS


def judge_cluster(cluster: str, m: ClusterMeasurement, t: FlipSpec) -> ClusterVerdict:
    reasons: list[str] = []
    rate = m.success_rate
    if rate is not None and rate < t.min_success_rate:
        reasons.append(f"{cluster}: success rate {rate:.2f}% < {t.min_success_rate:g}%")
    if m.p99_ms is not None and not math.isnan(m.p99_ms) and m.p99_ms > t.max_p99_ms:
        reasons.append(f"{cluster}: p99 {m.p99_ms:.0f} ms > {t.max_p99_ms:g} ms")
    if reasons:
        return ClusterVerdict(cluster, Verdict.FAIL, m, tuple(reasons))
    if m.requests < t.min_requests:
        return ClusterVerdict(cluster, Verdict.NO_TRAFFIC, m, (
            f"{cluster}: {m.requests:.0f} requests < {t.min_requests} needed to judge (add traffic: "
            "`python -m tools.verify --probe`)",))
    return ClusterVerdict(cluster, Verdict.PASS, m)


def judge(weights: Mapping[str, int], measured: Mapping[str, ClusterMeasurement], t: FlipSpec) -> StepVerdict:
    """The step's verdict: FAIL if any receiving cluster fails, else NO_TRAFFIC if any lacks traffic, else PASS."""
    verdicts = tuple(judge_cluster(c, measured.get(c, ClusterMeasurement(0, 0, None)), t)
                     for c, w in weights.items() if w > 0)
    reasons = tuple(r for v in verdicts for r in v.reasons)
    for worst in (Verdict.FAIL, Verdict.NO_TRAFFIC):
        if any(v.verdict is worst for v in verdicts):
            return StepVerdict(worst, verdicts, reasons)
    return StepVerdict(Verdict.PASS, verdicts, reasons)


def failing_early(weights: Mapping[str, int], measured: Mapping[str, ClusterMeasurement], t: FlipSpec) -> bool:
    """True when the step already failed mid-hold (a threshold broken with enough requests to be sure)."""
    return any(v.verdict is Verdict.FAIL and v.measurement.requests >= t.min_requests
               for v in judge(weights, measured, t).clusters)
