"""One step's wait and judgement: converge, hold, judge - on an injected clock, from any `Metrics`.

After a step is applied, the URL map reaches Google's front ends and istiod pushes the
VirtualServices to every proxy, each on its own time. So:

1. **Converge.** Every `interval`, read the last two scrape intervals (never reaching back
   before the step was applied) until each cluster's share of the routed services' requests
   is within `flip.shareTolerance` points of its weight. Past `flip.convergeTimeout` the step
   fails (NOT_CONVERGED): the split that would be judged is not the one deployed.
2. **Hold** for `hold` seconds from the moment the split was seen, reading every `interval`
   over the window since then (at least two scrape intervals, so the first read waits for
   that; the window never reaches back before convergence, so a short hold never judges the
   previous step's traffic). A threshold broken with enough requests fails the step at once.
3. **Judge** the last read of the hold. A read that cannot be trusted (the API failed or
   answered something impossible) is INCONCLUSIVE; more than `flip.inconclusiveLimit` of them
   in a row end the step INCONCLUSIVE (Argo Rollouts' consecutiveErrorLimit), and the hold does
   not end on one: it reads on until a conclusive read or the budget runs out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from components.config import MIN_WINDOW_SECONDS, FlipSpec
from tools.flip.judge import (
    ClusterMeasurement,
    Read,
    StepVerdict,
    Verdict,
    failing_early,
    judge,
    off_split,
    shares,
    untrusted,
)
from tools.flip.prometheus import PrometheusError

CONVERGE, HOLD = "converge", "hold"


class Metrics(Protocol):
    def measure(self, services: Sequence[str], window_seconds: int, at: float) -> dict[str, ClusterMeasurement]:
        """Requests, 5xx and p99 per destination cluster over the window ending at `at`; PrometheusError if not."""


@dataclass(frozen=True)
class HoldSpec:
    """What one step holds: its weights (every cluster of the stack), the services moved, the rules."""

    weights: Mapping[str, int]
    services: Sequence[str]
    flip: FlipSpec
    hold_seconds: int
    interval_seconds: int
    label: str = ""  # progress prefix, e.g. "step 2/4 blue=75,green=25"


def hold_and_judge(spec: HoldSpec, metrics: Metrics, *, clock: Callable[[], float],
                   sleep: Callable[[float], None], say: Callable[[str], None]) -> StepVerdict:
    """Converge, hold and judge one applied step (see the module docstring)."""
    return _Step(spec, metrics, clock, sleep, say).run()


@dataclass
class _Step:
    spec: HoldSpec
    metrics: Metrics
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    say: Callable[[str], None]

    def __post_init__(self) -> None:
        self.reads: list[Read] = []
        self.streak = 0  # consecutive inconclusive reads

    def run(self) -> StepVerdict:
        s, t = self.spec, self.spec.flip
        applied = self.clock()
        converged = self.converge(applied)
        if isinstance(converged, StepVerdict):
            return converged
        # The hold starts when the split was seen; a read needs two scrape intervals of it.
        hold = max(s.hold_seconds, MIN_WINDOW_SECONDS)
        if hold > s.hold_seconds:
            self.say(f"  hold {s.hold_seconds}s is shorter than one judgement needs; holding {hold}s")
        end = converged + hold
        due = min(converged + max(s.interval_seconds, MIN_WINDOW_SECONDS), end)
        last: Read | None = None
        while True:
            now = self.wait_until(due)
            read = self.read(HOLD, int(now - converged), now)
            if read.conclusive:
                last = read
                self.say(f"  {s.label}  hold {_clock(max(end - now, 0))} left  "
                         f"{_metrics_line(s.weights, read.measured)}")
                if failing_early(s.weights, read.measured, t):
                    return self.verdict(judge(s.weights, read.measured, t))
                if now >= end:
                    return self.verdict(judge(s.weights, read.measured, t))
            elif self.streak > t.inconclusive_limit:
                return self.exhausted(last)
            due = min(now + s.interval_seconds, end) if now < end else now + s.interval_seconds

    def converge(self, applied: float) -> float | StepVerdict:
        """The time the observed split matched the weights, or the verdict that ends the step."""
        s, t = self.spec, self.spec.flip
        deadline = applied + t.converge_timeout_seconds
        due = applied + MIN_WINDOW_SECONDS  # the first window lies wholly after the update
        problems: list[str] = []
        while True:
            now = self.wait_until(due)
            read = self.read(CONVERGE, MIN_WINDOW_SECONDS, now)
            if read.conclusive:
                if failing_early(s.weights, read.measured, t):
                    self.say(f"  {s.label}  before the hold ({_clock(now - applied)} after the update): "
                             f"{_metrics_line(s.weights, read.measured)}")
                    return self.verdict(judge(s.weights, read.measured, t))
                problems = off_split(s.weights, read.measured, t)
                observed = shares(read.measured)
                split = " ".join(f"{c} {observed.get(c, 0.0):.1f}%" for c in s.weights) if observed else "no requests"
                if not problems:
                    self.say(f"  {s.label}  split converged after {_clock(now - applied)}: {split}")
                    return now
                self.say(f"  {s.label}  converging ({_clock(now - applied)} of {_clock(t.converge_timeout_seconds)})"
                         f": {split}")
            elif self.streak > t.inconclusive_limit:
                return self.exhausted(None)
            if now >= deadline:
                reasons = (f"the observed split did not reach the step's weights within flip.convergeTimeout "
                           f"{t.converge_timeout_seconds}s: " + ("; ".join(problems) or "no conclusive read"),)
                return StepVerdict(Verdict.NOT_CONVERGED, reasons=reasons, reads=tuple(self.reads))
            due = min(now + s.interval_seconds, deadline)

    def read(self, phase: str, window: int, now: float) -> Read:
        s = self.spec
        try:
            measured = self.metrics.measure(list(s.services), window, now)
            problems = untrusted(s.weights, measured, s.flip)
        except PrometheusError as error:
            measured, problems = {}, [str(error)]
        read = Read(phase, now, window, dict(measured), "; ".join(problems))
        self.reads.append(read)
        if read.conclusive:
            self.streak = 0
        else:
            self.streak += 1
            self.say(f"  {s.label}  inconclusive read {self.streak} of at most {s.flip.inconclusive_limit} in a "
                     f"row: {read.problem}")
        return read

    def wait_until(self, due: float) -> float:
        now = self.clock()
        if due > now:
            self.sleep(due - now)
        return self.clock()

    def verdict(self, verdict: StepVerdict) -> StepVerdict:
        return StepVerdict(verdict.verdict, verdict.clusters, verdict.reasons, verdict.measured, tuple(self.reads))

    def exhausted(self, last: Read | None) -> StepVerdict:
        limit = self.spec.flip.inconclusive_limit
        reasons = (f"{self.streak} metric reads in a row could not be trusted (flip.inconclusiveLimit {limit}); "
                   f"the last: {self.reads[-1].problem}",)
        return StepVerdict(Verdict.INCONCLUSIVE, reasons=reasons, measured=dict(last.measured) if last else {},
                           reads=tuple(self.reads))


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s"


def _metrics_line(weights: Mapping[str, int], measured: Mapping[str, ClusterMeasurement]) -> str:
    parts = []
    for c, w in weights.items():
        if w <= 0:
            continue
        m = measured.get(c)
        if m is None:
            parts.append(f"{c}: no requests")
            continue
        rate = "-" if m.success_rate is None else f"{m.success_rate:.2f}%"
        p99 = "-" if m.p99_ms is None else f"{m.p99_ms:.0f}ms"
        parts.append(f"{c}: {m.requests:.0f} req {rate} ok p99 {p99}")
    return " | ".join(parts)
