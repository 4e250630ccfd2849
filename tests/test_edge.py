"""The edge: an ingress gateway per cluster, one global external Application LB, one flip for both paths."""

from __future__ import annotations

import copy
import inspect
import json
import re
from typing import Any

import pulumi_gcp as gcp
import pytest

from components.availability import gateway_ha_values
from components.ingress import GOOGLE_LB_RANGES
from components.names import (
    BACKEND_SERVICE,
    FIREWALL,
    GATEWAY,
    GKE_CLUSTER,
    GLOBAL_ADDRESS,
    GLOBAL_FORWARDING_RULE,
    HEALTH_CHECK,
    HELM_RELEASE,
    MANAGED_SSL_CERTIFICATE,
    NEG_ANNOTATION,
    TARGET_HTTP_PROXY,
    TARGET_HTTPS_PROXY,
    URL_MAP,
    VIRTUAL_SERVICE,
    node_tag,
)
from offline import Program, run_program
from offline.configs import base
from offline.manifests import render
from offline.schemas import validate_rendered

HOSTS = ["hello.example.com", "www.hello.example.com"]
FQDN = "helloworld.sample.svc.cluster.local"
EDGE_TYPES = {GLOBAL_ADDRESS, GLOBAL_FORWARDING_RULE, TARGET_HTTP_PROXY, TARGET_HTTPS_PROXY, URL_MAP,
              BACKEND_SERVICE, HEALTH_CHECK, MANAGED_SSL_CERTIFICATE}


def edge_config(**edge: Any) -> dict[str, Any]:
    config = base()
    config["traffic"]["services"][0]["hosts"] = list(HOSTS)
    config["edge"] = {"enabled": True, **edge}
    config["ca"] = {"algorithm": "ECDSA"}
    return config


@pytest.fixture(scope="module")
def edge_stack() -> Program:
    return run_program(edge_config())


@pytest.fixture(scope="module")
def https_stack() -> Program:
    return run_program(edge_config(https=True, replicas=3))


def ingress_release(stack: Program, cluster: str):
    return stack.find(HELM_RELEASE, f"{cluster}-ingress-ingressgateway")


def weights_of(action: dict[str, Any], stack: Program) -> dict[str, int]:
    """A route action's split by cluster name (backend service ids map back to their resources)."""
    names = {r.id: r.name.removeprefix("edge-") for r in stack.of_type(BACKEND_SERVICE)}
    return {names[w["backendService"]]: int(w["weight"]) for w in action["weightedBackendServices"]}


def test_edge_is_off_by_default(base_stack: Program) -> None:
    assert not [r for r in base_stack.resources if r.type in EDGE_TYPES]
    assert not [r for r in base_stack.of_type(HELM_RELEASE) if r.inputs["name"] == "istio-ingressgateway"]
    assert base_stack.exports["edge"] is None


def test_each_cluster_gets_an_ingress_gateway_that_exposes_only_http_through_negs(edge_stack: Program) -> None:
    for cluster in ("blue", "green"):
        release = ingress_release(edge_stack, cluster)
        assert (release.inputs["chart"], release.inputs["version"], release.inputs["namespace"]) == (
            "gateway", "1.30.3", "istio-system")
        assert release.inputs["name"] == "istio-ingressgateway"
        service = release.inputs["values"]["service"]
        assert service["type"] == "ClusterIP", "no regional LoadBalancer of its own: the global LB is the entry"
        assert service["ports"] == [{"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80}]
        neg = json.loads(service["annotations"][NEG_ANNOTATION])
        (name,) = [v["name"] for v in neg["exposed_ports"].values()]
        assert list(neg["exposed_ports"]) == ["80"] and name.startswith(f"{cluster}-ingress-")
        # The backend service of this cluster points at exactly these NEGs, one per zone of its nodes.
        gke = next(r for r in edge_stack.of_type(GKE_CLUSTER) if r.name == cluster)
        groups = [b["group"] for b in edge_stack.find(BACKEND_SERVICE, f"edge-{cluster}").inputs["backends"]]
        assert groups == [f"https://www.googleapis.com/compute/v1/projects/mesh-test-project/zones/{z}/"
                          f"networkEndpointGroups/{name}" for z in gke.outputs["nodeLocations"]]
        # The NEG controller deletes those NEGs with the Service: the release is deleted for real.
        assert release.deleted_with == ""


def test_ingress_gateway_has_the_gateway_ha_of_the_chart(edge_stack: Program, https_stack: Program) -> None:
    for stack, replicas in ((edge_stack, 2), (https_stack, 3)):
        values = ingress_release(stack, "blue").inputs["values"]
        assert values["autoscaling"]["minReplicas"] == replicas
        assert values["autoscaling"]["maxReplicas"] >= replicas
        # The same HA as the east-west gateway (components.availability.gateway_ha_values).
        assert values["podDisruptionBudget"]["minAvailable"] == 1
        zone = [c for c in values["topologySpreadConstraints"] if c["topologyKey"] == "topology.kubernetes.io/zone"]
        assert len(zone) == 1 and zone[0]["maxSkew"] == 1 and zone[0]["whenUnsatisfiable"] == "DoNotSchedule"


@pytest.mark.parametrize("replicas", [2, 3, 5, 7])
def test_gateway_ha_values_make_the_chart_render_a_budget(replicas: int) -> None:
    values = gateway_ha_values(replicas)
    # poddisruptionbudget.yaml (1.30.3): rendered iff podDisruptionBudget is set and, with the
    # autoscaler on, minReplicas > 1; hpa.yaml takes min/max from autoscaling.
    assert values["podDisruptionBudget"] and values["autoscaling"]["enabled"]
    assert values["autoscaling"]["minReplicas"] == replicas > 1
    assert values["autoscaling"]["maxReplicas"] >= values["autoscaling"]["minReplicas"]
    # Each gateway's own current pods are spread, whatever its release name.
    assert all("pod-template-hash" in c["matchLabelKeys"] for c in values["topologySpreadConstraints"])
    with pytest.raises(ValueError):
        gateway_ha_values(1)


def test_firewall_admits_only_google_load_balancers_to_the_ingress_pods(edge_stack: Program) -> None:
    for cluster, network in (("blue", "network1"), ("green", "network2")):
        rule = edge_stack.find(FIREWALL, f"{network}-edge-lb")
        vpc = edge_stack.find("gcp:compute/network:Network", f"{network}-vpc")
        assert rule.inputs["network"] == vpc.id
        assert sorted(rule.inputs["sourceRanges"]) == sorted(GOOGLE_LB_RANGES) == ["130.211.0.0/22", "35.191.0.0/16"]
        assert rule.inputs["targetTags"] == [node_tag(cluster)]
        assert rule.inputs["allows"] == [{"protocol": "tcp", "ports": ["80", "15021"]}]


def test_each_ingress_serves_its_own_cluster_while_sidecars_keep_the_split(edge_stack: Program) -> None:
    for cluster in ("blue", "green"):
        gateway = edge_stack.find(GATEWAY, f"{cluster}-ingress-edge-gateway").inputs
        assert gateway["metadata"] == {"name": "edge-gateway", "namespace": "istio-system"}
        assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
        (server,) = gateway["spec"]["servers"]
        assert server["hosts"] == [f"sample/{h}" for h in HOSTS]
        edge = edge_stack.find(VIRTUAL_SERVICE, f"{cluster}-ingress.helloworld.sample-edge-vs").inputs["spec"]
        assert edge["hosts"] == HOSTS and edge["gateways"] == ["istio-system/edge-gateway"]
        # No needless cross-network hop: the ingress sends only to its own cluster's subset.
        assert edge["http"] == [{"route": [{"destination": {"host": FQDN, "subset": cluster}}]}]
        mesh = edge_stack.find(VIRTUAL_SERVICE, f"{cluster}-routing.helloworld.sample-vs").inputs["spec"]
        assert "gateways" not in mesh, "the mesh route stays bound to sidecars only"
        assert len(mesh["http"][0]["route"]) == 2


def test_the_url_map_splits_edge_traffic_by_the_same_weights(run) -> None:
    config = edge_config()
    config["traffic"]["weights"] = {"blue": 70, "green": 30}
    config["meshNamespaces"] = ["sample", "shop"]
    config["traffic"]["services"].append({"host": "cart", "namespace": "shop", "weights": {"green": 100},
                                          "hosts": ["cart.example.com"]})
    stack = run(config)
    url_map = stack.find(URL_MAP, "edge-routes").inputs
    assert weights_of(url_map["defaultRouteAction"], stack) == {"blue": 70, "green": 30}
    matchers = {m["name"]: weights_of(m["defaultRouteAction"], stack) for m in url_map["pathMatchers"]}
    assert matchers == {"helloworld-sample": {"blue": 70, "green": 30}, "cart-shop": {"blue": 0, "green": 100}}
    assert [(r["hosts"], r["pathMatcher"]) for r in url_map["hostRules"]] == [
        (HOSTS, "helloworld-sample"), (["cart.example.com"], "cart-shop")]


def test_every_backend_is_health_checked_on_the_gateway_readiness(edge_stack: Program) -> None:
    (check,) = edge_stack.of_type(HEALTH_CHECK)
    assert check.inputs["httpHealthCheck"] == {"port": 15021, "portSpecification": "USE_FIXED_PORT",
                                               "requestPath": "/healthz/ready"}
    for backend in edge_stack.of_type(BACKEND_SERVICE):
        assert backend.inputs["healthChecks"] == check.id
        assert backend.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"
        assert all(b["balancingMode"] == "RATE" and b["maxRatePerEndpoint"] > 0 for b in backend.inputs["backends"])


def test_one_anycast_entry_over_http_by_default(edge_stack: Program) -> None:
    (address,) = edge_stack.of_type(GLOBAL_ADDRESS)
    (rule,) = edge_stack.of_type(GLOBAL_FORWARDING_RULE)
    (proxy,) = edge_stack.of_type(TARGET_HTTP_PROXY)
    assert rule.inputs["ipAddress"] == address.outputs["address"] and rule.inputs["portRange"] == "80"
    assert rule.inputs["target"] == proxy.id and rule.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert proxy.inputs["urlMap"] == edge_stack.find(URL_MAP, "edge-routes").id
    assert not edge_stack.of_type(MANAGED_SSL_CERTIFICATE)
    assert edge_stack.exports["edge"] == {"address": address.outputs["address"],
                                          "url": f"http://{address.outputs['address']}", "hosts": HOSTS}


def test_https_uses_a_managed_certificate_for_the_hosts_and_redirects_http(https_stack: Program) -> None:
    (cert,) = https_stack.of_type(MANAGED_SSL_CERTIFICATE)
    assert cert.inputs["managed"] == {"domains": HOSTS}
    (https_proxy,) = https_stack.of_type(TARGET_HTTPS_PROXY)
    assert https_proxy.inputs["sslCertificates"] == [cert.id]
    assert https_proxy.inputs["urlMap"] == https_stack.find(URL_MAP, "edge-routes").id
    rules = {r.inputs["portRange"]: r.inputs["target"] for r in https_stack.of_type(GLOBAL_FORWARDING_RULE)}
    (http_proxy,) = https_stack.of_type(TARGET_HTTP_PROXY)
    assert rules == {"443": https_proxy.id, "80": http_proxy.id}
    redirect = https_stack.find(URL_MAP, "edge-to-https").inputs
    assert http_proxy.inputs["urlMap"] == https_stack.find(URL_MAP, "edge-to-https").id
    assert redirect["defaultUrlRedirect"]["httpsRedirect"] is True
    assert https_stack.exports["edge"]["url"].startswith("https://")


def test_destroy_removes_the_edge_before_the_ingress_and_the_clusters(edge_stack: Program) -> None:
    """Pulumi deletes in reverse dependency order: whatever waits for X is deleted before X."""
    for cluster in ("blue", "green"):
        backend = edge_stack.find(BACKEND_SERVICE, f"edge-{cluster}")
        release = ingress_release(edge_stack, cluster)
        gke = next(r for r in edge_stack.of_type(GKE_CLUSTER) if r.name == cluster)
        assert edge_stack.waits_for(backend, release), "the backend references NEGs the release makes"
        assert edge_stack.waits_for(backend, gke)
        assert edge_stack.waits_for(release, gke)
        other = "green" if cluster == "blue" else "blue"
        assert not edge_stack.waits_for(backend, ingress_release(edge_stack, other))
    url_map = edge_stack.find(URL_MAP, "edge-routes")
    for r in [*edge_stack.of_type(GLOBAL_FORWARDING_RULE), *edge_stack.of_type(TARGET_HTTP_PROXY), url_map]:
        for gke in edge_stack.of_type(GKE_CLUSTER):
            assert edge_stack.waits_for(r, gke), r.name


def test_edge_objects_validate_against_istio_and_render_per_cluster(edge_stack: Program) -> None:
    rendered = render(edge_stack, "dev")
    assert validate_rendered(rendered) == []
    for cluster in ("blue", "green"):
        kinds = {(m.kind, m.namespace, m.name) for m in rendered.manifests if m.cluster == cluster}
        assert {("Gateway", "istio-system", "edge-gateway"), ("VirtualService", "sample", "helloworld-edge"),
                ("VirtualService", "sample", "helloworld-clusters")} <= kinds
        assert any(r.release["name"] == "istio-ingressgateway" for r in rendered.releases if r.cluster == cluster)
    assert {c.type for c in rendered.resources if c.group == "gcp"} >= EDGE_TYPES - {TARGET_HTTPS_PROXY,
                                                                                     MANAGED_SSL_CERTIFICATE}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _inputs_of(type_token: str) -> set[str]:
    """The engine names of a pulumi-gcp resource's inputs, read from the installed package."""
    module, cls = type_token.split(":")[1].split("/")[0], type_token.rsplit(":", 1)[1]
    resource = getattr(getattr(gcp, module), cls)
    params = inspect.signature(resource._internal_init).parameters
    return {_camel(p) for p in params if p not in ("__self__", "resource_name", "opts")}


def test_every_edge_input_is_a_real_pulumi_gcp_field(https_stack: Program) -> None:
    for r in https_stack.resources:
        if r.type in EDGE_TYPES or r.type == FIREWALL:
            unknown = set(r.inputs) - _inputs_of(r.type)
            assert not unknown, f"{r.type} {r.name}: {unknown}"


def test_a_flip_moves_the_edge_and_the_mesh_and_nothing_else(run, edge_stack: Program) -> None:
    from offline import changed_resources

    flipped = copy.deepcopy(edge_config())
    flipped["traffic"]["weights"] = {"blue": 0, "green": 100}
    after = run(flipped)
    diff = changed_resources(edge_stack, after)
    assert diff.added == diff.removed == ()
    assert {after.by_urn[u].type for u in diff.changed} == {VIRTUAL_SERVICE, URL_MAP}
    changed_vs = [after.by_urn[u] for u in diff.changed if after.by_urn[u].type == VIRTUAL_SERVICE]
    assert all(re.fullmatch(r"(blue|green)-routing\.helloworld\.sample-vs", r.name) for r in changed_vs)
    url_map = after.find(URL_MAP, "edge-routes").inputs
    for action in [url_map["defaultRouteAction"], *(m["defaultRouteAction"] for m in url_map["pathMatchers"])]:
        # Weight 0: blue keeps its backend service (rollback is one edit) and gets no edge traffic.
        assert weights_of(action, after) == {"blue": 0, "green": 100}
