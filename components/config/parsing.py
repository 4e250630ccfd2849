"""`parse`: every key checked by its declaration (model), then the rules that span keys, all problems at once.

Each section is validated on its own (each cluster too), so one bad section does not hide
the problems of another, and the rules between keys run on whatever parsed: CIDR overlaps
and pod-range capacity within a cluster, unique names and networks, the weights' clusters,
services against meshNamespaces and clusterLocal, one service per public host, the CA chain,
the edge's hosts, NAT capacity and maintenance windows (`safety`), authorized networks, and
what a prod stack may not relax.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from components.config.ca_checks import _check_intermediate_pems, _check_root_pem, _check_trusted_roots
from components.config.declare import section_of, validate, validate_key
from components.config.model import (
    GKE_CHANNEL_MINOR_SPAN,
    MAX_AUTHORIZED_NETWORKS,
    MAX_ISTIO_MINOR_SKEW,
    MAX_MANAGED_CERT_DOMAINS,
    AuthorizedNetwork,
    CaSpec,
    ClusterSpec,
    ConfigError,
    EdgeSpec,
    FlipSpec,
    IstioSettings,
    NatSpec,
    StackConfig,
    TrafficSpec,
    WorkloadsSpec,
)
from components.config.model import TOP_LEVEL_KEYS as TOP_LEVEL_KEYS
from components.config.rules import (
    ISTIO_VERSION_PATTERN,
    PROJECT_ID_PATTERN,
    WHOLE_INTERNET,
    Problems,
    host_matches,
)
from components.config.safety import (
    check_nat_capacity,
    check_pod_range,
    check_prod_protection,
    parse_maintenance,
    parse_maintenance_exclusions,
)

_CIDR_KEYS = ("nodeCidr", "podCidr", "serviceCidr", "masterCidr")


def declared_cluster_names(raw: Any) -> list[str]:
    """The cluster names as written, including clusters whose other fields are invalid.

    Rules that refer to clusters by name (weights) check against these, so one bad
    field in a cluster does not also produce a misleading "unknown cluster" line.
    """
    if not isinstance(raw, list):
        return []
    return [c["name"] for c in raw if isinstance(c, Mapping) and isinstance(c.get("name"), str)]


def _names_if_all_declared(raw: Any) -> list[str] | None:
    """The declared names, or None when some cluster entry has no string name (see checks.weights)."""
    names = declared_cluster_names(raw)
    if isinstance(raw, list) and len(names) < len(raw):
        return None
    return names


def _overlaps(i: int, raw: Any, p: Problems) -> None:
    """A cluster's ranges may not overlap: checked on every range that is a network, whatever else is wrong."""
    key = f"clusters[{i}]"
    nets: dict[str, ipaddress.IPv4Network] = {}
    for k in _CIDR_KEYS:
        value = raw.get(k) if isinstance(raw, Mapping) else None
        try:
            net = ipaddress.IPv4Network(value) if isinstance(value, str) else None
        except ValueError:
            net = None
        if net is not None:
            nets[k] = net
    names = list(nets)
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            if nets[a].overlaps(nets[b]):
                p.add(f"{key}.{b} {nets[b]} overlaps {key}.{a} {nets[a]}")


def _cluster_rules(i: int, c: ClusterSpec, p: Problems) -> None:
    """Within one parsed cluster: node counts, and a pod range that holds every node."""
    key = f"clusters[{i}]"
    if c.min_nodes > c.max_nodes:
        p.add(f"{key}.minNodes {c.min_nodes} is greater than {key}.maxNodes {c.max_nodes}")
    check_pod_range(i, c, p)


def _parse_clusters(raw: Any, p: Problems) -> tuple[ClusterSpec, ...]:
    if raw is not None and not isinstance(raw, list):
        p.add(f"clusters must be a list, got {type(raw).__name__}")
        return ()
    items = raw or []
    if len(items) < 2:
        p.add(f"clusters lists {len(items)} cluster(s); a multi-primary mesh needs at least 2")
    parsed: list[ClusterSpec | None] = [validate(ClusterSpec, c, f"clusters[{i}]", p) for i, c in enumerate(items)]
    for i, c in enumerate(parsed):
        _overlaps(i, items[i], p)
        if c is not None:
            _cluster_rules(i, c, p)
    for attr in ("name", "network"):
        seen: dict[str, int] = {}
        for i, c in enumerate(parsed):
            if c is None:
                continue
            value = getattr(c, attr)
            if value in seen:
                p.add(f"clusters[{i}].{attr} {value!r} duplicates clusters[{seen[value]}].{attr}; "
                      f"every cluster needs its own {attr}")
            else:
                seen[value] = i
    return tuple(c for c in parsed if c is not None)


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


def _workloads_rules(workloads: WorkloadsSpec, p: Problems) -> None:
    if workloads.enabled and workloads.repo is None:
        p.add("workloads.enabled is true but workloads.repo is not set: Config Sync needs the Git repository "
              "every cluster pulls its workloads from")


def _parse_traffic(raw: Any, names: Sequence[str] | None, namespaces: Sequence[str],
                   cluster_local: Sequence[str], p: Problems) -> TrafficSpec:
    traffic = validate(TrafficSpec, raw, "traffic", p, {"clusters": names})
    if traffic is None:
        return TrafficSpec()
    raw_weights = raw.get("weights") if isinstance(raw, Mapping) else None
    weights = traffic.weights
    if raw_weights is None:
        # Safe default: everything stays on the first (blue) cluster.
        weights = tuple((n, 100 if i == 0 else 0) for i, n in enumerate(names or ()))
    services = []
    seen: dict[tuple[str, str], int] = {}
    public: dict[str, str] = {}  # public host -> the key that claimed it first
    for i, svc in enumerate(traffic.services):
        key = f"traffic.services[{i}]"
        if svc.namespace not in namespaces:
            p.add(f"{key}.namespace {svc.namespace!r} is not in meshNamespaces; routed services need sidecars "
                  "in every cluster")
        for j, h in enumerate(svc.hosts):
            if h in public:
                p.add(f"{key}.hosts[{j}] {h!r} is already a host of {public[h]}; a public host routes to one service")
            else:
                public[h] = f"{key}.hosts[{j}]"
        if (svc.host, svc.namespace) in seen:
            p.add(f"{key} {svc.host}.{svc.namespace} duplicates traffic.services[{seen[(svc.host, svc.namespace)]}]")
            continue
        seen[(svc.host, svc.namespace)] = i
        for j, pattern in enumerate(cluster_local):
            if host_matches(pattern, svc.fqdn):
                p.add(f"{key} {svc.fqdn} is kept in-cluster by clusterLocal[{j}] {pattern!r}; "
                      "a cluster-local service cannot be split across clusters")
        services.append(svc)
    return TrafficSpec(subset_label=traffic.subset_label, weights=weights, services=tuple(services))


def declared_hosts(raw_traffic: Any) -> list[Any]:
    """The public hosts as written, valid or not: edge rules count these, so one bad host name
    does not also produce a misleading "no hosts" line."""
    services = raw_traffic.get("services") if isinstance(raw_traffic, Mapping) else None
    if not isinstance(services, list):
        return []
    return [h for s in services if isinstance(s, Mapping) and isinstance(s.get("hosts"), list) for h in s["hosts"]]


def _edge_rules(edge: EdgeSpec, hosts: Sequence[Any], p: Problems) -> None:
    """The public entry: HTTPS belongs to the edge, and both need host names for the certificate."""
    if edge.https and not edge.enabled:
        p.add("edge.https is true but edge.enabled is not: the certificate belongs to the edge")
    if edge.enabled and not hosts:
        p.add("edge.enabled is true but no traffic.services[i].hosts is set: the edge would serve no host")
    if edge.https and not hosts:
        p.add("edge.https needs host names for its Google-managed certificate: set traffic.services[i].hosts")
    if edge.https and len(hosts) > MAX_MANAGED_CERT_DOMAINS:
        p.add(f"edge.https: traffic.services[i].hosts name {len(hosts)} hosts; a Google-managed certificate "
              f"covers at most {MAX_MANAGED_CERT_DOMAINS}")


def _authorized_rules(networks: Sequence[AuthorizedNetwork], entries: int, cluster_count: int, nat_addresses: int,
                      min_prefix: int, p: Problems) -> None:
    nets: list[tuple[int, ipaddress.IPv4Network]] = []
    for i, n in enumerate(networks):
        net = ipaddress.IPv4Network(n.cidr)
        key = f"authorizedNetworks[{i}].cidr"
        if net.prefixlen == 0:
            p.add(f"{key} {net} would open every control plane to the internet; list the operators' and CI "
                  "runners' addresses instead")
            continue
        if net.prefixlen < min_prefix:
            p.add(f"{key} {net} is broader than /{min_prefix} (hardening.authorizedNetworkMinPrefix); "
                  "list narrower ranges or relax the prefix")
        nets.append((i, net))
    # Entries that are each narrower can still add up to every address (0.0.0.0/1 + 128.0.0.0/1).
    if nets and WHOLE_INTERNET in ipaddress.collapse_addresses(n for _, n in nets):
        listed = ", ".join(f"[{i}] {n}" for i, n in nets)
        p.add(f"authorizedNetworks together cover every IPv4 address ({listed}); that opens every control "
              "plane to the internet")
    # Each control plane also admits every other cluster's NAT egress address.
    peers = max(cluster_count - 1, 0) * nat_addresses
    if entries + peers > MAX_AUTHORIZED_NETWORKS:
        p.add(f"authorizedNetworks has {entries} entries; with {peers} other-cluster "
              f"NAT addresses that is {entries + peers}, over GKE's limit of {MAX_AUTHORIZED_NETWORKS}")


def _ca_rules(raw: Any, ca: CaSpec, ca_is_secret: bool, names: Sequence[str], p: Problems) -> CaSpec:
    """The CA chain: validity order, a brought-in root or intermediates that chain, secrets, trusted roots."""
    given = raw if isinstance(raw, Mapping) else {}
    root_h, inter_h = ca.root_validity_hours, ca.intermediate_validity_hours
    cert, key = ca.root_cert_pem, ca.root_key_pem
    if inter_h >= root_h and cert is None:
        p.add(f"ca.intermediateValidityHours {inter_h} must be shorter than ca.rootValidityHours "
              f"{root_h}: an intermediate cannot outlive its root")
    before = len(p.items)
    if "intermediates" in given:
        if cert is None:
            p.add("ca.intermediates needs ca.rootCertPem: the certificate of the root that issued them (public only)")
        if key is not None:
            p.add("ca.rootKeyPem must not be set with ca.intermediates: no root key belongs in the state")
        if not ca_is_secret:
            p.add("ca.intermediates keys must be set as secrets: pulumi config set --secret --path "
                  "ca.intermediates.<cluster>.keyPem < key.pem")
        missing = [n for n in names if n not in dict((c, 0) for c, _, _ in ca.intermediate_pems)]
        if missing:
            p.add(f"ca.intermediates lacks {', '.join(missing)}: every cluster needs its own intermediate")
        for cluster, cert_pem, key_pem in ca.intermediate_pems:
            _check_intermediate_pems(cluster, cert_pem, key_pem, cert, p)
    elif (cert is None) != (key is None):
        p.add("ca.rootCertPem and ca.rootKeyPem must be set together (bring-your-own root) or not at all")
    elif cert is not None:
        if not ca_is_secret:
            p.add("ca.rootKeyPem must be set as a secret: pulumi config set --secret --path "
                  "ca.rootKeyPem < root-key.pem")
        _check_root_pem(cert, key, inter_h, p)
    pems_ok = len(p.items) == before
    trusted = _check_trusted_roots(given.get("trustedRootPems"), cert, p)
    return CaSpec(
        algorithm=ca.algorithm, root_validity_hours=root_h, intermediate_validity_hours=inter_h,
        root_cert_pem=cert, root_key_pem=key, intermediate_generations=ca.intermediate_generations,
        intermediate_pems=ca.intermediate_pems if pems_ok else (), trusted_root_pems=trusted,
        root_transition=ca.root_transition,
    )


# Keys read by name below, because a rule between keys needs them (or gcp:project, outside the namespace).
_WITH_CROSS_RULES = ("project", "clusters", "traffic", "ca")


def parse(raw: Mapping[str, Any], *, project: str | None, ca_is_secret: bool = False,
          prod: bool = False) -> StackConfig:
    """Turn the project's raw config (keys without the namespace) into a StackConfig.

    `prod` holds the stack to production's rules (protection on). Raises ConfigError listing
    every problem found.
    """
    p = Problems()
    if not project:
        p.add("gcp:project is not set: run `pulumi config set gcp:project <project-id>`")
    elif not PROJECT_ID_PATTERN.match(project):
        p.add(f"gcp:project {project!r} is not a Google Cloud project ID (6 to 30 lowercase letters, digits "
              "and '-', starting with a letter and not ending with '-')")
    raw = {k: v for k, v in raw.items() if v is not None}  # a key set to null keeps its default
    raw_clusters = raw.get("clusters")
    names = declared_cluster_names(raw_clusters)
    # Every key with no rule beyond its declaration, section by section: a new key or section needs
    # nothing here. The ones that other keys' rules depend on follow, with those rules.
    v: dict[str, Any] = {}
    for name, info in StackConfig.__pydantic_fields__.items():
        if name in _WITH_CROSS_RULES:
            continue
        if section_of(info) is not None and not str(info.annotation).startswith("tuple["):
            value = validate(section_of(info), raw.get(info.alias), info.alias, p)
        else:
            value = validate_key(StackConfig, info.alias, raw[info.alias], info.alias, p) if info.alias in raw else None
        v[name] = info.default if value is None else value
    v["clusters"] = _parse_clusters(raw_clusters, p)
    v["traffic"] = _parse_traffic(raw.get("traffic"), _names_if_all_declared(raw_clusters), v["mesh_namespaces"],
                                  v["cluster_local"], p)
    nat: NatSpec = v["nat"]
    if nat.max_ports_per_vm <= nat.min_ports_per_vm:
        p.add(f"nat.maxPortsPerVm {nat.max_ports_per_vm} must be greater than nat.minPortsPerVm "
              f"{nat.min_ports_per_vm}")
    else:
        check_nat_capacity(nat, v["clusters"], raw_clusters, p)
    v["clusters"] = parse_maintenance(raw_clusters, v["clusters"], p)
    parse_maintenance_exclusions(v["maintenance_exclusions"], p)
    _authorized_rules(v["authorized_networks"], len(raw["authorizedNetworks"])
                      if isinstance(raw.get("authorizedNetworks"), list) else 0,
                      len(raw_clusters) if isinstance(raw_clusters, list) else 0, nat.addresses,
                      v["hardening"].authorized_network_min_prefix, p)
    ca = validate(CaSpec, raw.get("ca"), "ca", p, {"all_clusters": names})
    v["ca"] = _ca_rules(raw.get("ca"), ca, ca_is_secret, names, p) if ca is not None else CaSpec()
    flip: FlipSpec = v["flip"]
    if flip.interval_seconds > flip.hold_seconds:
        p.add(f"flip.interval {flip.interval_seconds}s is longer than flip.hold {flip.hold_seconds}s; the metrics "
              "are read at least once per hold")
    _edge_rules(v["edge"], declared_hosts(raw.get("traffic")), p)
    _workloads_rules(v["workloads"], p)
    _version_skew(raw_clusters, v["clusters"], v["istio"], p)
    if prod:
        check_prod_protection(raw_clusters, v["clusters"], v["traffic"], p)
    if p.items:
        raise ConfigError(p.items)
    return StackConfig(project=project or "", **v)
