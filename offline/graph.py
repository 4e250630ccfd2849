"""Graph questions over what the program declared: chains, cluster ownership, cross-cluster waits, diffs.

Pure functions over `offline.engine.Program`. The edges are exactly the engine's
ordering as `Program.waits_for` defines it (built from `Program.direct_waits`, a
component standing for all of its descendants), so a chain found here is one the
engine would have to wait through.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from components.names import CERTIFICATE_AUTHORITY_TYPE as CERTIFICATE_AUTHORITY
from components.names import GKE_CLUSTER, HELM_RELEASE, ROUTER_NAT, component_cluster
from components.names import MESH_LINK_TYPE as MESH_LINK
from components.names import MESH_NETWORK_TYPE as MESH_NETWORK
from offline.engine import Program, Resource

CA_PARTS = ("key", "csr", "cert")
# The two places a cluster may wait for another before the mesh link: its control plane's
# allow-list and its east-west gateway's loadBalancerSourceRanges, both fed the peers' NAT addresses.
ALLOWED_PEER_INPUTS = {(GKE_CLUSTER, "masterAuthorizedNetworksConfig"), (HELM_RELEASE, "values")}

def wait_edges(program: Program) -> dict[str, set[str]]:
    """URN -> URNs it waits for directly; a component waits for its own waits and all its descendants.

    Walking these edges from a resource visits exactly what `Program.waits_for` visits.
    """
    edges: dict[str, set[str]] = {}
    for r in program.resources:
        waits = {u for u in program.direct_waits(r) if u in program.by_urn}
        if not r.custom:
            waits.update(d.urn for d in program.descendants(r))
        waits.discard(r.urn)
        edges[r.urn] = waits
    return edges


def creation_order(program: Program, edges: Mapping[str, set[str]]) -> list[str]:
    """URNs so that everything a resource waits for comes before it; a cycle is an error."""
    try:
        return list(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as error:
        names = [program.by_urn[u].name for u in error.args[1] if u in program.by_urn]
        raise ValueError(f"the resource graph has a cycle: {' -> '.join(names)}") from None


@dataclass(frozen=True)
class Chain:
    """The longest chain of waits: resources in creation order and their summed weight."""

    weight: float
    resources: tuple[Resource, ...]

    @property
    def count(self) -> int:
        """Resources on the chain that the engine creates (components excluded)."""
        return sum(1 for r in self.resources if r.custom)


def longest_chain(program: Program, weight: Callable[[Resource], float],
                  keep: Callable[[Resource], bool] | None = None) -> Chain:
    """The heaviest chain of waits among the kept resources (all by default).

    Dropping resources also drops the edges into them: "ignore the other cluster".
    """
    edges = wait_edges(program)
    kept = {u for u in edges if keep is None or keep(program.by_urn[u])}
    sub = {u: {d for d in edges[u] if d in kept} for u in kept}
    finish: dict[str, float] = {}
    previous: dict[str, str | None] = {}
    for urn in creation_order(program, sub):
        before = max(sub[urn], key=lambda d: (finish[d], d), default=None)
        finish[urn] = weight(program.by_urn[urn]) + (finish[before] if before else 0.0)
        previous[urn] = before
    if not finish:
        return Chain(0.0, ())
    last: str | None = max(finish, key=lambda u: (finish[u], u))
    total = finish[last]
    path: list[Resource] = []
    while last is not None:
        path.append(program.by_urn[last])
        last = previous[last]
    return Chain(total, tuple(reversed(path)))


def resource_count(r: Resource) -> float:
    """Weight for "depth by count": every resource the engine creates counts 1."""
    return 1.0 if r.custom else 0.0


def cluster_networks(program: Program) -> dict[str, str]:
    """Cluster name -> network name, from the program's `clusters` output."""
    return {name: c["network"] for name, c in program.exports["clusters"].items()}


def owners(program: Program, networks: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """URN -> the cluster a resource belongs to, or None for what the mesh shares (root CA, link).

    A Kubernetes object belongs to its provider's cluster; a cloud resource to the cluster of
    the component it sits in (MeshNetwork by network, every per-cluster component by the name
    `components.names.cluster_component` gave it); a CA resource
    `<ca>.<cluster>-key|csr|cert` to that cluster
    (the root's `<ca>-root-…` to none: every cluster shares it).
    """
    networks = cluster_networks(program) if networks is None else networks
    by_network = {net: name for name, net in networks.items()}
    names = set(networks)

    def component_owner(r: Resource) -> str | None:
        for node in (r, *program.ancestors(r)):
            if node.type == MESH_NETWORK and node.name in by_network:
                return by_network[node.name]
            cluster = component_cluster(node.type, node.name, names)
            if cluster is not None:
                return cluster
        parent = program.by_urn.get(r.parent)
        prefix = f"{parent.name}." if parent is not None else ""
        if parent is not None and parent.type == CERTIFICATE_AUTHORITY and r.name.startswith(prefix):
            cluster, _, part = r.name.removeprefix(prefix).rpartition("-")
            if part in CA_PARTS and cluster in names:
                return cluster
        return None

    out: dict[str, str | None] = {}
    for r in program.resources:
        provider = program.by_urn.get(r.provider_urn)
        out[r.urn] = component_owner(provider) if provider is not None else component_owner(r)
    return out


def in_mesh_link(program: Program, r: Resource) -> bool:
    return any(a.type == MESH_LINK for a in (r, *program.ancestors(r)))


def nat_addresses(program: Program) -> set[str]:
    """URNs of the addresses a Cloud NAT egresses on (what peers may allow-list)."""
    return {u for nat in program.of_type(ROUTER_NAT) for u in nat.property_dependencies.get("natIps", [])}


@dataclass(frozen=True)
class CrossWait:
    """A resource of one cluster waiting directly for a resource of another cluster."""

    waiter: Resource
    waiter_cluster: str
    via: str  # the input (property) carrying the dependency, or "dependsOn" / "provider" / "parent component"
    target: Resource
    target_cluster: str
    allowed: bool


def _via(program: Program, r: Resource, target: str) -> str:
    for prop, deps in r.property_dependencies.items():
        if target in deps:
            return prop
    if target == r.provider_urn:
        return "provider"
    if target in r.dependencies:
        return "dependsOn"
    return "component"


def cross_cluster_waits(program: Program, owner: Mapping[str, str | None] | None = None) -> list[CrossWait]:
    """Every direct wait of one cluster's resource on another's, outside the mesh link.

    Allowed: a GKE control plane's allow-list and an east-west gateway's
    loadBalancerSourceRanges waiting for a peer's NAT egress address.
    """
    owner = owners(program) if owner is None else owner
    nat = nat_addresses(program)
    out: list[CrossWait] = []
    for r in program.resources:
        mine = owner[r.urn]
        if mine is None or in_mesh_link(program, r):
            continue
        for urn in sorted(program.direct_waits(r)):
            node = program.by_urn.get(urn)
            if node is None:
                continue
            targets = [node] if node.custom else [node, *program.descendants(node)]
            via = _via(program, r, urn)
            for t in targets:
                theirs = owner[t.urn]
                if theirs is None or theirs == mine:
                    continue
                allowed = t.urn in nat and (r.type, via) in ALLOWED_PEER_INPUTS and (
                    r.type != HELM_RELEASE or r.inputs.get("chart") == "gateway")
                out.append(CrossWait(r, mine, via, t, theirs, allowed))
    return out


def foreign_reach(program: Program, owner: Mapping[str, str | None] | None = None) -> dict[str, set[str]]:
    """URN -> URNs of *other* clusters' resources it waits for, transitively (mesh link excluded)."""
    owner = owners(program) if owner is None else owner
    edges = wait_edges(program)
    closure: dict[str, set[str]] = {}
    for urn in creation_order(program, edges):
        reach: set[str] = set()
        for d in edges[urn]:
            reach.add(d)
            reach |= closure[d]
        closure[urn] = reach
    out: dict[str, set[str]] = {}
    for r in program.resources:
        mine = owner[r.urn]
        if mine is None or in_mesh_link(program, r):
            continue
        out[r.urn] = {u for u in closure[r.urn] if owner[u] not in (None, mine)}
    return out


def serialising_hops(program: Program, chain: Chain, owner: Mapping[str, str | None]) -> list[CrossWait]:
    """Where a chain crosses from one cluster into another: the waits that serialise clusters."""
    hops: list[CrossWait] = []
    for before, after in zip(chain.resources, chain.resources[1:], strict=False):
        a, b = owner[before.urn], owner[after.urn]
        if a is not None and b is not None and a != b:
            hops.append(CrossWait(after, b, _via(program, after, before.urn), before, a, False))
    return hops


# ------------------------------------------------------------------ operations: what a deploy waits through

CREATE, UPDATE, DELETE, SAME = "create", "update", "delete", "same"
StepWeight = Callable[[Resource, str], float]


def steps(before: Program | None, after: Program | None) -> dict[str, str]:
    """URN -> the step `pulumi up` takes for it going from `before` to `after` (None: an empty stack).

    A changed input is counted as an update: offline there is no provider to say which
    changes replace (a replace would be a create plus a delete).
    """
    a = {r.urn: r.inputs for r in before.resources} if before is not None else {}
    b = {r.urn: r.inputs for r in after.resources} if after is not None else {}
    out = {u: (SAME if u in a and a[u] == inputs else UPDATE if u in a else CREATE) for u, inputs in b.items()}
    out.update({u: DELETE for u in a if u not in b})
    return out


@dataclass(frozen=True)
class OperationChain:
    """The longest wait of one operation: the registrations' chain, then the deletions' chain.

    The engine deletes what the new program no longer declares only after every other step
    is done, in reverse dependency order; so an operation's time is the two chains in turn.
    """

    forward: Chain
    deletes: Chain

    @property
    def weight(self) -> float:
        return self.forward.weight + self.deletes.weight

    @property
    def resources(self) -> tuple[Resource, ...]:
        return self.forward.resources + self.deletes.resources


def skipped_on_delete(r: Resource, deleted: set[str]) -> bool:
    """True when the engine deletes `r` with no call: it is `deletedWith` a resource that goes too."""
    return bool(r.deleted_with) and r.deleted_with in deleted


def operation_chain(before: Program | None, after: Program | None, weight: StepWeight) -> OperationChain:
    """The critical path of going from `before` to `after`, each step weighed by `weight(resource, step)`.

    Unchanged resources weigh nothing but still carry the ordering (a step waits for the
    steps of what it depends on). Deletions follow the old program's edges reversed: a
    resource goes only after everything that waited for it has gone.
    """
    kind = steps(before, after)
    forward = Chain(0.0, ())
    if after is not None:
        chain = longest_chain(after, lambda r: weight(r, kind[r.urn]) if kind[r.urn] != SAME else 0.0)
        # Unchanged resources only carry the order; the chain lists the steps taken.
        forward = Chain(chain.weight, tuple(r for r in chain.resources if kind[r.urn] != SAME))
    deletes = Chain(0.0, ())
    gone = {u for u, k in kind.items() if k == DELETE}
    if before is not None and gone:
        deletes = _delete_chain(before, gone, weight)
    return OperationChain(forward, deletes)


def _delete_chain(program: Program, gone: set[str], weight: StepWeight) -> Chain:
    edges = wait_edges(program)
    dependants: dict[str, set[str]] = {u: set() for u in gone}
    for urn, waits in edges.items():
        if urn in gone:
            for d in waits & gone:
                dependants[d].add(urn)
    finish: dict[str, float] = {}
    previous: dict[str, str | None] = {}
    for urn in creation_order(program, dependants):
        r = program.by_urn[urn]
        took = 0.0 if skipped_on_delete(r, gone) else weight(r, DELETE)
        before = max(dependants[urn], key=lambda d: (finish[d], d), default=None)
        finish[urn] = took + (finish[before] if before else 0.0)
        previous[urn] = before
    last: str | None = max(finish, key=lambda u: (finish[u], u))
    total = finish[last]
    path: list[Resource] = []
    while last is not None:
        path.append(program.by_urn[last])
        last = previous[last]
    return Chain(total, tuple(reversed(path)))


@dataclass(frozen=True)
class BlastRadius:
    """How many resources an operation touches, by step and type: what `pulumi preview` would list."""

    counts: Mapping[tuple[str, str], int]  # (step, type) -> resources

    def of(self, step: str, type_: str | None = None) -> int:
        return sum(n for (s, t), n in self.counts.items() if s == step and (type_ is None or t == type_))

    @property
    def touched(self) -> int:
        return sum(n for (s, _), n in self.counts.items() if s != SAME)


def blast_radius(before: Program | None, after: Program | None) -> BlastRadius:
    kind = steps(before, after)
    both = {**(before.by_urn if before else {}), **(after.by_urn if after else {})}
    counts: dict[tuple[str, str], int] = {}
    for urn, step in kind.items():
        if both[urn].custom:
            key = (step, both[urn].type)
            counts[key] = counts.get(key, 0) + 1
    return BlastRadius(counts)


# ------------------------------------------------------------------ waits inside one step

PODS_READY, LOAD_BALANCER = "pods", "loadbalancer"


def concurrent_waits(r: Resource) -> tuple[str, ...]:
    """What a Helm release's step waits for at once (Helm's --wait watches all of them together).

    Every Istio chart but `base` runs a Deployment; a release whose Service is of type
    LoadBalancer also waits for the cloud to assign its address. The step takes as long as
    the slowest of these, not their sum.
    """
    if r.type != HELM_RELEASE:
        return ()
    values = r.inputs.get("values") or {}
    waits = () if r.inputs.get("chart") == "base" else (PODS_READY,)
    if isinstance(values, dict) and (values.get("service") or {}).get("type") == "LoadBalancer":
        waits += (LOAD_BALANCER,)
    return waits
