"""Istio's metrics into Google Cloud Managed Service for Prometheus, so a flip can be judged.

GKE runs the managed collectors once `monitoring_config.managed_prometheus` is enabled on
the cluster (components/cluster.py); what they scrape is declared with the
`monitoring.googleapis.com/v1` PodMonitoring resource (GoogleCloudPlatform/prometheus-engine
doc/api.md). Two per cluster and mesh namespace:

- the sidecars of every mesh namespace: Envoy's own endpoint, the injected container port
  `http-envoy-prom` (15090) at `/stats/prometheus`, which carries Istio's standard metrics
  (`istio_requests_total`, `istio_request_duration_milliseconds_bucket`);
- istiod in istio-system: its monitoring port 15014 at `/metrics`;
- the gateways in istio-system (the edge's ingress gateway and the east-west gateway): the same
  Envoy endpoint, which the `gateway` chart declares on its proxy container (Istio 1.30.3
  manifests/charts/gateway/templates/deployment.yaml). A PodMonitoring selects pods in its own
  namespace only (prometheus-engine pkg/operator/apis/monitoring/v1/pod_types.go), so the mesh
  namespaces' monitors never see them; without this one the ingress gateway, which reports every
  request that enters through the global load balancer, would go unscraped.

Nothing is installed besides these objects: no Prometheus, no operator. `tools.flip` queries
the result through Cloud Monitoring's Prometheus API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ClusterHandle
from components.config import SCRAPE_INTERVAL_SECONDS
from components.istio_primary import EASTWEST_SELECTOR
from components.names import INGRESS_SELECTOR, ISTIO_NAMESPACE, TELEMETRY_TYPE

GMP_API = "monitoring.googleapis.com/v1"
SCRAPE_INTERVAL = f"{SCRAPE_INTERVAL_SECONDS}s"
# Every pod the injector gave a sidecar carries this label (Istio's injection template).
SIDECAR_SELECTOR = {"security.istio.io/tlsMode": "istio"}
ENVOY_PROM_PORT = "http-envoy-prom"
ENVOY_PROM_PATH = "/stats/prometheus"
ISTIOD_SELECTOR = {"app": "istiod"}
ISTIOD_MONITORING_PORT = 15014
SIDECARS_NAME = "istio-sidecars"
ISTIOD_NAME = "istiod"
GATEWAYS_NAME = "istio-gateways"


def pod_monitoring(name: str, namespace: str, selector: dict[str, str], port: str | int,
                   path: str) -> dict[str, Any]:
    """One PodMonitoring: scrape `port` at `path` of the pods matching `selector` in `namespace`."""
    return {
        "apiVersion": GMP_API,
        "kind": "PodMonitoring",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "endpoints": [{"port": port, "path": path, "interval": SCRAPE_INTERVAL}],
        },
    }


def sidecar_monitoring(namespace: str) -> dict[str, Any]:
    return pod_monitoring(SIDECARS_NAME, namespace, SIDECAR_SELECTOR, ENVOY_PROM_PORT, ENVOY_PROM_PATH)


def gateway_monitoring() -> dict[str, Any]:
    """The ingress and east-west gateways' Envoys: the ingress reports edge requests (reporter="source")."""
    # The chart labels its pods with the `istio` label of its values (gateway.selectorLabels).
    document = pod_monitoring(GATEWAYS_NAME, ISTIO_NAMESPACE, {}, ENVOY_PROM_PORT, ENVOY_PROM_PATH)
    document["spec"]["selector"] = {"matchExpressions": [{
        "key": "istio", "operator": "In", "values": [INGRESS_SELECTOR["istio"], EASTWEST_SELECTOR["istio"]]}]}
    return document


def istiod_monitoring() -> dict[str, Any]:
    return pod_monitoring(ISTIOD_NAME, ISTIO_NAMESPACE, ISTIOD_SELECTOR, ISTIOD_MONITORING_PORT, "/metrics")


@dataclass(frozen=True)
class MeshTelemetryArgs:
    target: ClusterHandle
    mesh_namespaces: Sequence[str]
    # IstioPrimary.routing_ready: istiod and the mesh namespaces the monitors live in.
    depends_on: Sequence[pulumi.Resource]


class MeshTelemetry(pulumi.ComponentResource):
    """The scrape config of one cluster's mesh: its sidecars, its gateways and its istiod."""

    monitors: list[k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: MeshTelemetryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TELEMETRY_TYPE, name, None, opts)
        child = args.target.in_cluster(self, args.depends_on)
        documents = [istiod_monitoring(), gateway_monitoring()] + [sidecar_monitoring(ns)
                                                                   for ns in args.mesh_namespaces]
        self.monitors = [
            k8s.apiextensions.CustomResource(
                f"{name}.{d['metadata']['namespace']}.{d['metadata']['name']}",
                api_version=d["apiVersion"], kind=d["kind"], metadata=d["metadata"], spec=d["spec"], opts=child)
            for d in documents
        ]
        self.register_outputs({})
