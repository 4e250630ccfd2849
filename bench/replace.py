"""A whole replacement (add, parity, flip, soak, retire) as one critical path, low / typical / high.

The phases run one after the other, so the path is their sum. `add`, each flip step and `retire`
are the engine's critical paths of those edits (`offline.graph.operation_chain`, weighed with
`bench.durations` like every other operation); the flip holds each step `flip.hold` and waits
for istiod's push; the soak is the replace command's default. Parity is the one phase the
program does not drive: its row is an estimate and says so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from bench import durations
from bench.durations import LEVELS
from components.config.model import DEFAULT_FLIP_HOLD_SECONDS, DEFAULT_FLIP_STEPS, DEFAULT_REPLACE_SOAK_SECONDS
from offline import configs
from offline.engine import run_program
from offline.graph import operation_chain

# Parity: the successor's workloads delivered and ready. Config Sync polls its repository every
# 15 s by default (pulumi-gcp FeatureMembership git.sync_wait_secs); the rest is image pulls through
# Cloud NAT and pods becoming ready, or a team's own pipeline: estimate.
PARITY_SECONDS = {"low": 120.0, "typical": 600.0, "high": 3600.0}
PARITY_SOURCE = ("estimate: Config Sync's 15 s poll (FeatureMembership git.sync_wait_secs default) plus image pulls "
                 "and readiness (low, typical); a team's own delivery pipeline without Config Sync (high)")


@dataclass(frozen=True)
class Phase:
    name: str
    what: str
    seconds: dict[str, float]
    source: str


def _without(config: dict[str, Any], cluster: str) -> dict[str, Any]:
    out = copy.deepcopy(config)
    out["clusters"] = [c for c in out["clusters"] if c["name"] != cluster]
    out["traffic"]["weights"] = {k: v for k, v in out["traffic"]["weights"].items() if k != cluster}
    return out


def _weights(config: dict[str, Any], weights: dict[str, int]) -> dict[str, Any]:
    out = copy.deepcopy(config)
    out["traffic"]["weights"] = weights
    return out


def _chain(before, after) -> dict[str, float]:  # noqa: ANN001
    return {lv: operation_chain(before, after, durations.weight(lv)).weight for lv in LEVELS}


def replacement() -> tuple[Phase, ...]:
    """Replace the first cluster of a two-cluster mesh by a third (the successor), every phase in turn."""
    three = configs.n_clusters(3)
    old, peer, new = (c["name"] for c in three["clusters"])
    two = _without(three, new)
    added = _weights(three, {old: 100, peer: 0, new: 0})
    programs = {"two": run_program(two), "added": run_program(added)}
    steps = DEFAULT_FLIP_STEPS
    step_weights = [{old: 100 - s, peer: 0, new: s} for s in steps]
    step_programs = [run_program(_weights(added, w)) for w in step_weights]
    flip = {lv: 0.0 for lv in LEVELS}
    previous = programs["added"]
    for program in step_programs:
        for lv, s in _chain(previous, program).items():
            flip[lv] += s + durations.TABLE["istio:push"].seconds("create", lv) + DEFAULT_FLIP_HOLD_SECONDS
        previous = program
    retired = run_program(_without(_weights(added, {old: 0, peer: 0, new: 100}), old))
    return (
        Phase("add", f"{new} joins at weight 0 (`pulumi up`)", _chain(programs["two"], programs["added"]),
              "engine critical path of the edit, bench/durations.py"),
        Phase("parity", f"{new} runs {old}'s workloads, ready", dict(PARITY_SECONDS), PARITY_SOURCE),
        Phase("flip", f"{len(steps)} steps ({', '.join(map(str, steps))} %), each applied, pushed and held "
              f"{DEFAULT_FLIP_HOLD_SECONDS} s", flip,
              "each step's engine critical path + istiod's push + flip.hold (the default)"),
        Phase("soak", f"{old} at weight 0, no requests", {lv: float(DEFAULT_REPLACE_SOAK_SECONDS) for lv in LEVELS},
              "the replace command's default --soak"),
        Phase("retire", f"{old} removed (`pulumi up`)", _chain(previous, retired),
              "engine critical path of the removal (deletes), bench/durations.py"),
    )


def total(phases: tuple[Phase, ...]) -> dict[str, float]:
    return {lv: sum(p.seconds[lv] for p in phases) for lv in LEVELS}
