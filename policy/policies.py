"""The rules of the gke-istio-mesh policy pack: what must hold for every stack of this program.

A reviewer reads `pulumi preview`; these rules make sure a hardened cluster, mesh-wide
mTLS, a sane traffic split and a root CA key that never enters a cluster cannot be
lost by an edit that looks harmless in a diff. Every check is a pure function of the
properties the engine sends (camelCase, exactly as `offline/engine.py` records them),
so the tests call them without the CLI; `__main__.py` only hands them to `PolicyPack`.

During `pulumi preview` some values are not known yet (a NAT address, a key that is
still to be generated). A rule skips exactly those values and checks everything else;
the same rules run again with every value known during `pulumi up`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as _proxy

PACK_NAME = "gke-istio-mesh"

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
# Stacks held to the CIS GKE defaults (docs/cis.md); other stacks may relax them through config.
PROD_STACKS = ("prod",)
# The broadest authorized network a prod control plane may admit (the config's default prefix).
PROD_MIN_AUTHORIZED_PREFIX = 24
# The Compute Engine default service account: <number>-compute@developer.gserviceaccount.com ("default").
COMPUTE_DEFAULT_ACCOUNT_SUFFIX = "-compute@developer.gserviceaccount.com"
K8S_PROVIDER = "pulumi:providers:kubernetes"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET_TYPES = ("kubernetes:core/v1:Secret", "kubernetes:core/v1:SecretPatch")
PEER_AUTHENTICATION_TYPES = tuple(f"kubernetes:security.istio.io/{v}:PeerAuthentication" for v in ("v1", "v1beta1"))
VIRTUAL_SERVICE_TYPES = tuple(
    f"kubernetes:networking.istio.io/{v}:VirtualService" for v in ("v1", "v1beta1", "v1alpha3"))
TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
TLS_SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"

ISTIO_ROOT_NAMESPACE = "istio-system"
MESH_WIDE_POLICY_NAME = "default"
ISTIOD_CHART = "istiod"
ROOT_CERT_KEY = "root-cert.pem"
WORKLOAD_POOL_SUFFIX = ".svc.id.goog"
ROUTE_KINDS = ("http", "tcp", "tls")
URL_MAP = "gcp:compute/uRLMap:URLMap"
# Compute API: a weightedBackendServices weight is 0..1000; traffic share = weight / sum.
MAX_URL_MAP_WEIGHT = 1000

_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL)
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


# --------------------------------------------------------------------------- reading engine properties


class _Unknown:
    """A value the engine cannot know during preview; rules leave it to `pulumi up`."""

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN: Any = _Unknown()
_SENTINELS = frozenset({
    _proxy.UNKNOWN_BOOLEAN_VALUE, _proxy.UNKNOWN_NUMBER_VALUE, _proxy.UNKNOWN_STRING_VALUE,
    _proxy.UNKNOWN_ARRAY_VALUE, _proxy.UNKNOWN_ASSET_VALUE, _proxy.UNKNOWN_ARCHIVE_VALUE,
    _proxy.UNKNOWN_OBJECT_VALUE,
})


def _known(value: Any) -> Any:
    return UNKNOWN if isinstance(value, str) and value in _SENTINELS else value


def _is_list(value: Any) -> bool:
    # The engine's properties arrive as read-only Mapping/Sequence proxies, not dict/list.
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def get(obj: Any, *path: str | int) -> Any:
    """Walk `path` into engine properties: None when absent, UNKNOWN when not known yet."""
    for key in path:
        if obj is None or obj is UNKNOWN:
            return obj
        try:
            if isinstance(obj, Mapping):
                obj = obj.get(key)
            elif isinstance(key, int) and _is_list(obj):
                obj = obj[key] if 0 <= key < len(obj) else None
            else:
                return None
        except _proxy.UnknownValueError:
            return UNKNOWN
        obj = _known(obj)
    return obj


def elements(seq: Any) -> list[Any]:
    """The items of a list property (UNKNOWN for the ones not known yet); [] if it is no list."""
    if not _is_list(seq):
        return []
    return [get(seq, i) for i in range(len(seq))]


def entries(mapping: Any) -> list[tuple[str, Any]]:
    """The (key, value) pairs of a map property (value UNKNOWN when not known yet)."""
    if not isinstance(mapping, Mapping):
        return []
    return [(str(k), get(mapping, k)) for k in mapping]


def _show(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


# --------------------------------------------------------------------------- GKE cluster and node pools


def private_nodes_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Nodes must have internal addresses only: they leave the VPC through Cloud NAT."""
    problems: list[str] = []
    if resource_type == CLUSTER:
        enabled = get(props, "privateClusterConfig", "enablePrivateNodes")
        if enabled is not True and enabled is not UNKNOWN:
            problems.append(f"privateClusterConfig.enablePrivateNodes is {_show(enabled)}; it must be true "
                            "so that nodes get no public IP addresses")
        for i, pool in enumerate(elements(get(props, "nodePools"))):
            if get(pool, "networkConfig", "enablePrivateNodes") is False:
                problems.append(f"nodePools[{i}].networkConfig.enablePrivateNodes is false; this pool's nodes "
                                "would get public IP addresses")
    elif resource_type == NODE_POOL and get(props, "networkConfig", "enablePrivateNodes") is False:
        problems.append("networkConfig.enablePrivateNodes is false; this pool's nodes would get public IP "
                        "addresses although the cluster has private nodes")
    return problems


def workload_identity_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Pods get Google credentials only through Workload Identity, never the node's account."""
    problems: list[str] = []
    if resource_type == CLUSTER:
        pool = get(props, "workloadIdentityConfig", "workloadPool")
        if pool is UNKNOWN:
            return problems
        if not pool:
            problems.append("workloadIdentityConfig.workloadPool is not set; set it to <project>.svc.id.goog "
                            "so that pods do not act as the node service account")
        elif not str(pool).endswith(WORKLOAD_POOL_SUFFIX):
            problems.append(f"workloadIdentityConfig.workloadPool {pool!r} is not a Workload Identity pool "
                            f"(<project>{WORKLOAD_POOL_SUFFIX})")
        for i, node_pool in enumerate(elements(get(props, "nodePools"))):
            problems += [f"nodePools[{i}].{p}" for p in _node_metadata_problems(get(node_pool, "nodeConfig"))]
    elif resource_type == NODE_POOL:
        problems += _node_metadata_problems(get(props, "nodeConfig"))
    return problems


def _node_metadata_problems(node_config: Any) -> list[str]:
    mode = get(node_config, "workloadMetadataConfig", "mode")
    if mode in ("GCE_METADATA", "MODE_UNSPECIFIED"):
        return [f"nodeConfig.workloadMetadataConfig.mode is {mode!r}; it must be GKE_METADATA (or unset) or "
                "Workload Identity is off for this pool and pods read the node's credentials"]
    return []


def shielded_nodes_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Shielded GKE nodes with secure boot: a node boots only signed, verified software."""
    problems: list[str] = []
    if resource_type == CLUSTER:
        if get(props, "enableShieldedNodes") is False:
            problems.append("enableShieldedNodes is false; Shielded GKE Nodes must stay on")
        if get(props, "enableAutopilot") is True:
            return problems  # Autopilot always runs shielded nodes with secure boot.
        if get(props, "removeDefaultNodePool") is not True:
            problems += _secure_boot_problems(get(props, "nodeConfig"), "nodeConfig (default node pool)")
        for i, pool in enumerate(elements(get(props, "nodePools"))):
            problems += _secure_boot_problems(get(pool, "nodeConfig"), f"nodePools[{i}].nodeConfig")
    elif resource_type == NODE_POOL:
        problems += _secure_boot_problems(get(props, "nodeConfig"), "nodeConfig")
    return problems


def _secure_boot_problems(node_config: Any, where: str) -> list[str]:
    if node_config is UNKNOWN:
        return []
    problems = []
    secure_boot = get(node_config, "shieldedInstanceConfig", "enableSecureBoot")
    if secure_boot is not True and secure_boot is not UNKNOWN:
        problems.append(f"{where}.shieldedInstanceConfig.enableSecureBoot is {_show(secure_boot)}; it must be "
                        "true (GKE's default is false)")
    if get(node_config, "shieldedInstanceConfig", "enableIntegrityMonitoring") is False:
        problems.append(f"{where}.shieldedInstanceConfig.enableIntegrityMonitoring is false; it must stay on")
    return problems


def legacy_abac_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Only RBAC authorises API calls; legacy ABAC grants broad static permissions."""
    if resource_type == CLUSTER and get(props, "enableLegacyAbac") is True:
        return ["enableLegacyAbac is true; it must be false (RBAC only)"]
    return []


def control_plane_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """The public endpoint admits only listed networks, never the whole internet."""
    if resource_type != CLUSTER:
        return []
    config = get(props, "masterAuthorizedNetworksConfig")
    if config is UNKNOWN:
        return []
    if config is None:
        return ["masterAuthorizedNetworksConfig is not set, so the control plane accepts every address; list "
                "the operators' networks (config authorizedNetworks) and the other clusters' NAT addresses"]
    problems = []
    networks: list[ipaddress.IPv4Network] = []
    if get(config, "gcpPublicCidrsAccessEnabled") is True:
        problems.append("masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled is true; it admits every "
                        "Google Cloud public address (anyone's VM) to the control plane")
    for i, block in enumerate(elements(get(config, "cidrBlocks"))):
        cidr = get(block, "cidrBlock")
        if cidr is UNKNOWN or cidr is None:
            continue
        where = f"masterAuthorizedNetworksConfig.cidrBlocks[{i}].cidrBlock"
        try:
            network = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            problems.append(f"{where} {cidr!r} is not a CIDR block")
            continue
        if network.prefixlen == 0:
            label = get(block, "displayName")
            named = f" ({label})" if isinstance(label, str) and label else ""
            problems.append(f"{where} {cidr}{named} opens the control plane to the whole internet")
        elif isinstance(network, ipaddress.IPv4Network):
            networks.append(network)
    # Blocks each narrower than /0 can still add up to every address (0.0.0.0/1 + 128.0.0.0/1).
    if networks and ipaddress.IPv4Network("0.0.0.0/0") in ipaddress.collapse_addresses(networks):
        problems.append("masterAuthorizedNetworksConfig.cidrBlocks together cover every IPv4 address "
                        f"({', '.join(map(str, networks))}); that opens the control plane to the whole internet")
    return problems


def stack_of(urn: str) -> str:
    """The stack a URN belongs to: urn:pulumi:<stack>::<project>::<type>::<name>."""
    head = urn.split("::", 1)[0]
    return head.split(":", 2)[2] if head.count(":") >= 2 else ""


def _is_default_account(account: Any) -> bool:
    return account is None or account == "default" or (
        isinstance(account, str) and account.endswith(COMPUTE_DEFAULT_ACCOUNT_SUFFIX))


def _node_account_problem(node_config: Any, where: str, what: str) -> list[str]:
    if node_config is UNKNOWN:
        return []
    account = get(node_config, "serviceAccount")
    if account is UNKNOWN or not _is_default_account(account):
        return []
    shown = "not set" if account is None else f"{account!r}"
    return [f"{where}.serviceAccount is {shown}, so {what} runs as the Compute Engine default service account "
            "(broad Editor rights; refused where an organisation disables it); use a dedicated account"]


def node_service_account_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GKE 5.2.1: every pool, the cluster's temporary default one included, runs as a dedicated account."""
    if resource_type == CLUSTER:
        if get(props, "enableAutopilot") is True:
            return []
        problems = _node_account_problem(get(props, "nodeConfig"), "nodeConfig",
                                         "the default node pool (created even when removeDefaultNodePool is set)")
        for i, pool in enumerate(elements(get(props, "nodePools"))):
            problems += _node_account_problem(get(pool, "nodeConfig"), f"nodePools[{i}].nodeConfig", "this pool")
        return problems
    if resource_type == NODE_POOL:
        return _node_account_problem(get(props, "nodeConfig"), "nodeConfig", "this pool")
    return []


def secrets_encryption_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GKE 5.3.1: Secrets are encrypted at the application layer with a Cloud KMS key."""
    if resource_type != CLUSTER:
        return []
    config = get(props, "databaseEncryption")
    if config is UNKNOWN:
        return []
    state, key = get(config, "state"), get(config, "keyName")
    if state is UNKNOWN:
        return []
    if state != "ENCRYPTED":
        return [f"databaseEncryption.state is {_show(state) if state is not None else 'not set'}; it must be "
                "ENCRYPTED with a Cloud KMS key (config hardening.databaseEncryption)"]
    if key is not UNKNOWN and not key:
        return ["databaseEncryption.keyName is not set; ENCRYPTED needs the Cloud KMS key that encrypts Secrets"]
    return []


def binary_authorization_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GKE 5.10.5: pods are admitted only after the project's Binary Authorization policy is evaluated."""
    if resource_type != CLUSTER:
        return []
    mode = get(props, "binaryAuthorization", "evaluationMode")
    if mode is UNKNOWN or mode == "PROJECT_SINGLETON_POLICY_ENFORCE":
        return []
    return [f"binaryAuthorization.evaluationMode is {_show(mode) if mode is not None else 'not set'}; it must be "
            "PROJECT_SINGLETON_POLICY_ENFORCE (the project policy's enforcementMode may still be dry-run)"]


def _image_problem(node_config: Any, where: str) -> list[str]:
    image = get(node_config, "imageType")
    if node_config is UNKNOWN or image is UNKNOWN or (isinstance(image, str) and image.upper() == "COS_CONTAINERD"):
        return []
    return [f"{where}.imageType is {_show(image) if image is not None else 'not set'}; it must be COS_CONTAINERD "
            "(Container-Optimized OS with containerd)"]


def node_image_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GKE 5.5.1: nodes run Container-Optimized OS with containerd."""
    if resource_type == CLUSTER and get(props, "enableAutopilot") is not True:
        problems = _image_problem(get(props, "nodeConfig"), "nodeConfig")
        for i, pool in enumerate(elements(get(props, "nodePools"))):
            problems += _image_problem(get(pool, "nodeConfig"), f"nodePools[{i}].nodeConfig")
        return problems
    if resource_type == NODE_POOL:
        return _image_problem(get(props, "nodeConfig"), "nodeConfig")
    return []


def flow_logs_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GKE 5.6.1: the nodes' subnet records VPC Flow Logs."""
    if resource_type != SUBNETWORK:
        return []
    log_config = get(props, "logConfig")
    if log_config is UNKNOWN or (log_config is not None and get(log_config, "flowSampling") != 0):
        return []
    return ["logConfig is not set, so the subnet records no VPC Flow Logs; set it (config hardening.subnetFlowLogs)"
            if log_config is None else "logConfig.flowSampling is 0, so the subnet records no VPC Flow Logs"]


def authorized_prefix_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GKE 5.6.3: the control plane admits only narrow, listed networks."""
    if resource_type != CLUSTER:
        return []
    problems = []
    for i, block in enumerate(elements(get(props, "masterAuthorizedNetworksConfig", "cidrBlocks"))):
        cidr = get(block, "cidrBlock")
        try:
            network = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            continue  # UNKNOWN during preview, or reported by gke-control-plane-not-public
        if 0 < network.prefixlen < PROD_MIN_AUTHORIZED_PREFIX:
            problems.append(f"masterAuthorizedNetworksConfig.cidrBlocks[{i}].cidrBlock {network} is broader than "
                            f"/{PROD_MIN_AUTHORIZED_PREFIX}")
    return problems


# --------------------------------------------------------------------------- VirtualService weights


def virtual_service_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every weighted route splits exactly 100 %: no traffic silently dropped or over-counted."""
    if resource_type not in VIRTUAL_SERVICE_TYPES:
        return []
    problems: list[str] = []
    for kind in ROUTE_KINDS:
        for i, rule in enumerate(elements(get(props, "spec", kind))):
            routes = elements(get(rule, "route"))
            weights = [(j, _destination(r), get(r, "weight")) for j, r in enumerate(routes)]
            given = [(j, d, w) for j, d, w in weights if w is not None]
            if not given or any(w is UNKNOWN for _, _, w in given):
                continue
            bad = [(j, w) for j, _, w in given if not _is_whole(w) or w < 0]
            for j, w in bad:
                problems.append(f"spec.{kind}[{i}].route[{j}].weight {w!r} must be a whole number >= 0")
            if bad:
                continue
            total = sum(int(w) for _, _, w in given)
            if total != 100:
                split = ", ".join(f"{d} {int(w) if w is not None else 0}" for _, d, w in weights)
                problems.append(f"spec.{kind}[{i}].route weights sum to {total} ({split}); they must sum to 100")
    return problems


# --------------------------------------------------------------------------- URL map (edge) weights


def url_map_weights_problems(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every weighted route of the edge's URL map sends traffic somewhere: weights 0-1000, not all 0."""
    if resource_type != URL_MAP:
        return []
    actions = [("defaultRouteAction", get(props, "defaultRouteAction"))]
    actions += [(f"pathMatchers[{i}].defaultRouteAction", get(m, "defaultRouteAction"))
                for i, m in enumerate(elements(get(props, "pathMatchers")))]
    problems: list[str] = []
    for where, action in actions:
        weights = [get(w, "weight") for w in elements(get(action, "weightedBackendServices"))]
        if not weights or any(w is UNKNOWN for w in weights):
            continue
        bad = [(j, w) for j, w in enumerate(weights) if not _is_whole(w) or not 0 <= w <= MAX_URL_MAP_WEIGHT]
        for j, w in bad:
            problems.append(f"{where}.weightedBackendServices[{j}].weight {w!r} must be a whole number "
                            f"from 0 to {MAX_URL_MAP_WEIGHT}")
        if not bad and sum(int(w) for w in weights) == 0:
            problems.append(f"{where}.weightedBackendServices weights are all 0: the edge would serve nothing")
    return problems


def _is_whole(value: Any) -> bool:
    # Numbers arrive from the engine as floats (100.0).
    return isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()


def _destination(route: Any) -> str:
    subset = get(route, "destination", "subset")
    host = get(route, "destination", "host")
    if isinstance(subset, str):
        return f"subset {subset}"
    return f"host {host}" if isinstance(host, str) else "destination"


# --------------------------------------------------------------------------- mesh-wide STRICT mTLS (stack)


@dataclass
class _ClusterMtls:
    """What one Kubernetes provider (one cluster) carries that matters for mesh-wide mTLS."""

    provider_name: str
    istio: str | None = None
    strict: bool = False
    weak: tuple[str, ...] = ()


def _istio_evidence(r: PolicyResource) -> str | None:
    if r.resource_type == HELM_RELEASE:
        chart = get(r.props, "chart")
        if isinstance(chart, str) and chart.rstrip("/").rsplit("/", 1)[-1] == ISTIOD_CHART:
            return f"Helm release {r.name} (chart {ISTIOD_CHART})"
        return None
    group = r.resource_type.split(":", 1)[-1].split("/", 1)[0] if r.resource_type.startswith("kubernetes:") else ""
    if group.endswith("istio.io"):
        return f"{r.resource_type.rsplit(':', 1)[-1]} {r.name}"
    return None


def _mesh_wide_problem(props: Mapping[str, Any]) -> str | None:
    """For istio-system/default: "" if it enforces STRICT (or is not known yet), else what is wrong.

    None for any other PeerAuthentication (it does not decide the mesh-wide mode).
    """
    name = get(props, "metadata", "name")
    namespace = get(props, "metadata", "namespace")
    if UNKNOWN in (name, namespace):
        return ""
    if name != MESH_WIDE_POLICY_NAME or namespace != ISTIO_ROOT_NAMESPACE:
        return None
    if get(props, "spec", "selector") not in (None, UNKNOWN):
        return "it has a workload selector, so it is not mesh-wide"
    mode = get(props, "spec", "mtls", "mode")
    if mode == "STRICT" or mode is UNKNOWN:
        return ""
    return f"its spec.mtls.mode is {_show(mode)}"


def strict_mtls_problems(resources: Sequence[PolicyResource]) -> list[tuple[str, str]]:
    """(message, provider URN) for every cluster that runs Istio without mesh-wide STRICT mTLS.

    A cluster is a Kubernetes provider: the objects declared through it live in that
    cluster. Each istiod reads only its own cluster's PeerAuthentication, so every
    cluster needs its own.
    """
    clusters: dict[str, _ClusterMtls] = {}
    for r in resources:
        if r.resource_type == K8S_PROVIDER:
            clusters.setdefault(r.urn, _ClusterMtls(r.name))
        if r.provider is not None and r.provider.resource_type == K8S_PROVIDER:
            clusters.setdefault(r.provider.urn, _ClusterMtls(r.provider.name))
    for r in resources:
        if r.provider is None or r.provider.urn not in clusters:
            continue
        cluster = clusters[r.provider.urn]
        evidence = _istio_evidence(r)
        if evidence and (cluster.istio is None or r.resource_type == HELM_RELEASE):
            cluster.istio = evidence
        if r.resource_type in PEER_AUTHENTICATION_TYPES:
            problem = _mesh_wide_problem(r.props)
            if problem == "":
                cluster.strict = True
            elif problem is not None:
                cluster.weak += (f"{r.name}: {problem}",)
    problems = []
    for urn, cluster in clusters.items():
        if cluster.istio is None or cluster.strict:
            continue
        found = f" ({'; '.join(cluster.weak)})" if cluster.weak else ""
        problems.append((
            f"the cluster of Kubernetes provider {cluster.provider_name} runs Istio ({cluster.istio}) but has no "
            f"mesh-wide STRICT mTLS{found}: declare a security.istio.io PeerAuthentication named "
            f"{MESH_WIDE_POLICY_NAME} in {ISTIO_ROOT_NAMESPACE} with spec.mtls.mode STRICT and no selector "
            "through this provider",
            urn,
        ))
    return problems


# --------------------------------------------------------------------------- the root CA key stays out (stack)


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_key_fingerprints(text: str) -> list[bytes]:
    """The public keys (DER SubjectPublicKeyInfo) of every unencrypted PEM private key in `text`.

    Comparing public keys, not PEM text, also catches the same key re-encoded (PKCS#1 vs PKCS#8).
    """
    out = []
    for match in _PEM_PRIVATE_KEY.finditer(text):
        try:
            key = serialization.load_pem_private_key(match.group(0).encode(), password=None,
                                                     unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError):
            continue  # encrypted or malformed: nothing to compare
        out.append(_spki(key.public_key()))
    return out


def certificates(text: str) -> list[x509.Certificate]:
    out = []
    for match in _PEM_CERTIFICATE.finditer(text):
        try:
            out.append(x509.load_pem_x509_certificate(match.group(0).encode()))
        except ValueError:
            continue
    return out


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def secret_values(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, text) of every known value of a Secret; `data` values are base64-decoded first."""
    out = []
    for key, value in entries(get(props, "data")):
        if isinstance(value, str):
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                decoded = value
            out.append((f"data[{key}]", decoded))
    for key, value in entries(get(props, "stringData")):
        if isinstance(value, str):
            out.append((f"stringData[{key}]", value))
    return out


def _secret_label(r: PolicyResource) -> str:
    namespace = get(r.props, "metadata", "namespace")
    name = get(r.props, "metadata", "name")
    ns = namespace if isinstance(namespace, str) else "default"
    return f"Secret {ns}/{name if isinstance(name, str) else r.name} ({r.name})"


def root_keys(resources: Sequence[PolicyResource]) -> dict[bytes, str]:
    """Public key of every root CA the stack knows -> how to name it in a message.

    Roots are the CA certificates that pulumi-tls self-signs (and the PrivateKey that
    signs them), and - for a bring-your-own root whose key is only in config - every CA
    certificate that a Secret carries as `root-cert.pem`.
    """
    roots: dict[bytes, str] = {}
    certs_by_key: dict[bytes, str] = {}
    for r in resources:
        if r.resource_type != TLS_SELF_SIGNED_CERT or get(r.props, "isCaCertificate") is not True:
            continue
        key_pem, cert_pem = get(r.props, "privateKeyPem"), get(r.props, "certPem")
        for fp in private_key_fingerprints(key_pem) if isinstance(key_pem, str) else []:
            certs_by_key[fp] = r.name
        for cert in certificates(cert_pem) if isinstance(cert_pem, str) else []:
            certs_by_key[_spki(cert.public_key())] = r.name
    for fp, cert_name in certs_by_key.items():
        roots[fp] = f"the root CA (self-signed certificate {cert_name})"
    for r in resources:
        if r.resource_type != TLS_PRIVATE_KEY:
            continue
        for field in ("privateKeyPem", "privateKeyPemPkcs8"):
            value = get(r.props, field)
            for fp in private_key_fingerprints(value) if isinstance(value, str) else []:
                if fp in certs_by_key:
                    roots[fp] = f"the root CA (key {r.name}, which signs {certs_by_key[fp]})"
    for r in resources:
        if r.resource_type not in SECRET_TYPES:
            continue
        for where, text in secret_values(r.props):
            if not where.endswith(f"[{ROOT_CERT_KEY}]"):
                continue
            for cert in certificates(text):
                if _is_ca(cert):
                    roots.setdefault(_spki(cert.public_key()),
                                     f"the root CA {cert.subject.rfc4514_string()} (the {ROOT_CERT_KEY} "
                                     f"of {_secret_label(r)})")
    return roots


def root_key_problems(resources: Sequence[PolicyResource]) -> list[tuple[str, str]]:
    """(message, Secret URN) for every Secret value that holds a root CA's private key."""
    roots = root_keys(resources)
    problems = []
    for r in resources:
        if r.resource_type not in SECRET_TYPES:
            continue
        for where, text in secret_values(r.props):
            for fp in private_key_fingerprints(text):
                if fp in roots:
                    problems.append((
                        f"{_secret_label(r)} {where} holds the private key of {roots[fp]}. The root key must "
                        "never enter a cluster (it lives only in Pulumi state or your own vault); istiod needs "
                        "only its intermediate's key as ca-key.pem in cacerts",
                        r.urn,
                    ))
    return problems


# --------------------------------------------------------------------------- the pack


def _resource_rule(check: Callable[[str, Mapping[str, Any]], list[str]]) -> Callable[..., None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return validate


def _prod_rule(check: Callable[[str, Mapping[str, Any]], list[str]]) -> Callable[..., None]:
    """A resource rule that holds only in the prod stacks: elsewhere config may relax what it checks."""
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if stack_of(args.urn) not in PROD_STACKS:
            return
        for message in check(args.resource_type, args.props):
            report_violation(f"{message} (required in stack {stack_of(args.urn)})", None)

    return validate


def _stack_rule(check: Callable[[Sequence[PolicyResource]], list[tuple[str, str]]]) -> Callable[..., None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for message, urn in check(args.resources):
            report_violation(message, urn)

    return validate


MANDATORY = EnforcementLevel.MANDATORY

GKE_PRIVATE_NODES = ResourceValidationPolicy(
    name="gke-private-nodes",
    description="GKE nodes have private addresses only (privateClusterConfig.enablePrivateNodes).",
    validate=_resource_rule(private_nodes_problems),
    enforcement_level=MANDATORY,
)
GKE_WORKLOAD_IDENTITY = ResourceValidationPolicy(
    name="gke-workload-identity",
    description="GKE clusters use Workload Identity (workloadIdentityConfig.workloadPool, GKE_METADATA on pools).",
    validate=_resource_rule(workload_identity_problems),
    enforcement_level=MANDATORY,
)
GKE_SHIELDED_NODES = ResourceValidationPolicy(
    name="gke-shielded-nodes",
    description="GKE runs Shielded Nodes with secure boot and integrity monitoring.",
    validate=_resource_rule(shielded_nodes_problems),
    enforcement_level=MANDATORY,
)
GKE_NO_LEGACY_ABAC = ResourceValidationPolicy(
    name="gke-no-legacy-abac",
    description="GKE clusters authorise with RBAC only (enableLegacyAbac false).",
    validate=_resource_rule(legacy_abac_problems),
    enforcement_level=MANDATORY,
)
GKE_CONTROL_PLANE_NOT_PUBLIC = ResourceValidationPolicy(
    name="gke-control-plane-not-public",
    description="The GKE control plane admits only authorized networks, never 0.0.0.0/0.",
    validate=_resource_rule(control_plane_problems),
    enforcement_level=MANDATORY,
)
GKE_DEDICATED_NODE_ACCOUNT = ResourceValidationPolicy(
    name="gke-dedicated-node-service-account",
    description="Every node pool, the temporary default one included, runs as a dedicated service account "
                "(CIS GKE 5.2.1).",
    validate=_resource_rule(node_service_account_problems),
    enforcement_level=MANDATORY,
)
GKE_SECRETS_ENCRYPTED = ResourceValidationPolicy(
    name="gke-secrets-encrypted-with-kms-in-prod",
    description="Prod clusters encrypt Secrets with a Cloud KMS key (CIS GKE 5.3.1).",
    validate=_prod_rule(secrets_encryption_problems),
    enforcement_level=MANDATORY,
)
GKE_BINARY_AUTHORIZATION = ResourceValidationPolicy(
    name="gke-binary-authorization-in-prod",
    description="Prod clusters evaluate the project's Binary Authorization policy (CIS GKE 5.10.5).",
    validate=_prod_rule(binary_authorization_problems),
    enforcement_level=MANDATORY,
)
GKE_COS_CONTAINERD = ResourceValidationPolicy(
    name="gke-cos-containerd-in-prod",
    description="Prod nodes run Container-Optimized OS with containerd (CIS GKE 5.5.1).",
    validate=_prod_rule(node_image_problems),
    enforcement_level=MANDATORY,
)
VPC_FLOW_LOGS = ResourceValidationPolicy(
    name="vpc-subnet-flow-logs-in-prod",
    description="Prod subnets record VPC Flow Logs (CIS GKE 5.6.1).",
    validate=_prod_rule(flow_logs_problems),
    enforcement_level=MANDATORY,
)
GKE_AUTHORIZED_PREFIX = ResourceValidationPolicy(
    name="gke-authorized-networks-narrow-in-prod",
    description=f"Prod control planes admit no network broader than /{PROD_MIN_AUTHORIZED_PREFIX} (CIS GKE 5.6.3).",
    validate=_prod_rule(authorized_prefix_problems),
    enforcement_level=MANDATORY,
)
ISTIO_ROUTE_WEIGHTS = ResourceValidationPolicy(
    name="istio-route-weights-sum-to-100",
    description="Each weighted VirtualService route (http, tcp, tls) splits exactly 100.",
    validate=_resource_rule(virtual_service_problems),
    enforcement_level=MANDATORY,
)
EDGE_URL_MAP_WEIGHTS = ResourceValidationPolicy(
    name="edge-url-map-weights-route-somewhere",
    description="Each weighted route of a URL map has weights 0-1000, not all 0.",
    validate=_resource_rule(url_map_weights_problems),
    enforcement_level=MANDATORY,
)
ISTIO_STRICT_MTLS = StackValidationPolicy(
    name="istio-strict-mtls-in-every-cluster",
    description="Every cluster that runs Istio has a mesh-wide STRICT PeerAuthentication (istio-system/default).",
    validate=_stack_rule(strict_mtls_problems),
    enforcement_level=MANDATORY,
)
ROOT_CA_KEY_NOT_IN_CLUSTER = StackValidationPolicy(
    name="mesh-root-ca-key-not-in-any-cluster",
    description="No Kubernetes Secret holds the mesh root CA's private key.",
    validate=_stack_rule(root_key_problems),
    enforcement_level=MANDATORY,
)

RESOURCE_POLICIES: list[ResourceValidationPolicy] = [
    GKE_PRIVATE_NODES, GKE_WORKLOAD_IDENTITY, GKE_SHIELDED_NODES, GKE_NO_LEGACY_ABAC,
    GKE_CONTROL_PLANE_NOT_PUBLIC, GKE_DEDICATED_NODE_ACCOUNT, GKE_SECRETS_ENCRYPTED, GKE_BINARY_AUTHORIZATION,
    GKE_COS_CONTAINERD, VPC_FLOW_LOGS, GKE_AUTHORIZED_PREFIX, ISTIO_ROUTE_WEIGHTS, EDGE_URL_MAP_WEIGHTS,
]
STACK_POLICIES: list[StackValidationPolicy] = [ISTIO_STRICT_MTLS, ROOT_CA_KEY_NOT_IN_CLUSTER]
POLICIES: list[Policy] = [*RESOURCE_POLICIES, *STACK_POLICIES]
