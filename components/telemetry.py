"""Istio's metrics into Google Cloud Managed Service for Prometheus, so a flip can be judged.

GKE runs the managed collectors once `monitoring_config.managed_prometheus` is enabled on
the cluster (components/cluster.py); what they scrape is declared with the
`monitoring.googleapis.com/v1` PodMonitoring resource (GoogleCloudPlatform/prometheus-engine
doc/api.md). Two per cluster and mesh namespace:

- the sidecars of every mesh namespace: Envoy's own endpoint, the injected container port
  `http-envoy-prom` (15090) at `/stats/prometheus`, which carries Istio's standard metrics
  (`istio_requests_total`, `istio_request_duration_milliseconds_bucket`);
- istiod in istio-system: its monitoring port 15014 at `/metrics`.

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
from components.names import ISTIO_NAMESPACE, TELEMETRY_TYPE

GMP_API = "monitoring.googleapis.com/v1"
SCRAPE_INTERVAL = "30s"
# Every pod the injector gave a sidecar carries this label (Istio's injection template).
SIDECAR_SELECTOR = {"security.istio.io/tlsMode": "istio"}
ENVOY_PROM_PORT = "http-envoy-prom"
ENVOY_PROM_PATH = "/stats/prometheus"
ISTIOD_SELECTOR = {"app": "istiod"}
ISTIOD_MONITORING_PORT = 15014
SIDECARS_NAME = "istio-sidecars"
ISTIOD_NAME = "istiod"


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


def istiod_monitoring() -> dict[str, Any]:
    return pod_monitoring(ISTIOD_NAME, ISTIO_NAMESPACE, ISTIOD_SELECTOR, ISTIOD_MONITORING_PORT, "/metrics")


@dataclass(frozen=True)
class MeshTelemetryArgs:
    target: ClusterHandle
    mesh_namespaces: Sequence[str]
    # IstioPrimary.routing_ready: istiod and the mesh namespaces the monitors live in.
    depends_on: Sequence[pulumi.Resource]


class MeshTelemetry(pulumi.ComponentResource):
    """The scrape config of one cluster's mesh: its sidecars and its istiod."""

    monitors: list[k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: MeshTelemetryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TELEMETRY_TYPE, name, None, opts)
        child = args.target.in_cluster(self, args.depends_on)
        documents = [istiod_monitoring()] + [sidecar_monitoring(ns) for ns in args.mesh_namespaces]
        self.monitors = [
            k8s.apiextensions.CustomResource(
                f"{name}.{d['metadata']['namespace']}.{d['metadata']['name']}",
                api_version=d["apiVersion"], kind=d["kind"], metadata=d["metadata"], spec=d["spec"], opts=child)
            for d in documents
        ]
        self.register_outputs({})
