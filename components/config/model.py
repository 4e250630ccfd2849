"""The stack's configuration: every key declared once, as a field of a frozen pydantic dataclass.

A field is the key (camelCase of its name, or `alias`), its type and default, its Rule (the check
and the wording of the rule) and `key(...)`, its one line of documentation. The docs table
(docs/config.md) and the JSON Schema (schema/Pulumi.stack.schema.json) are generated from these
(`python -m tools.config_docs`); rules that span keys live in `parsing` and `safety`.
The objects are the components' typed arguments: frozen, built by `parsing.parse`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from components.config import checks, gcp
from components.config.declare import SECTION, Bool, Choice, Int, Number, about
from components.names import MAX_CLUSTER_NAME, MAX_NETWORK_NAME, service_key

DEFAULT_MESH_ID = "mesh1"
# Current stable Istio line at the time of writing (1.30.x); see docs/istio-upgrade.md.
DEFAULT_ISTIO_VERSION = "1.30.3"
DEFAULT_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
# Oldest Istio this program installs. Networking/security v1 APIs and the gateway chart's
# `networkGateway` are older, but the gateway chart before 1.27.1 fails the stricter JSON-schema
# validation of Helm >= 3.18.5, which the Helm Release provider embeds (istio/istio#57354,
# fixed in 1.27.1), and no older line is supported upstream any more.
MIN_ISTIO_VERSION = (1, 27, 1)

DEFAULT_MACHINE_TYPE = "e2-standard-4"
DEFAULT_MIN_NODES = 1
DEFAULT_MAX_NODES = 3
DEFAULT_RELEASE_CHANNEL = "REGULAR"
RELEASE_CHANNELS = ("RAPID", "REGULAR", "STABLE", "EXTENDED")
# GKE's explicit versions: a minor ("1.33"), a patch ("1.33.5") or a GKE build ("1.33.5-gke.2100000").
GKE_VERSION_PATTERN = r"^1\.(\d+)(\.\d+(-gke\.\d+)?)?$"
# Version skew between clusters (docs/replace.md#version-skew). GKE: the minor versions a release
# channel offers side by side ("Available minor versions", GKE release notes, read 2026-12-04:
# Rapid 1.32-1.35, Regular 1.32-1.34, Stable 1.32-1.33, Extended 1.29-1.34); two clusters on a
# channel may differ by at most that span less one (the narrower channel's, across channels).
GKE_CHANNEL_MINOR_SPAN = {"RAPID": 4, "REGULAR": 3, "STABLE": 2, "EXTENDED": 6}
# Istio: a control plane may be one minor ahead of the data plane, never behind; a minor is
# supported until 6 weeks after the N+2 release (https://istio.io/latest/docs/releases/supported-releases/).
MAX_ISTIO_MINOR_SKEW = 1

# GKE accepts at most this many master authorized networks on a cluster with a public endpoint.
MAX_AUTHORIZED_NETWORKS = 50

# CIS GKE Benchmark defaults (docs/cis.md); a stack may relax them, the policy pack holds prod to them.
# pulumi-gcp ClusterBinaryAuthorization.evaluation_mode: DISABLED or PROJECT_SINGLETON_POLICY_ENFORCE
# (dry-run is the project policy's enforcementMode DRYRUN_AUDIT_LOG_ONLY, not a cluster setting).
BINARY_AUTHORIZATION_MODES = ("PROJECT_SINGLETON_POLICY_ENFORCE", "DISABLED")
# containerd node images; the Docker-based COS and UBUNTU images are gone since GKE 1.24.
IMAGE_TYPES = ("COS_CONTAINERD", "UBUNTU_CONTAINERD")
DEFAULT_IMAGE_TYPE = "COS_CONTAINERD"
DEFAULT_FLOW_SAMPLING = 0.5  # Compute Engine's own default for a subnet's flow logs
DEFAULT_AUTHORIZED_NETWORK_MIN_PREFIX = 24

DEFAULT_CA_ALGORITHM = "RSA"
CA_ALGORITHMS = ("RSA", "ECDSA")
DEFAULT_ROOT_VALIDITY_HOURS = 87600  # 10 years, as Istio's tools/certs/common.mk
DEFAULT_INTERMEDIATE_VALIDITY_HOURS = 17520  # 2 years, as Istio's tools/certs/common.mk
# Generations count up from 0; a bound keeps a typo (20250101) from looking like a plan.
MAX_GENERATION = 1000
# pulumi-tls (and the offline engine's `cryptography`) add the validity hours to now, and an X.509
# time ends with the year 9999 (RFC 5280 GeneralizedTime; Python's datetime stops there too): a
# bound of 100 years keeps every generated certificate encodable.
MAX_ROOT_VALIDITY_HOURS = 100 * 365 * 24
ROOT_VALIDITY_WHY = " (hours; at most 100 years, so certificate generation can encode the end date)"

# Progressive flip (tools/flip) thresholds: Flagger's defaults for success rate (99 %) and
# latency (500 ms), judged per step and per destination cluster; a step with fewer requests
# to a cluster that receives weight cannot be judged and is not a pass.
DEFAULT_FLIP_STEPS = (10, 25, 50, 100)
DEFAULT_FLIP_HOLD_SECONDS = 300
DEFAULT_FLIP_INTERVAL_SECONDS = 30
DEFAULT_FLIP_MIN_SUCCESS_RATE = 99.0
DEFAULT_FLIP_MAX_P99_MS = 500.0
DEFAULT_FLIP_MIN_REQUESTS = 50
# A replacement (tools/replace) keeps the retiring cluster at weight 0 this long, and it must see no
# request of a routed service in that time, before it may be removed (`--soak`).
DEFAULT_REPLACE_SOAK_SECONDS = 3600
# Managed Prometheus scrapes every proxy this often (components/telemetry.py); `increase`/`rate`
# need two samples, so one judgement needs a window of two scrape intervals: a hold, and a
# convergence wait, shorter than that cannot be judged.
SCRAPE_INTERVAL_SECONDS = 30
MIN_WINDOW_SECONDS = 2 * SCRAPE_INTERVAL_SECONDS
# The rule of a hold (`flip.hold`, and `--hold` of tools.flip); `{s}` is the hold in seconds.
HOLD_RULE = ("{s}s is shorter than one judgement needs: the query window must span two scrape intervals "
             f"({MIN_WINDOW_SECONDS}s)")
# Before a hold starts, each cluster's observed share must be within this many percentage
# points of its weight (the split judged is the split deployed); tools.verify --probe's default.
DEFAULT_FLIP_SHARE_TOLERANCE = 5.0
MAX_FLIP_SHARE_TOLERANCE = 50.0
# How long a step may wait for the observed split to match its weights: URL map changes reach
# Google's front ends asynchronously and istiod pushes each VirtualService to every proxy
# (docs/flip.md, "Convergence"); a step that does not converge in time fails.
DEFAULT_FLIP_CONVERGE_TIMEOUT_SECONDS = 600
MAX_FLIP_CONVERGE_TIMEOUT_SECONDS = 3600
# Consecutive inconclusive metric reads tolerated (Argo Rollouts' consecutiveErrorLimit default is 4).
DEFAULT_FLIP_INCONCLUSIVE_LIMIT = 4
MAX_FLIP_INCONCLUSIVE_LIMIT = 20
# High availability of the traffic path (components/availability.py): replicas of istiod and of
# each east-west gateway; two is the least that survives one node drain.
DEFAULT_HA_REPLICAS = 2
MIN_HA_REPLICAS, MAX_HA_REPLICAS = 2, 20
HA_WHY = " (two replicas are the least that survive a node drain)"

# Cloud NAT, dynamic port allocation. Every cross-network connection of a node goes to ONE
# destination (the peer's east-west gateway, port 15443), and a NAT port serves one connection
# per destination: ports per VM = concurrent connections per node to one peer gateway.
# RouterNat: min_ports_per_vm a power of two from 32 to 32768, max_ports_per_vm a power of two
# from 64 to 65536 and above the minimum; one NAT address has 64,512 ports (1024-65535).
DEFAULT_NAT_MIN_PORTS = 1024
DEFAULT_NAT_MAX_PORTS = 65536
NAT_MIN_PORTS_RANGE = (32, 32768)
NAT_MAX_PORTS_RANGE = (64, 65536)
NAT_PORTS_PER_ADDRESS = 64512
DEFAULT_NAT_ADDRESSES = 1
MAX_NAT_ADDRESSES = 16
# A regional node pool runs its node count in each of the region's zones, three unless set.
ZONES_PER_REGION = 3
# GKE gives every node a /24 of the pod range by default (110 pods per node: "Configure maximum Pods
# per node", cloud.google.com/kubernetes-engine/docs/how-to/flexible-pod-cidr).
NODE_POD_PREFIX = 24
# Stacks held to production's rules: the policy pack's PROD_STACKS (policy/policies.py), by stack name.
PROD_STACKS = ("prod",)

# GKE maintenance windows: "You must allow at least 48 hours of maintenance availability in a
# 32-day rolling window. Only contiguous availability windows of at least four hours are
# considered." (cloud.google.com/kubernetes-engine/docs/maintenance-window). A weekly window of
# H hours recurs at least 4 times in any 32 days, so H >= 12 satisfies it; a week (168 h) holds
# at most 14 such windows that never overlap, hence at most 14 clusters.
GKE_MIN_MAINTENANCE_HOURS, GKE_MAINTENANCE_PERIOD_DAYS = 48, 32
MIN_WEEKLY_OCCURRENCES = GKE_MAINTENANCE_PERIOD_DAYS // 7
MIN_WINDOW_HOURS = -(-GKE_MIN_MAINTENANCE_HOURS // MIN_WEEKLY_OCCURRENCES)  # 12
MAX_WINDOW_HOURS = 24
HOURS_PER_WEEK = 168
MAX_CLUSTERS = HOURS_PER_WEEK // MIN_WINDOW_HOURS  # 14
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# GKE accepts at most 20 maintenance exclusions per cluster (maintenance-windows-and-exclusions docs).
MAX_MAINTENANCE_EXCLUSIONS = 20
EXCLUSION_SCOPES = ("NO_UPGRADES", "NO_MINOR_UPGRADES", "NO_MINOR_OR_NODE_UPGRADES")

# The edge (components/ingress.py, components/edge.py): ingress gateway pods per cluster.
DEFAULT_EDGE_REPLICAS = 2
MIN_EDGE_REPLICAS = 2  # the gateway chart renders a PodDisruptionBudget only above one replica
MAX_EDGE_REPLICAS = 100
# A Google-managed SSL certificate covers at most 100 (non-wildcard) domains.
MAX_MANAGED_CERT_DOMAINS = 100

SubsetLabel = Literal["network", "cluster"]
SUBSET_LABELS: tuple[str, ...] = ("network", "cluster")

# Namespaces that Kubernetes, GKE or Istio own; mesh namespaces must not claim them.
RESERVED_NAMESPACES = frozenset(
    {"kube-system", "kube-public", "kube-node-lease", "istio-system", "gke-managed-system",
     "gmp-system", "gmp-public"}
)


class ConfigError(ValueError):
    """All problems found in a stack's config, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, config=SECTION)
class IstioSettings:
    version: Annotated[str, checks.istio_version(MIN_ISTIO_VERSION, DEFAULT_ISTIO_VERSION), about(
        "chart version of `base`, `istiod`, `gateway`", example="1.30.3")] = DEFAULT_ISTIO_VERSION
    chart_repository: Annotated[str, checks.text(r"^(https://|oci://)[^\s]+$", "must be an https:// or oci:// URL",
                                                 "https:// or oci:// URL"), about(
        "Helm repository of the three charts; with `oci://` each chart is installed as `<url>/base`, `<url>/istiod`, "
        "`<url>/gateway`", example="a mirror")] = DEFAULT_CHART_REPOSITORY


@dataclass(frozen=True, config=SECTION)
class MaintenanceWindow:
    """A weekly GKE maintenance window in UTC: `day` at `start_hour`, for `duration_hours`."""

    day: Annotated[str, Choice(*WEEKDAYS, why=" (UTC)"), about("weekday the window opens (UTC)", example="SA")]
    start_hour: Annotated[int, Int(0, 23, why=" (UTC)"), about("hour the window opens (UTC)", example=2)]
    duration_hours: Annotated[int, Int(
        MIN_WINDOW_HOURS, MAX_WINDOW_HOURS,
        why=f": GKE requires {GKE_MIN_MAINTENANCE_HOURS} h of maintenance availability in every "
            f"{GKE_MAINTENANCE_PERIOD_DAYS} days and a weekly window recurs only {MIN_WEEKLY_OCCURRENCES} times in "
            "some of them"), about("length of the window in hours", example=16)] = MIN_WINDOW_HOURS

    @property
    def week_start(self) -> int:
        """Hours after Monday 00:00 UTC at which the window opens."""
        return WEEKDAYS.index(self.day) * 24 + self.start_hour

    def hours(self) -> set[int]:
        """The hours of the week (0-167, wrapping) this window covers."""
        return {(self.week_start + h) % HOURS_PER_WEEK for h in range(self.duration_hours)}


def default_window(index: int) -> MaintenanceWindow:
    """Cluster `index`'s default: consecutive 12-hour slots from Monday 00:00 UTC, never overlapping."""
    start = (index * MIN_WINDOW_HOURS) % HOURS_PER_WEEK
    return MaintenanceWindow(day=WEEKDAYS[start // 24], start_hour=start % 24, duration_hours=MIN_WINDOW_HOURS)


RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


@dataclass(frozen=True, config=SECTION)
class MaintenanceExclusion:
    """A period in which GKE starts no automatic upgrade of the given scope (e.g. a freeze during a flip)."""

    name: Annotated[str, checks.text(r"^.+$", "must be a non-empty string", "string"), about(
        "the exclusion's name in every cluster", example="flip-green")]
    start_time: Annotated[str, checks.text(RFC3339_UTC, "must be an RFC 3339 UTC time such as 2026-12-01T18:00:00Z",
                                           "RFC 3339 UTC time"), about("start (UTC)", example="2026-12-01T18:00:00Z")]
    end_time: Annotated[str, checks.text(RFC3339_UTC, "must be an RFC 3339 UTC time such as 2026-12-01T18:00:00Z",
                                         "RFC 3339 UTC time, after startTime"), about(
        "end (UTC)", example="2026-12-03T18:00:00Z")]
    scope: Annotated[str, Choice(*EXCLUSION_SCOPES), about(
        "which upgrades are held back (`NO_UPGRADES` lasts at most 30 days)")] = "NO_UPGRADES"


@dataclass(frozen=True, config=SECTION)
class AvailabilitySpec:
    istiod_replicas: Annotated[int, Int(MIN_HA_REPLICAS, MAX_HA_REPLICAS, why=HA_WHY), about(
        "istiod chart `autoscaleMin` (and `replicaCount`), its PodDisruptionBudget and `topologySpreadConstraints` "
        "across zones (required) and nodes (preferred)", example=3)] = DEFAULT_HA_REPLICAS
    eastwest_replicas: Annotated[int, Int(MIN_HA_REPLICAS, MAX_HA_REPLICAS, why=HA_WHY), about(
        "the same for every east-west gateway (gateway chart `autoscaling.minReplicas`, `podDisruptionBudget`, "
        "`topologySpreadConstraints`)", example=3, alias="eastWestGatewayReplicas")] = DEFAULT_HA_REPLICAS


@dataclass(frozen=True, config=SECTION)
class NatSpec:
    min_ports_per_vm: Annotated[int, checks.power_of_two(NAT_MIN_PORTS_RANGE), about(
        "Cloud NAT dynamic port allocation: ports every node always has, i.e. its guaranteed concurrent connections "
        "to one peer east-west gateway (`:15443`)", example=2048)] = DEFAULT_NAT_MIN_PORTS
    max_ports_per_vm: Annotated[int, checks.power_of_two(NAT_MAX_PORTS_RANGE), about(
        "the most ports a node can grow to under load; greater than `minPortsPerVm`", example=8192)
    ] = DEFAULT_NAT_MAX_PORTS
    addresses: Annotated[int, Int(1, MAX_NAT_ADDRESSES, why=" (NAT addresses per network)"), about(
        "reserved NAT egress addresses per network (each is in the other clusters' authorized networks and "
        "east-west `loadBalancerSourceRanges`); `addresses × 64512 / minPortsPerVm ≥ maxNodes × zones` is checked",
        example=2)] = DEFAULT_NAT_ADDRESSES


_CLUSTER_NAME = checks.label(
    max_len=MAX_CLUSTER_NAME, dns1035=True,
    length_reason=" (its GKE node pool is named <name>-pool-xxxxxxx and GKE allows 40)",
    text=f"DNS label starting with a letter, ≤ {MAX_CLUSTER_NAME} (its node pool `<name>-pool-xxxxxxx` must fit "
         "GKE's 40), unique")
_NETWORK_NAME = checks.label(
    max_len=MAX_NETWORK_NAME, dns1035=True, what="a DNS label (it names the VPC and Istio's network)",
    length_reason=" (its firewall rule is named <network>-istio-webhook-xxxxxxx and Compute Engine allows 63)",
    text=f"DNS label starting with a letter, ≤ {MAX_NETWORK_NAME} (its firewall rule `<network>-istio-webhook-xxxxxxx` "
         "must fit 63), unique")


@dataclass(frozen=True, config=SECTION)
class ClusterSpec:
    """One GKE cluster, its own VPC and its place in the mesh."""

    name: Annotated[str, _CLUSTER_NAME, about(
        "GKE cluster (auto-named `blue-xxxxxxx`), Istio `clusterName`, remote secret names, subset names",
        example="blue")]
    network: Annotated[str, _NETWORK_NAME, about(
        "VPC name, `topology.istio.io/network`, istiod `global.network`, east-west gateway", example="network1")]
    region: Annotated[str, checks.region(gcp.REGIONS, gcp.READ_ON), about(
        "regional cluster, subnet, NAT, gateway address", example="us-west1")]
    node_cidr: Annotated[str, checks.cidr(min_subnet=True, doc="IPv4 CIDR ≤ /29, not overlapping a range Google Cloud "
                                          "prohibits in subnets"), about("subnet primary range (nodes)",
                                                                       example="10.10.0.0/20")]
    pod_cidr: Annotated[str, checks.cidr(prefix=(9, 21), prefix_why=" (GKE pod range)",
                                         doc="IPv4 CIDR /9–/21, no prohibited range; holds a /24 per node"), about(
        "secondary range `pods`: GKE gives each node a /24 of it (110 pods per node), so it must hold "
        "`maxNodes × zones` of them", example="10.12.0.0/14")]
    service_cidr: Annotated[str, checks.cidr(prefix=(16, 27), prefix_why=" (GKE service range)",
                                             doc="IPv4 CIDR /16–/27, no prohibited range"), about(
        "secondary range `services`", example="10.16.0.0/20")]
    master_cidr: Annotated[str, checks.cidr(master=True, prohibited=False,
                                            doc="/28 inside RFC 1918 (`10/8`, `172.16/12`, `192.168/16`)"), about(
        "control-plane range; source of the tcp:15017 firewall rule", example="172.16.0.0/28")]
    machine_type: Annotated[str, checks.machine_type(gcp.MACHINE_FAMILIES, gcp.MACHINE_TYPE_KINDS, gcp.READ_ON), about(
        "node pool machine type", example="n2-standard-8")] = DEFAULT_MACHINE_TYPE
    min_nodes: Annotated[int, Int(0), about("autoscaling minimum **per zone** (regional pool)", example=2)
                         ] = DEFAULT_MIN_NODES
    max_nodes: Annotated[int, Int(1, 1000), about("autoscaling maximum per zone; ≥ minNodes", example=10)
                         ] = DEFAULT_MAX_NODES
    release_channel: Annotated[str, Choice(*RELEASE_CHANNELS), about("GKE release channel", example="STABLE")
                               ] = DEFAULT_RELEASE_CHANNEL
    deletion_protection: Annotated[bool, Bool(), about(
        "GKE deletion protection (must be `false` before `pulumi destroy`; a prod stack keeps it on)",
        example=False)] = True
    istio_version: Annotated[str | None, checks.optional(checks.istio_version(MIN_ISTIO_VERSION,
                                                                             DEFAULT_ISTIO_VERSION)), about(
        "this cluster's chart version (upgrade one cluster first); every cluster within one minor of every other "
        "(Istio's control-plane/data-plane skew, [replace.md](replace.md#version-skew))", example="1.31.0",
        default="`istio.version`")
    ] = None
    # GKE `minMasterVersion`: a floor for the control plane (GKE's auto-upgrades raise it further);
    # None lets GKE pick the channel's default version. Node pools follow the control plane.
    min_master_version: Annotated[str | None, checks.optional(checks.text(
        GKE_VERSION_PATTERN, "must be a GKE version: a minor such as 1.33, a patch such as 1.33.5 or a GKE build "
        "such as 1.33.5-gke.2100000 (a floor: GKE's auto-upgrades raise the control plane further)",
        "GKE version `1.MINOR`, `1.MINOR.PATCH` or `1.MINOR.PATCH-gke.N`; two clusters' minors at most the narrower "
        "release channel's span less one apart (RAPID 3, REGULAR 2, STABLE 1, EXTENDED 5)")), about(
        "pulumi-gcp `Cluster.minMasterVersion`: a **floor** for the control plane, not a pin: inside a release "
        "channel GKE auto-upgrades past it, and the node pool (auto-upgrade on) follows the control plane; the "
        "version must be available in the cluster's channel ([replace.md](replace.md#version-skew))",
        example="1.34", default="unset (GKE picks the channel's default)")] = None
    # Pulumi `protect` on the VPC, subnet, cluster and node pool: no edit or destroy deletes them.
    protect: Annotated[bool, Bool(why=" (Pulumi protect on the cluster's VPC, subnet, cluster and node pool)"), about(
        "Pulumi `protect` on this cluster's VPC, subnet, GKE cluster and node pool: an update that would delete or "
        "replace them fails instead (a prod stack keeps it on)", example=True)] = False
    # When GKE may upgrade or repair this cluster (config or the derived default).
    maintenance: Annotated[MaintenanceWindow, about(
        "GKE `maintenancePolicy.recurringWindow`; no two clusters' windows may overlap",
        example={"day": "SA", "startHour": 2, "durationHours": 16},
        default="consecutive 12-hour slots by position: `clusters[0]` MO 00:00, `clusters[1]` MO 12:00, …")
    ] = MaintenanceWindow(day="MO", start_hour=0)


@dataclass(frozen=True, config=SECTION)
class RoutedService:
    host: Annotated[str, checks.label(dns1035=True, what="a Kubernetes Service name (DNS-1035 label)",
                                      text="Kubernetes Service name (DNS-1035 label)"), about(
        "the Service routed across clusters (`<host>.<namespace>.svc.cluster.local`)", example="helloworld")]
    namespace: Annotated[str, checks.label(text="DNS label, one of `meshNamespaces`"), about(
        "its namespace; must be in `meshNamespaces` (sidecars in every cluster)", example="sample")]
    weights: Annotated[tuple[tuple[str, int], ...] | None, checks.weights(), about(
        "this service's own split, instead of `traffic.weights`", example={"blue": 50, "green": 50},
        default="`traffic.weights`")] = None
    # Public host names the edge serves this service under (DNS names, no wildcards).
    hosts: Annotated[tuple[str, ...], checks.strings(
        checks.public_host, "list of DNS host names (≥ 2 lowercase labels, no wildcard, no IP), each on one service",
        {"type": "string", "format": "hostname"}), about(
        "public names the edge serves this service under: the Istio `edge-gateway` hosts, its edge VirtualService, "
        "a URL-map host rule and (with `edge.https`) the managed certificate's domains", example=["shop.example.com"])
    ] = ()

    @property
    def fqdn(self) -> str:
        return f"{self.host}.{self.namespace}.svc.cluster.local"

    @property
    def key(self) -> str:
        """The service's key in outputs, reports and flip plans (`<host>.<namespace>`)."""
        return service_key(self.host, self.namespace)


@dataclass(frozen=True, config=SECTION)
class TrafficSpec:
    subset_label: Annotated[SubsetLabel, Choice(*SUBSET_LABELS), about(
        "label the per-cluster subsets select on: `topology.istio.io/network` = network, or "
        "`topology.istio.io/cluster` = name", example="cluster")] = "network"
    weights: Annotated[tuple[tuple[str, int], ...], checks.weights(), about(
        "default split of every routed service; unnamed clusters get 0", example={"blue": 90, "green": 10},
        default="first cluster 100")] = ()
    services: Annotated[tuple[RoutedService, ...], about(
        "routed services; `weights` overrides the default split", example=[{"host": "helloworld",
                                                                            "namespace": "sample"}])] = ()

    def weights_for(self, service: RoutedService, mesh_weights: Mapping[str, int] | None = None) -> dict[str, int]:
        """The split that applies to one service: its own weights, else the mesh-wide ones (or
        `mesh_weights`, e.g. a flip step's, in their place)."""
        if service.weights is not None:
            return dict(service.weights)
        return dict(self.weights if mesh_weights is None else mesh_weights)

    def splits(self, mesh_weights: Mapping[str, int] | None = None) -> dict[str, dict[str, int]]:
        """Every routed service's split by its key: the `trafficSplit` output, and what a flip expects."""
        return {s.key: self.weights_for(s, mesh_weights) for s in self.services}


@dataclass(frozen=True, config=SECTION)
class EdgeSpec:
    """The public entry: an ingress gateway per cluster behind one global external Application LB.

    Off by default: turning it on exposes the routed services' `hosts` to the internet.
    """

    enabled: Annotated[bool, Bool(), about(
        "an ingress gateway per cluster and one global external Application Load Balancer split by "
        "`traffic.weights`; needs at least one `traffic.services[i].hosts`", example=True)] = False
    replicas: Annotated[int, Int(MIN_EDGE_REPLICAS, MAX_EDGE_REPLICAS, why=(
        " (one replica has no PodDisruptionBudget: a node drain takes the cluster's edge down)")), about(
        "the ingress gateway's `autoscaling.minReplicas`; with it a PodDisruptionBudget and a zone spread",
        example=3)] = DEFAULT_EDGE_REPLICAS
    # HTTPS on the global entry with a Google-managed certificate for every configured host.
    https: Annotated[bool, Bool(), about(
        "HTTPS on port 443 with a Google-managed certificate for every host (1–100 hosts, needs `edge.enabled`); "
        "port 80 then only redirects", example=True)] = False


@dataclass(frozen=True, config=SECTION)
class AuthorizedNetwork:
    name: Annotated[str, checks.text(r"^.+$", "must be a non-empty string", "string"), about(
        "a label for the range", example="ci")]
    cidr: Annotated[str, checks.cidr(prohibited=False, doc="IPv4 CIDR"), about(
        "a range admitted to every control plane", example="198.51.100.7/32")]


@dataclass(frozen=True, config=SECTION)
class Hardening:
    """CIS GKE items beyond the fixed hardening: each on by default, each relaxable per stack."""

    database_encryption: Annotated[bool, Bool(), about(
        "CIS GKE 5.3.1: application-layer Secrets encryption with a Cloud KMS key per cluster (90-day rotation)",
        example=False)] = True
    binary_authorization: Annotated[str, Choice(*BINARY_AUTHORIZATION_MODES, why=(
        " (audit-only is the project policy's DRYRUN_AUDIT_LOG_ONLY enforcement mode)")), about(
        "CIS GKE 5.10.5: clusters evaluate the project's Binary Authorization policy", example="DISABLED")
    ] = BINARY_AUTHORIZATION_MODES[0]
    image_type: Annotated[str, Choice(*IMAGE_TYPES, why=" (containerd node images)"), about(
        "CIS GKE 5.5.1: node image of the node pool and of the temporary default pool", example="UBUNTU_CONTAINERD")
    ] = DEFAULT_IMAGE_TYPE
    subnet_flow_logs: Annotated[bool, Bool(), about(
        "CIS GKE 5.6.1: VPC Flow Logs on each cluster's subnet", example=False)] = True
    flow_sampling: Annotated[float, Number(above=0, high=1, why=(
        " (the share of flows logged; turn logging off with hardening.subnetFlowLogs)")), about(
        "share of flows the subnet logs", example=1)] = DEFAULT_FLOW_SAMPLING
    # No authorized network may be broader than this prefix length.
    authorized_network_min_prefix: Annotated[int, Int(1, 32, why=(
        " (the broadest prefix length an authorized network may have)")), about(
        "CIS GKE 5.6.3: the broadest prefix an `authorizedNetworks` entry may have", example=32)
    ] = DEFAULT_AUTHORIZED_NETWORK_MIN_PREFIX


_GENERATION = Int(0, MAX_GENERATION, why=" (raise it by one to rotate)")
_PEM = checks.opaque("PEM")


@dataclass(frozen=True, config=SECTION)
class CaSpec:
    algorithm: Annotated[str, Choice(*CA_ALGORITHMS), about(
        "key type of root (RSA 4096 or ECDSA P-384) and intermediates", example="ECDSA")] = DEFAULT_CA_ALGORITHM
    root_validity_hours: Annotated[int, Int(24, MAX_ROOT_VALIDITY_HOURS, why=ROOT_VALIDITY_WHY), about(
        "generated root's lifetime", example=43800)] = DEFAULT_ROOT_VALIDITY_HOURS
    intermediate_validity_hours: Annotated[int, Int(24, MAX_ROOT_VALIDITY_HOURS, why=ROOT_VALIDITY_WHY), about(
        "the first cluster's intermediate lifetime (shorter than the root's); later clusters' are staggered "
        "shorter; renewed by `pulumi up` 30 days before expiry", example=8760)] = DEFAULT_INTERMEDIATE_VALIDITY_HOURS
    # Bring-your-own root; kept out of repr so it never lands in a log line.
    root_cert_pem: Annotated[str | None, _PEM, about(
        "bring your own root (with `ca.rootKeyPem`, as a secret), or the issuer of `ca.intermediates`",
    )] = Field(None, repr=False)
    root_key_pem: Annotated[str | None, _PEM, about(
        "the brought-in root's key: `pulumi config set --secret --path ca.rootKeyPem < key.pem`")
    ] = Field(None, repr=False)
    # Per cluster: raising the number issues that cluster's intermediate a new key and certificate
    # in the next `up` (the config-driven rotation; docs/rotate-intermediate-ca.md).
    intermediate_generations: Annotated[tuple[tuple[str, int], ...], checks.per_cluster(
        lambda v, cluster: _GENERATION.check(v, None), "map cluster → int 0–1000",
        {"type": "integer", "minimum": 0, "maximum": MAX_GENERATION}), about(
        "raising a cluster's number issues it a new intermediate key and certificate in the next `up`",
        example={"blue": 1}, default="every cluster 0")] = ()
    # Bring-your-own intermediates: (cluster, cert PEM, key PEM) for every cluster, with only the
    # root's certificate (ca.rootCertPem): no root key is ever in config or state.
    intermediate_pems: Annotated[tuple[tuple[str, str, str], ...], checks.per_cluster(
        checks.intermediate_pair, "map cluster → `{certPem, keyPem}` (secrets)",
        {"type": "object", "properties": {"certPem": {}, "keyPem": {}}, "additionalProperties": False}), about(
        "bring your own intermediates, one per cluster, issued by `ca.rootCertPem` (no root key)",
        alias="intermediates")] = Field((), repr=False)
    # Roots every cluster trusts beside the signing root: the other root of a root transition
    # (docs/root-transition.md). Public certificates only.
    trusted_root_pems: Annotated[tuple[str, ...], checks.opaque(
        "list of PEM root CA certificates (CA:TRUE, valid now, no repeats, not `ca.rootCertPem`)",
        {"type": "array", "items": {"type": "string"}}), about(
        "roots every cluster trusts beside the signing root: the other root of a root transition")
    ] = Field((), repr=False)
    # The explicit flag that lets the signing root differ from the last deployment's.
    root_transition: Annotated[bool, Bool(), about(
        "lets a brought-in signing root differ from the deployed one (docs/root-transition.md)", example=True)
    ] = False

    @property
    def bring_your_own_intermediates(self) -> bool:
        return bool(self.intermediate_pems)

    @property
    def bring_your_own_root(self) -> bool:
        return self.root_cert_pem is not None and not self.intermediate_pems

    @property
    def source(self) -> str:
        """Where the signing root comes from, by the config key that brings it."""
        if self.bring_your_own_intermediates:
            return "ca.intermediates"
        return "ca.rootCertPem" if self.bring_your_own_root else "generated"

    def generation(self, cluster: str) -> int:
        return dict(self.intermediate_generations).get(cluster, 0)


@dataclass(frozen=True, config=SECTION)
class MeshLinkSpec:
    # Raising it replaces every reader token and, with them, every remote secret in one `up`.
    reader_token_generation: Annotated[int, _GENERATION, about(
        "raising it replaces every reader token Secret and rewrites every remote secret in one `up`", example=1)
    ] = 0


@dataclass(frozen=True, config=SECTION)
class FlipSpec:
    """How `python -m tools.flip` steps and judges a flip of this stack (section `flip`)."""

    steps: Annotated[tuple[int, ...], checks.steps(), about(
        "`tools.flip`'s steps: percent of the way from the current to the final split; `--steps` overrides",
        example=[5, 20, 50, 100])] = DEFAULT_FLIP_STEPS
    hold_seconds: Annotated[int, checks.duration("300, '90s', '5m' or '1h'", low=MIN_WINDOW_SECONDS,
                                                 rule=HOLD_RULE), about(
        "how long each step is held and watched before it is judged; `--hold` overrides", example="10m",
        alias="hold")] = DEFAULT_FLIP_HOLD_SECONDS
    interval_seconds: Annotated[int, checks.duration("30, '30s' or '1m'"), about(
        "how often the metrics are read during a hold; at most `flip.hold`", example="1m", alias="interval")
    ] = DEFAULT_FLIP_INTERVAL_SECONDS
    min_success_rate: Annotated[float, Number(above=0, high=100, why=(
        " (percent of non-5xx responses; 0 would switch the check off)")), about(
        "per receiving cluster: share of requests that are not 5xx (`istio_requests_total`)", example=99.9)
    ] = DEFAULT_FLIP_MIN_SUCCESS_RATE
    max_p99_ms: Annotated[float, Number(above=0, why=(
        " (milliseconds; infinity would switch the check off)")), about(
        "per receiving cluster: p99 of `istio_request_duration_milliseconds`", example=250)] = DEFAULT_FLIP_MAX_P99_MS
    min_requests: Annotated[int, Int(1, why=" (a step without traffic is not a pass)"), about(
        "per receiving cluster: fewer requests in the hold is \"too little traffic\", which is not a pass",
        example=500)] = DEFAULT_FLIP_MIN_REQUESTS
    share_tolerance: Annotated[float, Number(above=0, high=MAX_FLIP_SHARE_TOLERANCE, why=(
        " (percentage points between a cluster's observed share and its weight)")), about(
        "before a hold starts, each cluster's observed share must come this close to its weight",
        example=10)] = DEFAULT_FLIP_SHARE_TOLERANCE
    converge_timeout_seconds: Annotated[int, checks.duration(
        "600, '10m' or '1h'", low=MIN_WINDOW_SECONDS, high=MAX_FLIP_CONVERGE_TIMEOUT_SECONDS, rule=(
            f"{{s}}s must be from {MIN_WINDOW_SECONDS}s (one read of two scrape intervals) to "
            f"{MAX_FLIP_CONVERGE_TIMEOUT_SECONDS}s")), about(
        "how long a step may wait for the observed split to match its weights; a step that never does fails",
        example="15m", alias="convergeTimeout")] = DEFAULT_FLIP_CONVERGE_TIMEOUT_SECONDS
    inconclusive_limit: Annotated[int, Int(0, MAX_FLIP_INCONCLUSIVE_LIMIT, why=(
        " (consecutive metric reads that cannot be trusted before the step fails)")), about(
        "consecutive inconclusive metric reads (NaN, negative, missing, unparsable) a step tolerates",
        example=2)] = DEFAULT_FLIP_INCONCLUSIVE_LIMIT


@dataclass(frozen=True, config=SECTION)
class MonitoringSpec:
    """Where the mesh's alert policies notify (components/alerts.py); none by default."""

    notification_channels: Annotated[tuple[str, ...], checks.strings(
        checks.notification_channel, "list of channel names, `projects/<project-id>/notificationChannels/<number>`",
        {"type": "string", "pattern": "^" + checks.NOTIFICATION_CHANNEL.pattern + "$"}), about(
        "Cloud Monitoring channels every alert policy notifies (`gcloud beta monitoring channels list`); none "
        "by default", example=["projects/my-project/notificationChannels/1234567890"])] = ()


_GIT_URL = r"^(https://|ssh://|git@)[^\s]+$"
# Relative, not empty, no `..` segment: Config Sync reads a directory inside the repository.
_REPO_DIR = r"^(?!/)(?!(.*/)?\.\.(/|$)).+$"
_GIT_BRANCH = r"^[^\s~^:?*\[\\]+$"


@dataclass(frozen=True, config=SECTION)
class WorkloadsSpec:
    """Fleet membership and Config Sync from one Git repository and path (section `workloads`).

    Off by default: it registers every cluster in the project's fleet and lets Config Sync apply
    what the repository declares; docs/replace.md says what that needs and costs.
    """

    enabled: Annotated[bool, Bool(), about(
        "every cluster joins the project's fleet (`gkehub.Membership`) and Config Sync pulls `workloads.repo` at "
        "`workloads.path` into it (`gkehub.FeatureMembership`), so a new cluster gets the same workloads without "
        "hand work; needs `workloads.repo` ([replace.md](replace.md#workloads-fleet-and-config-sync))",
        example=True)] = False
    repo: Annotated[str | None, checks.optional(checks.text(
        _GIT_URL, "must be a Git URL (https://, ssh:// or git@host:path)",
        "Git URL (`https://`, `ssh://`, `git@host:path`), readable without credentials")), about(
        "Config Sync's `syncRepo` (`secretType: none`)", example="https://github.com/acme/mesh-apps")] = None
    path: Annotated[str, checks.text(
        _REPO_DIR, "must be a relative directory inside the repository (e.g. apps/prod)",
        "relative directory, no `..`"), about("Config Sync's `policyDir`", example="apps/prod")] = "."
    branch: Annotated[str, checks.text(_GIT_BRANCH, "must be a Git branch name", "Git branch name"), about(
        "Config Sync's `syncBranch`", example="release")] = "main"


@dataclass(frozen=True, config=SECTION)
class StackConfig:
    # gcp:project, outside the project's namespace: checked by `parsing.parse`, not a key of this section.
    project: str = ""
    mesh_id: Annotated[str, checks.label(), about("istiod `global.meshID` in every cluster", example="mesh1")
                       ] = DEFAULT_MESH_ID
    istio: IstioSettings = IstioSettings()
    clusters: Annotated[tuple[ClusterSpec, ...], about(
        f"one VPC + one GKE cluster + one Istio primary each; 2–{MAX_CLUSTERS} (a week holds {MAX_CLUSTERS} "
        "non-overlapping 12-hour maintenance windows)", example="see `Pulumi.dev.yaml`")] = ()
    traffic: TrafficSpec = TrafficSpec()
    mesh_namespaces: Annotated[tuple[str, ...], checks.strings(
        checks.mesh_namespace, "list of DNS labels (not system namespaces, not `default`)",
        {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}), about(
        "namespaces created in every cluster with `istio-injection: enabled`", example=["sample"])] = ()
    cluster_local: Annotated[tuple[str, ...], checks.strings(
        checks.cluster_local_host, "list of service hosts: `*`, `*.<ns>.svc.cluster.local` or "
        "`<svc>.<ns>.svc.cluster.local`", {"type": "string"}), about(
        "istiod `meshConfig.serviceSettings[].settings.clusterLocal: true`; a routed service may not be cluster-local",
        example=["*.cache.svc.cluster.local"])] = ()
    authorized_networks: Annotated[tuple[AuthorizedNetwork, ...], about(
        "master authorized networks of every cluster (plus the other clusters' NAT addresses; GKE's limit of 50 "
        "in total), none broader than `hardening.authorizedNetworkMinPrefix`, not together every address",
        example=[{"name": "ci", "cidr": "198.51.100.7/32"}])] = ()
    ca: CaSpec = CaSpec()
    hardening: Hardening = Hardening()
    flip: FlipSpec = FlipSpec()
    availability: AvailabilitySpec = AvailabilitySpec()
    nat: NatSpec = NatSpec()
    maintenance_exclusions: Annotated[tuple[MaintenanceExclusion, ...], about(
        f"GKE `maintenancePolicy.maintenanceExclusions` of **every** cluster (at most {MAX_MAINTENANCE_EXCLUSIONS})",
        example=[{"name": "flip-green", "startTime": "2026-12-01T18:00:00Z", "endTime": "2026-12-03T18:00:00Z"}])
    ] = ()
    mesh_link: MeshLinkSpec = MeshLinkSpec()
    edge: EdgeSpec = EdgeSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    workloads: WorkloadsSpec = WorkloadsSpec()

    @property
    def edge_hosts(self) -> tuple[str, ...]:
        """Every public host name of every routed service, in config order."""
        return tuple(h for s in self.traffic.services for h in s.hosts)

    def istio_version(self, cluster: ClusterSpec) -> str:
        """The Istio release a cluster runs: its own override, else the mesh-wide pin."""
        return cluster.istio_version or self.istio.version

    def cluster(self, name: str) -> ClusterSpec:
        return next(c for c in self.clusters if c.name == name)


# The project's keys (`gke-istio-mesh:<key>`), in the declaration's order.
TOP_LEVEL_KEYS = tuple(info.alias for name, info in StackConfig.__pydantic_fields__.items() if name != "project")
