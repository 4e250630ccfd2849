"""The whole program under mocks: inventory, parallel cluster chains, outputs, N clusters."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_random as random
import pytest
import yaml

from offline import GCP_PROJECT_DEFAULT, PROJECT, MeshMocks, Program, RecordingMonitor, Resource
from offline.configs import base, n_clusters, three_clusters

PER_CLUSTER = {
    "gke-istio-mesh:index:MeshNetwork": 1,
    "gcp:compute/network:Network": 1,
    "gcp:compute/subnetwork:Subnetwork": 1,
    "gcp:compute/router:Router": 1,
    "gcp:compute/routerNat:RouterNat": 1,
    "gcp:compute/address:Address": 2,  # NAT egress and east-west gateway
    "gcp:compute/firewall:Firewall": 1,
    "gke-istio-mesh:index:GkeCluster": 1,
    "gcp:container/cluster:Cluster": 1,
    "gcp:container/nodePool:NodePool": 1,
    "pulumi:providers:kubernetes": 1,
}


def _component(stack: Program, r: Resource) -> Resource | None:
    return next((a for a in stack.ancestors(r) if a.type.startswith("gke-istio-mesh:")), None)


def test_dev_inventory_per_cluster_lives_inside_the_components(base_stack: Program) -> None:
    names = [c["name"] for c in base()["clusters"]]
    for type_, count in PER_CLUSTER.items():
        assert len(base_stack.of_type(type_)) == count * len(names), type_
    for r in base_stack.resources:
        if r.custom and (r.type.startswith("gcp:") or r.type.startswith("pulumi:providers:")):
            assert _component(base_stack, r) is not None, f"{r.type} {r.name} is not inside a component"


def test_cluster_chains_build_in_parallel(base_stack: Program) -> None:
    """Nothing in blue's chain waits for green's, except green's NAT address (and vice versa)."""
    for name, other in (("blue", "green"), ("green", "blue")):
        provider = base_stack.find("pulumi:providers:kubernetes", f"{name}-k8s")
        other_component = base_stack.find("gke-istio-mesh:index:GkeCluster", other)
        other_net = base_stack.find("gke-istio-mesh:index:MeshNetwork",
                                   next(c["network"] for c in base()["clusters"] if c["name"] == other))
        for r in base_stack.descendants(other_component):
            assert not base_stack.waits_for(provider, r), f"{name} waits for {other}'s {r.type}"
        waited = {r.type for r in base_stack.descendants(other_net) if base_stack.waits_for(provider, r)}
        assert waited == {"gcp:compute/address:Address"}


def test_outputs_per_cluster_and_kubeconfigs_as_secrets(base_stack: Program) -> None:
    clusters = base_stack.exports["clusters"]
    for spec in base()["clusters"]:
        out = clusters[spec["name"]]
        gke = base_stack.find("gcp:container/cluster:Cluster", spec["name"])
        net = base_stack.find("gke-istio-mesh:index:MeshNetwork", spec["network"])
        nat = [r.outputs["address"] for r in base_stack.children(net) if r.type == "gcp:compute/address:Address"]
        assert out["name"] == spec["name"]
        assert out["region"] == spec["region"]
        assert out["network"] == spec["network"]
        assert out["endpoint"] == gke.outputs["endpoint"]
        assert out["natEgressAddresses"] == nat
    assert "kubeconfigs" in base_stack.secret_exports
    assert "clusters" not in base_stack.secret_exports
    for name, text in base_stack.exports["kubeconfigs"].items():
        assert yaml.safe_load(text)["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin", name


def test_three_clusters_each_admit_the_other_two(run, base_config) -> None:
    stack = run(three_clusters(base_config))
    for type_, count in PER_CLUSTER.items():
        assert len(stack.of_type(type_)) == 3 * count, type_
    nat = {r.parent: r.outputs["address"] for r in stack.of_type("gcp:compute/address:Address")
           if stack.by_urn[r.parent].type == "gke-istio-mesh:index:MeshNetwork"}
    ip_of = {stack.by_urn[p].name: ip for p, ip in nat.items()}
    network_of = {c["name"]: c["network"] for c in three_clusters(base_config)["clusters"]}
    for cluster in stack.of_type("gcp:container/cluster:Cluster"):
        allowed = {b["cidrBlock"] for b in cluster.inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]}
        expected = {f"{ip_of[network_of[o]]}/32" for o in network_of if o != cluster.name}
        assert expected <= allowed
        assert f"{ip_of[network_of[cluster.name]]}/32" not in allowed


def with_clusters(config: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The bench's N-cluster config (disjoint address plans, ECDSA for speed) with these names."""
    config = n_clusters(len(names), base=config)
    for cluster, name in zip(config["clusters"], names, strict=True):
        cluster["name"] = name
    config["traffic"]["weights"] = {names[0]: 100}
    return config


@pytest.mark.parametrize(("clusters", "namespaces", "services"), [
    # The root CA's key is <ca>-root-key; a cluster called root still gets its own intermediate.
    (["root", "green"], ["sample"], [("helloworld", "sample")]),
    # <namespace>-<host> would have made shop/cart-api and shop-cart/api one name.
    (["blue", "green"], ["shop", "shop-cart"], [("cart-api", "shop"), ("api", "shop-cart")]),
    # <cluster>-ns-<namespace>: a + b-ns-c and a-ns-b + c.
    (["a", "a-ns-b"], ["b-ns-c", "c"], []),
    # <source>-in-<target>: a -> b-in-c and a-in-b -> c.
    (["a", "b-in-c", "a-in-b", "c"], ["sample"], []),
], ids=["cluster-named-root", "routing", "mesh-namespaces", "remote-secrets"])
def test_names_built_from_config_never_collide(run, base_config, clusters, namespaces, services) -> None:
    config = with_clusters(base_config, clusters)
    config["meshNamespaces"] = namespaces
    config["traffic"]["services"] = [{"host": h, "namespace": ns} for h, ns in services]
    stack = run(config)  # the offline engine refuses duplicate URNs, as the real one does
    n = len(clusters)
    assert len(stack.of_type("tls:index/locallySignedCert:LocallySignedCert")) == n
    assert len(stack.of_type("kubernetes:networking.istio.io/v1:DestinationRule")) == n * len(services)
    workload_namespaces = [r for r in stack.of_type("kubernetes:core/v1:Namespace")
                           if r.inputs["metadata"]["name"] != "istio-system"]
    assert len(workload_namespaces) == n * len(namespaces)
    remote = [r for r in stack.of_type("kubernetes:core/v1:Secret")
              if r.inputs["metadata"].get("labels", {}).get("istio/multiCluster") == "true"]
    assert len(remote) == n * (n - 1)


def test_the_offline_engine_refuses_duplicate_urns_like_the_real_one() -> None:
    mocks = MeshMocks(GCP_PROJECT_DEFAULT)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="dev", preview=False, monitor=RecordingMonitor(mocks))

    @pulumi.runtime.test
    def twice() -> pulumi.Output:
        first = random.RandomId("same", byte_length=2)
        second = random.RandomId("same", byte_length=2)
        return pulumi.Output.all(first.hex, second.hex)

    with pytest.raises(Exception, match="Duplicate resource URN"):
        twice()


# What GCP accepts for each name the program (or Pulumi's auto-naming) creates.
GCP_NAME_LIMITS = {
    "gcp:container/cluster:Cluster": 40,
    "gcp:container/nodePool:NodePool": 40,
    "gcp:compute/network:Network": 63,
    "gcp:compute/subnetwork:Subnetwork": 63,
    "gcp:compute/address:Address": 63,
    "gcp:compute/router:Router": 63,
    "gcp:compute/routerNat:RouterNat": 63,
    "gcp:compute/firewall:Firewall": 63,
}


def test_the_longest_names_config_allows_fit_every_gcp_name(run, base_config) -> None:
    from components.config import MAX_CLUSTER_NAME, MAX_NETWORK_NAME

    names = ["b" * MAX_CLUSTER_NAME, "g" * MAX_CLUSTER_NAME]
    config = with_clusters(base_config, names)
    for k, cluster in enumerate(config["clusters"]):
        cluster["network"] = "nm"[k] * MAX_NETWORK_NAME
    stack = run(config)
    longest = dict.fromkeys(GCP_NAME_LIMITS, 0)
    for r in stack.resources:
        if r.type in GCP_NAME_LIMITS:
            assert len(r.outputs["name"]) <= GCP_NAME_LIMITS[r.type], (r.type, r.outputs["name"])
            longest[r.type] = max(longest[r.type], len(r.outputs["name"]))
    # The limits are tight: the node pool and the firewall rule use every character GCP allows.
    assert longest["gcp:container/nodePool:NodePool"] == 40
    assert longest["gcp:compute/firewall:Firewall"] == 63
    for account in stack.of_type("gcp:serviceaccount/account:Account"):
        assert 6 <= len(account.inputs["accountId"]) <= 30
