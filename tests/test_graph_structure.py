"""Structure of the deploy graph: clusters build in parallel, a flip touches only routes, depth is flat in N.

These are the structural facts behind `python -m bench`'s timings, checked as
properties of what the program declares (no timings here). The checkers are also
run against small hand-built graphs, to show they catch what they look for.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
from collections.abc import Sequence

import pytest

from components import config as stack_config
from components.names import ALERT_POLICY, DASHBOARD
from offline import Program, Resource, changed_resources, configs, run_program
from offline.graph import (
    CREATE,
    DELETE,
    GKE_CLUSTER,
    HELM_RELEASE,
    LOAD_BALANCER,
    PODS_READY,
    SAME,
    UPDATE,
    Chain,
    blast_radius,
    concurrent_waits,
    creation_order,
    cross_cluster_waits,
    foreign_reach,
    longest_chain,
    nat_addresses,
    operation_chain,
    owners,
    resource_count,
    serialising_hops,
    skipped_on_delete,
    steps,
    wait_edges,
)

VS = "kubernetes:networking.istio.io/v1:VirtualService"


def _weight(r: Resource) -> float:
    """A stand-in weight (not a time): long for the cloud's slow resources, so chains have a shape."""
    if not r.custom:
        return 0.0
    return {GKE_CLUSTER: 100.0, "gcp:container/nodePool:NodePool": 30.0, HELM_RELEASE: 10.0}.get(r.type, 1.0)


@pytest.fixture(scope="module")
def three() -> Program:
    """Three clusters, two routed services (ECDSA CA: the CA is not what is tested here)."""
    return run_program(configs.n_clusters(3, services=2))


# ------------------------------------------------------------------ the real program


def test_bench_edges_are_the_engines_ordering(base_stack: Program) -> None:
    """The chains the bench measures follow exactly the waits `Program.waits_for` defines."""
    edges = wait_edges(base_stack)
    reach: dict[str, set[str]] = {}
    for urn in creation_order(base_stack, edges):
        reach[urn] = set(edges[urn]).union(*(reach[d] for d in edges[urn]))
    for a, b in itertools.product([r for r in base_stack.resources if r.custom], base_stack.resources):
        assert (b.urn in reach[a.urn]) == base_stack.waits_for(a, b), (a.name, b.name)


@pytest.mark.parametrize("stack", ["base_stack", "three"])
def test_clusters_wait_for_each_other_only_through_nat_allow_lists(stack: str, request) -> None:
    """Before the mesh link, a cluster waits for a peer only to allow-list the peer's NAT address.

    Two inputs carry those addresses: the control plane's master authorized networks
    and the east-west gateway's loadBalancerSourceRanges. A reserved address waits for
    nothing, so neither pulls a peer's VPC, cluster or Istio into this cluster's chain.
    """
    program: Program = request.getfixturevalue(stack)
    n = len(program.exports["clusters"])
    waits = cross_cluster_waits(program)
    assert [w for w in waits if not w.allowed] == []
    by_kind = sorted((w.waiter.type, w.via) for w in waits)
    assert by_kind == sorted([(GKE_CLUSTER, "masterAuthorizedNetworksConfig"), (HELM_RELEASE, "values")]
                             * n * (n - 1))
    nat = nat_addresses(program)
    for urn, foreign in foreign_reach(program).items():
        assert foreign <= nat, (program.by_urn[urn].name, [program.by_urn[u].name for u in foreign - nat])


def test_east_west_gateway_admits_exactly_the_peer_nat_addresses(three: Program) -> None:
    """Why the gateway's wait on peers is allowed: its values hold only the peers' NAT /32s."""
    owner = owners(three)
    nat_ip = {owner[u]: three.by_urn[u].outputs["address"] for u in nat_addresses(three)}
    gateways = [r for r in three.of_type(HELM_RELEASE) if r.inputs["chart"] == "gateway"]
    assert len(gateways) == 3
    for gw in gateways:
        mine = owner[gw.urn]
        ranges = gw.inputs["values"]["service"]["loadBalancerSourceRanges"]
        assert sorted(ranges) == sorted(f"{ip}/32" for c, ip in nat_ip.items() if c != mine), mine


def test_flip_changes_exactly_the_virtual_services_of_three_clusters(three: Program) -> None:
    config = configs.n_clusters(3, services=2)
    after = run_program(configs.flipped(config))
    diff = changed_resources(three, after)
    assert diff.added == () and diff.removed == ()
    # The dashboard draws the configured weights beside the observed share (components/dashboard.py).
    assert {after.by_urn[u].type for u in diff.changed} == {VS, DASHBOARD}
    assert len(diff.changed) == 3 * 2 + 1
    assert {u for u in diff.changed} == {r.urn for r in after.of_type(VS) + after.of_type(DASHBOARD)}
    for u in (u for u in diff.changed if after.by_urn[u].type == VS):
        (http,) = after.by_urn[u].inputs["spec"]["http"]
        assert {r["destination"]["subset"]: r["weight"] for r in http["route"]} == {
            "blue": 10, "green": 90, "teal": 0}


def test_flip_with_the_edge_changes_exactly_the_mesh_routes_and_the_url_map() -> None:
    """The blast radius of one weights edit, both paths: sidecars' VirtualServices and the LB's URL map.

    The split moves between weights above 0, so no cluster joins or leaves the edge's failover
    (tests/test_edge.py covers a weight reaching 0)."""
    config = configs.with_edge(configs.n_clusters(3, services=2))
    config["traffic"]["weights"] = dict(zip([c["name"] for c in config["clusters"]], (60, 30, 10), strict=True))
    flipped = copy.deepcopy(config)
    flipped["traffic"]["weights"] = dict(zip([c["name"] for c in config["clusters"]], (10, 30, 60), strict=True))
    before, after = run_program(config), run_program(flipped)
    diff = changed_resources(before, after)
    assert diff.added == () and diff.removed == ()
    mesh_routes = {r.urn for r in after.of_type(VS) if not r.inputs["spec"].get("gateways")}
    url_maps = {r.urn for r in after.of_type("gcp:compute/uRLMap:URLMap")}
    dashboards = {r.urn for r in after.of_type(DASHBOARD)}  # it draws the configured weights
    assert set(diff.changed) == mesh_routes | url_maps | dashboards and len(mesh_routes) == 3 * 2
    assert len(url_maps) == len(dashboards) == 1


def test_graph_depth_does_not_grow_with_the_cluster_count() -> None:
    two, four = (run_program(configs.n_clusters(n)) for n in (2, 4))
    assert longest_chain(two, resource_count).count == longest_chain(four, resource_count).count
    assert longest_chain(two, _weight).weight == longest_chain(four, _weight).weight
    assert len(four.resources) > len(two.resources)


def test_the_east_west_release_waits_for_pods_and_its_load_balancer_at_once(three: Program) -> None:
    """Helm's wait watches the Deployment and the LoadBalancer Service together: one step, two waits."""
    waits = {r.inputs["chart"]: concurrent_waits(r) for r in three.of_type(HELM_RELEASE) if r.name.startswith("teal")}
    assert waits == {"base": (), "istiod": (PODS_READY,), "gateway": (PODS_READY, LOAD_BALANCER)}


def test_generated_configs_validate_with_disjoint_address_plans() -> None:
    raw = configs.n_clusters(configs.MAX_CLUSTERS)
    parsed = stack_config.parse(raw, project="mesh-test-project")
    assert len({c.region for c in parsed.clusters}) == configs.MAX_CLUSTERS
    nets = [ipaddress.ip_network(getattr(c, f)) for c in parsed.clusters
            for f in ("node_cidr", "pod_cidr", "service_cidr", "master_cidr")]
    assert not any(a.overlaps(b) for a, b in itertools.combinations(nets, 2))
    with pytest.raises(ValueError, match="at least 2 clusters"):
        configs.n_clusters(1)


# ------------------------------------------------------------------ the checkers on hand-built graphs


def _res(type_: str, name: str, *, parent: Resource | None = None, depends_on: Sequence[Resource] = (),
         props: dict[str, list[Resource]] | None = None, provider: Resource | None = None,
         custom: bool = True, inputs: dict | None = None) -> Resource:
    props = props or {}
    deps = [d.urn for d in depends_on] + [d.urn for ds in props.values() for d in ds]
    return Resource(
        urn=f"urn:pulumi:test::mesh::{type_}::{name}", type=type_, name=name, custom=custom,
        inputs=inputs or {}, secret_inputs=set(), parent=parent.urn if parent else "",
        dependencies=deps, property_dependencies={k: [d.urn for d in v] for k, v in props.items()},
        provider=f"urn:pulumi:test::mesh::pulumi:providers:kubernetes::{provider.name}::id" if provider else "",
        protect=False, deleted_with="",
    )


def synthetic_mesh(*, pool_waits_for_peer_gateway: bool = False, pool_waits_on_peer_nat: bool = False) -> Program:
    """Two clusters shaped like the program's, optionally with one wrong cross-cluster wait in blue."""
    networks = {"blue": "net1", "green": "net2"}
    out: list[Resource] = []
    nat_address = {}
    for name, net in networks.items():
        component = _res("gke-istio-mesh:index:MeshNetwork", net, custom=False)
        vpc = _res("gcp:compute/network:Network", f"{net}-vpc", parent=component)
        address = _res("gcp:compute/address:Address", f"{net}-egress", parent=component)
        nat = _res("gcp:compute/routerNat:RouterNat", f"{net}-nat", parent=component, props={"natIps": [address]})
        out += [component, vpc, address, nat]
        nat_address[name] = address
    gateways = {}
    for name in networks:
        peer = "green" if name == "blue" else "blue"
        vpc = next(r for r in out if r.name == f"{networks[name]}-vpc")
        component = _res("gke-istio-mesh:index:GkeCluster", name, custom=False)
        cluster = _res(GKE_CLUSTER, name, parent=component,
                       props={"network": [vpc], "masterAuthorizedNetworksConfig": [nat_address[peer]]})
        pool = _res("gcp:container/nodePool:NodePool", f"{name}-pool", parent=component,
                    props={"cluster": [cluster]})
        provider = _res("pulumi:providers:kubernetes", f"{name}-k8s", parent=component, depends_on=[pool],
                        props={"kubeconfig": [cluster]})
        primary = _res("gke-istio-mesh:index:IstioPrimary", name, custom=False)
        istiod = _res(HELM_RELEASE, f"{name}-istiod", parent=primary, provider=provider,
                      inputs={"chart": "istiod"})
        gateway = _res(HELM_RELEASE, f"{name}-eastwestgateway", parent=primary, provider=provider,
                       depends_on=[istiod], props={"values": [nat_address[peer]]},
                       inputs={"chart": "gateway", "values": {"service": {"type": "LoadBalancer"}}})
        out += [component, cluster, pool, provider, primary, istiod, gateway]
        gateways[name] = gateway
    blue_pool = next(r for r in out if r.name == "blue-pool")
    if pool_waits_for_peer_gateway:
        blue_pool.dependencies.append(gateways["green"].urn)
    if pool_waits_on_peer_nat:
        blue_pool.property_dependencies["nodeConfig"] = [nat_address["green"].urn]
        blue_pool.dependencies.append(nat_address["green"].urn)
    return Program(out, {"clusters": {n: {"network": net} for n, net in networks.items()}}, set())


def _one_cluster(program: Program, name: str) -> Chain:
    owner = owners(program)
    return longest_chain(program, _weight, keep=lambda r: owner[r.urn] in (None, name))


def test_checker_accepts_the_clean_synthetic_mesh() -> None:
    program = synthetic_mesh()
    assert all(w.allowed for w in cross_cluster_waits(program))
    assert len(cross_cluster_waits(program)) == 4
    assert longest_chain(program, _weight).weight == _one_cluster(program, "blue").weight


def test_checker_catches_an_added_cross_cluster_dependency() -> None:
    program = synthetic_mesh(pool_waits_for_peer_gateway=True)
    (bad,) = [w for w in cross_cluster_waits(program) if not w.allowed]
    assert (bad.waiter.name, bad.via, bad.target.name) == ("blue-pool", "dependsOn", "green-eastwestgateway")
    assert (bad.waiter_cluster, bad.target_cluster) == ("blue", "green")
    # The wait serialises the clusters: the mesh's chain is now far longer than one cluster's ...
    chain = longest_chain(program, _weight)
    assert chain.weight > 1.05 * _one_cluster(program, "green").weight
    # ... and the bench names the hop that does it.
    (hop,) = serialising_hops(program, chain, owners(program))
    assert (hop.waiter.name, hop.target.name) == ("blue-pool", "green-eastwestgateway")


def test_checker_rejects_a_peer_nat_address_taken_through_another_input() -> None:
    program = synthetic_mesh(pool_waits_on_peer_nat=True)
    (bad,) = [w for w in cross_cluster_waits(program) if not w.allowed]
    assert (bad.waiter.name, bad.via, bad.target.name) == ("blue-pool", "nodeConfig", "net2-egress")


def test_changed_resources_reports_additions_removals_and_input_changes() -> None:
    before = synthetic_mesh()
    after = synthetic_mesh()
    istiod = next(r for r in after.resources if r.name == "green-istiod")
    istiod.inputs = {"chart": "istiod", "version": "1.31.0"}
    extra = _res("kubernetes:core/v1:Namespace", "blue-ns-shop")
    gone = next(r for r in after.resources if r.name == "net1-nat")
    after = Program([r for r in after.resources if r is not gone] + [extra], after.exports, set())
    diff = changed_resources(before, after)
    assert diff.changed == (istiod.urn,)
    assert diff.added == (extra.urn,)
    assert diff.removed == (gone.urn,)


def test_a_cycle_is_reported_by_name() -> None:
    program = synthetic_mesh()
    vpc = next(r for r in program.resources if r.name == "net1-vpc")
    vpc.dependencies.append(next(r for r in program.resources if r.name == "blue-pool").urn)
    with pytest.raises(ValueError, match=r"cycle: .*net1-vpc"):
        longest_chain(program, _weight)


def test_each_intermediate_belongs_to_its_cluster_and_the_root_to_none(base_stack: Program) -> None:
    owner = owners(base_stack)
    ca = [r for r in base_stack.resources if r.type.startswith("tls:index/")]
    by_owner = {(r.name, owner[r.urn]) for r in ca}
    assert by_owner == {("mesh-ca-root-key", None), ("mesh-ca-root-cert", None)} | {
        (f"mesh-ca.{c}-{part}", c) for c in ("blue", "green") for part in ("key", "csr", "cert")}


# ------------------------------------------------------------------ operations other than a first create


@pytest.fixture(scope="module")
def two() -> Program:
    """The same mesh as `three` without its third cluster (teal)."""
    return run_program(configs.n_clusters(2, services=2))


def _updated_fields(before: Program, after: Program, urn: str) -> set[str]:
    a, b = before.by_urn[urn].inputs, after.by_urn[urn].inputs
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


@pytest.mark.parametrize("direction", ["add", "remove"])
def test_adding_or_removing_a_cluster_changes_each_other_cluster_in_four_places(
        two: Program, three: Program, direction: str) -> None:
    """Per remaining cluster: its control plane's allow-list (a GKE update), its east-west gateway's
    source ranges, and one DestinationRule and VirtualService per routed service; nothing else of theirs."""
    before, after = (two, three) if direction == "add" else (three, two)
    radius = blast_radius(before, after)
    kind = steps(before, after)
    owner = owners(three)
    # The mesh-wide dashboard and the alert policies that name clusters follow the cluster list.
    observing = {r.urn for r in after.of_type(DASHBOARD) + after.of_type(ALERT_POLICY)}
    watching = {u for u in observing if kind.get(u) == UPDATE}
    assert {after.by_urn[u].type for u in watching} == {DASHBOARD, ALERT_POLICY}
    assert all(kind[u] in (UPDATE, SAME) for u in observing)
    updated = [u for u, k in kind.items() if k == UPDATE and u not in watching]
    assert radius.of(UPDATE, GKE_CLUSTER) == 2 and radius.of(UPDATE, HELM_RELEASE) == 2
    assert radius.of(UPDATE, VS) == 2 * 2
    assert radius.of(UPDATE, "kubernetes:networking.istio.io/v1:DestinationRule") == 2 * 2
    assert radius.of(UPDATE) - len(watching) == len(updated) == 2 + 2 + 4 + 4
    assert {owner[u] for u in updated} == {"blue", "green"}
    for u in updated:
        fields = _updated_fields(before, after, u)
        r = after.by_urn[u]
        if r.type == GKE_CLUSTER:
            assert fields == {"masterAuthorizedNetworksConfig"}
        elif r.type == HELM_RELEASE:
            assert r.inputs["chart"] == "gateway" and fields == {"values"}
    # What is created (or deleted) is teal's own, plus the remote secrets that link it both ways.
    created = [u for u, k in kind.items() if k == (CREATE if direction == "add" else DELETE)]
    foreign = [three.by_urn[u] for u in created if owner[u] != "teal"]
    assert {r.type for r in foreign} == {"kubernetes:core/v1:Secret"} and len(foreign) == 2
    assert radius.of(DELETE if direction == "add" else CREATE) == 0


def test_a_flip_waits_for_one_virtual_service_update(three: Program) -> None:
    after = run_program(configs.flipped(configs.n_clusters(3, services=2)))
    chain = operation_chain(three, after, lambda r, step: 1.0)
    assert chain.weight == 1.0 and chain.deletes.resources == ()
    # One update: a VirtualService (or the dashboard's weight lines, which nothing waits for either).
    assert [r.type for r in chain.resources if r.custom] in ([VS], [DASHBOARD])


def test_destroy_goes_backwards_and_skips_what_goes_with_its_cluster(base_stack: Program) -> None:
    chain = operation_chain(base_stack, None, lambda r, step: 1.0 if r.custom else 0.0)
    assert chain.forward.resources == ()
    path = [r for r in chain.deletes.resources if r.custom]
    assert len(path) > 3
    # Each resource on the chain is deleted before the next, because it waited for it on create.
    for first, then in itertools.pairwise(path):
        assert base_stack.waits_for(first, then), (first.name, then.name)
    # It ends at something that waited for nothing: a root of the create graph (a VPC, a random id).
    assert not any(base_stack.waits_for(path[-1], r) for r in base_stack.resources if r.custom and r is not path[-1])
    # deletedWith its cluster: no call of its own, so it weighs nothing on the chain.
    gone = {r.urn for r in base_stack.resources}
    skipped = [r for r in base_stack.resources if skipped_on_delete(r, gone)]
    assert skipped and all(r.type.startswith("kubernetes:") for r in skipped)
    assert chain.weight == sum(1 for r in path if not skipped_on_delete(r, gone))


def test_deletions_come_after_every_other_step() -> None:
    """The engine deletes what the program no longer declares only once the rest is done."""
    before = synthetic_mesh()
    after = synthetic_mesh()
    gone = next(r for r in after.resources if r.name == "green-eastwestgateway")
    after = Program([r for r in after.resources if r is not gone], after.exports, set())
    istiod = next(r for r in after.resources if r.name == "blue-istiod")
    istiod.inputs = {"chart": "istiod", "version": "2"}
    chain = operation_chain(before, after, lambda r, step: {"update": 5.0, "delete": 7.0}.get(step, 1.0))
    assert [r.name for r in chain.forward.resources if r.custom] == ["blue-istiod"]
    assert [r.name for r in chain.deletes.resources] == ["green-eastwestgateway"]
    assert chain.weight == 5.0 + 7.0
    assert blast_radius(before, after).touched == 2
