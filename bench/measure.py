"""The measurements. Each returns typed rows; rendering lives in bench.report.

Structure (steps, chains, blast radius, overlapping waits) comes from `offline.graph`,
where the tests check it; this module only weighs it with `bench.durations` and times
the program's evaluation.
"""

from __future__ import annotations

import gc
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import durations
from bench.durations import LEVELS
from offline import configs
from offline.engine import ROOT, Program, changed_resources, run_program
from offline.graph import (
    BlastRadius,
    Chain,
    CrossWait,
    OperationChain,
    blast_radius,
    longest_chain,
    operation_chain,
    owners,
    serialising_hops,
    steps,
)

PATH_TARGET = 1.05
SUITE_TARGET_SECONDS = 120.0


# ------------------------------------------------------------------ 1. operations


@dataclass(frozen=True)
class OperationRow:
    name: str
    what: str  # the change, in words
    chains: dict[str, OperationChain]  # level -> chain
    radius: BlastRadius
    kinds: dict[str, str]  # URN -> step (create, update, delete, same)
    extra_seconds: dict[str, float]  # level -> a wait after the engine's last step (istiod's push on a flip)

    def seconds(self, level: str) -> float:
        return self.chains[level].weight + self.extra_seconds[level]


def _operation(name: str, what: str, before: Program | None, after: Program | None,
               push: bool = False) -> OperationRow:
    chains = {lv: operation_chain(before, after, durations.weight(lv)) for lv in LEVELS}
    extra = {lv: durations.TABLE["istio:push"].seconds("create", lv) if push else 0.0 for lv in LEVELS}
    return OperationRow(name, what, chains, blast_radius(before, after), steps(before, after), extra)


def operations(services: int = 2) -> tuple[OperationRow, ...]:
    """create, flip, add a cluster, remove it, destroy: each as `pulumi up` would step through it."""
    two_cfg, three_cfg = configs.n_clusters(2, services=services), configs.n_clusters(3, services=services)
    two, three = run_program(two_cfg), run_program(three_cfg)
    flipped = run_program(configs.flipped(two_cfg))
    edge_cfg = configs.with_edge(two_cfg)
    edge, edge_flipped = run_program(edge_cfg), run_program(configs.flipped(edge_cfg))
    n3 = [c["name"] for c in three_cfg["clusters"]]
    return (
        _operation("create", "an empty stack to 2 clusters", None, two),
        _operation("flip", "move the weights of every routed service (2 clusters), until istiod has pushed them",
                   two, flipped, push=True),
        _operation("flip with the edge", "the same flip with the public entry on: the mesh routes, the URL map's "
                   "weights and the failover capacity of the cluster whose weight leaves 0", edge, edge_flipped,
                   push=True),
        _operation("add a cluster", f"2 clusters to 3 (add {n3[-1]})", two, three),
        _operation("remove a cluster", f"3 clusters to 2 (remove {n3[-1]})", three, two),
        _operation("destroy", "2 clusters to an empty stack", two, None),
    )


@dataclass(frozen=True)
class FlipFootprint:
    """One flip's update (`tools.flip` applies only these URNs, `--target`) against the whole stack."""

    clusters: int
    resources: int
    touched: int

    @property
    def ratio(self) -> float:
        return self.touched / self.resources


def flip_footprint(sizes: Sequence[int] = (2, 4, 8)) -> tuple[FlipFootprint, ...]:
    """Resources a flip's update touches / resources in the stack, for N clusters (first cluster -> second)."""
    rows = []
    for n in sizes:
        cfg = configs.n_clusters(n)
        before, after = run_program(cfg), run_program(configs.flipped(cfg))
        rows.append(FlipFootprint(n, len(before.resources), len(changed_resources(before, after).touched)))
    return tuple(rows)


# ------------------------------------------------------------------ 2. create's critical path against N


@dataclass(frozen=True)
class PathRow:
    clusters: int
    resources: int
    weights: dict[str, float]  # level -> critical chain seconds
    depth: int
    ratio: float  # typical chain ÷ one cluster's typical chain
    hops: tuple[CrossWait, ...]
    mixed_ratio: float  # clusters at different levels: the mesh's chain ÷ its slowest cluster's own chain

    @property
    def passed(self) -> bool:
        return self.ratio <= PATH_TARGET and self.mixed_ratio <= PATH_TARGET


@dataclass(frozen=True)
class CriticalPath:
    cluster: str
    one_cluster: Chain  # typical weights
    rows: tuple[PathRow, ...]


def one_cluster_chain(program: Program, level: str = "typical") -> tuple[str, Chain]:
    """The heaviest chain through one cluster's resources (plus shared ones), the others ignored."""
    owner = owners(program)
    names = sorted({o for o in owner.values() if o is not None})
    weigh = lambda r: durations.seconds(r, "create", level)  # noqa: E731
    chains = {n: longest_chain(program, weigh, keep=lambda r, n=n: owner[r.urn] in (None, n)) for n in names}
    name = max(names, key=lambda n: (chains[n].weight, n))
    return name, chains[name]


def critical_path(sizes: Sequence[int] = (2, 4, 8)) -> CriticalPath:
    programs = {n: run_program(configs.n_clusters(n)) for n in sizes}
    name, one = one_cluster_chain(programs[sizes[0]])
    rows = []
    for n, program in programs.items():
        weights = {lv: longest_chain(program, lambda r, lv=lv: durations.seconds(r, "create", lv)).weight
                   for lv in LEVELS}
        chain = longest_chain(program, durations.seconds)
        ratio = chain.weight / one.weight
        hops = () if ratio <= PATH_TARGET else tuple(serialising_hops(program, chain, owners(program)))
        rows.append(PathRow(n, len(program.resources), weights, chain.count, ratio, hops, mixed_ratio(program)))
    return CriticalPath(name, one, tuple(rows))


def mixed_ratio(program: Program) -> float:
    """The mesh's chain when its clusters run at different speeds, ÷ the slowest cluster's own chain.

    Cluster i's resources take the i-th level (low, typical, high, low, ...), the shared ones
    typical. With one constant per type every cluster's chain is the same length, so the
    ratio against one cluster is 1 by construction; with unequal clusters it stays 1 only
    if no cluster waits for a slower one.
    """
    owner = owners(program)
    names = sorted({o for o in owner.values() if o is not None})
    level = {n: LEVELS[i % len(LEVELS)] for i, n in enumerate(names)}
    weigh = lambda r: durations.seconds(r, "create", level.get(owner[r.urn], "typical"))  # noqa: E731
    mesh = longest_chain(program, weigh).weight
    slowest = max(longest_chain(program, weigh, keep=lambda r, n=n: owner[r.urn] in (None, n)).weight for n in names)
    return mesh / slowest


# ------------------------------------------------------------------ 3. program evaluation (a preview's CPU time)


@dataclass(frozen=True)
class EvalRow:
    clusters: int
    resources: int
    cpu_seconds: tuple[float, ...]  # one per repeat

    @property
    def median(self) -> float:
        return statistics.median(self.cpu_seconds)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.cpu_seconds), max(self.cpu_seconds)


def _cpu(config: dict[str, Any]) -> float:
    gc.collect()
    start = time.process_time()
    run_program(config)
    return time.process_time() - start


def evaluations(sizes: Sequence[int] = (2, 4, 8), repeats: int = 5,
                say: Callable[[str], None] = lambda _: None) -> tuple[EvalRow, ...]:
    """CPU seconds of the program's evaluation under mocks, `repeats` times after one warm-up run.

    The warm-up pays one-time costs (imports, the mocks' key generation for new names); CPU
    time rather than wall time, so other load on the machine counts less.
    """
    rows = []
    for n in sizes:
        say(f"evaluating the program at {n} clusters, 1 warm-up + {repeats} timed runs …")
        config = configs.n_clusters(n)
        program = run_program(config)
        rows.append(EvalRow(n, len(program.resources), tuple(_cpu(config) for _ in range(repeats))))
    return tuple(rows)


# ------------------------------------------------------------------ 4. the offline suite


SUITE_COMMAND = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")


@dataclass(frozen=True)
class SuiteRow:
    seconds: float
    summary: str
    returncode: int
    cores: int

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and self.seconds <= SUITE_TARGET_SECONDS


def suite() -> SuiteRow:
    """Run the whole offline suite in a fresh interpreter, as `make test` does, and time it."""
    start = time.perf_counter()
    done = subprocess.run(SUITE_COMMAND, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    lines = [ln for ln in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    summary = lines[-1].strip("= ") if lines else (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return SuiteRow(seconds, summary, done.returncode, os.cpu_count() or 0)
