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

# GKE accepts at most this many master authorized networks on a cluster with a public endpoint.
MAX_AUTHORIZED_NETWORKS = 50

DEFAULT_CA_ALGORITHM = "RSA"
CA_ALGORITHMS = ("RSA", "ECDSA")
DEFAULT_ROOT_VALIDITY_HOURS = 87600  # 10 years, as Istio's tools/certs/common.mk
DEFAULT_INTERMEDIATE_VALIDITY_HOURS = 17520  # 2 years, as Istio's tools/certs/common.mk

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
    # Pulumi `protect` on the VPC, subnet, cluster and node pool: no edit or destroy deletes them.
    protect: bool = False


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
class CaSpec:
    algorithm: str = DEFAULT_CA_ALGORITHM
    root_validity_hours: int = DEFAULT_ROOT_VALIDITY_HOURS
    intermediate_validity_hours: int = DEFAULT_INTERMEDIATE_VALIDITY_HOURS
    # Bring-your-own root; kept out of repr so it never lands in a log line.
    root_cert_pem: str | None = field(default=None, repr=False)
    root_key_pem: str | None = field(default=None, repr=False)

    @property
    def bring_your_own_root(self) -> bool:
        return self.root_cert_pem is not None


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
    edge: EdgeSpec = EdgeSpec()

    @property
    def edge_hosts(self) -> tuple[str, ...]:
        """Every public host name of every routed service, in config order."""
        return tuple(h for s in self.traffic.services for h in s.hosts)

    def istio_version(self, cluster: ClusterSpec) -> str:
        """The Istio release a cluster runs: its own override, else the mesh-wide pin."""
        return cluster.istio_version or self.istio.version

    def cluster(self, name: str) -> ClusterSpec:
        return next(c for c in self.clusters if c.name == name)


