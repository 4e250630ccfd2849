"""The prod stack and `clusters[i].protect`: what keeps production from being deleted by accident.

`protect` must land exactly on the resources whose loss takes a cluster down with it (its VPC,
subnet, GKE cluster and node pool) and nowhere else, so that retiring one blue/green cluster
stays a two-step, deliberate edit. The prod stack file must run under the mocks and carry every
safety property the README promises for it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from offline import Program, ProgramError, Resource, project_config, run_program

NETWORK = "gcp:compute/network:Network"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
CIDR_KEYS = ("nodeCidr", "podCidr", "serviceCidr", "masterCidr")

PROD = project_config("prod")
DEV = project_config("dev")


@pytest.fixture(scope="module")
def prod_stack() -> Program:
    """The prod stack file as `pulumi preview --stack prod` would run it."""
    return run_program(None, stack="prod")


def _guarded(stack: Program, cluster: dict[str, Any]) -> dict[str, Resource]:
    """The four resources `protect` is meant for, found through their components."""
    net = stack.find("gke-istio-mesh:index:MeshNetwork", cluster["network"])
    gke = stack.find("gke-istio-mesh:index:GkeCluster", cluster["name"])
    found = {r.type: r for r in stack.children(net) + stack.children(gke)
             if r.type in (NETWORK, SUBNET, CLUSTER, NODE_POOL)}
    assert set(found) == {NETWORK, SUBNET, CLUSTER, NODE_POOL}
    return found


def _protected(stack: Program) -> set[str]:
    return {r.urn for r in stack.resources if r.protect}


def test_protect_is_off_by_default(run: Callable[..., Program], base_config: dict[str, Any]) -> None:
    for cluster in base_config["clusters"]:
        cluster.pop("protect", None)
    assert _protected(run(base_config)) == set()


def test_dev_stack_protects_nothing(base_stack: Program) -> None:
    assert [c.get("protect") for c in DEV["clusters"]] == [False, False]
    assert _protected(base_stack) == set()


def test_protect_guards_exactly_that_clusters_network_subnet_cluster_and_pool(
        run: Callable[..., Program], base_config: dict[str, Any]) -> None:
    base_config["ca"] = {"algorithm": "ECDSA"}
    base_config["clusters"][0]["protect"] = True
    stack = run(base_config)
    guarded = _guarded(stack, base_config["clusters"][0])
    # ... and the mesh root (key and certificate), which any protected cluster relies on.
    root = {stack.find("tls:index/privateKey:PrivateKey", "mesh-ca-root-key").urn,
            stack.find("tls:index/selfSignedCert:SelfSignedCert", "mesh-ca-root-cert").urn}
    assert _protected(stack) == {r.urn for r in guarded.values()} | root
    # Children keep their component as parent, so URNs (and state) do not move.
    for r in guarded.values():
        assert stack.by_urn[r.parent].type.startswith("gke-istio-mesh:index:")
    other = _guarded(stack, base_config["clusters"][1])
    assert not any(r.protect for r in other.values())


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_protect_must_be_a_bool(run: Callable[..., Program], base_config: dict[str, Any], value: Any) -> None:
    base_config["clusters"][1]["protect"] = value
    with pytest.raises(ProgramError) as failure:
        run(base_config)
    assert f"clusters[1].protect {value!r} must be true or false" in str(failure.value)
    assert failure.value.declared == [], "a bad config must not declare anything"


def test_prod_stack_runs_and_protects_every_clusters_foundations(prod_stack: Program) -> None:
    assert len(PROD["clusters"]) >= 2
    expected = set()
    for cluster in PROD["clusters"]:
        assert cluster["protect"] is True
        expected |= {r.urn for r in _guarded(prod_stack, cluster).values()}
    # A generated root is protected too: an edit that would replace it fails instead.
    expected |= {r.urn for r in prod_stack.resources if r.name in ("mesh-ca-root-key", "mesh-ca-root-cert")}
    assert len(expected) == 4 * len(PROD["clusters"]) + 2
    assert _protected(prod_stack) == expected


def test_prod_clusters_keep_gke_deletion_protection_on_a_stable_channel(prod_stack: Program) -> None:
    clusters = prod_stack.of_type(CLUSTER)
    assert len(clusters) == len(PROD["clusters"])
    for c in clusters:
        assert c.inputs["deletionProtection"] is True
        assert c.inputs["releaseChannel"] == {"channel": "STABLE"}
        # Regional: the location is a region, so the control plane and nodes span its zones.
        assert c.inputs["location"] in {s["region"] for s in PROD["clusters"]}


def test_prod_node_pools_are_larger_than_dev(prod_stack: Program) -> None:
    dev_max = max(c.get("maxNodes", 3) for c in DEV["clusters"])
    for pool in prod_stack.of_type(NODE_POOL):
        scaling = pool.inputs["autoscaling"]
        assert scaling["minNodeCount"] >= 2, "at least two nodes per zone survive a node failure"
        assert scaling["maxNodeCount"] > dev_max
        assert pool.inputs["nodeConfig"]["machineType"] != "e2-standard-4"


def test_prod_control_planes_are_never_open_to_the_internet(prod_stack: Program) -> None:
    configured = {n["cidr"] for n in PROD["authorizedNetworks"]}
    assert configured, "prod needs the deploy runner's egress address"
    for c in prod_stack.of_type(CLUSTER):
        blocks = [b["cidrBlock"] for b in c.inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]]
        assert c.inputs["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] is False
        for cidr in blocks:
            net = ipaddress.ip_network(cidr)
            assert net.prefixlen > 0, cidr
            # Either an operator/runner entry from the stack file or another cluster's NAT (/32).
            assert cidr in configured or net.prefixlen == 32, cidr


def test_prod_cidr_plan_does_not_overlap_dev() -> None:
    dev = [ipaddress.ip_network(c[k]) for c in DEV["clusters"] for k in CIDR_KEYS]
    prod = [(f"{c['name']}.{k}", ipaddress.ip_network(c[k])) for c in PROD["clusters"] for k in CIDR_KEYS]
    clashes = [(key, net, d) for key, net in prod for d in dev if net.overlaps(d)]
    assert clashes == []


def test_prod_mesh_ca_uses_rsa(prod_stack: Program) -> None:
    keys = prod_stack.of_type("tls:index/privateKey:PrivateKey")
    assert len(keys) == 1 + len(PROD["clusters"]), "one root and one intermediate per cluster"
    assert {k.inputs["algorithm"] for k in keys} == {"RSA"}


def test_prod_edge_serves_its_hosts_over_https_with_a_managed_certificate(prod_stack: Program) -> None:
    """Expectations from the stack file: its edge section and its routed services' hosts."""
    edge = project_config("prod")["edge"]
    hosts = [h for s in project_config("prod")["traffic"]["services"] for h in s.get("hosts", [])]
    assert edge["enabled"] and edge["https"] and hosts
    (cert,) = prod_stack.of_type("gcp:compute/managedSslCertificate:ManagedSslCertificate")
    assert cert.inputs["managed"]["domains"] == hosts
    assert prod_stack.exports["edge"]["hosts"] == hosts
    for r in prod_stack.of_type("kubernetes:helm.sh/v3:Release"):
        if r.inputs["name"] == "istio-ingressgateway":
            assert r.inputs["values"]["autoscaling"]["minReplicas"] == edge["replicas"]


def test_dev_edge_is_plain_http_on_a_reserved_placeholder_host() -> None:
    edge = project_config("dev")["edge"]
    hosts = [h for s in project_config("dev")["traffic"]["services"] for h in s.get("hosts", [])]
    assert edge["enabled"] and not edge.get("https", False)
    # RFC 2606 names: nobody else's domain is put behind the dev stack by accident.
    assert hosts and all(h == "example.com" or h.endswith(".example.com") for h in hosts)
    dev = run_program(None, stack="dev")
    assert dev.exports["edge"]["url"].startswith("http://") and dev.exports["edge"]["hosts"] == hosts
    assert not dev.of_type("gcp:compute/managedSslCertificate:ManagedSslCertificate")
