"""The four measurements. Each returns typed rows; rendering lives in bench.report."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import durations
from components.names import VIRTUAL_SERVICE, remote_secret_name
from offline import configs
from offline.engine import ROOT, Program, changed_resources, project_config, run_program
from offline.graph import (
    Chain,
    CrossWait,
    longest_chain,
    owners,
    serialising_hops,
)

REMOTE_SECRET_PREFIX = remote_secret_name("")
PATH_TARGET = 1.05
EVAL_TARGET = 10.0
SUITE_TARGET_SECONDS = 120.0


# ------------------------------------------------------------------ 1. deploy critical path


@dataclass(frozen=True)
class PathRow:
    label: str
    clusters: int
    resources: int
    chain: Chain
    depth: int  # resources on the critical chain
    serial_seconds: float
    ratio: float
    passed: bool | None  # None: the reference row itself
    hops: tuple[CrossWait, ...]


@dataclass(frozen=True)
class CriticalPath:
    one_cluster: Chain
    rows: tuple[PathRow, ...]


def one_cluster_chain(program: Program) -> tuple[str, Chain]:
    """The longest weighted chain through one cluster's resources (plus shared ones), others ignored.

    Taken for every cluster of the stack; the longest is "one cluster's chain".
    """
    owner = owners(program)
    names = sorted({o for o in owner.values() if o is not None})
    chains = {n: longest_chain(program, durations.seconds, keep=lambda r, n=n: owner[r.urn] in (None, n))
              for n in names}
    name = max(names, key=lambda n: (chains[n].weight, n))
    return name, chains[name]


def critical_path(sizes: Sequence[int] = (2, 4, 8)) -> CriticalPath:
    reference = run_program(configs.n_clusters(2))
    name, one = one_cluster_chain(reference)
    rows = [PathRow(f"1 cluster ({name}'s chain in the 2-cluster stack, the other cluster ignored)",
                    1, 0, one, one.count, one.weight, 1.0, None, ())]
    for n in sizes:
        program = reference if n == 2 else run_program(configs.n_clusters(n))
        chain = longest_chain(program, durations.seconds)
        ratio = chain.weight / one.weight
        passed = ratio <= PATH_TARGET
        hops = () if passed else tuple(serialising_hops(program, chain, owners(program)))
        rows.append(PathRow(f"{n} clusters", n, len(program.resources), chain, chain.count, n * one.weight,
                            ratio, passed, hops))
    return CriticalPath(one, tuple(rows))


# ------------------------------------------------------------------ 2. flip blast radius


@dataclass(frozen=True)
class FlipRow:
    label: str
    clusters: int
    services: int
    changed: tuple[tuple[str, str], ...]  # (type, name) of every resource added, removed or changed

    @property
    def expected(self) -> int:
        return self.clusters * self.services

    @property
    def virtual_services(self) -> int:
        return sum(1 for t, _ in self.changed if t == VIRTUAL_SERVICE)

    @property
    def others(self) -> tuple[tuple[str, str], ...]:
        return tuple((t, n) for t, n in self.changed if t != VIRTUAL_SERVICE)

    @property
    def passed(self) -> bool:
        return self.virtual_services == self.expected and not self.others


def flip(label: str, config: dict[str, Any]) -> FlipRow:
    """Run the program before and after a weight change; list every resource whose inputs differ."""
    before = run_program(config)
    after = run_program(configs.flipped(config))
    diff = changed_resources(before, after)
    both = {**before.by_urn, **after.by_urn}
    changed = tuple(sorted((both[u].type, both[u].name) for u in diff.touched))
    return FlipRow(label, len(config["clusters"]), len(config["traffic"]["services"]), changed)


def flips() -> tuple[FlipRow, ...]:
    return (
        flip("dev stack (Pulumi.dev.yaml)", project_config("dev")),
        flip("4 clusters, 3 routed services", configs.n_clusters(4, services=3)),
    )


# ------------------------------------------------------------------ 3. program evaluation


@dataclass(frozen=True)
class EvalRow:
    clusters: int
    resources: int
    remote_secrets: int
    seconds: float
    cpu_seconds: float  # this process's CPU time in the same run (robust to other load on the machine)
    seconds_gc_paused: float  # the same runs with CPython's cyclic garbage collector paused
    peak_bytes: int


def _timed(fn: Callable[[], Program], *, gc_paused: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    gc.collect()
    if gc_paused:
        gc.disable()
    try:
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        gc.enable()


def evaluate(n: int, repeats: int = 3) -> EvalRow:
    """Fastest of `repeats` runs after one warm-up (and again with the GC paused), and peak traced memory.

    The warm-up pays the one-time costs (imports, the mocks' key generation for new names),
    so what is timed is the program's own evaluation. The GC-paused figure separates the
    work per resource from CPython's cyclic collector, whose passes grow with the live heap.
    """
    config = configs.n_clusters(n)
    run_program(config)
    best, best_cpu = min(_timed(lambda: run_program(config)) for _ in range(repeats))
    paused = min(_timed(lambda: run_program(config), gc_paused=True)[0] for _ in range(repeats))
    gc.collect()
    tracemalloc.start()
    try:
        program = run_program(config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    secrets = sum(1 for r in program.of_type("kubernetes:core/v1:Secret")
                  if str(r.inputs.get("metadata", {}).get("name", "")).startswith(REMOTE_SECRET_PREFIX))
    return EvalRow(n, len(program.resources), secrets, best, best_cpu, paused, peak)


def evaluations(sizes: Sequence[int] = (2, 4, 8, configs.MAX_CLUSTERS), repeats: int = 3) -> tuple[EvalRow, ...]:
    return tuple(evaluate(n, repeats) for n in sizes)


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
