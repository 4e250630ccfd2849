"""Sustained load through the public entry: requests a flip's judge counts for as long as a flip runs.

A flip judges a step by the requests each cluster received during its hold (`flip.minRequests`
per receiving cluster, reporter="source": the ingress gateways report the edge's requests). One
burst before the hold is not in the hold's window, and 200 requests give a cluster at 10 % only 20.
`verify --probe --duration D --rate R` sends R requests per second to the public host of every
service a flip moves, paced on the clock, for D: a cluster holding w % of the split then receives
about R x hosts x w / 100 requests per second throughout the flip (docs/flip.md, "Load for the judge").

Bounded: at most R x D requests per host, and nothing is sent once D is over (a slow edge makes
fewer requests, never a longer run; each request has its own timeout, tools/verify/kube.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from components.config import MIN_WINDOW_SECONDS
from components.config.rules import duration_seconds
from tools.verify.probe import LoadCount, load_count

MIN_SECONDS = MIN_WINDOW_SECONDS  # one judgement's window (two scrape intervals): less cannot feed one
MAX_SECONDS = 2 * 3600
MIN_RATE, MAX_RATE = 0.1, 20.0  # requests per second to each host; one request at a time
DEFAULT_RATE = 5.0
PROGRESS_SECONDS = 30.0

Send = Callable[[str, str], int | None]  # (url, Host) -> status, None if nothing answered


@dataclass(frozen=True)
class LoadPlan:
    hosts: tuple[str, ...]
    rate: float  # requests per second to each host
    seconds: int

    @property
    def per_host(self) -> int:
        return max(1, math.floor(self.rate * self.seconds))

    def describe(self, url: str, min_requests: int, hold_seconds: int) -> str:
        """What it sends, and the smallest share of the split that still gets `min_requests` in one hold."""
        per_second = self.rate * len(self.hosts)
        share = 100.0 * min_requests / (per_second * hold_seconds)
        enough = (f"a cluster given at least {math.ceil(share)} % of the split receives flip.minRequests "
                  f"({min_requests}) in a flip.hold ({hold_seconds} s)" if share <= 100 else
                  f"no cluster receives flip.minRequests ({min_requests}) in a flip.hold ({hold_seconds} s): "
                  "raise --rate")
        return (f"load: {self.rate:g} requests/s to each of {', '.join(self.hosts)} through {url} for "
                f"{self.seconds} s ({self.per_host * len(self.hosts)} requests); {enough}")


def sustained_load(url: str, plan: LoadPlan, send: Send, *, clock: Callable[[], float],
                   sleep: Callable[[float], None], report: Callable[[str], None]) -> list[LoadCount]:
    """Request k to each host at start + k / rate, until `plan.seconds` are over; what each host answered.

    Ctrl-C ends it early and still reports what was sent."""
    start = clock()
    end = start + plan.seconds
    statuses: dict[str, list[int | None]] = {h: [] for h in plan.hosts}
    next_report = start + PROGRESS_SECONDS
    stopped = False
    try:
        for k in range(plan.per_host):
            due = start + k / plan.rate
            now = clock()
            if due > now:
                sleep(due - now)
            if clock() >= end:
                break  # behind schedule: the edge answers slower than the rate
            for host in plan.hosts:
                statuses[host].append(send(url, host))
            if clock() >= next_report:
                sent = sum(len(s) for s in statuses.values())
                failed = sum(1 for s in statuses.values() for x in s if x is None or x >= 500)
                report(f"load: {sent}/{plan.per_host * len(plan.hosts)} requests sent, {failed} failed or 5xx, "
                       f"{max(0.0, end - clock()):.0f} s left")
                next_report += PROGRESS_SECONDS
    except KeyboardInterrupt:
        stopped = True
    counts = [load_count(h, s) for h, s in statuses.items()]
    sent = sum(len(s) for s in statuses.values())
    if stopped:
        report(f"load: stopped by Ctrl-C after {sent} requests ({clock() - start:.0f} s)")
    elif sent < plan.per_host * len(plan.hosts):
        report(f"load: the edge answered slower than --rate {plan.rate:g}: {sent} of "
               f"{plan.per_host * len(plan.hosts)} requests sent in {plan.seconds} s")
    return counts


def parse_seconds(text: str) -> int:
    """`--duration`: 90s, 10m, 1h or seconds, from MIN_SECONDS to MAX_SECONDS; ValueError says the rule."""
    seconds = duration_seconds(text)
    if seconds is None:
        raise ValueError(f"--duration {text!r} must be a duration such as 600, 90s, 10m or 1h")
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(f"--duration {seconds}s must be from {MIN_SECONDS}s (one judgement's window) "
                         f"to {MAX_SECONDS}s")
    return seconds


def hosts_or_problem(hosts: Sequence[str], edge_url: str | None) -> str:
    """Why a sustained load cannot be sent ("" if it can)."""
    if not edge_url:
        return ("--duration sends load through the edge, but the stack has no `edge` output (edge.enabled is "
                "false or not deployed); without the edge, send requests to the routed services from a meshed "
                "workload (docs/flip.md, Load for the judge)")
    if not hosts:
        return ("--duration: no routed service that follows traffic.weights has a public host "
                "(traffic.services[].hosts), so no load would reach what a flip judges")
    return ""
