"""Where the global external Application Load Balancer sends a request, as Google documents it.

The offline stand-in for the load balancer, fed the URL map and backend services the
program declared. Sources (docs/edge.md has the quotes):

- WeightedBackendService: a backend service is picked by weight alone; health is looked
  at only inside the chosen service.
- Backend.preference: PREFERRED backends are filled first; DEFAULT backends get traffic
  only when the preferred ones have no capacity left.
- Capacity: `capacityScaler` times the endpoints' rate; a NEG with no endpoints (the NEG
  controller removes unready pods) has none, and a scaler of 0 means "completely drained".
- Auto-capacity drain (serviceLbPolicy): a NEG with fewer than 25% of its endpoints
  passing health checks is set to capacity 0, as long as such NEGs are under 50% of the
  backend service's NEGs. Here a NEG is all healthy or all failing, and over the cap none
  is drained (the documented floor; Google may drain some).

A request that lands on a failing NEG (or finds no capacity anywhere) is lost: the client
gets a 5xx.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

READY, UNREADY, FAILING = "ready", "unready", "failing"
DRAIN_CAP = 0.5
LOST = "lost"


@dataclass(frozen=True)
class Backend:
    owner: str  # the cluster whose ingress pods the NEG holds
    preference: str
    capacity_scaler: float


def serve(backends: Sequence[Backend], state: Mapping[str, str], drain: bool) -> dict[str, float]:
    """One backend service's traffic (1.0) by cluster that serves it, or LOST."""
    failing = [b for b in backends if state[b.owner] == FAILING]
    drained = drain and len(failing) / len(backends) < DRAIN_CAP

    def capacity(b: Backend) -> float:
        if state[b.owner] == UNREADY or (drained and state[b.owner] == FAILING):
            return 0.0
        return b.capacity_scaler

    for tier in ("PREFERRED", "DEFAULT"):
        usable = [b for b in backends if b.preference == tier and capacity(b) > 0]
        if usable:
            total = sum(capacity(b) for b in usable)
            out: dict[str, float] = {}
            for b in usable:
                who = LOST if state[b.owner] == FAILING else b.owner
                out[who] = out.get(who, 0.0) + capacity(b) / total
            return out
    return {LOST: 1.0}


def shares(route: Sequence[tuple[Sequence[Backend], int]], state: Mapping[str, str],
           drain: bool = True) -> dict[str, float]:
    """A route action's traffic in percent by the cluster that serves it (or LOST)."""
    total = sum(w for _, w in route)
    out: dict[str, float] = {}
    for backends, weight in route:
        if weight == 0:
            continue
        for who, part in serve(backends, state, drain).items():
            out[who] = out.get(who, 0.0) + 100.0 * weight / total * part
    return out


def backends_of(inputs: Mapping[str, Any], owner_of_group: Mapping[str, str]) -> list[Backend]:
    """A declared BackendService's backends (engine inputs), NEG self-links mapped to clusters."""
    return [Backend(owner_of_group[b["group"]], b.get("preference", "DEFAULT"), float(b.get("capacityScaler", 1.0)))
            for b in inputs["backends"]]
