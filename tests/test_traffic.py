"""Blue/green routing: same rules on every primary, subsets per cluster, a flip that touches only routes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.config import RoutedService
from components.names import DASHBOARD
from components.traffic import virtual_service
from offline import Program, changed_resources
from offline.configs import base, three_clusters

DR = "kubernetes:networking.istio.io/v1:DestinationRule"
VS = "kubernetes:networking.istio.io/v1:VirtualService"
FQDN = "helloworld.sample.svc.cluster.local"


def per_cluster(stack: Program, type_: str) -> dict[str, list]:
    providers = {r.urn: r.name.removesuffix("-k8s") for r in stack.of_type("pulumi:providers:kubernetes")}
    out: dict[str, list] = {name: [] for name in providers.values()}
    for r in stack.of_type(type_):
        out[providers[r.provider_urn]].append(r)
    return out


def routes(vs: Any) -> dict[str, int]:
    (http,) = vs.inputs["spec"]["http"]
    return {r["destination"]["subset"]: r["weight"] for r in http["route"]}


def test_virtual_service_keeps_zero_weight_routes() -> None:
    vs = virtual_service(RoutedService(host="web", namespace="shop"), {"blue": 100, "green": 0})
    assert vs["spec"]["http"][0]["route"] == [
        {"destination": {"host": "web.shop.svc.cluster.local", "subset": "blue"}, "weight": 100},
        {"destination": {"host": "web.shop.svc.cluster.local", "subset": "green"}, "weight": 0},
    ]


def test_routing_lands_on_every_primary_with_network_subsets(base_stack: Program) -> None:
    clusters = base()["clusters"]
    for cluster, (rule,) in per_cluster(base_stack, DR).items():
        spec = rule.inputs["spec"]
        assert rule.inputs["metadata"] == {"name": "helloworld-clusters", "namespace": "sample"}
        assert spec["host"] == FQDN
        assert spec["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
        assert [{k: s[k] for k in ("name", "labels")} for s in spec["subsets"]] == [
            {"name": c["name"], "labels": {"topology.istio.io/network": c["network"]}} for c in clusters], cluster
    for cluster, (vs,) in per_cluster(base_stack, VS).items():
        assert vs.inputs["spec"]["hosts"] == [FQDN]
        assert routes(vs) == {"blue": 100, "green": 0}, cluster


def test_application_errors_never_eject_a_clusters_share(base_stack: Program) -> None:
    """A remote cluster is one endpoint (its east-west gateway): what ejects it drops its whole share.

    Envoy fills every field Istio leaves unset with its own default, and that default ejects
    after 5 consecutive 5xx; so 5xx and gateway (502/503/504) counting must be set to 0
    explicitly, and only failures Envoy sees itself (connect, timeout, reset) may eject.
    """
    for cluster, (rule,) in per_cluster(base_stack, DR).items():
        od = rule.inputs["spec"]["trafficPolicy"]["outlierDetection"]
        assert od["consecutive5xxErrors"] == 0, cluster
        assert od["consecutiveGatewayErrors"] == 0, cluster
        assert od["splitExternalLocalOriginErrors"] is True, cluster
        assert od["consecutiveLocalOriginFailures"] >= 1, cluster
        # No panic routing either: Istio's panic threshold stays at its 0 unless set.
        assert "minHealthPercent" not in od, cluster


def _effective_outlier(rule: Any, subset: str) -> dict[str, Any]:
    """What Istio 1.30.3 applies to a subset: its own outlierDetection replaces the top level's whole
    (mergeTrafficPolicy, pilot/pkg/networking/util/util.go); tls is kept from the top unless the subset sets it."""
    spec = rule.inputs["spec"]
    (entry,) = [s for s in spec["subsets"] if s["name"] == subset]
    policy = {**spec["trafficPolicy"], **entry.get("trafficPolicy", {})}
    return policy["outlierDetection"], policy["tls"]


def test_a_remote_networks_one_endpoint_is_never_ejected(run, base_config) -> None:
    """In each primary only its own subset (its pods) may be ejected; a remote subset is one east-west
    gateway endpoint, and ejecting it would 503 the whole share for 30 s x ejections (up to 300 s in Envoy)
    after a blip is over. Nothing may eject it: no 5xx, gateway or local-origin ejection is enforced
    (split off, so Envoy folds connect failures into the 5xx/gateway counts, both enforced at 0)."""
    program = run(three_clusters(base_config))
    for cluster, (rule,) in per_cluster(program, DR).items():
        for subset in ("blue", "green", "teal"):
            od, tls = _effective_outlier(rule, subset)
            assert tls == {"mode": "ISTIO_MUTUAL"}, (cluster, subset)
            assert od["consecutive5xxErrors"] == 0 and od["consecutiveGatewayErrors"] == 0, (cluster, subset)
            assert "minHealthPercent" not in od
            if subset == cluster:
                # Pods of this cluster: a dead pod is ejected on Envoy-observed failures only.
                assert od["splitExternalLocalOriginErrors"] is True and od["consecutiveLocalOriginFailures"] == 5
            else:
                assert not od.get("splitExternalLocalOriginErrors"), (cluster, subset)
                assert not od.get("consecutiveLocalOriginFailures"), (cluster, subset)


def test_subsets_can_select_by_cluster_name(run, base_config) -> None:
    base_config["traffic"]["subsetLabel"] = "cluster"
    stack = run(base_config)
    for rules in per_cluster(stack, DR).values():
        assert [{k: s[k] for k in ("name", "labels")} for s in rules[0].inputs["spec"]["subsets"]] == [
            {"name": "blue", "labels": {"topology.istio.io/cluster": "blue"}},
            {"name": "green", "labels": {"topology.istio.io/cluster": "green"}},
        ]
    # The label values are exactly the clusterName each istiod was installed with.
    names = {r.inputs["values"]["global"]["multiCluster"]["clusterName"]
             for r in stack.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "istiod"}
    assert names == {"blue", "green"}


def test_routing_waits_for_istiod_and_its_namespace(base_stack: Program) -> None:
    for cluster in ("blue", "green"):
        istiod = base_stack.find("kubernetes:helm.sh/v3:Release", f"{cluster}-istiod")
        provider = base_stack.find("pulumi:providers:kubernetes", f"{cluster}-k8s").urn
        (ns,) = [r for r in base_stack.of_type("kubernetes:core/v1:Namespace")
                 if r.provider_urn == provider and r.inputs["metadata"]["name"] == "sample"]
        for r in per_cluster(base_stack, DR)[cluster] + per_cluster(base_stack, VS)[cluster]:
            assert base_stack.waits_for(r, istiod) and base_stack.waits_for(r, ns)
        (vs,), (dr,) = per_cluster(base_stack, VS)[cluster], per_cluster(base_stack, DR)[cluster]
        assert base_stack.waits_for(vs, dr), "a route must not name a subset that does not exist yet"


def test_service_weights_override_the_mesh_wide_split(run, base_config) -> None:
    base_config["meshNamespaces"] = ["sample", "shop"]
    base_config["traffic"]["services"].append({"host": "cart", "namespace": "shop", "weights": {"green": 100}})
    stack = run(base_config)
    for cluster, services in per_cluster(stack, VS).items():
        by_host = {vs.inputs["spec"]["hosts"][0]: routes(vs) for vs in services}
        assert by_host == {FQDN: {"blue": 100, "green": 0},
                           "cart.shop.svc.cluster.local": {"blue": 0, "green": 100}}, cluster
    assert stack.exports["trafficSplit"] == {"helloworld.sample": {"blue": 100, "green": 0},
                                             "cart.shop": {"blue": 0, "green": 100}}


@pytest.mark.parametrize("weights", [{"blue": 90, "green": 10}, {"blue": 0, "green": 100}, {"blue": 50, "green": 50}])
def test_a_flip_changes_only_the_virtual_services(run, base_config, weights: dict[str, int]) -> None:
    before = run(base_config)
    flipped = copy.deepcopy(base_config)
    flipped["traffic"]["weights"] = weights
    after = run(flipped)
    diff = changed_resources(before, after)
    assert diff.added == diff.removed == (), "a flip must neither add nor remove resources"
    # The dashboard draws the configured weight beside the observed share (components/dashboard.py).
    assert {after.by_urn[u].type for u in diff.changed} == {VS, DASHBOARD}
    assert len(diff.changed) == len(base()["clusters"]) * len(base_config["traffic"]["services"]) + 1
    for vs in after.of_type(VS):
        assert routes(vs) == weights
    assert after.exports["trafficSplit"] == {"helloworld.sample": weights}


def test_weight_zero_keeps_the_subset_so_rollback_is_one_edit(run, base_config) -> None:
    base_config["traffic"]["weights"] = {"blue": 0, "green": 100}
    stack = run(base_config)
    for rules in per_cluster(stack, DR).values():
        assert [s["name"] for s in rules[0].inputs["spec"]["subsets"]] == ["blue", "green"]
    for vs in stack.of_type(VS):
        assert routes(vs) == {"blue": 0, "green": 100}


def test_three_clusters_route_everywhere(run, base_config) -> None:
    config = three_clusters(base_config)
    config["traffic"]["weights"] = {"blue": 80, "green": 10, "teal": 10}
    stack = run(config)
    drs, vss = per_cluster(stack, DR), per_cluster(stack, VS)
    assert sorted(drs) == ["blue", "green", "teal"]
    for cluster in drs:
        (dr,), (vs,) = drs[cluster], vss[cluster]
        assert [s["labels"]["topology.istio.io/network"] for s in dr.inputs["spec"]["subsets"]] == [
            "network1", "network2", "network3"]
        assert routes(vs) == {"blue": 80, "green": 10, "teal": 10}
