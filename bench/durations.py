"""How long each step of each kind of resource takes, and where each figure comes from.

The critical paths are only as good as these numbers, so every row names its source or says
it is an estimate, and gives a low / typical / high range for each step (create, update,
delete). Nothing here is measured on this machine (there is no GCP here): the bench measures
the *shape* of the engine's step graph and weighs it with this table, once per level. Where the
end-to-end run has measured a step (bench/measured.json, docs/e2e.md), `overlay` puts its
figures in place of the estimate.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from components.names import HELM_RELEASE
from offline.engine import Resource
from offline.graph import CREATE, DELETE, UPDATE, StepWeight, concurrent_waits

LEVELS = ("low", "typical", "high")
Range = tuple[float, float, float]


@dataclass(frozen=True)
class Duration:
    """One row: seconds per step at each level, and why we believe them."""

    key: str
    label: str
    create: Range
    update: Range
    delete: Range
    published: bool  # True: the typical create figure is quoted from a real run at `source`
    source: str

    def seconds(self, step: str, level: str) -> float:
        return {CREATE: self.create, UPDATE: self.update, DELETE: self.delete}[step][LEVELS.index(level)]


_NONE: Range = (0, 0, 0)
_ROWS = (
    Duration("gcp:compute/network:Network", "VPC network", (15, 22, 60), (5, 10, 20), (15, 25, 60), True,
             "https://github.com/opea-project/GenAIInfra/pull/977 (terraform log: `google_compute_network.vpc: "
             "Creation complete after 22s`); https://github.com/turbot/steampipe-plugin-gcp/pull/214 (58 s); "
             "update and delete: estimate"),
    Duration("gcp:compute/subnetwork:Subnetwork", "subnet (with secondary ranges)", (10, 20, 40), (5, 10, 30),
             (10, 20, 40), False,
             "estimate: a regional Compute Engine operation like the VPC's; "
             "https://github.com/terraform-google-modules/terraform-google-container-vm/pull/31 shows a subnet "
             "still deleting after 20 s"),
    Duration("gcp:compute/router:Router", "Cloud Router",
             (10, 20, 40), (5, 10, 20), (10, 20, 40), False,
             "estimate: a regional Compute Engine operation like the VPC's"),
    Duration("gcp:compute/routerNat:RouterNat", "Cloud NAT",
             (10, 15, 40), (10, 15, 40), (10, 15, 40), False,
             "estimate: a patch of the router (a Compute Engine operation)"),
    Duration("gcp:monitoring/dashboard:Dashboard", "Cloud Monitoring dashboard",
             (1, 2, 10), (1, 2, 10), (1, 2, 10), False,
             "estimate: one Cloud Monitoring API call that stores a JSON layout; nothing to program or wait for"),
    Duration("gcp:monitoring/alertPolicy:AlertPolicy", "Cloud Monitoring alert policy",
             (1, 2, 10), (1, 2, 10), (1, 2, 10), False,
             "estimate: one Cloud Monitoring API call that stores the policy; nothing to program or wait for"),
    Duration("gcp:compute/address:Address", "reserved regional address",
             (3, 5, 15), (3, 5, 15), (3, 5, 15), False,
             "estimate: one regional address reservation, nothing to program"),
    Duration("gcp:compute/firewall:Firewall", "firewall rule",
             (5, 12, 30), (5, 12, 30), (5, 12, 30), False,
             "estimate: a global Compute Engine operation; "
             "https://github.com/terraform-google-modules/terraform-google-container-vm/pull/31 deletes firewall "
             "rules in 17 s and 27 s"),
    Duration("gcp:container/cluster:Cluster", "GKE Standard cluster (regional, default pool removed)",
             (360, 540, 900), (60, 180, 600), (180, 300, 600), False,
             "estimate anchored on published runs that are not quite ours: a regional *Autopilot* cluster "
             "`Creation complete after 8m4s` (https://github.com/LazloGDA/gcp-cicd-3/blob/"
             "a69d1bb4e6cc4573d0f8842d39aae210c736b198/output.md) and a cluster still creating at 8m21s "
             "(https://github.com/eclipse-theia/theia-cloud/issues/336); ours is Standard and also deletes its "
             "default pool, hence a typical 9 min. Update (master authorized networks): a control-plane "
             "update, estimate"),
    Duration("gcp:container/nodePool:NodePool", "GKE node pool (regional, 3 zones)", (90, 120, 300), (30, 120, 600),
             (60, 180, 400), False,
             "estimate: https://github.com/hashicorp/terraform-provider-google/issues/13178 shows a pool still "
             "creating after 1m30s (the low end); 2 min assumed"),
    Duration("gcp:serviceaccount/account:Account", "service account", (2, 5, 10), (2, 5, 10), (2, 5, 10), False,
             "estimate: https://github.com/turbot/steampipe-plugin-gcp/pull/214 shows "
             "`google_service_account.default: Creation complete after 6s`"),
    Duration("gcp:projects/iAMMember:IAMMember", "project IAM member", (7, 8, 30), (7, 8, 30), (7, 8, 30), True,
             "https://github.com/hashicorp/terraform-provider-google/issues/7814: project IAM bindings "
             "`Creation complete after 7s`/`8s` (read-modify-write of the project policy); high end: estimate "
             "for concurrent policy writes retrying"),
    Duration("gcp:kms/keyRing:KeyRing", "Cloud KMS key ring", (1, 2, 5), _NONE, _NONE, False,
             "estimate: one synchronous Cloud KMS API call (CreateKeyRing), no long-running operation; "
             "key rings are never deleted"),
    Duration("gcp:kms/cryptoKey:CryptoKey", "Cloud KMS key", (1, 2, 5), (1, 2, 5), (1, 2, 5), False,
             "estimate: one synchronous Cloud KMS API call (CreateCryptoKey); delete schedules destruction"),
    Duration("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "KMS key IAM member", (3, 5, 15), (3, 5, 15),
             (3, 5, 15), False,
             "estimate: a read-modify-write of the key's IAM policy, like a project IAM member but one resource"),
    Duration("random:index/randomId:RandomId", "random id", _NONE, _NONE, _NONE, False,
             "estimate: computed locally by the provider"),
    Duration("tls", "pulumi-tls key / CSR / certificate", (0, 1, 3), (0, 1, 3), _NONE, False,
             "estimate: computed locally by the provider; RSA-4096 key generation dominates"),
    Duration("pulumi:providers:kubernetes", "Kubernetes provider", _NONE, _NONE, _NONE, False,
             "estimate: configuration only, no API call"),
    Duration("kubernetes", "Kubernetes object (namespace, secret, Istio resource)", (0.5, 1, 5), (0.5, 1, 5),
             (0.5, 2, 30), False,
             "estimate: one API call; Pulumi's readiness check for these kinds returns at once (a namespace's "
             "deletion waits for its finalizers: the high end)"),
    Duration("helm:base", "Helm release `base` (CRDs, reader service account)", (5, 15, 45), (5, 15, 45),
             (5, 15, 45), False, "estimate: CRDs and RBAC only, no pods to wait for"),
    Duration("helm:istiod", "Helm release `istiod` (Deployment Ready)", (30, 60, 180), (30, 60, 180),
             (10, 30, 60), False,
             "estimate: one Deployment to pull through Cloud NAT and become Ready (the release waits for it)"),
    Duration("helm:gateway", "Helm release `gateway` (Deployment Ready)", (20, 30, 120), (5, 15, 60), (10, 30, 60),
             False, "estimate: one Deployment of Envoy becoming Ready; an update that changes only the Service "
             "rolls no pods"),
    Duration("helm:loadbalancer", "LoadBalancer address, waited for inside the east-west release", (60, 120, 300),
             (10, 30, 120), (30, 60, 180), False,
             "estimate: GKE programs an external passthrough load balancer for the Service; a maintainer in "
             "https://github.com/linkerd/linkerd-examples/issues/78 has 'seen it take as long as 5 minutes to "
             "acquire an external IP' (the high end); 2 min assumed. Helm waits for it at the same time as the "
             "pods (`offline.graph.concurrent_waits`)"),
    Duration("istio:push", "istiod pushes a changed route to every proxy", (0.1, 1, 10), _NONE, _NONE, False,
             "estimate: istiod's debounce (PILOT_DEBOUNCE_AFTER 100 ms) plus the push; high end for a large "
             "mesh. Counted once per flip, after the VirtualService update"),
    Duration("gcp:compute/globalAddress:GlobalAddress", "reserved global address (edge)",
             (2, 5, 15), (2, 5, 15), (2, 5, 15), False,
             "estimate: a single global address reservation, like the regional one"),
    Duration("gcp:compute/healthCheck:HealthCheck", "health check (edge)",
             (6, 12, 36), (6, 12, 36), (6, 12, 36), False,
             "estimate: a global Compute Engine operation, like a firewall rule"),
    Duration("gcp:networkservices/serviceLbPolicies:ServiceLbPolicies", "service load-balancing policy (edge)",
             (5, 10, 30), (5, 10, 30), (5, 10, 30), False,
             "estimate: a global Network Services operation, like a firewall rule"),
    Duration("gcp:compute/backendService:BackendService", "backend service with zonal NEGs (edge)",
             (15, 30, 90), (15, 30, 90), (15, 30, 90), False,
             "estimate: a global Compute Engine operation that also attaches one NEG per zone"),
    Duration("gcp:compute/uRLMap:URLMap", "URL map (edge)",
             (6, 12, 36), (6, 12, 36), (6, 12, 36), False,
             "estimate: a global Compute Engine operation, like a firewall rule"),
    Duration("gcp:compute/targetHttpProxy:TargetHttpProxy", "target HTTP proxy (edge)",
             (6, 12, 36), (6, 12, 36), (6, 12, 36), False,
             "estimate: a global Compute Engine operation, like a firewall rule"),
    Duration("gcp:compute/targetHttpsProxy:TargetHttpsProxy", "target HTTPS proxy (edge)",
             (6, 12, 36), (6, 12, 36), (6, 12, 36), False,
             "estimate: a global Compute Engine operation, like a firewall rule"),
    Duration("gcp:compute/managedSslCertificate:ManagedSslCertificate", "Google-managed certificate (edge)",
             (2, 5, 15), (2, 5, 15), (2, 5, 15), False,
             "estimate: the resource is created at once; provisioning (DNS validation, up to an hour) "
             "happens after `pulumi up` and does not block it"),
    Duration("gcp:compute/globalForwardingRule:GlobalForwardingRule", "global forwarding rule (edge)",
             (10, 20, 60), (10, 20, 60), (10, 20, 60), False,
             "estimate: a global Compute Engine operation that programs the anycast entry"),
    Duration("gcp:monitoring/dashboard:Dashboard", "Cloud Monitoring dashboard",
             (1, 2, 5), (1, 2, 5), (1, 2, 5), False,
             "estimate: one synchronous Cloud Monitoring API call (projects.dashboards), no long-running operation"),
    Duration("gcp:monitoring/alertPolicy:AlertPolicy", "Cloud Monitoring alert policy",
             (1, 2, 5), (1, 2, 5), (1, 2, 5), False,
             "estimate: one synchronous Cloud Monitoring API call (projects.alertPolicies), no long-running "
             "operation"),
    Duration("gcp:gkehub/feature:Feature", "fleet feature (Config Sync, with `workloads`)",
             (10, 30, 90), (10, 30, 90), (10, 30, 90), False,
             "estimate: a GKE Hub long-running operation"),
    Duration("gcp:gkehub/membership:Membership", "fleet membership (with `workloads`)",
             (30, 60, 180), (10, 30, 90), (30, 60, 180), False,
             "estimate: a GKE Hub long-running operation that registers the cluster"),
    Duration("gcp:gkehub/featureMembership:FeatureMembership", "Config Sync on one cluster (with `workloads`)",
             (10, 30, 120), (10, 30, 120), (10, 30, 120), False,
             "estimate: a GKE Hub feature update; Config Sync installs in the cluster after it returns"),
    Duration("component", "component resource", _NONE, _NONE, _NONE, False,
             "no API call: a grouping in Pulumi's state"),
)

# Figures measured by real runs (the e2e workflow, docs/e2e.md), written by `python -m tools.e2e measured`.
MEASURED_FILE = Path(__file__).with_name("measured.json")
# From this many samples on, the measured spread replaces the estimated low and high as well.
MIN_SAMPLES_FOR_SPREAD = 3


def overlay(rows: dict[str, Duration], measured: dict[str, Any]) -> dict[str, Duration]:
    """The table with measured figures in place of estimates, step by step.

    A measured step's typical figure is the median of its samples; its low and high are the
    samples' min and max once there are MIN_SAMPLES_FOR_SPREAD of them, before that the estimated
    range widened to take in what was measured. Steps nobody measured keep their estimate.
    """
    out = dict(rows)
    runs = len(measured.get("runs", []))
    for key, steps in measured.get("rows", {}).items():
        if key not in out:
            continue
        row, changes = out[key], {}
        for step, samples in steps.items():
            if not samples:
                continue
            typical = statistics.median(samples)
            if len(samples) >= MIN_SAMPLES_FOR_SPREAD:
                changes[step] = (min(samples), typical, max(samples))
            else:
                low, _, high = getattr(row, step)
                changes[step] = (min(low, *samples), typical, max(high, *samples))
        if changes:
            counts = ", ".join(f"{step} ×{len(steps[step])}" for step in changes)
            out[key] = replace(row, **changes, published=row.published or CREATE in changes,
                               source=f"measured: {counts} in {runs} e2e runs (bench/measured.json); "
                                      f"before: {row.source}")
    return out


def _load_measured(path: Path = MEASURED_FILE) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


ESTIMATES: dict[str, Duration] = {row.key: row for row in _ROWS}
TABLE: dict[str, Duration] = overlay(ESTIMATES, _load_measured())


class UnknownResourceType(LookupError):
    """A resource type the duration table does not cover."""


def rows_for(r: Resource) -> list[Duration]:
    """The rows that make up one step of `r`; for a Helm release, the waits it runs at once."""
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
        if "loadbalancer" in concurrent_waits(r):
            rows.append(TABLE["helm:loadbalancer"])
        return rows
    if r.type.startswith("kubernetes:"):
        return [TABLE["kubernetes"]]
    if r.type in TABLE:
        return [TABLE[r.type]]
    raise UnknownResourceType(f"no duration for resource type {r.type!r} ({r.name}): add a row to bench/durations.py")


def seconds(r: Resource, step: str = CREATE, level: str = "typical") -> float:
    """Seconds for one step of `r`: the slowest of the waits it runs at once (they overlap)."""
    return max(row.seconds(step, level) for row in rows_for(r))


def weight(level: str) -> StepWeight:
    """The StepWeight for `offline.graph.operation_chain` at one level."""
    return lambda r, step: seconds(r, step, level)
