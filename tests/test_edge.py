"""The edge: an ingress gateway per cluster, one global external Application LB, one flip for both paths."""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

import pulumi_gcp as gcp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.availability import gateway_ha_values
from components.config import MAX_CLUSTERS
from components.config.model import ZONES_PER_REGION
from components.edge import MAX_BACKENDS_PER_SERVICE, backend_plan, failover_clusters
from components.ingress import GOOGLE_LB_RANGES
from components.names import (
    BACKEND_SERVICE,
    DASHBOARD,
    FIREWALL,
    GATEWAY,
    GKE_CLUSTER,
    GLOBAL_ADDRESS,
    GLOBAL_FORWARDING_RULE,
    HEALTH_CHECK,
    HELM_RELEASE,
    MANAGED_SSL_CERTIFICATE,
    NEG_ANNOTATION,
    SERVICE,
    SERVICE_LB_POLICY,
    TARGET_HTTP_PROXY,
    TARGET_HTTPS_PROXY,
    URL_MAP,
    VIRTUAL_SERVICE,
    node_tag,
)
from offline import Program, run_program
from offline.configs import base, three_clusters
from offline.manifests import render
from offline.schemas import validate_rendered
from tests.fakes.edge_model import FAILING, LOST, READY, UNREADY, Backend, backends_of, shares

HOSTS = ["hello.example.com", "www.hello.example.com"]
FQDN = "helloworld.sample.svc.cluster.local"
EDGE_TYPES = {GLOBAL_ADDRESS, GLOBAL_FORWARDING_RULE, TARGET_HTTP_PROXY, TARGET_HTTPS_PROXY, URL_MAP,
              BACKEND_SERVICE, HEALTH_CHECK, MANAGED_SSL_CERTIFICATE, SERVICE_LB_POLICY}


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
            "gateway", "1.30.3", "istio-ingress")
        assert release.inputs["name"] == "istio-ingressgateway"
        assert release.inputs["values"]["service"] == {"type": "None"}, "the Service is declared beside the chart"
        service = edge_stack.find(SERVICE, f"{cluster}-ingress-service").inputs
        assert service["metadata"]["name"] == "istio-ingressgateway"
        assert service["metadata"]["namespace"] == release.inputs["namespace"]
        assert service["spec"]["type"] == "ClusterIP", "no regional LoadBalancer of its own: the global LB is the entry"
        assert service["spec"]["ports"] == [{"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80}]
        neg = json.loads(service["metadata"]["annotations"][NEG_ANNOTATION])
        (name,) = [v["name"] for v in neg["exposed_ports"].values()]
        assert list(neg["exposed_ports"]) == ["80"] and name.startswith(f"{cluster}-ingress-")
        # The backend service of this cluster points at exactly these NEGs, one per zone GKE reports.
        gke = next(r for r in edge_stack.of_type(GKE_CLUSTER) if r.name == cluster)
        backends = edge_stack.find(BACKEND_SERVICE, f"edge-{cluster}").inputs["backends"]
        groups = [b["group"] for b in backends if b["preference"] == "PREFERRED"]
        assert groups == [f"https://www.googleapis.com/compute/v1/projects/mesh-test-project/zones/{z}/"
                          f"networkEndpointGroups/{name}" for z in sorted(gke.outputs["nodeLocations"])]
        # The NEG controller deletes those NEGs after the Service: nothing of it is skipped with the cluster.
        assert release.deleted_with == ""
        assert edge_stack.find(SERVICE, f"{cluster}-ingress-service").deleted_with == ""


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
        # It references the other clusters' NEGs too (failover), so it is deleted before their releases.
        other = "green" if cluster == "blue" else "blue"
        assert edge_stack.waits_for(backend, ingress_release(edge_stack, other))
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


def test_a_flip_moves_the_edge_and_the_mesh_and_nothing_else(run) -> None:
    """A weights edit changes the mesh routes and the URL map's weights; a weight that reaches or
    leaves 0 also changes that cluster's failover capacity in the other backend services, and only that."""
    from offline import changed_resources

    def with_weights(weights: dict[str, int]) -> dict[str, Any]:
        config = edge_config()
        config["traffic"]["weights"] = weights
        return config

    before = run(with_weights({"blue": 90, "green": 10}))
    half = run(with_weights({"blue": 50, "green": 50}))
    diff = changed_resources(before, half)
    assert diff.added == diff.removed == ()
    # The dashboard draws the configured weight beside the observed share (components/dashboard.py).
    assert {half.by_urn[u].type for u in diff.changed} == {VIRTUAL_SERVICE, URL_MAP, DASHBOARD}

    drained = run(with_weights({"blue": 0, "green": 100}))
    diff = changed_resources(half, drained)
    assert diff.added == diff.removed == ()
    assert {drained.by_urn[u].type for u in diff.changed} == {VIRTUAL_SERVICE, URL_MAP, BACKEND_SERVICE, DASHBOARD}
    changed_vs = [drained.by_urn[u] for u in diff.changed if drained.by_urn[u].type == VIRTUAL_SERVICE]
    assert all(re.fullmatch(r"(blue|green)-routing\.helloworld\.sample-vs", r.name) for r in changed_vs)
    (backend,) = [drained.by_urn[u] for u in diff.changed if drained.by_urn[u].type == BACKEND_SERVICE]
    assert backend.name == "edge-green"
    scalers = lambda r: [(b["group"], b["capacityScaler"]) for b in r.inputs["backends"]]  # noqa: E731
    moved = [(a, b) for a, b in zip(scalers(half.by_urn[backend.urn]), scalers(backend), strict=True) if a != b]
    assert moved and all("/blue-ingress-" in a[0] and (a[1], b[1]) == (1.0, 0.0) for a, b in moved)
    assert {k: v for k, v in backend.inputs.items() if k != "backends"} == {
        k: v for k, v in half.by_urn[backend.urn].inputs.items() if k != "backends"}
    url_map = drained.find(URL_MAP, "edge-routes").inputs
    for action in [url_map["defaultRouteAction"], *(m["defaultRouteAction"] for m in url_map["pathMatchers"])]:
        # Weight 0: blue keeps its backend service (rollback is one edit) and gets no edge traffic.
        assert weights_of(action, drained) == {"blue": 0, "green": 100}


# ------------------------------------------------------------------ failover: health, not only weights


def edge_route(stack: Program, action: dict[str, Any]):
    """A URL-map route action as the load balancer sees it: (backends, weight) per backend service."""
    services = {r.id: r for r in stack.of_type(BACKEND_SERVICE)}
    owner = {b["group"]: r.name.removeprefix("edge-") for r in services.values()
             for b in r.inputs["backends"] if b["preference"] == "PREFERRED"}
    return [(backends_of(services[w["backendService"]].inputs, owner), int(w["weight"]))
            for w in action["weightedBackendServices"]]


def edge_shares(stack: Program, state: dict[str, str]) -> dict[str, float]:
    url_map = stack.find(URL_MAP, "edge-routes").inputs
    (matcher,) = url_map["pathMatchers"]
    assert matcher["defaultRouteAction"] == url_map["defaultRouteAction"]
    return {k: round(v, 6) for k, v in shares(edge_route(stack, url_map["defaultRouteAction"]), state).items()}


def three_edge(weights: dict[str, int]) -> Program:
    config = three_clusters(edge_config())
    config["traffic"]["weights"] = weights
    return run_program(config)


@pytest.fixture(scope="module")
def three_stack() -> Program:
    return three_edge({"blue": 50, "green": 30, "teal": 20})


def test_every_backend_service_holds_every_cluster_own_first_under_a_draining_policy(three_stack: Program) -> None:
    (policy,) = three_stack.of_type(SERVICE_LB_POLICY)
    assert policy.inputs["location"] == "global"
    assert policy.inputs["autoCapacityDrain"] == {"enable": True}
    for cluster in ("blue", "green", "teal"):
        service = three_stack.find(BACKEND_SERVICE, f"edge-{cluster}").inputs
        assert service["serviceLbPolicy"] == f"//networkservices.googleapis.com/{policy.id}"
        backends = service["backends"]
        assert len(backends) == 9 and len({b["group"] for b in backends}) == 9, "3 clusters x 3 zones, no repeat"
        own = [b for b in backends if b["preference"] == "PREFERRED"]
        assert len(own) == 3 and all(f"/{cluster}-ingress-" in b["group"] for b in own)
        assert all(b["capacityScaler"] == 1.0 and b["balancingMode"] == "RATE" for b in backends)


def test_all_healthy_the_edge_split_is_exactly_the_weights(three_stack: Program) -> None:
    assert edge_shares(three_stack, {"blue": READY, "green": READY, "teal": READY}) == {
        "blue": 50, "green": 30, "teal": 20}


@pytest.mark.parametrize("failure", [UNREADY, FAILING])
def test_a_cluster_whose_ingress_fails_stops_receiving_edge_traffic(three_stack: Program, failure: str) -> None:
    """Its share goes to the healthy clusters (by their capacity); no request is lost."""
    got = edge_shares(three_stack, {"blue": failure, "green": READY, "teal": READY})
    assert "blue" not in got and LOST not in got
    assert got == {"green": 55, "teal": 45}


def test_a_drained_cluster_is_nobodys_failover() -> None:
    """Weight 0 means no edge traffic even when the cluster that has the weight fails."""
    stack = three_edge({"blue": 100, "green": 0, "teal": 0})
    for cluster in ("blue", "green", "teal"):
        backends = stack.find(BACKEND_SERVICE, f"edge-{cluster}").inputs["backends"]
        assert {b["capacityScaler"] for b in backends if "/green-ingress-" in b["group"]} == {
            1.0 if cluster == "green" else 0.0}
    assert edge_shares(stack, {"blue": UNREADY, "green": READY, "teal": READY}) == {LOST: 100}


def test_two_clusters_fail_over_when_the_pods_go_unready_but_not_past_the_drain_cap(edge_stack: Program) -> None:
    """The documented limit (docs/edge.md): with two clusters a failing cluster's NEGs are half of
    each backend service, and auto-capacity drain drains only under half; unready pods still fail over."""
    both = run_program({**edge_config(), "traffic": {**edge_config()["traffic"], "weights": {"blue": 60, "green": 40}}})
    assert edge_shares(both, {"blue": UNREADY, "green": READY}) == {"green": 100}
    assert edge_shares(both, {"blue": FAILING, "green": READY}) == {LOST: 60, "green": 40}


def test_the_largest_mesh_fits_google_backend_limit_per_backend_service() -> None:
    """Each backend service holds every cluster's NEG per zone; config caps clusters before Google does."""
    assert MAX_CLUSTERS * ZONES_PER_REGION <= MAX_BACKENDS_PER_SERVICE


def test_the_declared_backends_are_the_backend_plan(three_stack: Program) -> None:
    """The wiring declares what `backend_plan` says, so the property below holds for the stack."""
    names = ["blue", "green", "teal"]
    for cluster in names:
        service = three_stack.find(BACKEND_SERVICE, f"edge-{cluster}").inputs
        owner = {b["group"]: n for n in names for b in three_stack.find(BACKEND_SERVICE, f"edge-{n}").inputs[
            "backends"] if b["preference"] == "PREFERRED"}
        declared = [(owner[b["group"]], b["preference"], b["capacityScaler"]) for b in service["backends"]]
        assert declared == [p for p in backend_plan(cluster, names, set(names)) for _ in range(3)]


@settings(max_examples=200, deadline=None)
@given(weights=st.integers(0, 100).flatmap(
           lambda a: st.integers(0, 100 - a).map(lambda b: [a, b, 100 - a - b])).flatmap(st.permutations),
       states=st.lists(st.sampled_from([READY, UNREADY, FAILING]), min_size=3, max_size=3),
       zones=st.integers(1, 4))
def test_edge_traffic_reaches_only_healthy_clusters_that_carry_weight(
        weights: list[int], states: list[str], zones: int) -> None:
    names = ["blue", "green", "teal"]
    split, state = dict(zip(names, weights, strict=True)), dict(zip(names, states, strict=True))
    failover = failover_clusters(names, [split])
    route = [([Backend(*p) for p in backend_plan(n, names, failover) for _ in range(zones)], split[n])
             for n in names]
    got = shares(route, state)
    for name in names:
        assert name not in got or (state[name] == READY and split[name] > 0), (name, got)
    if all(s == READY for s in states):
        assert got == pytest.approx({n: w for n, w in split.items() if w})
    rescuers = [n for n in names if state[n] == READY and split[n] > 0]
    if rescuers and FAILING not in states:
        assert LOST not in got, "unready pods empty their NEGs; a healthy weighted cluster takes their share"
    if rescuers and states.count(FAILING) == 1 and UNREADY not in states:
        assert LOST not in got, "one failing cluster of three is under the drain cap"
