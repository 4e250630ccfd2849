"""What phase a (add) may change, checked on the offline engine's preview of the edit.

Adding the successor must create only its own resources and, in the clusters already running,
change only what lets them reach it: the control planes' and east-west gateways' allow-lists (its
NAT address), the remote secrets that link it, routing that names it at weight 0
(DestinationRule subsets, VirtualService routes, and with the edge its backend and URL-map route),
and the dashboard and alert policies that list every cluster.
Anything else - a replaced peer, a moved weight, a deleted resource - stops the phase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.names import (
    ALERT_POLICY,
    DASHBOARD,
    DESTINATION_RULE,
    GKE_CLUSTER,
    HELM_RELEASE,
    URL_MAP,
    VIRTUAL_SERVICE,
)
from offline.engine import Program, changed_resources
from offline.graph import owners

BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
# (type, changed top-level input) a peer may see when a cluster joins.
ALLOWED_CHANGES = {
    (GKE_CLUSTER, "masterAuthorizedNetworksConfig"): "control plane admits the successor's NAT address",
    (HELM_RELEASE, "values"): "east-west gateway admits the successor's NAT address",
    (DESTINATION_RULE, "spec"): "a subset for the successor",
    (VIRTUAL_SERVICE, "spec"): "a route to the successor at weight 0",
    (BACKEND_SERVICE, "backends"): "the edge's failover capacity",
    (URL_MAP, "defaultRouteAction"): "the edge's route to the successor at weight 0",
    (URL_MAP, "pathMatchers"): "the edge's route to the successor at weight 0",
    # Observability only (components/alerts.py, components/dashboard.py): they list every cluster.
    (ALERT_POLICY, "conditions"): "the alert policy watches the successor too",
    (DASHBOARD, "dashboardJson"): "the dashboard shows the successor too",
}
# Inside a changed Helm release, only this value may differ.
EASTWEST_ALLOWED_VALUE = ("service", "loadBalancerSourceRanges")


@dataclass(frozen=True)
class AddPreview:
    added: tuple[str, ...]  # names of resources created
    changed: tuple[tuple[str, str], ...]  # (name, why it may change)
    problems: tuple[str, ...]


def _changed_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _belongs_to(name: str, new: str, network: str) -> bool:
    """A resource named after the successor or its network (its NEG suffix, remote secrets, firewall)."""
    parts = name.replace(".", "-").split("-")
    return new in parts or network in parts or name.startswith((f"{new}-", f"{new}.", f"{network}-"))


def check_add(before: Program, after: Program, new: str, network: str) -> AddPreview:
    diff = changed_resources(before, after)
    owner = owners(after)
    problems: list[str] = []
    added = []
    for urn in diff.added:
        r = after.by_urn[urn]
        added.append(r.name)
        if owner.get(urn) != new and not _belongs_to(r.name, new, network):
            problems.append(f"{r.type} {r.name} would be created but does not belong to {new}")
    for urn in diff.removed:
        r = before.by_urn[urn]
        problems.append(f"{r.type} {r.name} would be deleted: adding {new} must delete nothing")
    changed = []
    for urn in diff.changed:
        a, b = before.by_urn[urn], after.by_urn[urn]
        keys = _changed_keys(a.inputs, b.inputs)
        reasons = [ALLOWED_CHANGES.get((b.type, k)) for k in keys]
        if b.type == HELM_RELEASE and keys == ["values"]:
            service = lambda r: {k: v for k, v in ((r.inputs["values"] or {}).get("service") or {}).items()  # noqa: E731
                                 if k != EASTWEST_ALLOWED_VALUE[1]}
            rest = lambda r: {k: v for k, v in (r.inputs["values"] or {}).items() if k != "service"}  # noqa: E731
            if service(a) != service(b) or rest(a) != rest(b):
                reasons = [None]
        if None in reasons:
            problems.append(f"{b.type} {b.name} would change {', '.join(keys)}: adding {new} may change only "
                            "peers' allow-lists, remote secrets and routing at weight 0")
        else:
            changed.append((b.name, "; ".join(dict.fromkeys(r for r in reasons if r))))
    # Routing may name the successor, but every service's split must stay as it was, the successor at 0.
    split_a, split_b = before.exports.get("trafficSplit") or {}, after.exports.get("trafficSplit") or {}
    for service, weights in split_b.items():
        rest = {k: v for k, v in weights.items() if k != new}
        if weights.get(new, 0) != 0 or rest != split_a.get(service):
            problems.append(f"{service}: the split would change from {split_a.get(service)} to {dict(weights)}; "
                            f"adding {new} moves no traffic (the flip does)")
    return AddPreview(tuple(sorted(added)), tuple(sorted(changed)), tuple(problems))
