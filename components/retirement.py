"""Retiring a cluster is two steps: drain it (weight 0 deployed), then remove it from `clusters`.

Why: removing a cluster that still carries weight deletes the subsets, routes and the
cluster itself while clients are sending it their share; every request of that share fails
until the next edit. The check reads the last deployment's outputs
(components/last_deployment.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Stack outputs the check reads (exported by __main__.py).
CLUSTERS_OUTPUT = "clusters"
TRAFFIC_OUTPUT = "trafficSplit"


def retirement_problems(last: Mapping[str, Any], clusters: Sequence[str]) -> list[str]:
    """One line per cluster removed from `clusters` while the last deployment still sent it traffic."""
    deployed = list((last.get(CLUSTERS_OUTPUT) or {}).keys())
    split = last.get(TRAFFIC_OUTPUT) or {}
    problems = []
    for name in deployed:
        if name in clusters:
            continue
        carried = {svc: int(w[name]) for svc, w in split.items() if isinstance(w, Mapping) and w.get(name)}
        if carried:
            shares = ", ".join(f"{svc} {w}%" for svc, w in sorted(carried.items()))
            problems.append(
                f"clusters: {name!r} was removed but the last deployment still sends it traffic ({shares}); "
                f"drain it first: set its weight to 0 in traffic.weights (and every traffic.services[].weights), "
                f"`pulumi up`, then remove it from clusters")
    return problems
