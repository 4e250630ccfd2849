"""Blue/green between clusters: per-cluster subsets and weighted routes, on every primary.

Each istiod reads only its own cluster's Istio config, so a split declared in one
cluster moves only that cluster's clients. The same DestinationRule and
VirtualService therefore go to every primary. Subsets are named after the
clusters and select endpoints by `topology.istio.io/network` (default) or
`topology.istio.io/cluster`; both labels come from the same config the control
planes were installed with, so they cannot drift apart. A flip edits weights only:
the subsets stay defined at weight 0, so a rollback is one edit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ClusterHandle
from components.config import ClusterSpec, RoutedService, SubsetLabel
from components.names import CLUSTER_LABEL, CLUSTER_ROUTING_TYPE, NETWORK_LABEL, NETWORKING_API

SUBSET_LABEL_KEYS: dict[str, str] = {
    "network": NETWORK_LABEL,
    "cluster": CLUSTER_LABEL,
}
# Outlier detection ejects a cluster's share only on connection failures, never on application
# 5xx: the Istio and Envoy semantics are in docs/blue-green.md#why-an-application-5xx-never-removes-a-cluster.
OUTLIER_DETECTION: dict[str, Any] = {
    "consecutive5xxErrors": 0,
    "consecutiveGatewayErrors": 0,
    "splitExternalLocalOriginErrors": True,
    "consecutiveLocalOriginFailures": 5,
    "interval": "10s",
    "baseEjectionTime": "30s",
    "maxEjectionPercent": 100,
}
# OUTLIER_DETECTION applies to the own cluster's subset only (its pods, many endpoints): a dead
# pod is ejected and its requests go to the subset's other pods. Not to a REMOTE subset.
# A remote subset is one endpoint, the peer's east-west gateway, and ejecting it moves nothing:
# weighted routes pick a subset by weight, never by health (Envoy weighted clusters), so the
# share gets immediate 503s ("no healthy upstream") for baseEjectionTime x times ejected - up to
# Envoy's max_ejection_time of 300 s, which Istio's applyOutlierDetection does not expose
# (pilot/pkg/networking/core/cluster_traffic_policy.go sets no MaxEjectionTime) - long after a
# network blip is over. So each primary's rule gives every other cluster's subset its own
# outlierDetection (Istio's mergeTrafficPolicy, pilot/pkg/networking/util/util.go, replaces the
# whole field and keeps the top-level tls) that ejects on nothing: 5xx and gateway counts at 0
# (enforcement 0), and without `splitExternalLocalOriginErrors` Envoy folds connect failures,
# timeouts and resets into those counts. The share then fails only while the network really is
# down and serves again with the first request after it recovers: the bound is 0 s.
REMOTE_OUTLIER_DETECTION: dict[str, Any] = {
    "consecutive5xxErrors": 0,
    "consecutiveGatewayErrors": 0,
}


def subset_labels(cluster: ClusterSpec, label: SubsetLabel) -> dict[str, str]:
    value = cluster.network if label == "network" else cluster.name
    return {SUBSET_LABEL_KEYS[label]: value}


def resource_name(service: RoutedService) -> str:
    return f"{service.host}-clusters"


def destination_rule(service: RoutedService, clusters: Sequence[ClusterSpec], label: SubsetLabel,
                     local: str) -> dict[str, Any]:
    """One subset per cluster, mTLS inside the mesh; outlier detection for `local`'s pods only.

    `local` is the cluster whose istiod reads the rule: every other subset is a remote network.
    """
    return {
        "apiVersion": NETWORKING_API,
        "kind": "DestinationRule",
        "metadata": {"name": resource_name(service), "namespace": service.namespace},
        "spec": {
            "host": service.fqdn,
            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}, "outlierDetection": dict(OUTLIER_DETECTION)},
            "subsets": [
                {"name": c.name, "labels": subset_labels(c, label)} if c.name == local else
                {"name": c.name, "labels": subset_labels(c, label),
                 "trafficPolicy": {"outlierDetection": dict(REMOTE_OUTLIER_DETECTION)}}
                for c in clusters
            ],
        },
    }


def virtual_service(service: RoutedService, weights: Mapping[str, int]) -> dict[str, Any]:
    """The split: every cluster's subset with its weight (0 included, so rollback is one edit)."""
    return {
        "apiVersion": NETWORKING_API,
        "kind": "VirtualService",
        "metadata": {"name": resource_name(service), "namespace": service.namespace},
        "spec": {
            "hosts": [service.fqdn],
            "http": [{
                "route": [
                    {"destination": {"host": service.fqdn, "subset": name}, "weight": weight}
                    for name, weight in weights.items()
                ],
            }],
        },
    }


@dataclass(frozen=True)
class ClusterRoutingArgs:
    cluster: str
    clusters: Sequence[ClusterSpec]
    subset_label: SubsetLabel
    # Each routed service with the weights that apply to it.
    services: Sequence[tuple[RoutedService, Mapping[str, int]]]
    target: ClusterHandle
    # IstioPrimary.routing_ready: istiod (its validation webhook) and the workload namespaces.
    depends_on: Sequence[pulumi.Resource]


class ClusterRouting(pulumi.ComponentResource):
    """The mesh-wide routing, applied to one primary."""

    virtual_services: dict[str, k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: ClusterRoutingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(CLUSTER_ROUTING_TYPE, name, None, opts)
        child = args.target.in_cluster(self, args.depends_on)
        self.virtual_services = {}
        for service, weights in args.services:
            # `host.namespace`, as in the trafficSplit output: dot-joined, so `shop`/`cart-api` and
            # `shop-cart`/`api` stay apart (neither part may contain a dot).
            key = f"{service.host}.{service.namespace}"
            dr = destination_rule(service, args.clusters, args.subset_label, args.cluster)
            rule = k8s.apiextensions.CustomResource(
                f"{name}.{key}-dr", api_version=dr["apiVersion"], kind=dr["kind"],
                metadata=dr["metadata"], spec=dr["spec"], opts=child,
            )
            vs = virtual_service(service, weights)
            self.virtual_services[key] = k8s.apiextensions.CustomResource(
                f"{name}.{key}-vs", api_version=vs["apiVersion"], kind=vs["kind"],
                metadata=vs["metadata"], spec=vs["spec"],
                # Subsets must exist before a route names them.
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[rule])),
            )
        self.register_outputs({})
