"""Telemetry for the flip: managed collection on every cluster, and the scrape config of each mesh.

Checked on the shared offline run: what each cluster's collectors scrape (the sidecars of
every mesh namespace, istiod), that the objects go to their own cluster after istiod and the
namespaces exist, and that they pass a strict PodMonitoring schema (a typo fails here, not
after the cluster is up).
"""

from __future__ import annotations

from components.ingress import ingress_gateway_values
from components.istio_primary import EASTWEST_SELECTOR
from components.names import GKE_CLUSTER, POD_MONITORING
from components.telemetry import gateway_monitoring, istiod_monitoring, sidecar_monitoring
from offline import Program
from offline.schemas import validate_document


def test_every_cluster_enables_managed_prometheus(base_stack: Program) -> None:
    clusters = base_stack.of_type(GKE_CLUSTER)
    assert len(clusters) == 2
    assert all(c.inputs["monitoringConfig"]["managedPrometheus"]["enabled"] is True for c in clusters)


def test_each_cluster_scrapes_its_sidecars_and_istiod_through_its_own_provider(base_stack: Program) -> None:
    for cluster in ("blue", "green"):
        monitors = [r for r in base_stack.of_type(POD_MONITORING) if r.name.startswith(f"{cluster}-telemetry.")]
        scraped = {(m.inputs["metadata"]["namespace"], m.inputs["metadata"]["name"]):
                   m.inputs["spec"]["endpoints"][0] for m in monitors}
        assert scraped == {
            ("istio-system", "istiod"): {"port": 15014, "path": "/metrics", "interval": "30s"},
            ("istio-system", "istio-gateways"): {"port": "http-envoy-prom", "path": "/stats/prometheus",
                                                 "interval": "30s"},
            ("sample", "istio-sidecars"): {"port": "http-envoy-prom", "path": "/stats/prometheus", "interval": "30s"},
        }
        gke = base_stack.find(GKE_CLUSTER, cluster)
        istiod = next(r for r in base_stack.resources if r.name == f"{cluster}-istiod")
        namespace = next(r for r in base_stack.resources if r.name == f"{cluster}-ns.sample")
        for m in monitors:
            assert base_stack.by_urn[m.provider_urn].name == f"{cluster}-k8s"
            assert m.deleted_with == gke.urn
            assert base_stack.waits_for(m, istiod) and base_stack.waits_for(m, namespace)


def test_the_monitors_pass_the_strict_schema_and_a_typo_does_not() -> None:
    assert validate_document(istiod_monitoring()) == []
    assert validate_document(sidecar_monitoring("sample")) == []
    assert validate_document(gateway_monitoring()) == []
    broken = sidecar_monitoring("sample")
    broken["spec"]["endpoints"][0]["intervall"] = "30s"
    broken["spec"]["endpoints"][0]["interval"] = "30 seconds"
    problems = validate_document(broken)
    assert len(problems) == 2 and any("intervall" in p for p in problems) and any("30 seconds" in p for p in problems)


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics for matchLabels and the `In` operator."""
    return (all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
            and all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])))


def test_the_gateway_monitor_selects_the_ingress_and_east_west_pods_in_istio_system() -> None:
    """The edge's requests are reported by the ingress gateway (reporter="source"): it must be scraped.

    The gateway chart labels its pods with the `istio` and `app` labels of its values
    (Istio 1.30.3 manifests/charts/gateway/templates/_helpers.tpl, gateway.selectorLabels) and
    declares `http-envoy-prom` (15090) on the proxy container (templates/deployment.yaml).
    """
    monitor = gateway_monitoring()
    assert monitor["metadata"]["namespace"] == "istio-system"
    selector = monitor["spec"]["selector"]
    assert _selects(selector, ingress_gateway_values(2)["labels"])
    assert _selects(selector, {**EASTWEST_SELECTOR, "app": "istio-eastwestgateway"})
    assert not _selects(selector, {"app": "istiod", "istio": "pilot"})
    assert not _selects(selector, {"app": "helloworld", "security.istio.io/tlsMode": "istio"})
