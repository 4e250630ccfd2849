"""Retiring a cluster is two steps: drain it (weight 0 deployed), then remove it from `clusters`.

Why: removing a cluster that still carries weight deletes the subsets, routes and the
cluster itself while clients are sending it their share; every request of that share fails
until the next edit. The stack reads its own last outputs through a StackReference to
itself (`<org>/<project>/<stack>`): the engine's builtin provider answers it from the
stack's last checkpoint (pkg/backend: backendClient.GetStackOutputs reads the stack's
snapshot and its root Stack resource's outputs), in `pulumi preview` as in `pulumi up`, on
Pulumi Cloud and on DIY backends (gs://, file://) alike, since the same backend client
serves both. A brand-new stack has no snapshot: GetRootStackResource returns none and the
outputs are empty, so there is nothing to refuse. Every top-level component waits for the
check (`depends_on` accepts an Output), so a refused removal registers nothing at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

# Stack outputs the check reads (exported by __main__.py).
CLUSTERS_OUTPUT = "clusters"
TRAFFIC_OUTPUT = "trafficSplit"


def self_reference_name() -> str:
    """This stack's fully qualified name, as a StackReference spells it.

    The engine tells the program its organization (Pulumi Cloud: the stack's org; DIY backends:
    `organization`); without one, a bare stack name resolves within the current project.
    """
    org = pulumi.get_organization()
    return f"{org}/{pulumi.get_project()}/{pulumi.get_stack()}" if org else pulumi.get_stack()


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


def retirement_gate(clusters: Sequence[str]) -> pulumi.Output[list[pulumi.Resource]]:
    """An empty dependency list once the check passes; fails the whole program otherwise."""
    last = pulumi.StackReference(self_reference_name()).outputs

    def check(outputs: Mapping[str, Any]) -> list[pulumi.Resource]:
        problems = retirement_problems(outputs or {}, clusters)
        if problems:
            raise pulumi.RunError("refused before any change:\n" + "\n".join(f"  - {p}" for p in problems))
        return []

    return last.apply(check)
