"""Stack config: every rule, its message naming the key, and nothing declared when it fails.

Each bad value is run through the whole program (as `pulumi preview` would run it):
the run must stop with the rule's message and must not have sent a single resource
to the engine. The pure parser is then checked for defaults and, with hypothesis,
for the rules that cover a space of inputs (weights, CIDR overlaps, names).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import config
from offline import ProgramError, pem_key, self_signed_pem
from offline.configs import base, three_clusters

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets a dotted/indexed path, e.g. 'clusters[1].podCidr'."""

    def apply(cfg: dict[str, Any]) -> None:
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        node: Any = cfg
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(cfg: dict[str, Any]) -> None:
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        node: Any = cfg
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return apply


def _both(*mutations: Mutation) -> Mutation:
    def apply(cfg: dict[str, Any]) -> None:
        for m in mutations:
            m(cfg)

    return apply


def _pem_pair(ca: bool, *, other_key: bool = False, days: int = 3650, path_length: int | None = None,
              ) -> tuple[str, str]:
    """A self-signed certificate valid for `days` and a key (the matching one unless other_key)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_pem(key, "team root", days=days, ca=ca, path_length=path_length)
    return cert, pem_key(ec.generate_private_key(ec.SECP256R1()) if other_key else key)


def _root_pem(*, key_cert_sign: bool = True, starts_in_days: float = -1) -> tuple[str, str]:
    """A CA root with a keyUsage extension (keyCertSign or not) whose validity starts `starts_in_days` from now."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "team root")])
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=starts_in_days)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                                         crl_sign=key_cert_sign, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM).decode(), pem_key(key)


NON_CA = _pem_pair(ca=False)
WRONG_KEY = _pem_pair(ca=True, other_key=True)

# (id, mutation of the dev config, the line the user must see)
RULES: list[tuple[str, Mutation, str]] = [
    # clusters: count, shape, names
    ("one-cluster", lambda c: c["clusters"].pop(),
     "clusters lists 1 cluster(s); a multi-primary mesh needs at least 2"),
    ("clusters-not-a-list", _set("clusters", {"name": "blue"}), "clusters must be a list, got dict"),
    ("cluster-not-an-object", _set("clusters[1]", "green"), "clusters[1] must be an object, got str"),
    ("cluster-unknown-key", _set("clusters[0].nodeCIDR", "10.0.0.0/20"),
     "clusters[0].nodeCIDR is not a known key; did you mean nodeCidr? (known: name, network, region, nodeCidr"),
    ("cluster-misspelt-key", _set("clusters[0].machinetype", "e2-standard-8"),
     "clusters[0].machinetype is not a known key; did you mean machineType? (known: name, network,"),
    ("cluster-unknown-key-nothing-close", _set("clusters[0].zoneList", ["a"]),
     "clusters[0].zoneList is not a known key (known: name, network,"),
    ("cluster-missing-key", _delete("clusters[1].podCidr"), "clusters[1].podCidr is required"),
    ("duplicate-name", _set("clusters[1].name", "blue"),
     "clusters[1].name 'blue' duplicates clusters[0].name; every cluster needs its own name"),
    ("duplicate-network", _set("clusters[1].network", "network1"),
     "clusters[1].network 'network1' duplicates clusters[0].network; every cluster needs its own network"),
    ("name-not-dns", _set("clusters[0].name", "Blue_1"),
     "clusters[0].name 'Blue_1' must be a DNS label (lowercase letters, digits and '-', starting with a letter"),
    ("name-starts-with-digit", _set("clusters[0].name", "1blue"),
     "clusters[0].name '1blue' must be a DNS label (lowercase letters, digits and '-', starting with a letter"),
    ("name-too-long", _set("clusters[0].name", "b" * 28),
     f"clusters[0].name '{'b' * 28}' is 28 characters; at most 27 are allowed (its GKE node pool is named "
     "<name>-pool-xxxxxxx and GKE allows 40)"),
    ("network-not-dns", _set("clusters[1].network", "network.2"),
     "clusters[1].network 'network.2' must be a DNS label (it names the VPC and Istio's network)"),
    ("network-too-long", _set("clusters[1].network", "n" * 42),
     f"clusters[1].network '{'n' * 42}' is 42 characters; at most 41 are allowed (its firewall rule is named "
     "<network>-istio-webhook-xxxxxxx and Compute Engine allows 63)"),
    # region
    ("region-is-a-zone", _set("clusters[0].region", "us-west1-a"),
     "clusters[0].region 'us-west1-a' is a zone; clusters are regional: use us-west1"),
    ("region-malformed", _set("clusters[0].region", "west"), "clusters[0].region 'west' is not a GCP region"),
    # CIDRs
    ("cidr-invalid", _set("clusters[0].nodeCidr", "10.10.0.0/33"),
     "clusters[0].nodeCidr '10.10.0.0/33' is not a valid IPv4 CIDR"),
    ("cidr-ipv6", _set("clusters[0].nodeCidr", "fd00::/64"), "clusters[0].nodeCidr fd00::/64 must be an IPv4 CIDR"),
    ("cidr-host-bits", _set("clusters[0].nodeCidr", "10.10.0.1/20"),
     "clusters[0].nodeCidr 10.10.0.1/20 has host bits set; the network is 10.10.0.0/20"),
    ("master-not-28", _set("clusters[0].masterCidr", "172.16.0.0/27"),
     "clusters[0].masterCidr 172.16.0.0/27 must be a /28 (GKE's control-plane range)"),
    ("master-public", _set("clusters[0].masterCidr", "34.1.2.0/28"),
     "clusters[0].masterCidr 34.1.2.0/28 must be a private (RFC 1918) range"),
    # 192.0.2.0/24 is "private" to Python's ipaddress (documentation range) but not RFC 1918.
    ("master-not-rfc1918", _set("clusters[0].masterCidr", "192.0.2.0/28"),
     "clusters[0].masterCidr 192.0.2.0/28 must be a private (RFC 1918) range"),
    ("node-range-link-local", _set("clusters[0].nodeCidr", "169.254.0.0/20"),
     "clusters[0].nodeCidr 169.254.0.0/20 overlaps 169.254.0.0/16 (link-local), which Google Cloud does not "
     "allow in a subnet"),
    ("pod-range-loopback", _set("clusters[0].podCidr", "127.16.0.0/14"),
     "clusters[0].podCidr 127.16.0.0/14 overlaps 127.0.0.0/8 (loopback), which Google Cloud does not allow"),
    ("service-range-multicast", _set("clusters[1].serviceCidr", "224.0.0.0/20"),
     "clusters[1].serviceCidr 224.0.0.0/20 overlaps 224.0.0.0/4 (multicast)"),
    ("service-range-private-google-access", _set("clusters[1].serviceCidr", "199.36.144.0/20"),
     "clusters[1].serviceCidr 199.36.144.0/20 overlaps 199.36.153.4/30 (restricted.googleapis.com)"),
    ("node-too-small", _set("clusters[0].nodeCidr", "10.10.0.0/30"),
     "clusters[0].nodeCidr 10.10.0.0/30 is too small; a subnet is at least a /29"),
    ("pod-range-size", _set("clusters[0].podCidr", "10.12.0.0/24"),
     "clusters[0].podCidr 10.12.0.0/24 must be between /9 and /21 (GKE pod range)"),
    ("service-range-size", _set("clusters[0].serviceCidr", "10.16.0.0/28"),
     "clusters[0].serviceCidr 10.16.0.0/28 must be between /16 and /27 (GKE service range)"),
    ("overlap", _both(_set("clusters[1].nodeCidr", "10.16.0.0/20"), _set("clusters[1].podCidr", "10.16.0.0/14")),
     "clusters[1].podCidr 10.16.0.0/14 overlaps clusters[1].nodeCidr 10.16.0.0/20"),
    ("overlap-master", _set("clusters[0].masterCidr", "10.10.0.0/28"),
     "clusters[0].masterCidr 10.10.0.0/28 overlaps clusters[0].nodeCidr 10.10.0.0/20"),
    # node pool and cluster settings
    ("machine-type", _set("clusters[0].machineType", "big machine"),
     "clusters[0].machineType 'big machine' is not a Compute Engine machine type"),
    ("min-nodes-negative", _set("clusters[0].minNodes", -1), "clusters[0].minNodes -1 must be an integer >= 0"),
    ("max-nodes-zero", _set("clusters[0].maxNodes", 0), "clusters[0].maxNodes 0 must be an integer from 1 to 1000"),
    ("max-nodes-float", _set("clusters[0].maxNodes", 2.5),
     "clusters[0].maxNodes 2.5 must be an integer from 1 to 1000"),
    ("min-above-max", _both(_set("clusters[0].minNodes", 5), _set("clusters[0].maxNodes", 3)),
     "clusters[0].minNodes 5 is greater than clusters[0].maxNodes 3"),
    ("release-channel", _set("clusters[0].releaseChannel", "FAST"),
     "clusters[0].releaseChannel 'FAST' must be one of RAPID, REGULAR, STABLE, EXTENDED"),
    ("deletion-protection", _set("clusters[0].deletionProtection", "no"),
     "clusters[0].deletionProtection 'no' must be true or false"),
    ("cluster-istio-version", _set("clusters[1].istioVersion", "1.31"),
     "clusters[1].istioVersion '1.31' is not an Istio release version (MAJOR.MINOR.PATCH"),
    # istio
    ("istio-version-malformed", _set("istio.version", "v1.30.3"),
     "istio.version 'v1.30.3' is not an Istio release version (MAJOR.MINOR.PATCH"),
    ("istio-version-too-old", _set("istio.version", "1.20.8"),
     "istio.version 1.20.8 is not supported: Istio 1.27.1 or newer 1.x is required (older gateway charts fail "
     "Helm's JSON-schema validation, istio/istio#57354)"),
    ("istio-version-before-gateway-fix", _set("istio.version", "1.27.0"),
     "istio.version 1.27.0 is not supported: Istio 1.27.1 or newer 1.x is required"),
    ("cluster-istio-version-too-old", _set("clusters[1].istioVersion", "1.24.6"),
     "clusters[1].istioVersion 1.24.6 is not supported: Istio 1.27.1 or newer 1.x is required"),
    ("istio-version-major", _set("istio.version", "2.0.0"), "istio.version 2.0.0 is not supported"),
    ("chart-repository", _set("istio.chartRepository", "http://charts.example.com"),
     "istio.chartRepository 'http://charts.example.com' must be an https:// or oci:// URL"),
    ("istio-unknown-key", _set("istio.revision", "canary"), "istio.revision is not a known key"),
    # mesh
    ("mesh-id", _set("meshId", "Mesh_1"), "meshId 'Mesh_1' must be a DNS-1123 label"),
    # traffic
    ("subset-label", _set("traffic.subsetLabel", "zone"), "traffic.subsetLabel 'zone' must be one of network, cluster"),
    ("weights-sum", _set("traffic.weights", {"blue": 90, "green": 20}),
     "traffic.weights sum to 110; the weights must sum to 100"),
    ("weights-unknown-cluster", _set("traffic.weights", {"blue": 50, "teal": 50}),
     "traffic.weights.teal names an unknown cluster (clusters: blue, green)"),
    ("weights-misspelt-cluster", _set("traffic.weights", {"blue": 50, "gren": 50}),
     "traffic.weights.gren names an unknown cluster; did you mean green? (clusters: blue, green)"),
    ("weight-not-int", _set("traffic.weights", {"blue": 50.5, "green": 49.5}),
     "traffic.weights.blue 50.5 must be an integer from 0 to 100"),
    ("weight-bool", _set("traffic.weights", {"blue": True, "green": 99}),
     "traffic.weights.blue True must be an integer from 0 to 100"),
    ("weight-negative", _set("traffic.weights", {"blue": 110, "green": -10}),
     "traffic.weights.green -10 must be an integer from 0 to 100"),
    ("service-weights", _set("traffic.services[0].weights", {"green": 50}),
     "traffic.services[0].weights sum to 50; the weights must sum to 100"),
    ("host-invalid", _set("traffic.services[0].host", "Hello_World"),
     "traffic.services[0].host 'Hello_World' must be a Kubernetes Service name (DNS-1035 label)"),
    ("host-starts-with-digit", _set("traffic.services[0].host", "1web"),
     "traffic.services[0].host '1web' must be a Kubernetes Service name (DNS-1035 label)"),
    ("host-too-long", _set("traffic.services[0].host", "h" * 64),
     f"traffic.services[0].host '{'h' * 64}' is 64 characters; at most 63 are allowed"),
    ("namespace-invalid", _set("traffic.services[0].namespace", "Sample"),
     "traffic.services[0].namespace 'Sample' must be a DNS-1123 label"),
    ("namespace-without-sidecars", _set("traffic.services[0].namespace", "shop"),
     "traffic.services[0].namespace 'shop' is not in meshNamespaces; routed services need sidecars in every cluster"),
    ("service-duplicate", lambda c: c["traffic"]["services"].append(dict(c["traffic"]["services"][0])),
     "traffic.services[1] helloworld.sample duplicates traffic.services[0]"),
    ("service-unknown-key", _set("traffic.services[0].port", 5000),
     "traffic.services[0].port is not a known key (known: host, namespace, weights, hosts)"),
    ("traffic-unknown-key", _set("traffic.weight", {"blue": 100}),
     "traffic.weight is not a known key; did you mean weights? (known: subsetLabel, weights, services)"),
    ("service-is-cluster-local", _set("clusterLocal", ["*.sample.svc.cluster.local"]),
     "traffic.services[0] helloworld.sample.svc.cluster.local is kept in-cluster by clusterLocal[0] "
     "'*.sample.svc.cluster.local'; a cluster-local service cannot be split across clusters"),
    ("everything-cluster-local", _set("clusterLocal", ["*"]), "is kept in-cluster by clusterLocal[0] '*'"),
    # namespaces and locality
    ("mesh-namespace-invalid", _set("meshNamespaces", ["sample", "Shop"]),
     "meshNamespaces[1] 'Shop' must be a DNS-1123 label"),
    ("mesh-namespace-system", _set("meshNamespaces", ["sample", "istio-system"]),
     "meshNamespaces[1] 'istio-system' is a system namespace; mesh namespaces are for workloads"),
    ("mesh-namespace-twice", _set("meshNamespaces", ["sample", "sample"]),
     "meshNamespaces[1] 'sample' is listed twice"),
    ("mesh-namespaces-not-a-list", _set("meshNamespaces", "sample"), "meshNamespaces must be a list, got str"),
    ("cluster-local-invalid", _set("clusterLocal", ["cache..svc"]),
     "clusterLocal[0] 'cache..svc' must be a host name, a '*.' wildcard"),
    ("cluster-local-twice", _set("clusterLocal", ["*.cache.svc.cluster.local", "*.cache.svc.cluster.local"]),
     "clusterLocal[1] '*.cache.svc.cluster.local' is listed twice"),
    # authorized networks
    ("open-to-internet", _set("authorizedNetworks", [{"name": "all", "cidr": "0.0.0.0/0"}]),
     "authorizedNetworks[0].cidr 0.0.0.0/0 would open every control plane to the internet"),
    ("authorized-cidr-invalid", _set("authorizedNetworks", [{"name": "ci", "cidr": "198.51.100.7"}]),
     "authorizedNetworks[0].cidr '198.51.100.7' needs a prefix length (e.g. 198.51.100.7/32)"),
    ("authorized-missing-name", _set("authorizedNetworks", [{"cidr": "198.51.100.7/32"}]),
     "authorizedNetworks[0].name is required"),
    ("authorized-broader-than-the-prefix", _set("authorizedNetworks", [{"name": "corp", "cidr": "198.51.0.0/16"}]),
     "authorizedNetworks[0].cidr 198.51.0.0/16 is broader than /24 (hardening.authorizedNetworkMinPrefix); list "
     "narrower ranges or relax the prefix"),
    ("authorized-halves-cover-the-internet", _both(
        _set("hardening.authorizedNetworkMinPrefix", 1),
        _set("authorizedNetworks", [{"name": "low", "cidr": "0.0.0.0/1"}, {"name": "high", "cidr": "128.0.0.0/1"}])),
     "authorizedNetworks together cover every IPv4 address ([0] 0.0.0.0/1, [1] 128.0.0.0/1); that opens every "
     "control plane to the internet"),
    ("authorized-too-many", _set("authorizedNetworks",
                                 [{"name": f"n{i}", "cidr": f"198.51.100.{i}/32"} for i in range(50)]),
     "authorizedNetworks has 50 entries; with 1 other-cluster NAT addresses that is 51, over GKE's limit of 50"),
    # CA
    ("ca-algorithm", _set("ca.algorithm", "DSA"), "ca.algorithm 'DSA' must be one of RSA, ECDSA"),
    ("ca-validity-short", _set("ca.rootValidityHours", 12),
     "ca.rootValidityHours 12 must be an integer from 24 to 876000 (hours; at most 100 years"),
    ("ca-intermediate-outlives-root", _both(_set("ca.rootValidityHours", 8760),
                                            _set("ca.intermediateValidityHours", 8760)),
     "ca.intermediateValidityHours 8760 must be shorter than ca.rootValidityHours 8760"),
    ("ca-cert-without-key", _set("ca.rootCertPem", NON_CA[0]),
     "ca.rootCertPem and ca.rootKeyPem must be set together (bring-your-own root) or not at all"),
    ("ca-unknown-key", _set("ca.rootKey", "x"), "ca.rootKey is not a known key"),
    # CIS hardening (docs/cis.md)
    ("hardening-not-an-object", _set("hardening", "on"), "hardening must be an object, got str"),
    ("hardening-unknown-key", _set("hardening.flowLogs", True),
     "hardening.flowLogs is not a known key; did you mean subnetFlowLogs? (known: databaseEncryption,"),
    ("hardening-database-encryption", _set("hardening.databaseEncryption", "yes"),
     "hardening.databaseEncryption 'yes' must be true or false"),
    ("hardening-flow-logs", _set("hardening.subnetFlowLogs", 1), "hardening.subnetFlowLogs 1 must be true or false"),
    ("hardening-binary-authorization", _set("hardening.binaryAuthorization", "DRYRUN"),
     "hardening.binaryAuthorization 'DRYRUN' must be one of PROJECT_SINGLETON_POLICY_ENFORCE, DISABLED (audit-only "
     "is the project policy's DRYRUN_AUDIT_LOG_ONLY enforcement mode)"),
    ("hardening-image-type", _set("hardening.imageType", "COS"),
     "hardening.imageType 'COS' must be one of COS_CONTAINERD, UBUNTU_CONTAINERD (containerd node images)"),
    ("hardening-flow-sampling-zero", _set("hardening.flowSampling", 0),
     "hardening.flowSampling 0 must be a number above 0 and at most 1"),
    ("hardening-flow-sampling-above-one", _set("hardening.flowSampling", 1.5),
     "hardening.flowSampling 1.5 must be a number above 0 and at most 1"),
    ("hardening-prefix-range", _set("hardening.authorizedNetworkMinPrefix", 33),
     "hardening.authorizedNetworkMinPrefix 33 must be an integer from 1 to 32"),
    # progressive flip
    ("flip-steps-not-increasing", _set("flip.steps", [10, 50, 25, 100]),
     "flip.steps [10, 50, 25, 100] must be a strictly increasing list of integers from 1 to 100 ending at 100"),
    ("flip-steps-not-ending-at-100", _set("flip.steps", [10, 50]),
     "flip.steps [10, 50] must be a strictly increasing list"),
    ("flip-hold", _set("flip.hold", "5 minutes"), "flip.hold '5 minutes' must be a duration such as 300, '90s'"),
    ("flip-interval-over-hold", _both(_set("flip.hold", "1m"), _set("flip.interval", "2m")),
     "flip.interval 120s is longer than flip.hold 60s"),
    ("flip-success-rate", _set("flip.minSuccessRate", 120),
     "flip.minSuccessRate 120 must be a number above 0 and at most 100"),
    ("flip-success-rate-off", _set("flip.minSuccessRate", 0),
     "flip.minSuccessRate 0 must be a number above 0 and at most 100 (percent of non-5xx responses; 0 would "
     "switch the check off)"),
    ("flip-success-rate-nan", _set("flip.minSuccessRate", float("nan")), "flip.minSuccessRate nan must be a number"),
    ("flip-p99", _set("flip.maxP99Ms", 0), "flip.maxP99Ms 0 must be a finite positive number (milliseconds"),
    ("flip-p99-infinite", _set("flip.maxP99Ms", float("inf")),
     "flip.maxP99Ms inf must be a finite positive number (milliseconds; infinity would switch the check off)"),
    ("flip-hold-under-one-judgement", _set("flip.hold", "45s"),
     "flip.hold 45s is shorter than one judgement needs: the query window must span two scrape intervals (60s)"),
    ("flip-share-tolerance", _set("flip.shareTolerance", 0),
     "flip.shareTolerance 0 must be a number above 0 and at most 50 (percentage points"),
    ("flip-share-tolerance-wide", _set("flip.shareTolerance", 60), "flip.shareTolerance 60 must be a number above 0"),
    ("flip-converge-timeout", _set("flip.convergeTimeout", "soon"),
     "flip.convergeTimeout 'soon' must be a duration such as 600, '10m' or '1h'"),
    ("flip-converge-timeout-short", _set("flip.convergeTimeout", "30s"),
     "flip.convergeTimeout 30s must be from 60s (one read of two scrape intervals) to 3600s"),
    ("flip-converge-timeout-long", _set("flip.convergeTimeout", "2h"), "flip.convergeTimeout 7200s must be from 60s"),
    ("flip-inconclusive-limit", _set("flip.inconclusiveLimit", -1),
     "flip.inconclusiveLimit -1 must be an integer from 0 to 20 (consecutive metric reads"),
    ("flip-min-requests", _set("flip.minRequests", 0), "flip.minRequests 0 must be an integer >= 1"),
    ("flip-unknown-key", _set("flip.holdTime", "5m"),
     "flip.holdTime is not a known key; did you mean hold? (known: steps, hold"),
    ("ca-generation-unknown-cluster", _set("ca.intermediateGenerations", {"purple": 1}),
     "ca.intermediateGenerations.purple names an unknown cluster (clusters: blue, green)"),
    ("ca-generation-negative", _set("ca.intermediateGenerations", {"green": -1}),
     "ca.intermediateGenerations.green -1 must be an integer from 0 to 1000 (raise it by one to rotate)"),
    ("ca-generations-not-a-map", _set("ca.intermediateGenerations", [1]), "ca.intermediateGenerations"),
    # mesh link
    ("reader-token-generation-text", _set("meshLink.readerTokenGeneration", "2"),
     "meshLink.readerTokenGeneration '2' must be an integer from 0 to 1000 (raise it by one to rotate)"),
    ("mesh-link-unknown-key", _set("meshLink.tokenGeneration", 1), "meshLink.tokenGeneration is not a known key"),
    # edge (docs/edge.md)
    ("edge-host-wildcard", _set("traffic.services[0].hosts", ["*.example.com"]),
     "traffic.services[0].hosts[0] '*.example.com' must be a DNS host name (two or more lowercase labels"),
    ("edge-host-ip", _set("traffic.services[0].hosts", ["192.0.2.10"]),
     "traffic.services[0].hosts[0] '192.0.2.10' must be a DNS host name"),
    ("edge-host-one-label", _set("traffic.services[0].hosts", ["localhost"]),
     "traffic.services[0].hosts[0] 'localhost' must be a DNS host name"),
    ("edge-host-uppercase", _set("traffic.services[0].hosts", ["Shop.Example.com"]),
     "traffic.services[0].hosts[0] 'Shop.Example.com' must be a DNS host name"),
    ("edge-hosts-not-a-list", _set("traffic.services[0].hosts", "shop.example.com"),
     "traffic.services[0].hosts must be a list, got str"),
    ("edge-host-on-two-services", _both(
        _set("traffic.services[0].hosts", ["shop.example.com"]),
        lambda c: c["traffic"]["services"].append(
            {"host": "cart", "namespace": "sample", "hosts": ["shop.example.com"]})),
     "traffic.services[1].hosts[0] 'shop.example.com' is already a host of traffic.services[0].hosts[0]; "
     "a public host routes to one service"),
    ("edge-enabled-without-hosts", _set("edge", {"enabled": True}),
     "edge.enabled is true but no traffic.services[i].hosts is set: the edge would serve no host"),
    ("edge-certificate-without-hosts", _set("edge", {"enabled": True, "https": True}),
     "edge.https needs host names for its Google-managed certificate: set traffic.services[i].hosts"),
    ("edge-certificate-without-edge", _both(_set("traffic.services[0].hosts", ["shop.example.com"]),
                                            _set("edge", {"https": True})),
     "edge.https is true but edge.enabled is not: the certificate belongs to the edge"),
    ("edge-too-many-certificate-hosts", _both(
        _set("traffic.services[0].hosts", [f"h{i}.example.com" for i in range(101)]),
        _set("edge", {"enabled": True, "https": True})),
     "edge.https: traffic.services[i].hosts name 101 hosts; a Google-managed certificate covers at most 100"),
    ("edge-one-replica", _both(_set("traffic.services[0].hosts", ["shop.example.com"]),
                               _set("edge", {"enabled": True, "replicas": 1})),
     "edge.replicas 1 must be an integer from 2 to 100"),
    ("edge-enabled-not-bool", _set("edge", {"enabled": "yes"}), "edge.enabled 'yes' must be true or false"),
    ("edge-unknown-key", _set("edge", {"enable": True}),
     "edge.enable is not a known key; did you mean enabled? (known: enabled, replicas, https)"),
    ("edge-weights-unknown-cluster", _both(
        _set("traffic.services[0].hosts", ["shop.example.com"]), _set("edge", {"enabled": True}),
        _set("traffic.weights", {"blue": 50, "teal": 50})),
     "traffic.weights.teal names an unknown cluster (clusters: blue, green)"),
    # issue 23: inputs that used to pass or crash
    ("cluster-name-a-list", _set("clusters[0].name", ["blue"]),
     "clusters[0].name must be a non-empty string, got ['blue']"),
    ("cluster-name-a-mapping", _set("clusters[1].name", {"green": 1}),
     "clusters[1].name must be a non-empty string, got {'green': 1}"),
    ("ca-validity-absurd", _set("ca.rootValidityHours", 1000000000),
     "ca.rootValidityHours 1000000000 must be an integer from 24 to 876000 (hours; at most 100 years, so "
     "certificate generation can encode the end date)"),
    ("region-misspelt", _set("clusters[0].region", "us-wset1"),
     "clusters[0].region 'us-wset1' is not a GCP region; did you mean us-west1? (the program's list of regions, "
     "read 2026-12-04: components/config/gcp.py)"),
    ("machine-type-misspelt", _set("clusters[0].machineType", "e2-standrad-4"),
     "clusters[0].machineType 'e2-standrad-4' is not a Compute Engine machine type: no type 'standrad'; did you "
     "mean standard?"),
    ("machine-family-unknown", _set("clusters[1].machineType", "n9-standard-4"),
     "clusters[1].machineType 'n9-standard-4' is not a Compute Engine machine type: no machine family 'n9'"),
    ("pod-range-too-small-for-the-pool", _set("clusters[0].podCidr", "10.12.0.0/21"),
     "clusters[0].podCidr 10.12.0.0/21 holds 8 node range(s) of /24 (GKE's default 110 pods per node) but "
     "clusters[0].maxNodes 3 in 3 zones can reach 9 nodes: use a /20 or larger, or lower maxNodes"),
    ("pod-range-too-small-for-max-nodes", _set("clusters[1].maxNodes", 400),
     "clusters[1].podCidr 10.24.0.0/14 holds 1024 node range(s) of /24 (GKE's default 110 pods per node) but "
     "clusters[1].maxNodes 400 in 3 zones can reach 1200 nodes: use a /13 or larger"),
    ("mesh-namespace-default", _set("meshNamespaces", ["sample", "default"]),
     "meshNamespaces[1] 'default' is Kubernetes' own namespace, in every cluster: the program would claim it and "
     "try to delete it on destroy; put the workloads in a namespace of their own"),
    ("cluster-local-short-name", _set("clusterLocal", ["helloworld.sample"]),
     "clusterLocal[0] 'helloworld.sample' is not a fully qualified service host, so Istio's serviceSettings would "
     "match nothing: write '<service>.<namespace>.svc.cluster.local', '*.<namespace>.svc.cluster.local' or '*'"),
    ("too-many-exclusions", _set("maintenanceExclusions", [
        {"name": f"freeze-{i}", "startTime": f"2026-12-{i + 1:02d}T00:00:00Z",
         "endTime": f"2026-12-{i + 1:02d}T12:00:00Z"} for i in range(21)]),
     "maintenanceExclusions lists 21 exclusions; GKE allows at most 20 per cluster"),
    # top level
    ("unknown-top-level-key", _set("meshID", "mesh1"),
     "meshID is not a known key; did you mean meshId? (known: meshId, istio, clusters"),
]


@pytest.mark.parametrize(("mutation", "message"), [pytest.param(m, msg, id=i) for i, m, msg in RULES])
def test_each_rule_stops_the_program_with_its_message_and_declares_nothing(run, base_config, mutation, message):
    mutation(base_config)
    with pytest.raises(ProgramError) as failure:
        run(base_config)
    text = str(failure.value)
    assert text.startswith("invalid stack config ("), text
    assert message in text, text
    assert failure.value.declared == [], "a bad config must not declare anything"


def test_the_tests_own_mutations_leave_the_dev_config_valid(base_config) -> None:
    """Guards the table above: the unmodified dev config parses, so each failure is the mutation's."""
    parsed = config.parse(base_config, project="mesh-test-project")
    assert [c.name for c in parsed.clusters] == ["blue", "green"]


def test_every_problem_is_reported_at_once(run, base_config) -> None:
    base_config["clusters"][1]["masterCidr"] = "172.16.0.0/24"
    base_config["traffic"]["subsetLabel"] = "zone"
    base_config["meshId"] = "Mesh"
    with pytest.raises(ProgramError) as failure:
        run(base_config)
    lines = [line for line in str(failure.value).splitlines() if line.startswith("  - ")]
    assert len(lines) == 3, lines
    assert str(failure.value).startswith("invalid stack config (3 problem(s)):")


def _problems(run, cfg: dict[str, Any], **kwargs: Any) -> list[str]:
    """The lines of the message a bad config stops the run with; asserts nothing was declared."""
    with pytest.raises(ProgramError) as failure:
        run(cfg, **kwargs)
    assert failure.value.declared == []
    return [line[4:] for line in str(failure.value).splitlines() if line.startswith("  - ")]


def test_an_unknown_cluster_in_the_weights_does_not_hide_their_sum(run, base_config) -> None:
    base_config["traffic"]["weights"] = {"blue": 50, "gren": 40}
    assert _problems(run, base_config) == [
        "traffic.weights.gren names an unknown cluster; did you mean green? (clusters: blue, green)",
        "traffic.weights sum to 90; the weights must sum to 100",
    ]


def test_a_cluster_without_a_name_is_reported_once_not_again_by_the_weights_naming_it(run, base_config) -> None:
    del base_config["clusters"][1]["name"]
    assert _problems(run, base_config) == ["clusters[1].name is required"]


def test_a_badly_named_cluster_is_reported_once_not_again_by_the_weights_naming_it(run, base_config) -> None:
    base_config["clusters"][1]["name"] = "Green"
    base_config["traffic"]["weights"] = {"blue": 0, "Green": 100}
    (line,) = _problems(run, base_config)
    assert line.startswith("clusters[1].name 'Green' must be a DNS label")


@pytest.mark.parametrize("project", ["My-Project", "proj", "1project", "project-", "a" * 31, "my_project"])
def test_gcp_project_must_be_a_project_id(run, base_config, project: str) -> None:
    assert _problems(run, base_config, gcp_project=project) == [
        f"gcp:project {project!r} is not a Google Cloud project ID (6 to 30 lowercase letters, digits and '-', "
        "starting with a letter and not ending with '-')"]


@pytest.mark.parametrize("project", ["my-gcp-project", "abcdef", "a" * 30, "team-1-prod"])
def test_project_ids_of_the_documented_shape_are_accepted(base_config, project: str) -> None:
    assert config.parse(base_config, project=project).project == project


def test_missing_gcp_project_is_named(run, base_config) -> None:
    with pytest.raises(ProgramError) as failure:
        run(base_config, gcp_project=None)
    assert "gcp:project is not set: run `pulumi config set gcp:project <project-id>`" in str(failure.value)
    assert failure.value.declared == []


def test_the_message_reaches_the_user_without_a_traceback(run, base_config) -> None:
    """pulumi.RunError is the SDK's way to fail a program with only its message."""
    import pulumi

    base_config["clusters"][1]["name"] = "blue"
    with pytest.raises(ProgramError) as failure:
        run(base_config)
    assert isinstance(failure.value.cause, pulumi.RunError)


@pytest.mark.parametrize(("pair", "message"), [
    (NON_CA, "ca.rootCertPem is not a CA certificate (basicConstraints CA:TRUE is required)"),
    (_root_pem(key_cert_sign=False), "ca.rootCertPem has a keyUsage without keyCertSign, so verifiers (Go's, "
     "istiod's) refuse the intermediates it signs; reissue the root with keyUsage keyCertSign (and cRLSign)"),
    (_root_pem(starts_in_days=2), "ca.rootCertPem is not valid before "),
    (_pem_pair(ca=True, path_length=0), "ca.rootCertPem has pathlen:0, so it may not sign the per-cluster "
     "intermediate CAs; use a root with pathlen >= 1 or none"),
    (_pem_pair(ca=True, days=365), "ca.intermediateValidityHours 17520 would outlive ca.rootCertPem, which "
     "expires on"),
    (_pem_pair(ca=True, days=-1), "ca.rootCertPem expired on"),
    (WRONG_KEY, "ca.rootKeyPem does not belong to ca.rootCertPem"),
    (("not a pem", WRONG_KEY[1]), "ca.rootCertPem is not a PEM X.509 certificate"),
    ((WRONG_KEY[0], "not a key"), "ca.rootKeyPem is not an unencrypted PEM private key"),
])
def test_bring_your_own_root_must_be_a_ca_with_its_own_key(run, base_config, pair, message) -> None:
    base_config["ca"] = {"rootCertPem": pair[0], "rootKeyPem": pair[1]}
    with pytest.raises(ProgramError) as failure:
        run(base_config, secret_keys=["ca"])
    assert message in str(failure.value)
    assert failure.value.declared == []


def test_bring_your_own_root_key_must_be_a_secret(run, base_config) -> None:
    cert, key = _pem_pair(ca=True)
    base_config["ca"] = {"rootCertPem": cert, "rootKeyPem": key}
    with pytest.raises(ProgramError) as failure:
        run(base_config)  # ca not marked secret
    assert ("ca.rootKeyPem must be set as a secret: pulumi config set --secret --path ca.rootKeyPem "
            "< root-key.pem") in str(failure.value)
    assert failure.value.declared == []


def test_defaults_when_optional_keys_are_left_out(base_config) -> None:
    for key in ("meshId", "istio", "meshNamespaces", "clusterLocal", "authorizedNetworks"):
        base_config.pop(key, None)
    base_config["traffic"] = {}
    for c in base_config["clusters"]:
        for k in ("machineType", "minNodes", "maxNodes", "releaseChannel", "deletionProtection"):
            c.pop(k)
    parsed = config.parse(base_config, project="mesh-test-project")
    assert parsed.mesh_id == "mesh1"
    assert parsed.istio == config.IstioSettings("1.30.3", "https://istio-release.storage.googleapis.com/charts")
    blue = parsed.clusters[0]
    assert (blue.machine_type, blue.min_nodes, blue.max_nodes, blue.release_channel, blue.deletion_protection) == (
        "e2-standard-4", 1, 3, "REGULAR", True)
    # Safe default split: everything stays on the first cluster.
    assert parsed.traffic.weights == (("blue", 100), ("green", 0))
    assert parsed.traffic.subset_label == "network"
    assert parsed.ca == config.CaSpec()
    # CIS GKE defaults: KMS Secrets encryption, Binary Authorization, COS containerd, flow logs, /24 at widest.
    assert parsed.hardening == config.Hardening(
        database_encryption=True, binary_authorization="PROJECT_SINGLETON_POLICY_ENFORCE",
        image_type="COS_CONTAINERD", subnet_flow_logs=True, flow_sampling=0.5, authorized_network_min_prefix=24)
    assert parsed.ca.generation("blue") == 0
    assert parsed.mesh_link == config.MeshLinkSpec(reader_token_generation=0)


def test_a_stack_may_relax_each_hardening_default(base_config) -> None:
    base_config["hardening"] = {"databaseEncryption": False, "binaryAuthorization": "DISABLED",
                                "imageType": "UBUNTU_CONTAINERD", "subnetFlowLogs": False, "flowSampling": 1,
                                "authorizedNetworkMinPrefix": 16}
    base_config["authorizedNetworks"] = [{"name": "corp", "cidr": "198.51.0.0/16"}]
    parsed = config.parse(base_config, project="mesh-test-project")
    assert parsed.hardening == config.Hardening(False, "DISABLED", "UBUNTU_CONTAINERD", False, 1.0, 16)
    assert parsed.authorized_networks == (config.AuthorizedNetwork("corp", "198.51.0.0/16"),)


def test_flip_section_defaults_and_durations(base_config) -> None:
    assert config.parse(base_config, project="mesh-test-project").flip == config.FlipSpec(
        steps=(10, 25, 50, 100), hold_seconds=300, interval_seconds=30, min_success_rate=99.0, max_p99_ms=500.0,
        min_requests=50, share_tolerance=5.0, converge_timeout_seconds=600, inconclusive_limit=4)
    base_config["flip"] = {"steps": [50, 100], "hold": "1h", "interval": "90s", "minSuccessRate": 99.9,
                           "maxP99Ms": 250, "minRequests": 10, "shareTolerance": 2.5, "convergeTimeout": "15m",
                           "inconclusiveLimit": 0}
    assert config.parse(base_config, project="mesh-test-project").flip == config.FlipSpec(
        steps=(50, 100), hold_seconds=3600, interval_seconds=90, min_success_rate=99.9, max_p99_ms=250.0,
        min_requests=10, share_tolerance=2.5, converge_timeout_seconds=900, inconclusive_limit=0)



@pytest.mark.parametrize("version", ["1.27.1", "1.28.0", "1.30.3", "1.31.0-rc.1"])
def test_supported_istio_versions_are_accepted(base_config, version: str) -> None:
    base_config["istio"]["version"] = version
    assert config.parse(base_config, project="mesh-test-project").istio.version == version


def test_cluster_istio_version_overrides_the_mesh_pin(base_config) -> None:
    base_config["clusters"][1]["istioVersion"] = "1.31.0-rc.1"
    parsed = config.parse(base_config, project="mesh-test-project")
    assert [parsed.istio_version(c) for c in parsed.clusters] == ["1.30.3", "1.31.0-rc.1"]


def test_root_pem_keys_never_appear_in_repr(base_config) -> None:
    cert, key = _pem_pair(ca=True)
    base_config["ca"] = {"rootCertPem": cert, "rootKeyPem": key}
    parsed = config.parse(base_config, project="mesh-test-project", ca_is_secret=True)
    assert "PRIVATE KEY" not in repr(parsed)


# ------------------------------------------------------------------ rules over a space of inputs

NAMES = ["blue", "green", "teal"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([*NAMES, "red"]), st.integers(min_value=-5, max_value=105), min_size=1))
def test_weights_are_accepted_exactly_when_known_in_range_and_summing_to_100(weights: dict[str, int]) -> None:
    cfg = three_clusters(base())
    cfg["traffic"]["weights"] = weights
    valid = set(weights) <= set(NAMES) and all(0 <= w <= 100 for w in weights.values()) and sum(
        weights.values()) == 100
    try:
        parsed = config.parse(cfg, project="mesh-test-project")
    except config.ConfigError as error:
        assert not valid, error.problems
        assert all(line.startswith("traffic.weights") for line in error.problems), error.problems
    else:
        assert valid
        # Every cluster gets a route; the ones left out get 0.
        assert dict(parsed.traffic.weights) == {n: weights.get(n, 0) for n in NAMES}


_private = st.builds(
    lambda a, b, prefix: ipaddress.ip_network(f"10.{a}.{b}.0/{prefix}", strict=False),
    st.integers(0, 255), st.integers(0, 255), st.integers(14, 24),
)


@settings(max_examples=150, deadline=None)
@given(node=_private, pods=_private)
def test_a_clusters_ranges_may_not_overlap(node: ipaddress.IPv4Network, pods: ipaddress.IPv4Network) -> None:
    cfg = copy.deepcopy(base())
    cfg["clusters"][0].update(nodeCidr=str(node), podCidr=str(pods), serviceCidr="192.168.0.0/20")
    overlap_line = f"clusters[0].podCidr {pods} overlaps clusters[0].nodeCidr {node}"
    # GKE's pod range: /9 to /21, and a /24 for each of maxNodes 3 x 3 zones = 9 nodes.
    pod_size_ok = 9 <= pods.prefixlen <= 21 and 2 ** (24 - pods.prefixlen) >= 9
    try:
        config.parse(cfg, project="mesh-test-project")
    except config.ConfigError as error:
        assert (overlap_line in error.problems) == node.overlaps(pods), error.problems
        assert node.overlaps(pods) or not pod_size_ok, error.problems
    else:
        assert not node.overlaps(pods) and pod_size_ok


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcxyz019-_.A", min_size=1, max_size=40))
def test_cluster_names_must_be_short_dns_labels_starting_with_a_letter(name: str) -> None:
    cfg = copy.deepcopy(base())
    cfg["clusters"][0]["name"] = name
    cfg["traffic"]["weights"] = {name: 100}
    valid = (len(name) <= config.MAX_CLUSTER_NAME and name[0].isalpha() and name[0].islower()
             and name[-1] not in "-" and all(ch in "abcxyz019-" for ch in name) and name != "green")
    try:
        parsed = config.parse(cfg, project="mesh-test-project")
    except config.ConfigError as error:
        assert not valid, error.problems
        assert any(line.startswith("clusters[") for line in error.problems), error.problems
    else:
        assert valid, name
        assert parsed.clusters[0].name == name


def _span(net: ipaddress.IPv4Network) -> tuple[int, int]:
    return int(net.network_address), int(net.broadcast_address)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.builds(lambda a, prefix: ipaddress.ip_network(f"{a}.0.0.0/{prefix}", strict=False),
                          st.integers(0, 255), st.integers(1, 3)), min_size=1, max_size=8))
def test_authorized_networks_are_refused_exactly_when_together_they_cover_every_address(
        nets: list[ipaddress.IPv4Network]) -> None:
    cfg = base()
    cfg["hardening"] = {"authorizedNetworkMinPrefix": 1}
    cfg["authorizedNetworks"] = [{"name": f"n{i}", "cidr": str(n)} for i, n in enumerate(nets)]
    # Oracle: merge the address intervals and see whether one spans 0 .. 2**32 - 1.
    spans = sorted(_span(n) for n in nets)
    reach = -1
    for lo, hi in spans:
        if lo > reach + 1:
            break
        reach = max(reach, hi)
    covers = reach == 2**32 - 1 and spans[0][0] == 0
    try:
        config.parse(cfg, project="mesh-test-project")
    except config.ConfigError as error:
        assert covers, error.problems
        assert [p for p in error.problems if "together cover every IPv4 address" in p], error.problems
    else:
        assert not covers


_PROHIBITED = [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4",
                                                  "255.255.255.255/32", "199.36.153.4/30", "199.36.153.8/30")]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(16, 27))
def test_a_service_range_is_refused_exactly_when_it_touches_a_range_google_cloud_prohibits(
        address: int, prefix: int) -> None:
    net = ipaddress.ip_network((address, prefix), strict=False)
    cfg = base()
    cfg["clusters"][1]["serviceCidr"] = str(net)
    lo, hi = _span(net)
    prohibited = any(lo <= _span(r)[1] and _span(r)[0] <= hi for r in _PROHIBITED)
    try:
        config.parse(cfg, project="mesh-test-project")
    except config.ConfigError as error:
        lines = [p for p in error.problems if "which Google Cloud does not allow in a subnet" in p]
        assert bool(lines) == prohibited, error.problems
        # Anything else refused is an overlap with the cluster's own ranges.
        assert all("overlaps" in p for p in error.problems), error.problems
    else:
        assert not prohibited


_CLUSTER_KEYS = ("name", "network", "region", "nodeCidr", "podCidr", "serviceCidr", "masterCidr", "machineType",
                 "minNodes", "maxNodes", "releaseChannel", "deletionProtection", "istioVersion", "protect")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(_CLUSTER_KEYS).flatmap(lambda k: st.tuples(st.just(k), st.integers(0, len(k) - 1))))
def test_a_key_with_one_letter_case_flipped_or_dropped_is_answered_with_the_key_meant(pick: tuple[str, int]) -> None:
    key, i = pick
    for typo in (key[:i] + key[i].swapcase() + key[i + 1:], key[:i] + key[i + 1:]):
        if typo in _CLUSTER_KEYS or len(typo) < 4:
            continue
        cfg = base()
        cfg["clusters"][0][typo] = cfg["clusters"][0].get(key, 1)
        with pytest.raises(config.ConfigError) as failure:
            config.parse(cfg, project="mesh-test-project")
        assert f"clusters[0].{typo} is not a known key; did you mean {key}? (known: " in failure.value.problems[0]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abz09-_A.", min_size=1, max_size=32))
def test_project_ids_are_accepted_exactly_in_resource_managers_format(project: str) -> None:
    valid = (6 <= len(project) <= 30 and project[0] in "abz" and project[-1] != "-"
             and all(ch in "abz09-" for ch in project))
    try:
        config.parse(base(), project=project)
    except config.ConfigError as error:
        assert not valid, error.problems
        assert error.problems == (
            f"gcp:project {project!r} is not a Google Cloud project ID (6 to 30 lowercase letters, digits and "
            "'-', starting with a letter and not ending with '-')",)
    else:
        assert valid, project


def test_prod_refuses_a_serving_cluster_without_its_protection(run, base_config) -> None:
    """Prod is recognised by stack name, as the policy pack does (components.config.PROD_STACKS)."""
    for c in base_config["clusters"]:
        c.update(protect=True, deletionProtection=True)
    base_config["clusters"][0].update(protect=False)
    base_config["clusters"][1].update(deletionProtection=False)
    assert "prod" in config.PROD_STACKS
    assert _problems(run, base_config, stack="prod") == [
        "clusters[0].protect is false in a prod stack (prod) while blue receives traffic: a serving prod cluster "
        "keeps deletion protection and Pulumi protect; to retire it, move its traffic away first (docs/blue-green.md)",
    ]
    assert run(base_config, stack="dev").resources  # the same config is a valid dev stack


def test_prod_lets_a_cluster_without_traffic_be_unprotected_to_retire_it(run, base_config) -> None:
    """docs/blue-green.md: move the traffic away, then unprotect the cluster in its own `up`, then remove it."""
    for c in base_config["clusters"]:
        c.update(protect=True, deletionProtection=True)
    base_config["clusters"][1].update(protect=False, deletionProtection=False)  # green: weight 0
    base_config["ca"] = {"algorithm": "ECDSA"}
    assert run(base_config, stack="prod").resources


def test_the_policy_pack_and_the_program_name_the_same_prod_stacks() -> None:
    from policy import policies

    assert tuple(policies.PROD_STACKS) == config.PROD_STACKS


def test_the_longest_root_validity_still_generates_certificates(run, base_config) -> None:
    """The bound on ca.rootValidityHours is one certificate generation can encode (X.509 times end in 9999)."""
    from components.config.model import MAX_ROOT_VALIDITY_HOURS

    base_config["ca"] = {"algorithm": "ECDSA", "rootValidityHours": MAX_ROOT_VALIDITY_HOURS,
                         "intermediateValidityHours": MAX_ROOT_VALIDITY_HOURS - 1}
    assert run(base_config).resources
