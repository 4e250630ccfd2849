"""Typed, immutable stack configuration, validated in full before anything is declared.

Every rule reports the config key it concerns and the rule it breaks, so that a
bad edit in ``Pulumi.<stack>.yaml`` fails the preview with a message the author
can act on instead of a half-created mesh. Parsing is pure: the Pulumi runtime is
touched only by :func:`load`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

PROJECT = "gke-istio-mesh"

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

# Pulumi's auto-naming appends 8 characters ("-" + 7). The longest GKE name made from a cluster
# name is its node pool, `<name>-pool-xxxxxxx`, and GKE allows 40 characters for node pool names.
MAX_CLUSTER_NAME = 40 - len("-pool") - 8
# The longest Compute Engine name made from a network name is its firewall rule
# `<network>-istio-webhook-xxxxxxx`; Compute Engine allows 63 characters.
MAX_NETWORK_NAME = 63 - len("-istio-webhook") - 8
# GKE accepts at most this many master authorized networks on a cluster with a public endpoint.
MAX_AUTHORIZED_NETWORKS = 50

DEFAULT_CA_ALGORITHM = "RSA"
CA_ALGORITHMS = ("RSA", "ECDSA")
DEFAULT_ROOT_VALIDITY_HOURS = 87600  # 10 years, as Istio's tools/certs/common.mk
DEFAULT_INTERMEDIATE_VALIDITY_HOURS = 17520  # 2 years, as Istio's tools/certs/common.mk

SubsetLabel = Literal["network", "cluster"]
SUBSET_LABELS: tuple[str, ...] = ("network", "cluster")

# Namespaces that Kubernetes, GKE or Istio own; mesh namespaces must not claim them.
RESERVED_NAMESPACES = frozenset(
    {"kube-system", "kube-public", "kube-node-lease", "istio-system", "gke-managed-system",
     "gmp-system", "gmp-public"}
)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_REGION = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
_ZONE = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+-[a-z]$")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
_ISTIO_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-(alpha|beta|rc)\.\d+)?$")
_HOST_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


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

    def istio_version(self, cluster: ClusterSpec) -> str:
        """The Istio release a cluster runs: its own override, else the mesh-wide pin."""
        return cluster.istio_version or self.istio.version

    def cluster(self, name: str) -> ClusterSpec:
        return next(c for c in self.clusters if c.name == name)


# --------------------------------------------------------------------------- parsing


class _Problems:
    """Collects problems so a single run reports every one of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _known_keys(raw: Mapping[str, Any], key: str, allowed: Sequence[str], p: _Problems) -> None:
    for k in raw:
        if k not in allowed:
            p.add(f"{key}.{k} is not a known key (known: {', '.join(allowed)})")


def _mapping(value: Any, key: str, p: _Problems) -> Mapping[str, Any] | None:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        p.add(f"{key} must be an object, got {type(value).__name__}")
        return None
    return value


def _list(value: Any, key: str, p: _Problems) -> list[Any] | None:
    if value is None:
        return []
    if not isinstance(value, list):
        p.add(f"{key} must be a list, got {type(value).__name__}")
        return None
    return value


def _string(raw: Mapping[str, Any], k: str, key: str, p: _Problems, *, default: str | None = None) -> str | None:
    value = raw.get(k, default)
    if value is None:
        if default is None:
            p.add(f"{key} is required")
        return None
    if not isinstance(value, str) or not value:
        p.add(f"{key} must be a non-empty string, got {value!r}")
        return None
    return value


def _dns_label(value: str | None, key: str, p: _Problems, *, max_len: int = 63,
               pattern: re.Pattern[str] = _DNS1123_LABEL, what: str = "a DNS-1123 label",
               length_reason: str = "") -> None:
    if value is None:
        return
    if not pattern.match(value):
        p.add(f"{key} {value!r} must be {what} (lowercase letters, digits and '-', "
              f"starting with a {'letter' if pattern is _DNS1035_LABEL else 'letter or digit'}, "
              "ending with a letter or digit)")
    if len(value) > max_len:
        p.add(f"{key} {value!r} is {len(value)} characters; at most {max_len} are allowed{length_reason}")


def _network(value: str | None, key: str, p: _Problems) -> ipaddress.IPv4Network | None:
    if value is None:
        return None
    if "/" not in value:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            pass
        else:
            p.add(f"{key} {value!r} needs a prefix length (e.g. {value}/32)")
            return None
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        p.add(f"{key} {value!r} is not a valid IPv4 CIDR (e.g. 10.0.0.0/20)")
        return None
    if not isinstance(net, ipaddress.IPv4Network):
        p.add(f"{key} {value} must be an IPv4 CIDR")
        return None
    if str(net) != value:
        p.add(f"{key} {value} has host bits set; the network is {net}")
        return None
    return net


def _istio_version(value: str | None, key: str, p: _Problems) -> None:
    if value is None:
        return
    m = _ISTIO_VERSION.match(value)
    if not m:
        p.add(f"{key} {value!r} is not an Istio release version (MAJOR.MINOR.PATCH, e.g. "
              f"{DEFAULT_ISTIO_VERSION}, optionally -alpha.N, -beta.N or -rc.N)")
        return
    version = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if version[0] != MIN_ISTIO_VERSION[0] or version < MIN_ISTIO_VERSION:
        minimum = ".".join(map(str, MIN_ISTIO_VERSION))
        p.add(f"{key} {value} is not supported: Istio {minimum} or newer 1.x is required (older gateway "
              "charts fail Helm's JSON-schema validation, istio/istio#57354)")


def _weights(value: Any, key: str, cluster_names: Sequence[str], p: _Problems) -> tuple[tuple[str, int], ...] | None:
    mapping = _mapping(value, key, p)
    if mapping is None:
        return None
    ok = True
    for name, weight in mapping.items():
        if name not in cluster_names:
            p.add(f"{key}.{name} names an unknown cluster (clusters: {', '.join(cluster_names)})")
            ok = False
        if not _is_int(weight) or not 0 <= weight <= 100:
            p.add(f"{key}.{name} {weight!r} must be an integer from 0 to 100")
            ok = False
    if not ok:
        return None
    total = sum(mapping.values())
    if total != 100:
        p.add(f"{key} sum to {total}; the weights must sum to 100")
        return None
    # Every cluster gets a subset; the ones not named receive no traffic.
    return tuple((name, int(mapping.get(name, 0))) for name in cluster_names)


def _parse_istio(raw: Any, p: _Problems) -> IstioSettings:
    istio = _mapping(raw, "istio", p) or {}
    _known_keys(istio, "istio", ("version", "chartRepository"), p)
    version = _string(istio, "version", "istio.version", p, default=DEFAULT_ISTIO_VERSION)
    _istio_version(version, "istio.version", p)
    repo = _string(istio, "chartRepository", "istio.chartRepository", p, default=DEFAULT_CHART_REPOSITORY)
    if repo is not None and not re.match(r"^(https://|oci://)[^\s]+$", repo):
        p.add(f"istio.chartRepository {repo!r} must be an https:// or oci:// URL")
    return IstioSettings(version=version or DEFAULT_ISTIO_VERSION, chart_repository=repo or DEFAULT_CHART_REPOSITORY)


_CLUSTER_KEYS = ("name", "network", "region", "nodeCidr", "podCidr", "serviceCidr", "masterCidr",
                 "machineType", "minNodes", "maxNodes", "releaseChannel", "deletionProtection",
                 "istioVersion", "protect")
_CIDR_KEYS = ("nodeCidr", "podCidr", "serviceCidr", "masterCidr")


def _parse_cluster(i: int, raw: Any, p: _Problems) -> ClusterSpec | None:
    key = f"clusters[{i}]"
    c = _mapping(raw, key, p)
    if c is None:
        return None
    before = len(p.items)
    _known_keys(c, key, _CLUSTER_KEYS, p)
    name = _string(c, "name", f"{key}.name", p)
    _dns_label(name, f"{key}.name", p, max_len=MAX_CLUSTER_NAME, pattern=_DNS1035_LABEL, what="a DNS label",
               length_reason=" (its GKE node pool is named <name>-pool-xxxxxxx and GKE allows 40)")
    network = _string(c, "network", f"{key}.network", p)
    _dns_label(network, f"{key}.network", p, max_len=MAX_NETWORK_NAME, pattern=_DNS1035_LABEL,
               what="a DNS label (it names the VPC and Istio's network)",
               length_reason=" (its firewall rule is named <network>-istio-webhook-xxxxxxx and Compute Engine "
               "allows 63)")
    region = _string(c, "region", f"{key}.region", p)
    if region is not None:
        if _ZONE.match(region):
            p.add(f"{key}.region {region!r} is a zone; clusters are regional: use {region.rsplit('-', 1)[0]}")
        elif not _REGION.match(region):
            p.add(f"{key}.region {region!r} is not a GCP region (e.g. us-west1)")

    nets: dict[str, ipaddress.IPv4Network] = {}
    for k in _CIDR_KEYS:
        value = _string(c, k, f"{key}.{k}", p)
        net = _network(value, f"{key}.{k}", p)
        if net is not None:
            nets[k] = net
    if "masterCidr" in nets:
        m = nets["masterCidr"]
        if m.prefixlen != 28:
            p.add(f"{key}.masterCidr {m} must be a /28 (GKE's control-plane range)")
        elif not m.is_private:
            p.add(f"{key}.masterCidr {m} must be a private (RFC 1918) range")
    if "nodeCidr" in nets and nets["nodeCidr"].prefixlen > 29:
        p.add(f"{key}.nodeCidr {nets['nodeCidr']} is too small; a subnet is at least a /29")
    if "podCidr" in nets and not 9 <= nets["podCidr"].prefixlen <= 21:
        p.add(f"{key}.podCidr {nets['podCidr']} must be between /9 and /21 (GKE pod range)")
    if "serviceCidr" in nets and not 16 <= nets["serviceCidr"].prefixlen <= 27:
        p.add(f"{key}.serviceCidr {nets['serviceCidr']} must be between /16 and /27 (GKE service range)")
    names = [k for k in _CIDR_KEYS if k in nets]
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            if nets[a].overlaps(nets[b]):
                p.add(f"{key}.{b} {nets[b]} overlaps {key}.{a} {nets[a]}")

    machine_type = _string(c, "machineType", f"{key}.machineType", p, default=DEFAULT_MACHINE_TYPE)
    if machine_type is not None and not _MACHINE_TYPE.match(machine_type):
        p.add(f"{key}.machineType {machine_type!r} is not a Compute Engine machine type (e.g. e2-standard-4)")
    min_nodes = c.get("minNodes", DEFAULT_MIN_NODES)
    max_nodes = c.get("maxNodes", DEFAULT_MAX_NODES)
    if not _is_int(min_nodes) or min_nodes < 0:
        p.add(f"{key}.minNodes {min_nodes!r} must be an integer >= 0")
    if not _is_int(max_nodes) or not 1 <= max_nodes <= 1000:
        p.add(f"{key}.maxNodes {max_nodes!r} must be an integer from 1 to 1000")
    elif _is_int(min_nodes) and min_nodes > max_nodes:
        p.add(f"{key}.minNodes {min_nodes} is greater than {key}.maxNodes {max_nodes}")
    channel = c.get("releaseChannel", DEFAULT_RELEASE_CHANNEL)
    if channel not in RELEASE_CHANNELS:
        p.add(f"{key}.releaseChannel {channel!r} must be one of {', '.join(RELEASE_CHANNELS)}")
    protection = c.get("deletionProtection", True)
    if not isinstance(protection, bool):
        p.add(f"{key}.deletionProtection {protection!r} must be true or false")
    protect = c.get("protect", False)
    if not isinstance(protect, bool):
        p.add(f"{key}.protect {protect!r} must be true or false (Pulumi protect on the cluster's VPC, "
              "subnet, cluster and node pool)")
    istio_version = c.get("istioVersion")
    if istio_version is not None:
        if not isinstance(istio_version, str):
            p.add(f"{key}.istioVersion {istio_version!r} must be a string")
        else:
            _istio_version(istio_version, f"{key}.istioVersion", p)

    if len(p.items) > before:
        return None
    assert name and network and region and machine_type
    return ClusterSpec(
        name=name, network=network, region=region,
        node_cidr=str(nets["nodeCidr"]), pod_cidr=str(nets["podCidr"]),
        service_cidr=str(nets["serviceCidr"]), master_cidr=str(nets["masterCidr"]),
        machine_type=machine_type, min_nodes=min_nodes, max_nodes=max_nodes,
        release_channel=channel, deletion_protection=protection, istio_version=istio_version,
        protect=protect,
    )


def declared_cluster_names(raw: Any) -> list[str]:
    """The cluster names as written, including clusters whose other fields are invalid.

    Rules that refer to clusters by name (weights) check against these, so one bad
    field in a cluster does not also produce a misleading "unknown cluster" line.
    """
    if not isinstance(raw, list):
        return []
    return [c["name"] for c in raw if isinstance(c, Mapping) and isinstance(c.get("name"), str)]


def _parse_clusters(raw: Any, p: _Problems) -> tuple[ClusterSpec, ...]:
    items = _list(raw, "clusters", p)
    if items is None:
        return ()
    if len(items) < 2:
        p.add(f"clusters lists {len(items)} cluster(s); a multi-primary mesh needs at least 2")
    parsed = [_parse_cluster(i, c, p) for i, c in enumerate(items)]
    clusters = tuple(c for c in parsed if c is not None)
    for attr, label in (("name", "name"), ("network", "network")):
        seen: dict[str, int] = {}
        for i, c in enumerate(parsed):
            if c is None:
                continue
            value = getattr(c, attr)
            if value in seen:
                p.add(f"clusters[{i}].{label} {value!r} duplicates clusters[{seen[value]}].{label}; "
                      f"every cluster needs its own {label}")
            else:
                seen[value] = i
    return clusters


def _parse_namespaces(raw: Any, p: _Problems) -> tuple[str, ...]:
    items = _list(raw, "meshNamespaces", p) or []
    result: list[str] = []
    for i, ns in enumerate(items):
        key = f"meshNamespaces[{i}]"
        if not isinstance(ns, str):
            p.add(f"{key} {ns!r} must be a string")
            continue
        before = len(p.items)
        _dns_label(ns, key, p)
        if ns in RESERVED_NAMESPACES:
            p.add(f"{key} {ns!r} is a system namespace; mesh namespaces are for workloads")
        if ns in result:
            p.add(f"{key} {ns!r} is listed twice")
        if len(p.items) == before:
            result.append(ns)
    return tuple(result)


def _valid_host(host: str) -> bool:
    if host == "*":
        return True
    labels = host.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    return bool(labels) and len(host) <= 253 and all(_HOST_LABEL.match(label) and len(label) <= 63 for label in labels)


def _parse_cluster_local(raw: Any, p: _Problems) -> tuple[str, ...]:
    items = _list(raw, "clusterLocal", p) or []
    result: list[str] = []
    for i, host in enumerate(items):
        key = f"clusterLocal[{i}]"
        if not isinstance(host, str) or not _valid_host(host):
            p.add(f"{key} {host!r} must be a host name, a '*.' wildcard such as "
                  "'*.cache.svc.cluster.local', or '*' for every service")
        elif host in result:
            p.add(f"{key} {host!r} is listed twice")
        else:
            result.append(host)
    return tuple(result)


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def _parse_traffic(raw: Any, names: Sequence[str], namespaces: Sequence[str],
                   cluster_local: Sequence[str], p: _Problems) -> TrafficSpec:
    traffic = _mapping(raw, "traffic", p) or {}
    _known_keys(traffic, "traffic", ("subsetLabel", "weights", "services"), p)
    label = traffic.get("subsetLabel", "network")
    if label not in SUBSET_LABELS:
        p.add(f"traffic.subsetLabel {label!r} must be 'network' or 'cluster'")
        label = "network"
    if "weights" in traffic:
        weights = _weights(traffic["weights"], "traffic.weights", names, p) or ()
    else:
        # Safe default: everything stays on the first (blue) cluster.
        weights = tuple((n, 100 if i == 0 else 0) for i, n in enumerate(names))

    services: list[RoutedService] = []
    seen: dict[tuple[str, str], int] = {}
    for i, s in enumerate(_list(traffic.get("services"), "traffic.services", p) or []):
        key = f"traffic.services[{i}]"
        s = _mapping(s, key, p)
        if s is None:
            continue
        before = len(p.items)
        _known_keys(s, key, ("host", "namespace", "weights"), p)
        host = _string(s, "host", f"{key}.host", p)
        _dns_label(host, f"{key}.host", p, pattern=_DNS1035_LABEL,
                   what="a Kubernetes Service name (DNS-1035 label)")
        ns = _string(s, "namespace", f"{key}.namespace", p)
        _dns_label(ns, f"{key}.namespace", p)
        if ns is not None and _DNS1123_LABEL.match(ns) and ns not in namespaces:
            p.add(f"{key}.namespace {ns!r} is not in meshNamespaces; routed services need sidecars "
                  "in every cluster")
        own = _weights(s["weights"], f"{key}.weights", names, p) if "weights" in s else None
        if len(p.items) > before or host is None or ns is None:
            continue
        svc = RoutedService(host=host, namespace=ns, weights=own)
        if (host, ns) in seen:
            p.add(f"{key} {host}.{ns} duplicates traffic.services[{seen[(host, ns)]}]")
            continue
        seen[(host, ns)] = i
        for j, pattern in enumerate(cluster_local):
            if _host_matches(pattern, svc.fqdn):
                p.add(f"{key} {svc.fqdn} is kept in-cluster by clusterLocal[{j}] {pattern!r}; "
                      "a cluster-local service cannot be split across clusters")
        services.append(svc)
    return TrafficSpec(subset_label=label, weights=weights, services=tuple(services))


def _parse_authorized(raw: Any, clusters: Sequence[ClusterSpec], p: _Problems) -> tuple[AuthorizedNetwork, ...]:
    result: list[AuthorizedNetwork] = []
    for i, entry in enumerate(_list(raw, "authorizedNetworks", p) or []):
        key = f"authorizedNetworks[{i}]"
        entry = _mapping(entry, key, p)
        if entry is None:
            continue
        before = len(p.items)
        _known_keys(entry, key, ("name", "cidr"), p)
        name = _string(entry, "name", f"{key}.name", p)
        cidr = _string(entry, "cidr", f"{key}.cidr", p)
        net = _network(cidr, f"{key}.cidr", p)
        if net is not None and net.prefixlen == 0:
            p.add(f"{key}.cidr {net} would open every control plane to the internet; list the "
                  "operators' and CI runners' addresses instead")
        if len(p.items) == before and name and cidr:
            result.append(AuthorizedNetwork(name=name, cidr=cidr))
    # Each control plane also admits every other cluster's NAT egress address.
    total = len(result) + max(len(clusters) - 1, 0)
    if total > MAX_AUTHORIZED_NETWORKS:
        p.add(f"authorizedNetworks has {len(result)} entries; with {len(clusters) - 1} other-cluster "
              f"NAT addresses that is {total}, over GKE's limit of {MAX_AUTHORIZED_NETWORKS}")
    return tuple(result)


def _parse_ca(raw: Any, ca_is_secret: bool, p: _Problems) -> CaSpec:
    ca = _mapping(raw, "ca", p) or {}
    _known_keys(ca, "ca", ("algorithm", "rootValidityHours", "intermediateValidityHours",
                           "rootCertPem", "rootKeyPem"), p)
    algorithm = ca.get("algorithm", DEFAULT_CA_ALGORITHM)
    if algorithm not in CA_ALGORITHMS:
        p.add(f"ca.algorithm {algorithm!r} must be one of {', '.join(CA_ALGORITHMS)}")
    root_h = ca.get("rootValidityHours", DEFAULT_ROOT_VALIDITY_HOURS)
    inter_h = ca.get("intermediateValidityHours", DEFAULT_INTERMEDIATE_VALIDITY_HOURS)
    for k, v in (("rootValidityHours", root_h), ("intermediateValidityHours", inter_h)):
        if not _is_int(v) or v < 24:
            p.add(f"ca.{k} {v!r} must be an integer of at least 24 (hours)")
    if _is_int(root_h) and _is_int(inter_h) and inter_h >= root_h and "rootCertPem" not in ca:
        p.add(f"ca.intermediateValidityHours {inter_h} must be shorter than ca.rootValidityHours "
              f"{root_h}: an intermediate cannot outlive its root")
    cert, key = ca.get("rootCertPem"), ca.get("rootKeyPem")
    if (cert is None) != (key is None):
        p.add("ca.rootCertPem and ca.rootKeyPem must be set together (bring-your-own root) or not at all")
    elif cert is not None:
        if not ca_is_secret:
            p.add("ca.rootKeyPem must be set as a secret: pulumi config set --secret --path "
                  "ca.rootKeyPem < root-key.pem")
        _check_root_pem(cert, key, inter_h if _is_int(inter_h) else None, p)
    return CaSpec(
        algorithm=algorithm, root_validity_hours=root_h, intermediate_validity_hours=inter_h,
        root_cert_pem=cert, root_key_pem=key,
    )


def _check_root_pem(cert_pem: Any, key_pem: Any, intermediate_hours: int | None, p: _Problems) -> None:
    """A BYO root must be a CA that may sign intermediates, whose key is the one given, and that
    outlives the intermediates issued under it (pulumi-tls does not clamp their validity)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if not isinstance(cert_pem, str) or not isinstance(key_pem, str):
        p.add("ca.rootCertPem and ca.rootKeyPem must be PEM strings")
        return
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        p.add("ca.rootCertPem is not a PEM X.509 certificate")
        return
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        p.add("ca.rootKeyPem is not an unencrypted PEM private key")
        return
    try:
        constraints: x509.BasicConstraints | None = cert.extensions.get_extension_for_class(
            x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        p.add("ca.rootCertPem is not a CA certificate (basicConstraints CA:TRUE is required)")
    elif constraints.path_length == 0:
        p.add("ca.rootCertPem has pathlen:0, so it may not sign the per-cluster intermediate CAs; use a "
              "root with pathlen >= 1 or none")
    now = dt.datetime.now(dt.UTC)
    expires = cert.not_valid_after_utc
    if expires <= now:
        p.add(f"ca.rootCertPem expired on {expires:%Y-%m-%d}; renew the root")
    elif intermediate_hours is not None and now + dt.timedelta(hours=intermediate_hours) > expires:
        p.add(f"ca.intermediateValidityHours {intermediate_hours} would outlive ca.rootCertPem, which expires on "
              f"{expires:%Y-%m-%d}: shorten it or renew the root")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != cert.public_key().public_bytes(enc, pub):
        p.add("ca.rootKeyPem does not belong to ca.rootCertPem")


TOP_LEVEL_KEYS = ("meshId", "istio", "clusters", "traffic", "meshNamespaces", "clusterLocal",
                  "authorizedNetworks", "ca")


def parse(raw: Mapping[str, Any], *, project: str | None, ca_is_secret: bool = False) -> StackConfig:
    """Turn the project's raw config (keys without the namespace) into a StackConfig.

    Raises ConfigError listing every problem found.
    """
    p = _Problems()
    if not project:
        p.add("gcp:project is not set: run `pulumi config set gcp:project <project-id>`")
    mesh_id = raw.get("meshId", DEFAULT_MESH_ID)
    if not isinstance(mesh_id, str):
        p.add(f"meshId {mesh_id!r} must be a string")
    else:
        _dns_label(mesh_id, "meshId", p)
    istio = _parse_istio(raw.get("istio"), p)
    clusters = _parse_clusters(raw.get("clusters"), p)
    namespaces = _parse_namespaces(raw.get("meshNamespaces"), p)
    cluster_local = _parse_cluster_local(raw.get("clusterLocal"), p)
    traffic = _parse_traffic(raw.get("traffic"), declared_cluster_names(raw.get("clusters")), namespaces,
                             cluster_local, p)
    authorized = _parse_authorized(raw.get("authorizedNetworks"), clusters, p)
    ca = _parse_ca(raw.get("ca"), ca_is_secret, p)
    if p.items:
        raise ConfigError(p.items)
    return StackConfig(
        project=project or "", mesh_id=mesh_id, istio=istio, clusters=clusters, traffic=traffic,
        mesh_namespaces=namespaces, cluster_local=cluster_local,
        authorized_networks=authorized, ca=ca,
    )


def read_raw(get: Callable[[str], Any]) -> dict[str, Any]:
    """Read the project's keys through `get(full_key)`; structured values arrive as JSON."""
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        value = get(f"{PROJECT}:{key}")
        if value is None:
            continue
        if isinstance(value, str) and key != "meshId":
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # left as a string; the parser reports its type
        raw[key] = value
    return raw


def load() -> StackConfig:
    """Read and validate the stack's config; a bad value stops the program with a clean message."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = read_raw(runtime_config.get_config)
    unknown = _unknown_project_keys(runtime_config)
    try:
        if unknown:
            raise ConfigError([f"{k} is not a known key (known: {', '.join(TOP_LEVEL_KEYS)})" for k in unknown])
        return parse(
            raw,
            project=pulumi.Config("gcp").get("project"),
            ca_is_secret=runtime_config.is_config_secret(f"{PROJECT}:ca"),
        )
    except ConfigError as error:
        lines = "\n".join(f"  - {line}" for line in error.problems)
        raise pulumi.RunError(f"invalid stack config ({len(error.problems)} problem(s)):\n{lines}") from None


def _unknown_project_keys(runtime_config: Any) -> list[str]:
    # The language host passes config either in-process or through PULUMI_CONFIG.
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{PROJECT}:"
    return sorted(k[len(prefix):] for k in keys if k.startswith(prefix) and k[len(prefix):] not in TOP_LEVEL_KEYS)
