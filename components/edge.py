"""One global entry point for the internet, split between the clusters by the same weights as the mesh.

A global external Application Load Balancer (load-balancing scheme EXTERNAL_MANAGED):
reserved global anycast address -> forwarding rule -> target proxy -> URL map. The URL
map's weighted backend services carry `traffic.weights` (per service where a service has
its own): one backend service per cluster, whose backends are that cluster's ingress
gateway pods as zonal NEGs (GCE_VM_IP_PORT) and whose health check probes each pod's
readiness. Zonal NEG backends of one global external Application Load Balancer may sit in
different VPC networks of one project, which is what this mesh has; see docs/edge.md
for why not internet NEGs or GKE's multi-cluster Gateway.

Failover: the URL map picks a backend service by weight alone, never by health, so an
unhealthy cluster would keep its share and answer it with errors. Each cluster's backend
service therefore also holds every other cluster's NEGs: its own as PREFERRED backends
(filled first, so the weights hold while it is healthy), the others as DEFAULT backends
that take its share only when its own have no capacity left. A service load-balancing
policy with auto-capacity drain turns "fails its health check" into "no capacity"; a
gateway whose pods go unready empties its NEGs, which is no capacity as well.

A flip edits the URL map's weights; weight 0 keeps the backend service in place
(rollback is one edit) while it receives no edge traffic, and also sets that cluster's
NEGs to capacity 0 in every other backend service, so it is nobody's failover either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.config import ClusterSpec, RoutedService
from components.ingress import READINESS_PATH, STATUS_PORT
from components.names import GLOBAL_EDGE_TYPE

SCHEME = "EXTERNAL_MANAGED"  # the global external Application Load Balancer (not the classic one)
# Capacity per gateway pod for the RATE balancing mode (requests per second). Within one
# cluster it spreads load over the pods; it is not what splits traffic between clusters.
MAX_RATE_PER_ENDPOINT = 1000
# "Maximum number of ... GCE_VM_IP_PORT NEG backends ... per backend service: 50", not
# configurable (Cloud Load Balancing quotas and limits). Every backend service holds every
# cluster's NEGs, one per zone: clusters x zones must stay within it.
MAX_BACKENDS_PER_SERVICE = 50
# Preferred backends are filled first; DEFAULT ones take what they cannot (Backend.preference).
OWN, FALLBACK = "PREFERRED", "DEFAULT"
# The backend-service reference to a network-services resource is its full resource name.
NETWORK_SERVICES = "//networkservices.googleapis.com/"


def path_matcher_name(service: RoutedService) -> str:
    """A URL-map path matcher per routed service: `host-namespace` (a name, no dots)."""
    return f"{service.host}-{service.namespace}"


def weighted(backends: Mapping[str, pulumi.Input[str]], weights: Mapping[str, int],
             args_type: type) -> list:
    """Every cluster's backend service with its weight (0 included), in cluster order."""
    return [args_type(backend_service=backends[name], weight=weight) for name, weight in weights.items()]


def failover_clusters(clusters: Sequence[str], splits: Sequence[Mapping[str, int]]) -> set[str]:
    """Clusters that may take another cluster's edge share: weight above 0 in every split.

    A cluster at weight 0 anywhere is being drained (or was never meant to serve that
    host); taking failover traffic would undo the drain, so it takes none at all.
    """
    return {c for c in clusters if all(split.get(c, 0) > 0 for split in splits)}


def backend_plan(cluster: str, clusters: Sequence[str], failover: set[str]) -> list[tuple[str, str, float]]:
    """(NEG owner, preference, capacity scaler) for one cluster's backend service: itself first."""
    own = [(cluster, OWN, 1.0)]
    return own + [(c, FALLBACK, 1.0 if c in failover else 0.0) for c in clusters if c != cluster]


@dataclass(frozen=True)
class GlobalEdgeArgs:
    clusters: Sequence[ClusterSpec]
    # The mesh-wide split: serves every host no service claims.
    weights: Mapping[str, int]
    # Routed services with public hosts, each with the split that applies to it.
    services: Sequence[tuple[RoutedService, Mapping[str, int]]]
    # Per cluster: the self-links of its ingress gateway's zonal NEGs, known once GKE has created
    # every one (IngressGateway.neg_self_links), in the zones it reports.
    negs: Mapping[str, pulumi.Input[Sequence[str]]]
    # Per cluster: what makes those NEGs exist (the IngressGateway component); a backend
    # service is created after it and, on destroy, deleted before it.
    ingress: Mapping[str, pulumi.Resource]
    https: bool


class GlobalEdge(pulumi.ComponentResource):
    """The global external Application Load Balancer in front of every cluster's ingress gateway."""

    address: pulumi.Output[str]
    url_map: gcp.compute.URLMap
    backend_services: dict[str, gcp.compute.BackendService]

    def __init__(self, name: str, args: GlobalEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(GLOBAL_EDGE_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        address = gcp.compute.GlobalAddress(
            f"{name}-address", address_type="EXTERNAL", ip_version="IPV4",
            description="Global anycast entry of the mesh's edge", opts=child,
        )
        self.address = address.address

        # Gateway pods report ready on their status port only once Envoy has its config.
        health = gcp.compute.HealthCheck(
            f"{name}-ingress-ready",
            http_health_check=gcp.compute.HealthCheckHttpHealthCheckArgs(
                port=STATUS_PORT, port_specification="USE_FIXED_PORT", request_path=READINESS_PATH),
            check_interval_sec=5, timeout_sec=5, healthy_threshold=2, unhealthy_threshold=2,
            description="Istio ingress gateway readiness (pilot-agent /healthz/ready)",
            opts=child,
        )

        # Health becomes capacity: a NEG with under 25% of its endpoints healthy is drained to 0.
        policy = gcp.networkservices.ServiceLbPolicies(
            f"{name}-failover", location="global",
            auto_capacity_drain=gcp.networkservices.ServiceLbPoliciesAutoCapacityDrainArgs(enable=True),
            description="Drain an ingress that fails its health check; its share goes to the DEFAULT backends",
            opts=child,
        )
        policy_url = policy.id.apply(lambda i: NETWORK_SERVICES + i)

        names = [c.name for c in args.clusters]
        failover = failover_clusters(names, [args.weights, *(w for s, w in args.services if s.hosts)])
        every_neg = pulumi.Output.all(**{n: args.negs[n] for n in names})
        self.backend_services = {}
        for c in args.clusters:
            plan = backend_plan(c.name, names, failover)
            self.backend_services[c.name] = gcp.compute.BackendService(
                f"{name}-{c.name}",
                load_balancing_scheme=SCHEME,
                protocol="HTTP",
                health_checks=health.id,
                service_lb_policy=policy_url,
                backends=every_neg.apply(lambda negs, plan=plan: [
                    gcp.compute.BackendServiceBackendArgs(
                        group=link, balancing_mode="RATE", max_rate_per_endpoint=MAX_RATE_PER_ENDPOINT,
                        preference=preference, capacity_scaler=scaler)
                    for owner, preference, scaler in plan for link in negs[owner]]),
                description=f"Istio ingress gateway of cluster {c.name}, the others' as failover",
                # Every cluster's NEGs are referenced here: created after, and destroyed before, all of them.
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.ingress.values())),
            )
        ids = {n: b.id for n, b in self.backend_services.items()}

        routed = [(s, w) for s, w in args.services if s.hosts]
        self.url_map = gcp.compute.URLMap(
            f"{name}-routes",
            default_route_action=gcp.compute.URLMapDefaultRouteActionArgs(
                weighted_backend_services=weighted(
                    ids, args.weights, gcp.compute.URLMapDefaultRouteActionWeightedBackendServiceArgs)),
            host_rules=[gcp.compute.URLMapHostRuleArgs(hosts=list(s.hosts), path_matcher=path_matcher_name(s))
                        for s, _ in routed],
            path_matchers=[gcp.compute.URLMapPathMatcherArgs(
                name=path_matcher_name(s),
                default_route_action=gcp.compute.URLMapPathMatcherDefaultRouteActionArgs(
                    weighted_backend_services=weighted(
                        ids, w, gcp.compute.URLMapPathMatcherDefaultRouteActionWeightedBackendServiceArgs)),
            ) for s, w in routed],
            description="Edge split between the clusters (traffic.weights)",
            opts=child,
        )

        hosts = [h for s, _ in routed for h in s.hosts]
        if args.https:
            cert = gcp.compute.ManagedSslCertificate(
                f"{name}-cert", managed=gcp.compute.ManagedSslCertificateManagedArgs(domains=hosts), opts=child)
            https_proxy = gcp.compute.TargetHttpsProxy(
                f"{name}-https", url_map=self.url_map.id, ssl_certificates=[cert.id], opts=child)
            self._forwarding_rule(f"{name}-https", address, https_proxy.id, "443", child)
            # Plain HTTP on the same address only redirects to HTTPS.
            redirect = gcp.compute.URLMap(
                f"{name}-to-https",
                default_url_redirect=gcp.compute.URLMapDefaultUrlRedirectArgs(
                    https_redirect=True, strip_query=False, redirect_response_code="MOVED_PERMANENTLY_DEFAULT"),
                description="HTTP -> HTTPS", opts=child,
            )
            http_proxy = gcp.compute.TargetHttpProxy(f"{name}-http", url_map=redirect.id, opts=child)
        else:
            http_proxy = gcp.compute.TargetHttpProxy(f"{name}-http", url_map=self.url_map.id, opts=child)
        self._forwarding_rule(f"{name}-http", address, http_proxy.id, "80", child)

        self.hosts = hosts
        self.url = self.address.apply(lambda a: f"{'https' if args.https else 'http'}://{a}")
        self.register_outputs({"address": self.address, "hosts": hosts})

    @staticmethod
    def _forwarding_rule(name: str, address: gcp.compute.GlobalAddress, target: pulumi.Input[str], port: str,
                         opts: pulumi.ResourceOptions) -> gcp.compute.GlobalForwardingRule:
        return gcp.compute.GlobalForwardingRule(
            name, target=target, ip_address=address.address, ip_protocol="TCP", port_range=port,
            load_balancing_scheme=SCHEME, opts=opts,
        )
