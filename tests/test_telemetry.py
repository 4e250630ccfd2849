"""Telemetry for the flip: managed collection on every cluster, and the scrape config of each mesh.

Checked on the shared offline run: what each cluster's collectors scrape (the sidecars of
every mesh namespace, istiod), that the objects go to their own cluster after istiod and the
namespaces exist, and that they pass a strict PodMonitoring schema (a typo fails here, not
after the cluster is up).
"""

from __future__ import annotations

from components.names import GKE_CLUSTER, POD_MONITORING
from components.telemetry import istiod_monitoring, sidecar_monitoring
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
    broken = sidecar_monitoring("sample")
    broken["spec"]["endpoints"][0]["intervall"] = "30s"
    broken["spec"]["endpoints"][0]["interval"] = "30 seconds"
    problems = validate_document(broken)
    assert len(problems) == 2 and any("intervall" in p for p in problems) and any("30 seconds" in p for p in problems)
