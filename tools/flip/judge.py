"""Pure: the measurements of one step -> its verdict, per destination cluster.

A cluster that receives weight in the step passes when it answered at least
`min_requests` requests, at least `min_success_rate` % of them not 5xx, with a p99 at
most `max_p99_ms`. Too few requests is its own verdict, never a pass: analysis that
passes with no traffic is the failure users of canary tools report most. Measurements that
cannot be true (non-finite, negative, more 5xx than requests, a cluster the stack does not
have, enough requests but no latency) are INCONCLUSIVE, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from components.config import FlipSpec


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_TRAFFIC = "too little traffic"
    INCONCLUSIVE = "metrics inconclusive"
    ERROR = "metrics inconclusive"  # alias: an unavailable metrics API is one way of being inconclusive
    NOT_CONVERGED = "split not converged"


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
class Read:
    """One read of the metrics during a step: when, over which window, and what it said (or why not)."""

    phase: str  # "converge" (waiting for the split) or "hold" (judged)
    at: float
    window_seconds: int
    measured: Mapping[str, ClusterMeasurement] = field(default_factory=dict)
    problem: str = ""  # why the read is inconclusive; "" if it can be used

    @property
    def conclusive(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class StepVerdict:
    verdict: Verdict
    clusters: tuple[ClusterVerdict, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)
    # The measurements judged (the last conclusive read of the hold) and every read of the step.
    measured: Mapping[str, ClusterMeasurement] = field(default_factory=dict)
    reads: tuple[Read, ...] = ()

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


def untrusted(weights: Mapping[str, int], measured: Mapping[str, ClusterMeasurement], t: FlipSpec) -> list[str]:
    """Why these measurements cannot be judged ([] if they can)."""
    problems: list[str] = []
    for cluster, m in measured.items():
        if cluster not in weights:
            problems.append(f"the metrics name destination cluster {cluster!r}, which is not a cluster of this "
                            f"stack ({', '.join(weights)})")
            continue
        numbers: Sequence[float] = (m.requests, m.errors) if m.p99_ms is None else (m.requests, m.errors, m.p99_ms)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in numbers):
            problems.append(f"{cluster}: {m.requests} requests, {m.errors} 5xx, p99 {m.p99_ms} ms: not all finite "
                            "and non-negative")
        elif m.errors > m.requests:
            problems.append(f"{cluster}: {m.errors:g} 5xx out of {m.requests:g} requests")
        elif weights[cluster] > 0 and m.requests >= t.min_requests and m.p99_ms is None:
            problems.append(f"{cluster}: {m.requests:.0f} requests but no latency samples: the p99 cannot be checked")
    return problems


def judge(weights: Mapping[str, int], measured: Mapping[str, ClusterMeasurement], t: FlipSpec) -> StepVerdict:
    """The step's verdict: INCONCLUSIVE if the measurements cannot be true, FAIL if any receiving cluster
    fails, else NO_TRAFFIC if any lacks traffic, else PASS."""
    problems = untrusted(weights, measured, t)
    if problems:
        return StepVerdict(Verdict.INCONCLUSIVE, reasons=tuple(problems), measured=dict(measured))
    verdicts = tuple(judge_cluster(c, measured.get(c, ClusterMeasurement(0, 0, None)), t)
                     for c, w in weights.items() if w > 0)
    reasons = tuple(r for v in verdicts for r in v.reasons)
    for worst in (Verdict.FAIL, Verdict.NO_TRAFFIC):
        if any(v.verdict is worst for v in verdicts):
            return StepVerdict(worst, verdicts, reasons, dict(measured))
    return StepVerdict(Verdict.PASS, verdicts, reasons, dict(measured))


def failing_early(weights: Mapping[str, int], measured: Mapping[str, ClusterMeasurement], t: FlipSpec) -> bool:
    """True when the step already failed mid-hold (a threshold broken with enough requests to be sure)."""
    return any(v.verdict is Verdict.FAIL and v.measurement.requests >= t.min_requests
               for v in judge(weights, measured, t).clusters)


def shares(measured: Mapping[str, ClusterMeasurement]) -> dict[str, float]:
    """Each cluster's percent of the requests measured ({} when there are none)."""
    total = sum(m.requests for m in measured.values())
    return {c: 100.0 * m.requests / total for c, m in measured.items()} if total > 0 else {}


def off_split(weights: Mapping[str, int], measured: Mapping[str, ClusterMeasurement], t: FlipSpec) -> list[str]:
    """Why the observed split is not yet the step's weights ([] once every cluster is within tolerance).

    At least `min_requests` requests in all (a share of fewer is noise), every cluster within
    `share_tolerance` points of its weight, and a cluster with weight > 0 must receive some.
    """
    total = sum(m.requests for m in measured.values())
    if total < t.min_requests:
        return [f"{total:.0f} requests in all < {t.min_requests} needed to see the split"]
    observed = shares(measured)
    problems = []
    for cluster, weight in weights.items():
        share = observed.get(cluster, 0.0)
        if weight > 0 and share == 0:
            problems.append(f"{cluster} receives nothing (weight {weight})")
        elif abs(share - weight) > t.share_tolerance:
            problems.append(f"{cluster} {share:.1f}% vs weight {weight} (tolerance {t.share_tolerance:g} points)")
    return problems
