"""The edge inside one cluster: an Istio ingress gateway behind Google's load balancer, and its routes.

Requests from the internet reach the global external Application Load Balancer
(components/edge.py), which has already chosen a cluster by `traffic.weights`. So each
cluster's ingress routes its edge requests to its OWN cluster's subset: a request enters
and is served in one network, never hopping to another network's east-west gateway.
Sidecars keep the weighted mesh route (components/traffic.py); the edge route is bound
only to this cluster's `edge-gateway`.

The load balancer reaches the gateway pods directly through standalone zonal NEGs that GKE's
NEG controller makes from the Service's `cloud.google.com/neg` annotation, under a name this
program chooses. The Service is declared here, not by the chart, so that one `up` and one
`destroy` work (docs/edge.md, "First up and destroy"):

- up: the Service waits (`pulumi.com/waitFor`) until the controller reports its NEGs in
  `cloud.google.com/neg-status`, and the NEGs' self-links resolve only once every reported
  NEG exists in Compute Engine (bounded; a timeout names what is missing). The backend
  services are built from them, so they are created after, and only for zones that have one.
- destroy: the gateway and its Service live in their own namespace, deleted for real after
  the backend services. The controller's ServiceNetworkEndpointGroup objects in it carry a
  finalizer the controller removes only after deleting the NEGs (its garbage collection,
  every `neg-gc-period`, 120 s), so the namespace - and with it the node pool, the cluster and
  the network - goes only once the NEGs are gone.

A firewall rule admits only Google's load-balancer and health-check ranges to the pods.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
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
    INGRESS_NAMESPACE,
    INGRESS_RELEASE,
    INGRESS_SELECTOR,
    ISTIO_NAMESPACE,
    NEG_ANNOTATION,
    NEG_STATUS_ANNOTATION,
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
# pulumi-kubernetes waits on create and update until this JSONPath selects something (RFC 9535
# syntax from v4.24; provider/pkg/metadata/overrides.go ReadyCondition, pkg/jsonpath): the
# controller's report of the Service's NEGs.
WAIT_FOR_NEG_STATUS = f"jsonpath={{.metadata.annotations['{NEG_STATUS_ANNOTATION}']}}"
# How long the Service may wait for that report, and the NEGs for their creation, on one `up`.
NEG_WAIT_SECONDS = 600.0
NEG_POLL_SECONDS = 10.0
# Deleting the namespace waits for the controller's NEG garbage collection (120 s period) and more.
NAMESPACE_DELETE_TIMEOUT = "20m"
GET_NEG = "gcp:compute/getNetworkEndpointGroup:getNetworkEndpointGroup"


def neg_annotation(neg_name: str) -> str:
    """Standalone zonal NEGs for the http2 port, named by us (GKE "standalone zonal NEGs")."""
    return json.dumps({"exposed_ports": {str(HTTP_PORT): {"name": neg_name}}}, sort_keys=True)


def neg_self_links(project: str, zones: Sequence[str], neg_name: str) -> list[str]:
    """The NEG controller makes one NEG of that name in each zone of the cluster's nodes."""
    return [f"{COMPUTE_API}/projects/{project}/zones/{z}/networkEndpointGroups/{neg_name}" for z in zones]


GATEWAY_LABELS = {**INGRESS_SELECTOR, "app": INGRESS_RELEASE}


def ingress_gateway_values(replicas: int) -> dict[str, Any]:
    """Values of the `gateway` chart for the edge: the pods with the gateway HA, and no Service.

    `service.type: None` makes the 1.30.3 chart render no Service (templates/service.yaml); the
    Service is `ingress_service`, declared beside the release so the program can wait on it.
    """
    return {
        "name": INGRESS_RELEASE,
        "labels": dict(GATEWAY_LABELS),
        "service": {"type": "None"},
        **gateway_ha_values(replicas),
    }


def ingress_service(neg_name: str) -> dict[str, Any]:
    """The gateway's Service: ClusterIP, one port (http2 80), NEG-annotated, awaited until GKE reports its NEGs.

    The selector is the chart's `gateway.selectorLabels` (app, istio) for these values. status-port
    and https are not exposed: health checks reach the pods' status port directly.
    """
    return {
        "metadata": {
            "name": INGRESS_RELEASE, "namespace": INGRESS_NAMESPACE, "labels": dict(GATEWAY_LABELS),
            "annotations": {NEG_ANNOTATION: neg_annotation(neg_name), "pulumi.com/waitFor": WAIT_FOR_NEG_STATUS},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": dict(GATEWAY_LABELS),
            "ports": [{"name": "http2", "port": HTTP_PORT, "protocol": "TCP", "targetPort": HTTP_PORT}],
        },
    }


def reported_zones(status: str | None, neg_name: str, node_locations: Sequence[str]) -> list[str]:
    """The zones GKE reports NEGs in for the http2 port, within the cluster's node locations, sorted.

    The controller writes `{"network_endpoint_groups": {"<port>": "<name>"}, "zones": [...]}`
    (ingress-gce pkg/negannotation NegStatus), with the zones that have candidate nodes
    (pkg/neg/controller.go syncNegStatusAnnotation).
    """
    if not status:
        raise pulumi.RunError(f"the ingress Service has no {NEG_STATUS_ANNOTATION} annotation: GKE's NEG controller "
                              f"has not reported NEG {neg_name} (kubectl -n {INGRESS_NAMESPACE} describe service "
                              f"{INGRESS_RELEASE} shows its events)")
    parsed = json.loads(status)
    reported = (parsed.get("network_endpoint_groups") or {}).get(str(HTTP_PORT))
    if reported != neg_name:
        raise pulumi.RunError(f"{NEG_STATUS_ANNOTATION} names NEG {reported!r} for port {HTTP_PORT}, not {neg_name!r}: "
                              f"the state holds an older report; run `pulumi refresh`, then `pulumi up`")
    zones = sorted(z for z in parsed.get("zones") or () if z in set(node_locations))
    if not zones:
        raise pulumi.RunError(f"{NEG_STATUS_ANNOTATION} reports NEG {neg_name} in no zone of the cluster "
                              f"({', '.join(node_locations)}): no zone has a node yet")
    return zones


NegLookup = Callable[[str, str, str], Awaitable[None]]


async def lookup_neg(project: str, zone: str, name: str) -> None:
    """Reads the NEG (the data source fails with "<id> not found" until it exists)."""
    await pulumi.runtime.invoke_async(GET_NEG, {"project": project, "zone": zone, "name": name})


async def wait_for_negs(project: str, zones: Sequence[str], name: str, *, cluster: str,
                        lookup: NegLookup = lookup_neg, timeout: float | None = None,
                        interval: float | None = None, clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> list[str]:
    """The NEGs' self-links once every one exists; a RunError naming the missing ones after `timeout`.

    GKE reports the zones before it creates the NEGs: the controller writes neg-status and then
    starts the syncers that create them (pkg/neg/controller.go processService), so the report
    alone does not mean a backend service may reference them yet.
    """
    timeout = NEG_WAIT_SECONDS if timeout is None else timeout
    interval = NEG_POLL_SECONDS if interval is None else interval
    deadline = clock() + timeout
    missing, last_error = list(zones), ""
    while True:
        still = []
        for zone in missing:
            try:
                await lookup(project, zone, name)
            except Exception as error:  # any failure means "not there yet"; the last one is reported
                still.append(zone)
                last_error = str(error)
        missing = still
        if not missing:
            return neg_self_links(project, zones, name)
        if clock() >= deadline:
            raise pulumi.RunError(
                f"cluster {cluster}: GKE's NEG controller has not created NEG {name} in zone(s) "
                f"{', '.join(missing)} of project {project} within {timeout:g} s (last error: {last_error}). "
                f"The edge's backend services are not created without them. Check `kubectl -n {INGRESS_NAMESPACE} "
                f"describe service {INGRESS_RELEASE}` and `gcloud compute network-endpoint-groups list "
                f"--filter=name={name}`, then run `pulumi up` again.")
        await sleep(interval)


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
    """One cluster's ingress gateway (namespace, release, Service), its Gateway and edge routes, and its firewall."""

    namespace: k8s.core.v1.Namespace
    release: k8s.helm.v3.Release
    service: k8s.core.v1.Service
    neg_name: pulumi.Output[str]
    neg_self_links: pulumi.Output[list[str]]

    def __init__(self, name: str, args: IngressGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(INGRESS_GATEWAY_TYPE, name, None, opts)
        spec = args.cluster
        child = pulumi.ResourceOptions(parent=self)
        # The NEG name of the gateway in its own namespace. The controller refuses a NEG whose
        # description names another Service ("found conflicting description", pkg/neg/syncers/utils.go):
        # the stacks deployed with the gateway in istio-system keep their old NEGs until this one
        # replaces them in the backend services (docs/edge.md, "Moving a deployed edge").
        suffix = random.RandomId(f"{name}-neg-id", byte_length=3, opts=child)
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

        # Never `deleted_with` the cluster: deleting it is what waits for the NEGs to go (module docstring).
        provider = args.target.provider
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata={"name": INGRESS_NAMESPACE},
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(args.depends_on),
                                        custom_timeouts=pulumi.CustomTimeouts(delete=NAMESPACE_DELETE_TIMEOUT)),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-ingressgateway", name=INGRESS_RELEASE, **chart_source(args.chart_repository, "gateway"),
            version=args.istio_version, namespace=INGRESS_NAMESPACE,
            values=ingress_gateway_values(args.replicas),
            timeout=RELEASE_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions(parent=self, provider=provider,
                                        depends_on=[*args.depends_on, self.namespace]),
        )
        # After the release on create (the pods it selects), before it on delete.
        wait = f"{int(NEG_WAIT_SECONDS)}s"
        service = self.neg_name.apply(ingress_service)
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=service.apply(lambda s: s["metadata"]),
            spec=service.apply(lambda s: s["spec"]),
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.namespace, self.release],
                                        custom_timeouts=pulumi.CustomTimeouts(create=wait, update=wait)),
        )

        in_cluster = args.target.in_cluster(self, [*args.depends_on, self.release])
        gateway = edge_gateway(args.services)
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-edge-gateway", api_version=gateway["apiVersion"], kind=gateway["kind"],
            metadata=gateway["metadata"], spec=gateway["spec"], opts=in_cluster,
        )
        self.virtual_services: dict[str, k8s.apiextensions.CustomResource] = {}
        for routed in args.services:
            key = f"{routed.host}.{routed.namespace}"
            vs = edge_virtual_service(routed, spec.name)
            self.virtual_services[key] = k8s.apiextensions.CustomResource(
                f"{name}.{key}-edge-vs", api_version=vs["apiVersion"], kind=vs["kind"],
                metadata=vs["metadata"], spec=vs["spec"],
                opts=args.target.in_cluster(self, [*args.depends_on, self.gateway]),
            )

        # The NEGs GKE reports, once each exists: what the backend services may reference.
        gke = args.target.gke_cluster
        status = self.service.metadata.apply(lambda m: ((m and m.annotations) or {}).get(NEG_STATUS_ANNOTATION))

        def ready(a: list[Any]) -> pulumi.Output[list[str]]:
            project, locations, neg, reported = a
            zones = reported_zones(reported, neg, locations)
            return pulumi.Output.from_input(wait_for_negs(project, zones, neg, cluster=spec.name))

        self.neg_self_links = pulumi.Output.all(gke.project, gke.node_locations, self.neg_name, status).apply(ready)
        self.register_outputs({"negName": self.neg_name, "negSelfLinks": self.neg_self_links})
