"""How long each kind of resource takes to create, and where each figure comes from.

The critical path is only as good as these numbers, so every row names its source.
"Published" rows quote a creation time someone reported from a real run; "estimate"
rows say what the guess is based on. Nothing here is measured on this machine (there
is no GCP here); the bench measures the *shape* of the graph and weighs it with this
table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.names import HELM_RELEASE
from offline.engine import Resource


@dataclass(frozen=True)
class Duration:
    """One row of the table: seconds to create, and why we believe it."""

    key: str
    label: str
    seconds: float
    published: bool
    source: str


_ROWS = (
    Duration("gcp:compute/network:Network", "VPC network", 22, True,
             "terraform apply log in opea-project/GenAIInfra PR #977 "
             "(https://github.com/opea-project/GenAIInfra/pull/977): "
             "`google_compute_network.vpc: Creation complete after 22s`"),
    Duration("gcp:compute/subnetwork:Subnetwork", "subnet (with secondary ranges)", 20, False,
             "estimate: a regional Compute Engine operation like the VPC's 22 s above"),
    Duration("gcp:compute/router:Router", "Cloud Router", 20, False,
             "estimate: a regional Compute Engine operation like the VPC's 22 s above"),
    Duration("gcp:compute/routerNat:RouterNat", "Cloud NAT", 15, False,
             "estimate: a patch of the router (a Compute Engine operation), shorter than creating it"),
    Duration("gcp:compute/address:Address", "reserved regional address", 5, False,
             "estimate: a single regional address reservation, no dependants to program"),
    Duration("gcp:compute/firewall:Firewall", "firewall rule", 12, False,
             "estimate: a global Compute Engine operation, shorter than creating the VPC"),
    Duration("gcp:container/cluster:Cluster", "GKE cluster (regional)", 484, True,
             "terraform apply log in LazloGDA/gcp-cicd-3 `output.md` (https://github.com/LazloGDA/gcp-cicd-3/blob/"
             "a69d1bb4e6cc4573d0f8842d39aae210c736b198/output.md): a regional Autopilot "
             "(europe-west1) cluster, `Creation complete after 8m4s`; also eclipse-theia/theia-cloud#336 "
             "(https://github.com/eclipse-theia/theia-cloud/issues/336), a cluster still creating at 8m21s. "
             "Ours also deletes the default pool, so this is a floor"),
    Duration("gcp:container/nodePool:NodePool", "GKE node pool (regional, 3 zones)", 120, False,
             "estimate: hashicorp/terraform-provider-google#13178 "
             "(https://github.com/hashicorp/terraform-provider-google/issues/13178) shows a pool still "
             "creating after 1m30s; 2 min assumed"),
    Duration("gcp:serviceaccount/account:Account", "service account", 5, False,
             "estimate: one IAM API call, no long-running operation"),
    Duration("gcp:projects/iAMMember:IAMMember", "project IAM member", 8, True,
             "hashicorp/terraform-provider-google#7814 "
             "(https://github.com/hashicorp/terraform-provider-google/issues/7814): project IAM bindings "
             "`Creation complete after 7s`/`8s` (same read-modify-write of the project policy)"),
    Duration("random:index/randomId:RandomId", "random id", 0, False, "estimate: computed locally by the provider"),
    Duration("tls", "pulumi-tls key / CSR / certificate", 1, False,
             "estimate: computed locally by the provider; RSA-4096 key generation dominates"),
    Duration("pulumi:providers:kubernetes", "Kubernetes provider", 0, False,
             "estimate: configuration only, no API call to create it"),
    Duration("kubernetes", "Kubernetes object (namespace, secret, Istio resource)", 1, False,
             "estimate: one API call; Pulumi's readiness check for these kinds returns at once"),
    Duration("helm:base", "Helm release `base` (CRDs, reader service account)", 15, False,
             "estimate: CRDs and RBAC only, no pods to wait for"),
    Duration("helm:istiod", "Helm release `istiod`", 60, False,
             "estimate: one Deployment to pull and become Ready (the release waits for it)"),
    Duration("helm:gateway", "Helm release `gateway` (east-west gateway pods)", 30, False,
             "estimate: one Deployment of Envoy becoming Ready"),
    Duration("helm:loadbalancer", "LoadBalancer wait inside the east-west release", 120, False,
             "estimate: GKE programs an external passthrough load balancer for the Service; a maintainer "
             "in linkerd/linkerd-examples#78 (https://github.com/linkerd/linkerd-examples/issues/78) has "
             "'seen it take as long as 5 minutes to acquire an external IP'; 2 min assumed"),
    Duration("gcp:compute/globalAddress:GlobalAddress", "reserved global address (edge)", 5, False,
             "estimate: a single global address reservation, like the regional one"),
    Duration("gcp:compute/healthCheck:HealthCheck", "health check (edge)", 12, False,
             "estimate: a global Compute Engine operation, like a firewall rule"),
    Duration("gcp:compute/backendService:BackendService", "backend service with zonal NEGs (edge)", 30, False,
             "estimate: a global Compute Engine operation that also attaches one NEG per zone"),
    Duration("gcp:compute/uRLMap:URLMap", "URL map (edge)", 12, False,
             "estimate: a global Compute Engine operation, like a firewall rule"),
    Duration("gcp:compute/targetHttpProxy:TargetHttpProxy", "target HTTP proxy (edge)", 12, False,
             "estimate: a global Compute Engine operation, like a firewall rule"),
    Duration("gcp:compute/targetHttpsProxy:TargetHttpsProxy", "target HTTPS proxy (edge)", 12, False,
             "estimate: a global Compute Engine operation, like a firewall rule"),
    Duration("gcp:compute/managedSslCertificate:ManagedSslCertificate", "Google-managed certificate (edge)", 5,
             False, "estimate: the resource is created at once; provisioning (DNS validation, up to an hour) "
             "happens after `pulumi up` and does not block it"),
    Duration("gcp:compute/globalForwardingRule:GlobalForwardingRule", "global forwarding rule (edge)", 20, False,
             "estimate: a global Compute Engine operation that programs the anycast entry"),
    Duration("component", "component resource", 0, False, "no API call: a grouping in Pulumi's state"),
)

TABLE: dict[str, Duration] = {row.key: row for row in _ROWS}


class UnknownResourceType(LookupError):
    """A resource type the duration table does not cover."""


def _is_load_balancer(values: Any) -> bool:
    return isinstance(values, dict) and (values.get("service") or {}).get("type") == "LoadBalancer"


def rows_for(r: Resource) -> list[Duration]:
    """The table rows whose durations add up to creating `r`."""
    if not r.custom:
        return [TABLE["component"]]
    if r.type.startswith("tls:"):
        return [TABLE["tls"]]
    if r.type == HELM_RELEASE:
        chart = r.inputs.get("chart")
        if f"helm:{chart}" not in TABLE:
            raise UnknownResourceType(
                f"no duration for Helm chart {chart!r} ({r.name}): add a row to bench/durations.py")
        rows = [TABLE[f"helm:{chart}"]]
        if _is_load_balancer(r.inputs.get("values")):
            rows.append(TABLE["helm:loadbalancer"])
        return rows
    if r.type.startswith("kubernetes:"):
        return [TABLE["kubernetes"]]
    if r.type in TABLE:
        return [TABLE[r.type]]
    raise UnknownResourceType(f"no duration for resource type {r.type!r} ({r.name}): add a row to bench/durations.py")


def seconds(r: Resource) -> float:
    """Estimated seconds to create `r` (the LoadBalancer wait included for the east-west release)."""
    return sum(row.seconds for row in rows_for(r))
