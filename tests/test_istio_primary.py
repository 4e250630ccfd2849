"""IstioPrimary: one ordered graph per cluster, values from config, a destroy that just works."""

from __future__ import annotations

import itertools

import pytest

from components.config import DEFAULT_CHART_REPOSITORY
from offline import Program, Resource
from offline.configs import base

DEV = {c["name"]: c for c in base()["clusters"]}
MESH_VERSION = base()["istio"]["version"]
OTHER = {"blue": "green", "green": "blue"}
RELEASE = "kubernetes:helm.sh/v3:Release"


def release(stack: Program, cluster: str, step: str) -> Resource:
    return stack.find(RELEASE, f"{cluster}-{step}")


def graph(stack: Program, cluster: str) -> dict[str, Resource]:
    return {
        "namespace": stack.find("kubernetes:core/v1:Namespace", f"{cluster}-istio-system"),
        "cacerts": stack.find("kubernetes:core/v1:Secret", f"{cluster}-cacerts"),
        "base": release(stack, cluster, "base"),
        "istiod": release(stack, cluster, "istiod"),
        "eastwest": release(stack, cluster, "eastwestgateway"),
        "gateway": stack.find("kubernetes:networking.istio.io/v1:Gateway", f"{cluster}-cross-network-gateway"),
        "mtls": stack.find("kubernetes:security.istio.io/v1:PeerAuthentication", f"{cluster}-strict-mtls"),
    }


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_istio_system_carries_the_clusters_network(base_stack: Program, cluster: str) -> None:
    ns = graph(base_stack, cluster)["namespace"]
    assert ns.inputs["metadata"] == {"name": "istio-system",
                                     "labels": {"topology.istio.io/network": DEV[cluster]["network"]}}


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_install_order_cacerts_base_istiod_gateway_then_istio_resources(base_stack: Program, cluster: str) -> None:
    g = graph(base_stack, cluster)
    w = base_stack.waits_for
    assert w(g["cacerts"], g["namespace"]) and w(g["base"], g["namespace"])
    assert w(g["istiod"], g["cacerts"]) and w(g["istiod"], g["base"])
    assert w(g["eastwest"], g["cacerts"]) and w(g["eastwest"], g["istiod"])
    # The Gateway is configuration: it needs istiod's webhook, not the east-west pods or their
    # load balancer, so it does not sit behind the slowest release of the chain.
    assert w(g["gateway"], g["istiod"]) and not w(g["gateway"], g["eastwest"])
    assert w(g["mtls"], g["istiod"])
    # Workload namespaces are no Istio resource; their injection label matters only to pods.
    for ns in base_stack.of_type("kubernetes:core/v1:Namespace"):
        if ns.provider_urn == g["istiod"].provider_urn and ns.urn != g["namespace"].urn:
            assert not w(ns, g["istiod"]) and not w(ns, g["base"]), ns.name
    for r in base_stack.resources:
        if r.type.startswith("kubernetes:") and ".istio.io/" in r.type and r.provider_urn == g["istiod"].provider_urn:
            assert w(r, g["istiod"]), f"{r.type} {r.name} could hit 'no matches for kind' or the webhook"
    # Nothing in one cluster's install waits for the other cluster's control plane.
    other = graph(base_stack, OTHER[cluster])
    for step in ("istiod", "eastwest", "gateway"):
        assert not w(g[step], other["istiod"])


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_charts_come_from_the_official_repository_at_the_pinned_version(base_stack: Program, cluster: str) -> None:
    g = graph(base_stack, cluster)
    for step, chart, name in (("base", "base", "istio-base"), ("istiod", "istiod", "istiod"),
                              ("eastwest", "gateway", "istio-eastwestgateway")):
        i = g[step].inputs
        assert (i["chart"], i["name"], i["namespace"]) == (chart, name, "istio-system")
        assert i["version"] == MESH_VERSION
        assert i["repositoryOpts"] == {"repo": DEFAULT_CHART_REPOSITORY}


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_istiod_knows_mesh_cluster_and_network(base_stack: Program, cluster: str) -> None:
    values = graph(base_stack, cluster)["istiod"].inputs["values"]
    assert {k: values["global"][k] for k in ("meshID", "multiCluster", "network")} == {"meshID": base()["meshId"],
                                "multiCluster": {"clusterName": cluster},
                                "network": DEV[cluster]["network"]}


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_eastwest_gateway_is_the_networks_gateway_on_its_reserved_address(base_stack: Program, cluster: str) -> None:
    g = graph(base_stack, cluster)
    values = g["eastwest"].inputs["values"]
    network = DEV[cluster]["network"]
    address = base_stack.find("gcp:compute/address:Address", f"{cluster}-eastwest")
    assert address.inputs["region"] == DEV[cluster]["region"]
    assert values["networkGateway"] == network
    # The selector of cross-network-gateway. The network label and the 15021/15443/15012/15017
    # ports come from `networkGateway` (gateway chart templates/service.yaml and _helpers.tpl):
    # repeating the label renders a duplicate key, and `service.ports` is ignored when it is set.
    assert values["labels"] == {"istio": "eastwestgateway", "app": "istio-eastwestgateway"}
    service = values["service"]
    assert "ports" not in service
    assert service["type"] == "LoadBalancer"
    assert service["loadBalancerIP"] == address.outputs["address"]
    # Only the other networks' NAT egress may reach it.
    other_net = base_stack.find("gke-istio-mesh:index:MeshNetwork", DEV[OTHER[cluster]]["network"])
    nat = [r.outputs["address"] for r in base_stack.children(other_net) if r.type == "gcp:compute/address:Address"]
    assert service["loadBalancerSourceRanges"] == [f"{ip}/32" for ip in nat]
    assert base_stack.exports["clusters"][cluster]["eastWestGatewayAddress"] == address.outputs["address"]


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_services_exposed_across_networks_and_strict_mtls(base_stack: Program, cluster: str) -> None:
    g = graph(base_stack, cluster)
    assert g["gateway"].inputs["metadata"] == {"name": "cross-network-gateway", "namespace": "istio-system"}
    assert g["gateway"].inputs["spec"] == {
        "selector": {"istio": "eastwestgateway"},
        "servers": [{"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                     "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}],
    }
    assert g["gateway"].inputs["apiVersion"] == "networking.istio.io/v1"
    assert g["mtls"].inputs["metadata"] == {"name": "default", "namespace": "istio-system"}
    assert g["mtls"].inputs["spec"] == {"mtls": {"mode": "STRICT"}}
    assert g["mtls"].inputs["apiVersion"] == "security.istio.io/v1"


def test_one_cluster_can_run_the_next_istio_release(run, base_config) -> None:
    base_config["clusters"][1]["istioVersion"] = "1.31.0"
    stack = run(base_config)
    for step in ("base", "istiod", "eastwestgateway"):
        assert release(stack, "blue", step).inputs["version"] == MESH_VERSION
        assert release(stack, "green", step).inputs["version"] == "1.31.0"
    assert stack.exports["clusters"]["green"]["istioVersion"] == "1.31.0"


def test_custom_chart_repository_is_used_for_every_chart(run, base_config) -> None:
    base_config["istio"] = {"version": MESH_VERSION, "chartRepository": "https://charts.example.com/istio"}
    stack = run(base_config)
    assert {r.inputs["repositoryOpts"]["repo"] for r in stack.of_type(RELEASE)} == {"https://charts.example.com/istio"}


def test_an_oci_registry_names_each_chart_by_its_full_reference(run, base_config) -> None:
    """Helm looks for an index.yaml behind repository_opts.repo, which OCI registries do not serve."""
    base_config["istio"] = {"version": MESH_VERSION, "chartRepository": "oci://registry.example.com/istio/charts/"}
    stack = run(base_config)
    for r in stack.of_type(RELEASE):
        assert "repositoryOpts" not in r.inputs
    charts = {r.inputs["name"]: r.inputs["chart"] for r in stack.of_type(RELEASE)}
    assert charts == {"istio-base": "oci://registry.example.com/istio/charts/base",
                      "istiod": "oci://registry.example.com/istio/charts/istiod",
                      "istio-eastwestgateway": "oci://registry.example.com/istio/charts/gateway"}


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_destroy_order_and_what_the_cluster_may_take_with_it(base_stack: Program, cluster: str) -> None:
    """Destroy runs the graph backwards: CRs and gateway (its LB), istiod, base, namespace, cluster."""
    g = graph(base_stack, cluster)
    gke = base_stack.find("gcp:container/cluster:Cluster", cluster)
    pool = base_stack.find("gcp:container/nodePool:NodePool", f"{cluster}-pool")
    # The Gateway and the east-west release both go before istiod (and its CRDs in base); between
    # them there is no order: a Gateway selecting no pods, or pods with no Gateway, serve nothing.
    for first in ("gateway", "eastwest"):
        for chain in ([first, "istiod", "base", "namespace"],):
            for later, earlier in itertools.pairwise(chain):
                assert base_stack.waits_for(g[later], g[earlier]), f"{later} must be deleted before {earlier}"
    for step in g.values():
        assert base_stack.waits_for(step, pool) and base_stack.waits_for(step, gke)
    # The release owning the cloud load balancer is always really deleted...
    assert g["eastwest"].deleted_with == ""
    # ...and so are the GCP resources; plain in-cluster objects may go with the cluster.
    for r in base_stack.resources:
        if r.custom and r.type.startswith("kubernetes:") and r.provider_urn == g["istiod"].provider_urn \
                and r is not g["eastwest"]:
            assert r.deleted_with == gke.urn, f"{r.type} {r.name}"
        if r.type.startswith("gcp:"):
            assert r.deleted_with == ""


def test_cluster_local_hosts_reach_istiods_mesh_config(run, base_config) -> None:
    base_config["clusterLocal"] = ["*.kube-system.svc.cluster.local", "redis.cache.svc.cluster.local"]
    stack = run(base_config)
    for cluster in DEV:
        values = release(stack, cluster, "istiod").inputs["values"]
        assert values["meshConfig"]["serviceSettings"] == [{
            "settings": {"clusterLocal": True},
            "hosts": ["*.kube-system.svc.cluster.local", "redis.cache.svc.cluster.local"],
        }]


def test_no_cluster_local_setting_when_none_is_configured(base_stack: Program) -> None:
    for cluster in DEV:
        assert "serviceSettings" not in release(base_stack, cluster, "istiod").inputs["values"]["meshConfig"]


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_mesh_namespaces_exist_with_sidecar_injection(base_stack: Program, cluster: str) -> None:
    provider = base_stack.find("pulumi:providers:kubernetes", f"{cluster}-k8s").urn
    namespaces = {r.inputs["metadata"]["name"]: r.inputs["metadata"].get("labels", {})
                  for r in base_stack.of_type("kubernetes:core/v1:Namespace") if r.provider_urn == provider}
    for ns in base()["meshNamespaces"]:
        assert namespaces[ns] == {"istio-injection": "enabled"}
