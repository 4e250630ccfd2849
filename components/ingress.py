"""The edge inside one cluster: an Istio ingress gateway behind Google's load balancer, and its routes.

Requests from the internet reach the global external Application Load Balancer
(components/edge.py), which has already chosen a cluster by `traffic.weights`. So each
cluster's ingress routes its edge requests to its OWN cluster's subset: a request enters
and is served in one network, never hopping to another network's east-west gateway.
Sidecars keep the weighted mesh route (components/traffic.py); the edge route is bound
only to this cluster's `edge-gateway`.

The gateway's Service is a ClusterIP Service with one port (http2 80): the load balancer
reaches the pods directly through standalone zonal NEGs that GKE's NEG controller makes
from the `cloud.google.com/neg` annotation (container-native load balancing), under a
name this program chooses, so the NEGs' self-links are known without reading live state.
A firewall rule admits only Google's load-balancer and health-check ranges to the pods.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.availability import gateway_ha_values
from components.cluster import ClusterHandle
from components.config import ClusterSpec, RoutedService
from components.istio_primary import RELEASE_TIMEOUT_SECONDS, chart_source
from components.names import (
    EDGE_GATEWAY,
    INGRESS_GATEWAY_TYPE,
    INGRESS_RELEASE,
    INGRESS_SELECTOR,
    ISTIO_NAMESPACE,
    NEG_ANNOTATION,
    NETWORKING_API,
    edge_firewall_name,
    edge_neg_name,
    edge_virtual_service_name,
    node_tag,
)
from components.network import MeshNetwork

HTTP_PORT = 80
# pilot-agent's readiness endpoint on every gateway pod; the load balancer's health check probes it.
STATUS_PORT = 15021
READINESS_PATH = "/healthz/ready"
# Sources of Google's external Application Load Balancer proxies (GFEs) and health checks
# ("Firewall rules" in Google's load-balancing and health-check docs).
GOOGLE_LB_RANGES = ("130.211.0.0/22", "35.191.0.0/16")
COMPUTE_API = "https://www.googleapis.com/compute/v1"


def neg_annotation(neg_name: str) -> str:
    """Standalone zonal NEGs for the http2 port, named by us (GKE "standalone zonal NEGs")."""
    return json.dumps({"exposed_ports": {str(HTTP_PORT): {"name": neg_name}}}, sort_keys=True)


def neg_self_links(project: str, zones: Sequence[str], neg_name: str) -> list[str]:
    """The NEG controller makes one NEG of that name in each zone of the cluster's nodes."""
    return [f"{COMPUTE_API}/projects/{project}/zones/{z}/networkEndpointGroups/{neg_name}" for z in zones]


def ingress_gateway_values(neg_name: str, replicas: int) -> dict[str, Any]:
    """Values of the `gateway` chart for the edge: ClusterIP Service, one port, NEG-annotated, HA.

    `service.ports` replaces the chart's list (Helm replaces lists), so status-port and https
    are not exposed on the Service: health checks reach the pods' status port directly.
    """
    return {
        "name": INGRESS_RELEASE,
        "labels": {**INGRESS_SELECTOR, "app": INGRESS_RELEASE},
        "service": {
            "type": "ClusterIP",
            "ports": [{"name": "http2", "port": HTTP_PORT, "protocol": "TCP", "targetPort": HTTP_PORT}],
            "annotations": {NEG_ANNOTATION: neg_annotation(neg_name)},
        },
        **gateway_ha_values(replicas),
    }


def edge_gateway(services: Sequence[RoutedService]) -> dict[str, Any]:
    """The Istio Gateway on the ingress pods: plain HTTP on 80 for every public host.

    `namespace/host` binds each host only to VirtualServices in its service's namespace.
    """
    return {
        "apiVersion": NETWORKING_API,
        "kind": "Gateway",
        "metadata": {"name": EDGE_GATEWAY, "namespace": ISTIO_NAMESPACE},
        "spec": {
            "selector": dict(INGRESS_SELECTOR),
            "servers": [{
                "port": {"number": HTTP_PORT, "name": "http", "protocol": "HTTP"},
                "hosts": [f"{s.namespace}/{h}" for s in services for h in s.hosts],
            }],
        },
    }


def edge_virtual_service(service: RoutedService, cluster: str) -> dict[str, Any]:
    """Edge requests for the service's public hosts go to this cluster's own subset, nowhere else."""
    return {
        "apiVersion": NETWORKING_API,
        "kind": "VirtualService",
        "metadata": {"name": edge_virtual_service_name(service.host), "namespace": service.namespace},
        "spec": {
            "hosts": list(service.hosts),
            "gateways": [f"{ISTIO_NAMESPACE}/{EDGE_GATEWAY}"],
            "http": [{"route": [{"destination": {"host": service.fqdn, "subset": cluster}}]}],
        },
    }


@dataclass(frozen=True)
class IngressGatewayArgs:
    cluster: ClusterSpec
    target: ClusterHandle
    network: MeshNetwork
    istio_version: str
    chart_repository: str
    replicas: int
    # Routed services with public hosts (others have no edge route).
    services: Sequence[RoutedService]
    # istiod (injection, validation webhook) and the mesh routing (its subsets and namespaces).
    depends_on: Sequence[pulumi.Resource]


class IngressGateway(pulumi.ComponentResource):
    """One cluster's ingress gateway release, its Gateway and edge routes, and its firewall."""

    release: k8s.helm.v3.Release
    neg_name: pulumi.Output[str]
    neg_self_links: pulumi.Output[list[str]]

    def __init__(self, name: str, args: IngressGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(INGRESS_GATEWAY_TYPE, name, None, opts)
        spec = args.cluster
        child = pulumi.ResourceOptions(parent=self)
        suffix = random.RandomId(f"{name}-neg-suffix", byte_length=3, opts=child)
        self.neg_name = suffix.hex.apply(lambda h: edge_neg_name(spec.name, h))

        # Google's proxies and health checkers reach the pods' IPs (alias ranges of the nodes).
        self.firewall = gcp.compute.Firewall(
            edge_firewall_name(spec.network),
            network=args.network.vpc.id,
            direction="INGRESS",
            source_ranges=list(GOOGLE_LB_RANGES),
            target_tags=[node_tag(spec.name)],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(HTTP_PORT), str(STATUS_PORT)])],
            description="Google load balancer and health checks -> Istio ingress gateway pods",
            opts=child,
        )

        # The NEG controller owns cloud NEGs for this Service: deleted for real, never skipped with the cluster.
        self.release = k8s.helm.v3.Release(
            f"{name}-ingressgateway", name=INGRESS_RELEASE, **chart_source(args.chart_repository, "gateway"),
            version=args.istio_version, namespace=ISTIO_NAMESPACE,
            values=self.neg_name.apply(lambda n: ingress_gateway_values(n, args.replicas)),
            timeout=RELEASE_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions(parent=self, provider=args.target.provider,
                                        depends_on=list(args.depends_on)),
        )

        in_cluster = args.target.in_cluster(self, [*args.depends_on, self.release])
        gateway = edge_gateway(args.services)
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-edge-gateway", api_version=gateway["apiVersion"], kind=gateway["kind"],
            metadata=gateway["metadata"], spec=gateway["spec"], opts=in_cluster,
        )
        self.virtual_services: dict[str, k8s.apiextensions.CustomResource] = {}
        for service in args.services:
            key = f"{service.host}.{service.namespace}"
            vs = edge_virtual_service(service, spec.name)
            self.virtual_services[key] = k8s.apiextensions.CustomResource(
                f"{name}.{key}-edge-vs", api_version=vs["apiVersion"], kind=vs["kind"],
                metadata=vs["metadata"], spec=vs["spec"],
                opts=args.target.in_cluster(self, [*args.depends_on, self.gateway]),
            )

        gke = args.target.gke_cluster
        self.neg_self_links = pulumi.Output.all(gke.project, gke.node_locations, self.neg_name).apply(
            lambda a: neg_self_links(a[0], a[1], a[2]))
        self.register_outputs({"negName": self.neg_name, "negSelfLinks": self.neg_self_links})
