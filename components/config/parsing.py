"""The stack's own rules: each config section parsed into the model, every problem reported at once."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from components.config.ca_checks import (
    _check_intermediate_pems,
    _check_root_pem,
    _check_trusted_roots,
)
from components.config.model import (
    BINARY_AUTHORIZATION_MODES,
    CA_ALGORITHMS,
    DEFAULT_AUTHORIZED_NETWORK_MIN_PREFIX,
    DEFAULT_CA_ALGORITHM,
    DEFAULT_CHART_REPOSITORY,
    DEFAULT_EDGE_REPLICAS,
    DEFAULT_FLIP_HOLD_SECONDS,
    DEFAULT_FLIP_INTERVAL_SECONDS,
    DEFAULT_FLIP_MAX_P99_MS,
    DEFAULT_FLIP_MIN_REQUESTS,
    DEFAULT_FLIP_MIN_SUCCESS_RATE,
    DEFAULT_FLIP_STEPS,
    DEFAULT_FLOW_SAMPLING,
    DEFAULT_IMAGE_TYPE,
    DEFAULT_INTERMEDIATE_VALIDITY_HOURS,
    DEFAULT_ISTIO_VERSION,
    DEFAULT_MACHINE_TYPE,
    DEFAULT_MAX_NODES,
    DEFAULT_MESH_ID,
    DEFAULT_MIN_NODES,
    DEFAULT_RELEASE_CHANNEL,
    DEFAULT_ROOT_VALIDITY_HOURS,
    GKE_CHANNEL_MINOR_SPAN,
    IMAGE_TYPES,
    MAX_AUTHORIZED_NETWORKS,
    MAX_EDGE_REPLICAS,
    MAX_GENERATION,
    MAX_ISTIO_MINOR_SKEW,
    MAX_MANAGED_CERT_DOMAINS,
    MIN_EDGE_REPLICAS,
    MIN_ISTIO_VERSION,
    RELEASE_CHANNELS,
    RESERVED_NAMESPACES,
    SUBSET_LABELS,
    AuthorizedNetwork,
    CaSpec,
    ClusterSpec,
    ConfigError,
    EdgeSpec,
    FlipSpec,
    Hardening,
    IstioSettings,
    MeshLinkSpec,
    RoutedService,
    StackConfig,
    TrafficSpec,
    WorkloadsSpec,
)
from components.config.rules import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    ISTIO_VERSION_PATTERN,
    MACHINE_TYPE_PATTERN,
    PROJECT_ID_PATTERN,
    REGION_PATTERN,
    WHOLE_INTERNET,
    ZONE_PATTERN,
    Problems,
    as_list,
    as_mapping,
    did_you_mean,
    dns_label,
    dns_name,
    duration_seconds,
    host_matches,
    increasing_percentages,
    ipv4_cidr,
    is_int,
    is_rfc1918,
    known_keys,
    mapping_items,
    prohibited_overlap,
    string_at,
    valid_host,
)
from components.config.safety import (
    parse_availability,
    parse_maintenance,
    parse_maintenance_exclusions,
    parse_nat,
)
from components.names import MAX_CLUSTER_NAME, MAX_NETWORK_NAME


def _istio_version(value: str | None, key: str, p: Problems) -> None:
    if value is None:
        return
    m = ISTIO_VERSION_PATTERN.match(value)
    if not m:
        p.add(f"{key} {value!r} is not an Istio release version (MAJOR.MINOR.PATCH, e.g. "
              f"{DEFAULT_ISTIO_VERSION}, optionally -alpha.N, -beta.N or -rc.N)")
        return
    version = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if version[0] != MIN_ISTIO_VERSION[0] or version < MIN_ISTIO_VERSION:
        minimum = ".".join(map(str, MIN_ISTIO_VERSION))
        p.add(f"{key} {value} is not supported: Istio {minimum} or newer 1.x is required (older gateway "
              "charts fail Helm's JSON-schema validation, istio/istio#57354)")


# GKE's explicit versions: a minor ("1.33"), a patch ("1.33.5") or a GKE build ("1.33.5-gke.2100000").
GKE_VERSION_PATTERN = re.compile(r"^1\.(\d+)(\.\d+(-gke\.\d+)?)?$")


def _gke_version(value: Any, key: str, p: Problems) -> None:
    if not isinstance(value, str) or not GKE_VERSION_PATTERN.match(value):
        p.add(f"{key} {value!r} must be a GKE version: a minor such as 1.33, a patch such as 1.33.5 or a GKE "
              "build such as 1.33.5-gke.2100000 (a floor: GKE's auto-upgrades raise the control plane further)")


def _minor(version: str) -> int:
    return int(version.split(".")[1])


def _version_skew(raw_clusters: Any, clusters: Sequence[ClusterSpec], istio: IstioSettings, p: Problems) -> None:
    """Clusters may differ in Istio and GKE versions only as far as Istio and GKE support."""
    index = {n: k for k, n in enumerate(declared_cluster_names(raw_clusters))}
    for a_k, a in enumerate(clusters):
        for b in clusters[:a_k]:
            i, j = index[a.name], index[b.name]
            va, vb = a.istio_version or istio.version, b.istio_version or istio.version
            # An invalid version is already reported by its own rule.
            valid = all(ISTIO_VERSION_PATTERN.match(v) for v in (va, vb))
            skew = abs(_minor(va) - _minor(vb)) if valid else 0
            if skew > MAX_ISTIO_MINOR_SKEW:
                key = f"clusters[{i}].istioVersion" if a.istio_version else "istio.version"
                other = f"clusters[{j}].istioVersion" if b.istio_version else "istio.version"
                p.add(f"{key} {va} ({a.name}) is {skew} minor releases from {other} {vb} ({b.name}); Istio "
                      f"supports a control plane at most {MAX_ISTIO_MINOR_SKEW} minor ahead of the proxies it "
                      "serves, and upgrades one minor at a time: keep the clusters within "
                      f"{MAX_ISTIO_MINOR_SKEW} minor (docs/istio-upgrade.md)")
            if a.min_master_version and b.min_master_version:
                skew = abs(_minor(a.min_master_version) - _minor(b.min_master_version))
                channel = min((a.release_channel, b.release_channel), key=GKE_CHANNEL_MINOR_SPAN.__getitem__)
                limit = GKE_CHANNEL_MINOR_SPAN[channel] - 1
                if skew > limit:
                    p.add(f"clusters[{i}].minMasterVersion {a.min_master_version} ({a.name}) is {skew} minor "
                          f"versions from clusters[{j}].minMasterVersion {b.min_master_version} ({b.name}); the "
                          f"{channel} release channel offers {GKE_CHANNEL_MINOR_SPAN[channel]} minor versions side "
                          f"by side, so its clusters can be at most {limit} apart")


def _weights(value: Any, key: str, cluster_names: Sequence[str] | None, p: Problems,
             ) -> tuple[tuple[str, int], ...] | None:
    """A split over the clusters; `cluster_names` is None when some cluster has no usable name, so a
    weight naming it is not reported again as an unknown cluster (the missing name already is)."""
    mapping = as_mapping(value, key, p)
    if mapping is None:
        return None
    ok = True
    for name, weight in mapping.items():
        if cluster_names is not None and name not in cluster_names:
            p.add(f"{key}.{name} names an unknown cluster{did_you_mean(str(name), cluster_names)} "
                  f"(clusters: {', '.join(cluster_names)})")
            ok = False
        if not is_int(weight) or not 0 <= weight <= 100:
            p.add(f"{key}.{name} {weight!r} must be an integer from 0 to 100")
            ok = False
    # The sum is its own problem: reported whenever every weight is a number, whatever else is wrong.
    if all(is_int(w) for w in mapping.values()):
        total = sum(mapping.values())
        if total != 100:
            p.add(f"{key} sum to {total}; the weights must sum to 100")
            ok = False
    if not ok or cluster_names is None:
        return None
    # Every cluster gets a subset; the ones not named receive no traffic.
    return tuple((name, int(mapping.get(name, 0))) for name in cluster_names)


def _parse_istio(raw: Any, p: Problems) -> IstioSettings:
    istio = as_mapping(raw, "istio", p) or {}
    known_keys(istio, "istio", ("version", "chartRepository"), p)
    version = string_at(istio, "version", "istio.version", p, default=DEFAULT_ISTIO_VERSION)
    _istio_version(version, "istio.version", p)
    repo = string_at(istio, "chartRepository", "istio.chartRepository", p, default=DEFAULT_CHART_REPOSITORY)
    if repo is not None and not re.match(r"^(https://|oci://)[^\s]+$", repo):
        p.add(f"istio.chartRepository {repo!r} must be an https:// or oci:// URL")
    return IstioSettings(version=version or DEFAULT_ISTIO_VERSION, chart_repository=repo or DEFAULT_CHART_REPOSITORY)


_CLUSTER_KEYS = ("name", "network", "region", "nodeCidr", "podCidr", "serviceCidr", "masterCidr",
                 "machineType", "minNodes", "maxNodes", "releaseChannel", "deletionProtection",
                 "istioVersion", "protect", "maintenance", "minMasterVersion")
_CIDR_KEYS = ("nodeCidr", "podCidr", "serviceCidr", "masterCidr")


def _parse_cluster(i: int, raw: Any, p: Problems) -> ClusterSpec | None:
    key = f"clusters[{i}]"
    c = as_mapping(raw, key, p)
    if c is None:
        return None
    before = len(p.items)
    known_keys(c, key, _CLUSTER_KEYS, p)
    name = string_at(c, "name", f"{key}.name", p)
    dns_label(name, f"{key}.name", p, max_len=MAX_CLUSTER_NAME, pattern=DNS1035_LABEL, what="a DNS label",
               length_reason=" (its GKE node pool is named <name>-pool-xxxxxxx and GKE allows 40)")
    network = string_at(c, "network", f"{key}.network", p)
    dns_label(network, f"{key}.network", p, max_len=MAX_NETWORK_NAME, pattern=DNS1035_LABEL,
               what="a DNS label (it names the VPC and Istio's network)",
               length_reason=" (its firewall rule is named <network>-istio-webhook-xxxxxxx and Compute Engine "
               "allows 63)")
    region = string_at(c, "region", f"{key}.region", p)
    if region is not None:
        if ZONE_PATTERN.match(region):
            p.add(f"{key}.region {region!r} is a zone; clusters are regional: use {region.rsplit('-', 1)[0]}")
        elif not REGION_PATTERN.match(region):
            p.add(f"{key}.region {region!r} is not a GCP region (e.g. us-west1)")

    nets: dict[str, ipaddress.IPv4Network] = {}
    for k in _CIDR_KEYS:
        value = string_at(c, k, f"{key}.{k}", p)
        net = ipv4_cidr(value, f"{key}.{k}", p)
        if net is not None:
            nets[k] = net
    if "masterCidr" in nets:
        m = nets["masterCidr"]
        if m.prefixlen != 28:
            p.add(f"{key}.masterCidr {m} must be a /28 (GKE's control-plane range)")
        elif not is_rfc1918(m):
            p.add(f"{key}.masterCidr {m} must be a private (RFC 1918) range")
    for k in ("nodeCidr", "podCidr", "serviceCidr"):
        if k in nets:
            prohibited_overlap(nets[k], f"{key}.{k}", p)
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

    machine_type = string_at(c, "machineType", f"{key}.machineType", p, default=DEFAULT_MACHINE_TYPE)
    if machine_type is not None and not MACHINE_TYPE_PATTERN.match(machine_type):
        p.add(f"{key}.machineType {machine_type!r} is not a Compute Engine machine type (e.g. e2-standard-4)")
    min_nodes = c.get("minNodes", DEFAULT_MIN_NODES)
    max_nodes = c.get("maxNodes", DEFAULT_MAX_NODES)
    if not is_int(min_nodes) or min_nodes < 0:
        p.add(f"{key}.minNodes {min_nodes!r} must be an integer >= 0")
    if not is_int(max_nodes) or not 1 <= max_nodes <= 1000:
        p.add(f"{key}.maxNodes {max_nodes!r} must be an integer from 1 to 1000")
    elif is_int(min_nodes) and min_nodes > max_nodes:
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
    min_master = c.get("minMasterVersion")
    if min_master is not None:
        _gke_version(min_master, f"{key}.minMasterVersion", p)

    if len(p.items) > before:
        return None
    assert name and network and region and machine_type
    return ClusterSpec(
        name=name, network=network, region=region,
        node_cidr=str(nets["nodeCidr"]), pod_cidr=str(nets["podCidr"]),
        service_cidr=str(nets["serviceCidr"]), master_cidr=str(nets["masterCidr"]),
        machine_type=machine_type, min_nodes=min_nodes, max_nodes=max_nodes,
        release_channel=channel, deletion_protection=protection, istio_version=istio_version,
        protect=protect, min_master_version=min_master,
    )


def _names_if_all_declared(raw: Any) -> list[str] | None:
    """The declared names, or None when some cluster entry has no string name (see `_weights`)."""
    names = declared_cluster_names(raw)
    if isinstance(raw, list) and len(names) < len(raw):
        return None
    return names


def declared_cluster_names(raw: Any) -> list[str]:
    """The cluster names as written, including clusters whose other fields are invalid.

    Rules that refer to clusters by name (weights) check against these, so one bad
    field in a cluster does not also produce a misleading "unknown cluster" line.
    """
    if not isinstance(raw, list):
        return []
    return [c["name"] for c in raw if isinstance(c, Mapping) and isinstance(c.get("name"), str)]


def _parse_clusters(raw: Any, p: Problems) -> tuple[ClusterSpec, ...]:
    items = as_list(raw, "clusters", p)
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


def _parse_namespaces(raw: Any, p: Problems) -> tuple[str, ...]:
    items = as_list(raw, "meshNamespaces", p) or []
    result: list[str] = []
    for i, ns in enumerate(items):
        key = f"meshNamespaces[{i}]"
        if not isinstance(ns, str):
            p.add(f"{key} {ns!r} must be a string")
            continue
        before = len(p.items)
        dns_label(ns, key, p)
        if ns in RESERVED_NAMESPACES:
            p.add(f"{key} {ns!r} is a system namespace; mesh namespaces are for workloads")
        if ns in result:
            p.add(f"{key} {ns!r} is listed twice")
        if len(p.items) == before:
            result.append(ns)
    return tuple(result)


def _parse_cluster_local(raw: Any, p: Problems) -> tuple[str, ...]:
    items = as_list(raw, "clusterLocal", p) or []
    result: list[str] = []
    for i, host in enumerate(items):
        key = f"clusterLocal[{i}]"
        if not isinstance(host, str) or not valid_host(host):
            p.add(f"{key} {host!r} must be a host name, a '*.' wildcard such as "
                  "'*.cache.svc.cluster.local', or '*' for every service")
        elif host in result:
            p.add(f"{key} {host!r} is listed twice")
        else:
            result.append(host)
    return tuple(result)


def _parse_traffic(raw: Any, names: Sequence[str] | None, namespaces: Sequence[str],
                   cluster_local: Sequence[str], p: Problems) -> TrafficSpec:
    traffic = as_mapping(raw, "traffic", p) or {}
    known_keys(traffic, "traffic", ("subsetLabel", "weights", "services"), p)
    label = traffic.get("subsetLabel", "network")
    if label not in SUBSET_LABELS:
        p.add(f"traffic.subsetLabel {label!r} must be 'network' or 'cluster'")
        label = "network"
    if "weights" in traffic:
        weights = _weights(traffic["weights"], "traffic.weights", names, p) or ()
    else:
        # Safe default: everything stays on the first (blue) cluster.
        weights = tuple((n, 100 if i == 0 else 0) for i, n in enumerate(names or ()))

    services: list[RoutedService] = []
    seen: dict[tuple[str, str], int] = {}
    public: dict[str, str] = {}  # public host -> the key that claimed it first
    for i, key, s in mapping_items(traffic.get("services"), "traffic.services", p):
        before = len(p.items)
        known_keys(s, key, ("host", "namespace", "weights", "hosts"), p)
        host = string_at(s, "host", f"{key}.host", p)
        dns_label(host, f"{key}.host", p, pattern=DNS1035_LABEL,
                   what="a Kubernetes Service name (DNS-1035 label)")
        ns = string_at(s, "namespace", f"{key}.namespace", p)
        dns_label(ns, f"{key}.namespace", p)
        if ns is not None and DNS1123_LABEL.match(ns) and ns not in namespaces:
            p.add(f"{key}.namespace {ns!r} is not in meshNamespaces; routed services need sidecars "
                  "in every cluster")
        own = _weights(s["weights"], f"{key}.weights", names, p) if "weights" in s else None
        hosts = _public_hosts(s.get("hosts"), f"{key}.hosts", public, p)
        if len(p.items) > before or host is None or ns is None:
            continue
        svc = RoutedService(host=host, namespace=ns, weights=own, hosts=hosts)
        if (host, ns) in seen:
            p.add(f"{key} {host}.{ns} duplicates traffic.services[{seen[(host, ns)]}]")
            continue
        seen[(host, ns)] = i
        for j, pattern in enumerate(cluster_local):
            if host_matches(pattern, svc.fqdn):
                p.add(f"{key} {svc.fqdn} is kept in-cluster by clusterLocal[{j}] {pattern!r}; "
                      "a cluster-local service cannot be split across clusters")
        services.append(svc)
    return TrafficSpec(subset_label=label, weights=weights, services=tuple(services))


def _public_hosts(raw: Any, key: str, claimed: dict[str, str], p: Problems) -> tuple[str, ...]:
    """A routed service's public host names: DNS names, each served by one service only."""
    result: list[str] = []
    for j, h in enumerate(as_list(raw, key, p) or []):
        k = f"{key}[{j}]"
        if not isinstance(h, str) or not dns_name(h):
            p.add(f"{k} {h!r} must be a DNS host name (two or more lowercase labels of letters, digits and "
                  "'-', at most 253 characters, e.g. shop.example.com; no wildcard, no IP address)")
        elif h in claimed:
            p.add(f"{k} {h!r} is already a host of {claimed[h]}; a public host routes to one service")
        else:
            claimed[h] = k
            result.append(h)
    return tuple(result)


def declared_hosts(raw_traffic: Any) -> list[Any]:
    """The public hosts as written, valid or not: edge rules count these, so one bad host name
    does not also produce a misleading "no hosts" line."""
    services = raw_traffic.get("services") if isinstance(raw_traffic, Mapping) else None
    if not isinstance(services, list):
        return []
    return [h for s in services if isinstance(s, Mapping) and isinstance(s.get("hosts"), list) for h in s["hosts"]]


def _parse_edge(raw: Any, hosts: Sequence[Any], p: Problems) -> EdgeSpec:
    """The public entry: off unless asked for; HTTPS needs host names for its managed certificate."""
    edge = as_mapping(raw, "edge", p) or {}
    known_keys(edge, "edge", ("enabled", "replicas", "https"), p)
    enabled, https = edge.get("enabled", False), edge.get("https", False)
    for k, v in (("enabled", enabled), ("https", https)):
        if not isinstance(v, bool):
            p.add(f"edge.{k} {v!r} must be true or false")
    replicas = edge.get("replicas", DEFAULT_EDGE_REPLICAS)
    if not is_int(replicas) or not MIN_EDGE_REPLICAS <= replicas <= MAX_EDGE_REPLICAS:
        p.add(f"edge.replicas {replicas!r} must be an integer from {MIN_EDGE_REPLICAS} to {MAX_EDGE_REPLICAS} "
              "(one replica has no PodDisruptionBudget: a node drain takes the cluster's edge down)")
        replicas = DEFAULT_EDGE_REPLICAS
    if https is True and enabled is not True:
        p.add("edge.https is true but edge.enabled is not: the certificate belongs to the edge")
    if enabled is True and not hosts:
        p.add("edge.enabled is true but no traffic.services[i].hosts is set: the edge would serve no host")
    if https is True and not hosts:
        p.add("edge.https needs host names for its Google-managed certificate: set traffic.services[i].hosts")
    if https is True and len(hosts) > MAX_MANAGED_CERT_DOMAINS:
        p.add(f"edge.https: traffic.services[i].hosts name {len(hosts)} hosts; a Google-managed certificate "
              f"covers at most {MAX_MANAGED_CERT_DOMAINS}")
    return EdgeSpec(enabled=enabled is True, replicas=replicas, https=https is True)


def _parse_authorized(raw: Any, cluster_count: int, nat_addresses: int, min_prefix: int | None,
                      p: Problems) -> tuple[AuthorizedNetwork, ...]:
    result: list[AuthorizedNetwork] = []
    nets: list[tuple[int, ipaddress.IPv4Network]] = []
    for i, key, entry in mapping_items(raw, "authorizedNetworks", p):
        before = len(p.items)
        known_keys(entry, key, ("name", "cidr"), p)
        name = string_at(entry, "name", f"{key}.name", p)
        cidr = string_at(entry, "cidr", f"{key}.cidr", p)
        net = ipv4_cidr(cidr, f"{key}.cidr", p)
        if net is not None and net.prefixlen == 0:
            p.add(f"{key}.cidr {net} would open every control plane to the internet; list the "
                  "operators' and CI runners' addresses instead")
        elif net is not None and min_prefix is not None and net.prefixlen < min_prefix:
            p.add(f"{key}.cidr {net} is broader than /{min_prefix} (hardening.authorizedNetworkMinPrefix); "
                  "list narrower ranges or relax the prefix")
        if net is not None and net.prefixlen > 0:
            nets.append((i, net))
        if len(p.items) == before and name and cidr:
            result.append(AuthorizedNetwork(name=name, cidr=cidr))
    # Entries that are each narrower can still add up to every address (0.0.0.0/1 + 128.0.0.0/1).
    if nets and WHOLE_INTERNET in ipaddress.collapse_addresses(n for _, n in nets):
        listed = ", ".join(f"[{i}] {n}" for i, n in nets)
        p.add(f"authorizedNetworks together cover every IPv4 address ({listed}); that opens every control "
              "plane to the internet")
    # Each control plane also admits every other cluster's NAT egress address.
    entries = len(raw) if isinstance(raw, list) else 0
    peers = max(cluster_count - 1, 0) * nat_addresses
    total = entries + peers
    if total > MAX_AUTHORIZED_NETWORKS:
        p.add(f"authorizedNetworks has {entries} entries; with {peers} other-cluster "
              f"NAT addresses that is {total}, over GKE's limit of {MAX_AUTHORIZED_NETWORKS}")
    return tuple(result)


def _generation(value: Any, key: str, p: Problems) -> int:
    if not is_int(value) or not 0 <= value <= MAX_GENERATION:
        p.add(f"{key} {value!r} must be an integer from 0 to {MAX_GENERATION} (raise it by one to rotate)")
        return 0
    return int(value)


def _parse_intermediate_generations(raw: Any, names: Sequence[str], p: Problems) -> tuple[tuple[str, int], ...]:
    """ca.intermediateGenerations: {cluster: n}; a cluster left out is at generation 0."""
    if raw is None:
        return ()
    mapping = as_mapping(raw, "ca.intermediateGenerations", p) or {}
    result: list[tuple[str, int]] = []
    for cluster, value in mapping.items():
        key = f"ca.intermediateGenerations.{cluster}"
        if cluster not in names:
            p.add(f"{key} names an unknown cluster (clusters: {', '.join(names)})")
            continue
        result.append((cluster, _generation(value, key, p)))
    return tuple(result)


def _parse_intermediate_pems(raw: Any, root_cert: Any, root_key: Any, ca_is_secret: bool, names: Sequence[str],
                             p: Problems) -> tuple[tuple[str, str, str], ...]:
    """ca.intermediates.<cluster>.{certPem,keyPem}: every cluster's own CA, signed elsewhere."""
    if raw is None:
        return ()
    mapping = as_mapping(raw, "ca.intermediates", p) or {}
    before = len(p.items)
    if root_cert is None:
        p.add("ca.intermediates needs ca.rootCertPem: the certificate of the root that issued them (public only)")
    if root_key is not None:
        p.add("ca.rootKeyPem must not be set with ca.intermediates: no root key belongs in the state")
    if not ca_is_secret:
        p.add("ca.intermediates keys must be set as secrets: pulumi config set --secret --path "
              "ca.intermediates.<cluster>.keyPem < key.pem")
    missing = [n for n in names if n not in mapping]
    if missing:
        p.add(f"ca.intermediates lacks {', '.join(missing)}: every cluster needs its own intermediate")
    result: list[tuple[str, str, str]] = []
    for cluster, entry in mapping.items():
        key = f"ca.intermediates.{cluster}"
        if cluster not in names:
            p.add(f"{key} names an unknown cluster (clusters: {', '.join(names)})")
            continue
        entry = as_mapping(entry, key, p)
        if entry is None:
            continue
        known_keys(entry, key, ("certPem", "keyPem"), p)
        _check_intermediate_pems(cluster, entry.get("certPem"), entry.get("keyPem"), root_cert, p)
        result.append((cluster, entry.get("certPem"), entry.get("keyPem")))
    return tuple(result) if len(p.items) == before else ()


def _parse_mesh_link(raw: Any, p: Problems) -> MeshLinkSpec:
    link = as_mapping(raw, "meshLink", p) or {}
    known_keys(link, "meshLink", ("readerTokenGeneration",), p)
    generation = _generation(link.get("readerTokenGeneration", 0), "meshLink.readerTokenGeneration", p)
    return MeshLinkSpec(reader_token_generation=generation)


def _parse_ca(raw: Any, ca_is_secret: bool, names: Sequence[str], p: Problems) -> CaSpec:
    ca = as_mapping(raw, "ca", p) or {}
    known_keys(ca, "ca", ("algorithm", "rootValidityHours", "intermediateValidityHours",
                           "rootCertPem", "rootKeyPem", "intermediateGenerations", "intermediates",
                           "trustedRootPems", "rootTransition"), p)
    algorithm = ca.get("algorithm", DEFAULT_CA_ALGORITHM)
    if algorithm not in CA_ALGORITHMS:
        p.add(f"ca.algorithm {algorithm!r} must be one of {', '.join(CA_ALGORITHMS)}")
    root_h = ca.get("rootValidityHours", DEFAULT_ROOT_VALIDITY_HOURS)
    inter_h = ca.get("intermediateValidityHours", DEFAULT_INTERMEDIATE_VALIDITY_HOURS)
    for k, v in (("rootValidityHours", root_h), ("intermediateValidityHours", inter_h)):
        if not is_int(v) or v < 24:
            p.add(f"ca.{k} {v!r} must be an integer of at least 24 (hours)")
    if is_int(root_h) and is_int(inter_h) and inter_h >= root_h and "rootCertPem" not in ca:
        p.add(f"ca.intermediateValidityHours {inter_h} must be shorter than ca.rootValidityHours "
              f"{root_h}: an intermediate cannot outlive its root")
    cert, key = ca.get("rootCertPem"), ca.get("rootKeyPem")
    pems = _parse_intermediate_pems(ca.get("intermediates"), cert, key, ca_is_secret, names, p)
    if "intermediates" in ca:
        # Bring-your-own intermediates: only the root's certificate, checked against each of them.
        pass
    elif (cert is None) != (key is None):
        p.add("ca.rootCertPem and ca.rootKeyPem must be set together (bring-your-own root) or not at all")
    elif cert is not None:
        if not ca_is_secret:
            p.add("ca.rootKeyPem must be set as a secret: pulumi config set --secret --path "
                  "ca.rootKeyPem < root-key.pem")
        _check_root_pem(cert, key, inter_h if is_int(inter_h) else None, p)
    trusted = _check_trusted_roots(ca.get("trustedRootPems"), cert, p)
    transition = ca.get("rootTransition", False)
    if not isinstance(transition, bool):
        p.add(f"ca.rootTransition {transition!r} must be true or false")
        transition = False
    return CaSpec(
        algorithm=algorithm, root_validity_hours=root_h, intermediate_validity_hours=inter_h,
        root_cert_pem=cert, root_key_pem=key,
        intermediate_generations=_parse_intermediate_generations(ca.get("intermediateGenerations"), names, p),
        intermediate_pems=pems, trusted_root_pems=trusted, root_transition=transition,
    )


_HARDENING_KEYS = ("databaseEncryption", "binaryAuthorization", "imageType", "subnetFlowLogs", "flowSampling",
                   "authorizedNetworkMinPrefix")


def _parse_hardening(raw: Any, p: Problems) -> Hardening:
    """CIS GKE defaults (docs/cis.md); every key may relax one, and prod's policy pack refuses that."""
    h = as_mapping(raw, "hardening", p) or {}
    known_keys(h, "hardening", _HARDENING_KEYS, p)
    flags: dict[str, bool] = {}
    for k in ("databaseEncryption", "subnetFlowLogs"):
        value = h.get(k, True)
        if not isinstance(value, bool):
            p.add(f"hardening.{k} {value!r} must be true or false")
            value = True
        flags[k] = value
    mode = h.get("binaryAuthorization", BINARY_AUTHORIZATION_MODES[0])
    if mode not in BINARY_AUTHORIZATION_MODES:
        p.add(f"hardening.binaryAuthorization {mode!r} must be one of {', '.join(BINARY_AUTHORIZATION_MODES)} "
              "(audit-only is the project policy's DRYRUN_AUDIT_LOG_ONLY enforcement mode)")
        mode = BINARY_AUTHORIZATION_MODES[0]
    image = h.get("imageType", DEFAULT_IMAGE_TYPE)
    if image not in IMAGE_TYPES:
        p.add(f"hardening.imageType {image!r} must be one of {', '.join(IMAGE_TYPES)} (containerd node images)")
        image = DEFAULT_IMAGE_TYPE
    sampling = h.get("flowSampling", DEFAULT_FLOW_SAMPLING)
    if isinstance(sampling, bool) or not isinstance(sampling, int | float) or not 0 < sampling <= 1:
        p.add(f"hardening.flowSampling {sampling!r} must be a number above 0 and at most 1 (the share of "
              "flows logged; turn logging off with hardening.subnetFlowLogs)")
        sampling = DEFAULT_FLOW_SAMPLING
    prefix = h.get("authorizedNetworkMinPrefix", DEFAULT_AUTHORIZED_NETWORK_MIN_PREFIX)
    if not is_int(prefix) or not 1 <= prefix <= 32:
        p.add(f"hardening.authorizedNetworkMinPrefix {prefix!r} must be an integer from 1 to 32 (the broadest "
              "prefix length an authorized network may have)")
        prefix = DEFAULT_AUTHORIZED_NETWORK_MIN_PREFIX
    return Hardening(
        database_encryption=flags["databaseEncryption"], binary_authorization=mode, image_type=image,
        subnet_flow_logs=flags["subnetFlowLogs"], flow_sampling=float(sampling),
        authorized_network_min_prefix=prefix,
    )


_FLIP_KEYS = ("steps", "hold", "interval", "minSuccessRate", "maxP99Ms", "minRequests")


def _parse_flip(raw: Any, p: Problems) -> FlipSpec:
    """The progressive flip's steps, hold and thresholds (tools/flip; docs/flip.md)."""
    before = len(p.items)
    flip = as_mapping(raw, "flip", p) or {}
    known_keys(flip, "flip", _FLIP_KEYS, p)
    steps = increasing_percentages(flip.get("steps", list(DEFAULT_FLIP_STEPS)))
    if steps is None:
        p.add(f"flip.steps {flip.get('steps')!r} must be a strictly increasing list of integers from 1 to 100 "
              "ending at 100 (percent of the way from the current to the final weights)")
    hold = duration_seconds(flip.get("hold", DEFAULT_FLIP_HOLD_SECONDS))
    if hold is None:
        p.add(f"flip.hold {flip.get('hold')!r} must be a duration such as 300, '90s', '5m' or '1h'")
    interval = duration_seconds(flip.get("interval", DEFAULT_FLIP_INTERVAL_SECONDS))
    if interval is None:
        p.add(f"flip.interval {flip.get('interval')!r} must be a duration such as 30, '30s' or '1m'")
    elif hold is not None and interval > hold:
        p.add(f"flip.interval {interval}s is longer than flip.hold {hold}s; the metrics are read at least once "
              "per hold")
    rate = flip.get("minSuccessRate", DEFAULT_FLIP_MIN_SUCCESS_RATE)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 100:
        p.add(f"flip.minSuccessRate {rate!r} must be a number from 0 to 100 (percent of non-5xx responses)")
    p99 = flip.get("maxP99Ms", DEFAULT_FLIP_MAX_P99_MS)
    if isinstance(p99, bool) or not isinstance(p99, (int, float)) or p99 <= 0:
        p.add(f"flip.maxP99Ms {p99!r} must be a positive number (milliseconds)")
    requests = flip.get("minRequests", DEFAULT_FLIP_MIN_REQUESTS)
    if not is_int(requests) or requests < 1:
        p.add(f"flip.minRequests {requests!r} must be an integer >= 1 (a step without traffic is not a pass)")
    if len(p.items) > before:
        return FlipSpec()
    return FlipSpec(steps=steps or DEFAULT_FLIP_STEPS, hold_seconds=hold or DEFAULT_FLIP_HOLD_SECONDS,
                    interval_seconds=interval or DEFAULT_FLIP_INTERVAL_SECONDS, min_success_rate=float(rate),
                    max_p99_ms=float(p99), min_requests=int(requests))


_GIT_URL = re.compile(r"^(https://|ssh://|git@)[^\s]+$")


def _parse_workloads(raw: Any, p: Problems) -> WorkloadsSpec:
    """Fleet + Config Sync: every cluster syncs one public Git repository's path (off by default)."""
    w = as_mapping(raw, "workloads", p) or {}
    known_keys(w, "workloads", ("enabled", "repo", "path", "branch"), p)
    before = len(p.items)
    enabled = w.get("enabled", False)
    if not isinstance(enabled, bool):
        p.add(f"workloads.enabled {enabled!r} must be true or false")
    repo = w.get("repo")
    if repo is not None and (not isinstance(repo, str) or not _GIT_URL.match(repo)):
        p.add(f"workloads.repo {repo!r} must be a Git URL (https://, ssh:// or git@host:path)")
    if enabled is True and repo is None:
        p.add("workloads.enabled is true but workloads.repo is not set: Config Sync needs the Git repository "
              "every cluster pulls its workloads from")
    path = w.get("path", ".")
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        p.add(f"workloads.path {path!r} must be a relative directory inside the repository (e.g. apps/prod)")
    branch = w.get("branch", "main")
    if not isinstance(branch, str) or not branch or any(ch in branch for ch in " ~^:?*[\\"):
        p.add(f"workloads.branch {branch!r} must be a Git branch name")
    if len(p.items) > before:
        return WorkloadsSpec()
    return WorkloadsSpec(enabled=enabled, repo=repo, path=path, branch=branch)


TOP_LEVEL_KEYS = ("meshId", "istio", "clusters", "traffic", "meshNamespaces", "clusterLocal",
                  "authorizedNetworks", "ca", "hardening", "flip", "availability", "nat", "maintenanceExclusions",
                  "meshLink", "edge", "workloads")


def parse(raw: Mapping[str, Any], *, project: str | None, ca_is_secret: bool = False) -> StackConfig:
    """Turn the project's raw config (keys without the namespace) into a StackConfig.

    Raises ConfigError listing every problem found.
    """
    p = Problems()
    if not project:
        p.add("gcp:project is not set: run `pulumi config set gcp:project <project-id>`")
    elif not PROJECT_ID_PATTERN.match(project):
        p.add(f"gcp:project {project!r} is not a Google Cloud project ID (6 to 30 lowercase letters, digits "
              "and '-', starting with a letter and not ending with '-')")
    mesh_id = raw.get("meshId", DEFAULT_MESH_ID)
    if not isinstance(mesh_id, str):
        p.add(f"meshId {mesh_id!r} must be a string")
    else:
        dns_label(mesh_id, "meshId", p)
    istio = _parse_istio(raw.get("istio"), p)
    clusters = _parse_clusters(raw.get("clusters"), p)
    namespaces = _parse_namespaces(raw.get("meshNamespaces"), p)
    cluster_local = _parse_cluster_local(raw.get("clusterLocal"), p)
    traffic = _parse_traffic(raw.get("traffic"), _names_if_all_declared(raw.get("clusters")), namespaces,
                             cluster_local, p)
    hardening = _parse_hardening(raw.get("hardening"), p)
    availability = parse_availability(raw.get("availability"), p)
    nat = parse_nat(raw.get("nat"), clusters, p)
    clusters = parse_maintenance(raw.get("clusters"), clusters, p)
    exclusions = parse_maintenance_exclusions(raw.get("maintenanceExclusions"), p)
    raw_clusters = raw.get("clusters")
    authorized = _parse_authorized(raw.get("authorizedNetworks"),
                                   len(raw_clusters) if isinstance(raw_clusters, list) else 0, nat.addresses,
                                   hardening.authorized_network_min_prefix, p)
    ca = _parse_ca(raw.get("ca"), ca_is_secret, declared_cluster_names(raw.get("clusters")), p)
    mesh_link = _parse_mesh_link(raw.get("meshLink"), p)
    flip = _parse_flip(raw.get("flip"), p)
    edge = _parse_edge(raw.get("edge"), declared_hosts(raw.get("traffic")), p)
    workloads = _parse_workloads(raw.get("workloads"), p)
    _version_skew(raw.get("clusters"), clusters, istio, p)
    if p.items:
        raise ConfigError(p.items)
    return StackConfig(
        project=project or "", mesh_id=mesh_id, istio=istio, clusters=clusters, traffic=traffic,
        mesh_namespaces=namespaces, cluster_local=cluster_local,
        authorized_networks=authorized, ca=ca, hardening=hardening, flip=flip, availability=availability,
        nat=nat, maintenance_exclusions=exclusions, mesh_link=mesh_link, edge=edge, workloads=workloads,
    )


