"""The stack's configuration as typed, immutable values, with the defaults a stack may leave out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_MESH_ID = "mesh1"
# Current stable Istio line at the time of writing (1.30.x); see README "Istio version".
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
# Version skew between clusters (docs/replace.md#version-skew). GKE: the minor versions a release
# channel offers side by side ("Available minor versions", GKE release notes, read 2026-12-04:
# Rapid 1.32-1.35, Regular 1.32-1.34, Stable 1.32-1.33, Extended 1.29-1.34); two clusters on a
# channel may differ by at most that span less one (the narrower channel's, across channels).
GKE_CHANNEL_MINOR_SPAN = {"RAPID": 4, "REGULAR": 3, "STABLE": 2, "EXTENDED": 6}
# Istio: a control plane may be one minor ahead of the data plane, never behind; a minor is
# supported until 6 weeks after the N+2 release (istio.io docs/releases/supported-releases).
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
# High availability of the traffic path (components/availability.py): replicas of istiod and of
# each east-west gateway; two is the least that survives one node drain.
DEFAULT_HA_REPLICAS = 2
MIN_HA_REPLICAS, MAX_HA_REPLICAS = 2, 20

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


@dataclass(frozen=True)
class IstioSettings:
    version: str
    chart_repository: str


@dataclass(frozen=True)
class MaintenanceWindow:
    """A weekly GKE maintenance window in UTC: `day` at `start_hour`, for `duration_hours`."""

    day: str
    start_hour: int
    duration_hours: int = MIN_WINDOW_HOURS

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


@dataclass(frozen=True)
class MaintenanceExclusion:
    """A period in which GKE starts no automatic upgrade of the given scope (e.g. a freeze during a flip)."""

    name: str
    start_time: str
    end_time: str
    scope: str = "NO_UPGRADES"


@dataclass(frozen=True)
class AvailabilitySpec:
    istiod_replicas: int = DEFAULT_HA_REPLICAS
    eastwest_replicas: int = DEFAULT_HA_REPLICAS


@dataclass(frozen=True)
class NatSpec:
    min_ports_per_vm: int = DEFAULT_NAT_MIN_PORTS
    max_ports_per_vm: int = DEFAULT_NAT_MAX_PORTS
    addresses: int = DEFAULT_NAT_ADDRESSES


@dataclass(frozen=True)
class ClusterSpec:
    """One GKE cluster, its own VPC and its place in the mesh."""

    name: str
    network: str
    region: str
    node_cidr: str
    pod_cidr: str
    service_cidr: str
    master_cidr: str
    machine_type: str = DEFAULT_MACHINE_TYPE
    min_nodes: int = DEFAULT_MIN_NODES
    max_nodes: int = DEFAULT_MAX_NODES
    release_channel: str = DEFAULT_RELEASE_CHANNEL
    deletion_protection: bool = True
    istio_version: str | None = None
    # GKE `minMasterVersion`: a floor for the control plane (GKE's auto-upgrades raise it further);
    # None lets GKE pick the channel's default version. Node pools follow the control plane.
    min_master_version: str | None = None
    # Pulumi `protect` on the VPC, subnet, cluster and node pool: no edit or destroy deletes them.
    protect: bool = False
    # When GKE may upgrade or repair this cluster (config or the derived default).
    maintenance: MaintenanceWindow = MaintenanceWindow(day="MO", start_hour=0)


@dataclass(frozen=True)
class RoutedService:
    host: str
    namespace: str
    weights: tuple[tuple[str, int], ...] | None = None
    # Public host names the edge serves this service under (DNS names, no wildcards).
    hosts: tuple[str, ...] = ()

    @property
    def fqdn(self) -> str:
        return f"{self.host}.{self.namespace}.svc.cluster.local"


@dataclass(frozen=True)
class TrafficSpec:
    subset_label: SubsetLabel
    weights: tuple[tuple[str, int], ...]
    services: tuple[RoutedService, ...] = ()

    def weights_for(self, service: RoutedService) -> dict[str, int]:
        """The split that applies to one service: its own weights, else the mesh-wide ones."""
        return dict(service.weights if service.weights is not None else self.weights)


@dataclass(frozen=True)
class EdgeSpec:
    """The public entry: an ingress gateway per cluster behind one global external Application LB.

    Off by default: turning it on exposes the routed services' `hosts` to the internet.
    """

    enabled: bool = False
    replicas: int = DEFAULT_EDGE_REPLICAS
    # HTTPS on the global entry with a Google-managed certificate for every configured host.
    https: bool = False


@dataclass(frozen=True)
class AuthorizedNetwork:
    name: str
    cidr: str


@dataclass(frozen=True)
class Hardening:
    """CIS GKE items beyond the fixed hardening: each on by default, each relaxable per stack."""

    database_encryption: bool = True  # application-layer Secrets encryption with a Cloud KMS key per cluster
    binary_authorization: str = BINARY_AUTHORIZATION_MODES[0]
    image_type: str = DEFAULT_IMAGE_TYPE
    subnet_flow_logs: bool = True
    flow_sampling: float = DEFAULT_FLOW_SAMPLING
    # No authorized network may be broader than this prefix length.
    authorized_network_min_prefix: int = DEFAULT_AUTHORIZED_NETWORK_MIN_PREFIX


@dataclass(frozen=True)
class CaSpec:
    algorithm: str = DEFAULT_CA_ALGORITHM
    root_validity_hours: int = DEFAULT_ROOT_VALIDITY_HOURS
    intermediate_validity_hours: int = DEFAULT_INTERMEDIATE_VALIDITY_HOURS
    # Bring-your-own root; kept out of repr so it never lands in a log line.
    root_cert_pem: str | None = field(default=None, repr=False)
    root_key_pem: str | None = field(default=None, repr=False)
    # Per cluster: raising the number issues that cluster's intermediate a new key and certificate
    # in the next `up` (the config-driven rotation; docs/rotate-intermediate-ca.md).
    intermediate_generations: tuple[tuple[str, int], ...] = ()
    # Bring-your-own intermediates: (cluster, cert PEM, key PEM) for every cluster, with only the
    # root's certificate (ca.rootCertPem): no root key is ever in config or state.
    intermediate_pems: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)
    # Roots every cluster trusts beside the signing root: the other root of a root transition
    # (docs/root-transition.md). Public certificates only.
    trusted_root_pems: tuple[str, ...] = field(default=(), repr=False)
    # The explicit flag that lets the signing root differ from the last deployment's.
    root_transition: bool = False

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


@dataclass(frozen=True)
class MeshLinkSpec:
    # Raising it replaces every reader token and, with them, every remote secret in one `up`.
    reader_token_generation: int = 0


@dataclass(frozen=True)
class FlipSpec:
    """How `python -m tools.flip` steps and judges a flip of this stack (section `flip`)."""

    steps: tuple[int, ...] = DEFAULT_FLIP_STEPS
    hold_seconds: int = DEFAULT_FLIP_HOLD_SECONDS
    interval_seconds: int = DEFAULT_FLIP_INTERVAL_SECONDS
    min_success_rate: float = DEFAULT_FLIP_MIN_SUCCESS_RATE
    max_p99_ms: float = DEFAULT_FLIP_MAX_P99_MS
    min_requests: int = DEFAULT_FLIP_MIN_REQUESTS


@dataclass(frozen=True)
class WorkloadsSpec:
    """Fleet membership and Config Sync from one Git repository and path (section `workloads`).

    Off by default: it registers every cluster in the project's fleet and lets Config Sync apply
    what the repository declares; docs/replace.md says what that needs and costs.
    """

    enabled: bool = False
    repo: str | None = None
    path: str = "."
    branch: str = "main"


@dataclass(frozen=True)
class StackConfig:
    project: str
    mesh_id: str
    istio: IstioSettings
    clusters: tuple[ClusterSpec, ...]
    traffic: TrafficSpec
    mesh_namespaces: tuple[str, ...] = ()
    cluster_local: tuple[str, ...] = ()
    authorized_networks: tuple[AuthorizedNetwork, ...] = ()
    ca: CaSpec = CaSpec()
    hardening: Hardening = Hardening()
    flip: FlipSpec = FlipSpec()
    availability: AvailabilitySpec = AvailabilitySpec()
    nat: NatSpec = NatSpec()
    maintenance_exclusions: tuple[MaintenanceExclusion, ...] = ()
    mesh_link: MeshLinkSpec = MeshLinkSpec()
    edge: EdgeSpec = EdgeSpec()
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


