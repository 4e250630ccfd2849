"""Pure checks of a deployed mesh: stack outputs + objects read from each cluster -> PASS/FAIL rows.

Nothing here talks to a cluster. The API layer (`tools.verify.kube`) reads the objects
and hands them over as plain Kubernetes JSON (camelCase, `data` base64), so every rule
below can be tested with recorded objects and says, on failure, the likely cause and
the command that shows or fixes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from components.names import (
    CLUSTER_ANNOTATION,
    EASTWEST_RELEASE,
    ISTIO_NAMESPACE,
    MULTICLUSTER_LABEL,
    NETWORK_LABEL,
    remote_secret_name,
)

ISTIOD_DEPLOYMENT = "istiod"
CACERTS_SECRET = "cacerts"
ROOT_CERT_KEY = "root-cert.pem"
# istiod writes the root it actually signs with into this ConfigMap in every namespace.
ROOT_CONFIGMAP = "istio-ca-root-cert"
MESH = "mesh"
REQUIRED_CLUSTER_KEYS = ("name", "region", "network", "endpoint", "eastWestGatewayAddress")


class OutputsError(ValueError):
    """The stack outputs cannot drive a verification; one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ClusterOutputs:
    """One cluster as `pulumi stack output clusters` describes it."""

    name: str
    region: str
    network: str
    endpoint: str
    eastwest_address: str
    kubeconfig: str = field(repr=False)
    istio_version: str = ""


@dataclass(frozen=True)
class StackOutputs:
    clusters: tuple[ClusterOutputs, ...]
    root_cert_pem: str = field(repr=False)
    traffic_split: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # `caExpiry` as exported ({cluster: {notAfter, earlyRenewalHours}}); tools.verify.expiry checks it.
    ca_expiry: Mapping[str, Any] = field(default_factory=dict)
    # The `edge.url` output: the public entry, when the stack has an edge.
    edge_url: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.clusters]


def parse_outputs(raw: Any) -> StackOutputs:
    """Validate `pulumi stack output --json --show-secrets`; raise OutputsError naming each bad key."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise OutputsError([f"stack outputs must be a JSON object, got {type(raw).__name__}"])
    for key in ("clusters", "kubeconfigs", "rootCertPem"):
        if key not in raw:
            problems.append(f"outputs.{key} is missing: run `pulumi up` for this stack first")
    clusters_raw = raw.get("clusters", {})
    kubeconfigs = raw.get("kubeconfigs", {})
    if kubeconfigs == "[secret]":
        problems.append("outputs.kubeconfigs is '[secret]': export the outputs with --show-secrets")
        kubeconfigs = {}
    if not isinstance(clusters_raw, Mapping) or ("clusters" in raw and not clusters_raw):
        problems.append("outputs.clusters must be a non-empty object keyed by cluster name")
        clusters_raw = {}
    if not isinstance(kubeconfigs, Mapping):
        problems.append("outputs.kubeconfigs must be an object keyed by cluster name")
        kubeconfigs = {}
    clusters: list[ClusterOutputs] = []
    for name, c in clusters_raw.items():
        key = f"outputs.clusters.{name}"
        if not isinstance(c, Mapping):
            problems.append(f"{key} must be an object")
            continue
        bad = [k for k in REQUIRED_CLUSTER_KEYS if not isinstance(c.get(k), str) or not c.get(k)]
        problems.extend(f"{key}.{k} must be a non-empty string" for k in bad)
        kubeconfig = kubeconfigs.get(name)
        if not isinstance(kubeconfig, str) or not kubeconfig.strip():
            problems.append(f"outputs.kubeconfigs.{name} is missing: every cluster needs its kubeconfig")
        if bad or not isinstance(kubeconfig, str):
            continue
        clusters.append(ClusterOutputs(
            name=c["name"], region=c["region"], network=c["network"], endpoint=c["endpoint"],
            eastwest_address=c["eastWestGatewayAddress"], kubeconfig=kubeconfig,
            istio_version=str(c.get("istioVersion", "")),
        ))
    root = raw.get("rootCertPem", "")
    if "rootCertPem" in raw and (not isinstance(root, str) or "BEGIN CERTIFICATE" not in root):
        problems.append("outputs.rootCertPem must be a PEM certificate")
    split = raw.get("trafficSplit", {})
    if not isinstance(split, Mapping):
        problems.append("outputs.trafficSplit must be an object (host.namespace -> {cluster: weight})")
        split = {}
    edge = raw.get("edge")
    edge_url = edge.get("url") if isinstance(edge, Mapping) else None
    if edge is not None and not (isinstance(edge_url, str) and edge_url.startswith(("http://", "https://"))):
        problems.append("outputs.edge.url must be an http:// or https:// URL (or outputs.edge null: no edge)")
        edge_url = None
    if problems:
        raise OutputsError(problems)
    return StackOutputs(clusters=tuple(clusters), root_cert_pem=root, traffic_split=dict(split),
                        ca_expiry=raw.get("caExpiry") or {}, edge_url=edge_url)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CheckResult:
    """One row of the report: what was checked, what was seen, and what to do about a failure."""

    cluster: str
    check: str
    passed: bool
    detail: str
    cause: str = ""
    fix: str = ""


def _pass(cluster: str, check: str, detail: str) -> CheckResult:
    return CheckResult(cluster, check, True, detail)


def _fail(cluster: str, check: str, detail: str, cause: str, fix: str) -> CheckResult:
    return CheckResult(cluster, check, False, detail, cause, fix)


@dataclass(frozen=True)
class ClusterSnapshot:
    """What the checks need from one cluster, as Kubernetes JSON; None = the object does not exist."""

    name: str
    istiod: Mapping[str, Any] | None
    eastwest_service: Mapping[str, Any] | None
    istio_namespace: Mapping[str, Any] | None
    cacerts: Mapping[str, Any] | None
    root_configmap: Mapping[str, Any] | None
    # other cluster name -> its remote secret in this cluster
    remote_secrets: Mapping[str, Mapping[str, Any] | None]


@dataclass(frozen=True)
class ClusterError:
    """A cluster that could not be read at all (unreachable, auth failure): one message, no traceback."""

    name: str
    message: str
    cause: str
    fix: str


# --------------------------------------------------------------------------- helpers


def _meta(obj: Mapping[str, Any] | None, key: str) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get(key) or {})


def decode_data(obj: Mapping[str, Any] | None, key: str) -> str | None:
    """A Secret's `data[key]` decoded; None when absent or not base64."""
    value = ((obj or {}).get("data") or {}).get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def certificate_der(pem: str) -> bytes | None:
    """DER of the first certificate in a PEM text, so line wrapping and bundles compare equal."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem.encode()).public_bytes(_der_encoding())
    except ValueError:
        return None


def certificates_der(pem: str) -> list[bytes]:
    """Every certificate in a PEM bundle (istio-ca-root-cert may carry several roots)."""
    from cryptography import x509

    try:
        return [c.public_bytes(_der_encoding()) for c in x509.load_pem_x509_certificates(pem.encode())]
    except ValueError:
        return []


def _der_encoding() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def fingerprint(pem: str | None) -> str:
    """A short sha256 fingerprint of a certificate for the report (or of the text if it is not one)."""
    if not pem:
        return "none"
    der = certificate_der(pem) or pem.strip().encode()
    return "sha256:" + hashlib.sha256(der).hexdigest()[:16]


def same_certificate(a: str, b: str) -> bool:
    da, db = certificate_der(a), certificate_der(b)
    if da is None or db is None:
        return a.strip() == b.strip()
    return da == db


# --------------------------------------------------------------------------- checks


def check_istiod(cluster: str, deployment: Mapping[str, Any] | None) -> CheckResult:
    name = "istiod ready"
    where = f"{ISTIO_NAMESPACE}/{ISTIOD_DEPLOYMENT}"
    if deployment is None:
        return _fail(cluster, name, f"Deployment {where} not found",
                     "the istiod chart is not installed (or under another name/revision)",
                     f"`pulumi up`; list releases with `helm -n {ISTIO_NAMESPACE} list`")
    desired = (deployment.get("spec") or {}).get("replicas")
    desired = 1 if desired is None else int(desired)
    available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
    detail = f"{available}/{desired} replicas available"
    if available >= 1:
        return _pass(cluster, name, detail + ("" if available >= desired else " (rolling out)"))
    return _fail(cluster, name, detail,
                 "no istiod pod is ready: pods pending (no node capacity), crash-looping "
                 "(e.g. an unreadable cacerts) or the image cannot be pulled",
                 f"`kubectl -n {ISTIO_NAMESPACE} get pods -l app=istiod` and "
                 f"`kubectl -n {ISTIO_NAMESPACE} logs deploy/{ISTIOD_DEPLOYMENT}`")


def load_balancer_address(service: Mapping[str, Any]) -> str | None:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    for entry in ingress:
        address = (entry or {}).get("ip") or (entry or {}).get("hostname")
        if address:
            return str(address)
    return None


def check_eastwest(cluster: str, service: Mapping[str, Any] | None, expected: str) -> CheckResult:
    name = "east-west gateway address"
    describe = f"`kubectl -n {ISTIO_NAMESPACE} describe svc {EASTWEST_RELEASE}`"
    if service is None:
        return _fail(cluster, name, f"Service {ISTIO_NAMESPACE}/{EASTWEST_RELEASE} not found",
                     "the east-west gateway release is not installed: no traffic can enter this network",
                     f"`pulumi up`; `helm -n {ISTIO_NAMESPACE} status {EASTWEST_RELEASE}`")
    address = load_balancer_address(service)
    if address is None:
        return _fail(cluster, name, "east-west gateway has no external address",
                     "the LoadBalancer is still provisioning or the reserved address is in another region",
                     f"check {describe} events")
    if address != expected:
        return _fail(cluster, name, f"Service has {address}, the stack output says {expected}",
                     "the Service was re-created without the reserved loadBalancerIP, so GKE gave it an "
                     "ephemeral address the other networks' allow-lists do not expect",
                     f"`pulumi refresh` then `pulumi up`; compare {describe}")
    return _pass(cluster, name, address)


def check_network_label(cluster: str, namespace: Mapping[str, Any] | None, network: str) -> CheckResult:
    name = "istio-system network label"
    label = f"{NETWORK_LABEL}={network}"
    fix = f"`kubectl label namespace {ISTIO_NAMESPACE} {label} --overwrite`, then `pulumi refresh`"
    if namespace is None:
        return _fail(cluster, name, f"namespace {ISTIO_NAMESPACE} not found",
                     "Istio is not installed in this cluster", "`pulumi up`")
    value = _meta(namespace, "labels").get(NETWORK_LABEL)
    if value is None:
        return _fail(cluster, name, f"{ISTIO_NAMESPACE} has no {NETWORK_LABEL} label",
                     "istiod treats every endpoint as on its own network, so sidecars dial remote pod IPs "
                     "directly instead of the east-west gateway (timeouts, 503)", fix)
    if value != network:
        return _fail(cluster, name, f"{ISTIO_NAMESPACE} is labelled {NETWORK_LABEL}={value}, expected {network}",
                     "the label was changed by hand or by another installer; istiod advertises the wrong network",
                     fix)
    return _pass(cluster, name, label)


def check_cacerts(cluster: str, secret: Mapping[str, Any] | None, root_pem: str) -> CheckResult:
    name = "cacerts root = stack root"
    restart = f"`kubectl -n {ISTIO_NAMESPACE} rollout restart deploy/{ISTIOD_DEPLOYMENT}`"
    if secret is None:
        return _fail(cluster, name, f"Secret {ISTIO_NAMESPACE}/{CACERTS_SECRET} not found",
                     "istiod generated its own self-signed root, which no other cluster trusts "
                     "(TLS errors, 503 across clusters)", f"`pulumi up`, then {restart} and restart workloads")
    root = decode_data(secret, ROOT_CERT_KEY)
    if root is None:
        return _fail(cluster, name, f"{CACERTS_SECRET} has no {ROOT_CERT_KEY}",
                     "the secret was written by hand with other keys; istiod cannot plug it in",
                     f"`pulumi up` to rewrite it, then {restart}")
    if not same_certificate(root, root_pem):
        return _fail(cluster, name,
                     f"{ROOT_CERT_KEY} is {fingerprint(root)}, the stack root is {fingerprint(root_pem)}",
                     "this cluster trusts another root (a different CA, or a cacerts from an older stack), "
                     "so its workloads reject the other clusters' certificates",
                     f"`pulumi up` to restore cacerts, then {restart} and restart workloads")
    return _pass(cluster, name, fingerprint(root))


def check_active_root(cluster: str, configmap: Mapping[str, Any] | None, root_pem: str) -> CheckResult:
    """istiod reads cacerts only at start-up: the root it distributes shows whether it took the plug-in CA."""
    name = "istiod uses the stack root"
    restart = f"`kubectl -n {ISTIO_NAMESPACE} rollout restart deploy/{ISTIOD_DEPLOYMENT}`"
    if configmap is None:
        return _fail(cluster, name, f"ConfigMap {ISTIO_NAMESPACE}/{ROOT_CONFIGMAP} not found",
                     "istiod has not started yet (it writes this ConfigMap)", f"check istiod; then {restart}")
    bundle = str((configmap.get("data") or {}).get(ROOT_CERT_KEY) or "")
    wanted = certificate_der(root_pem)
    if wanted is not None and wanted in certificates_der(bundle):
        return _pass(cluster, name, fingerprint(root_pem))
    return _fail(cluster, name, f"istiod distributes {fingerprint(bundle)}, not the stack root {fingerprint(root_pem)}",
                 "istiod started before cacerts existed and signs with a self-signed root",
                 f"{restart}, then restart the workloads so they get new certificates")


def check_remote_secret(cluster: str, other: str, secret: Mapping[str, Any] | None,
                        other_endpoint: str) -> CheckResult:
    name = f"remote secret for {other}"
    secret_name = remote_secret_name(other)
    fix = (f"`pulumi up` (MeshLink writes it); list with "
           f"`kubectl -n {ISTIO_NAMESPACE} get secret -l {MULTICLUSTER_LABEL}=true`")
    if secret is None:
        return _fail(cluster, name, f"Secret {ISTIO_NAMESPACE}/{secret_name} not found",
                     f"istiod in {cluster} does not watch {other}'s API server, so it knows no endpoints "
                     f"there (no healthy upstream for {other}'s subset)", fix)
    problems: list[str] = []
    causes: list[str] = []
    if _meta(secret, "labels").get(MULTICLUSTER_LABEL) != "true":
        problems.append(f"label {MULTICLUSTER_LABEL} is not \"true\"")
        causes.append("istiod only reads secrets carrying this label")
    annotation = _meta(secret, "annotations").get(CLUSTER_ANNOTATION)
    if annotation != other:
        problems.append(f"annotation {CLUSTER_ANNOTATION} is {annotation!r}, expected {other!r}")
        causes.append(f"istiod registers {other} under another name, so subsets by "
                      "topology.istio.io/cluster select nothing")
    keys = sorted((secret.get("data") or {}).keys())
    kubeconfig = decode_data(secret, other)
    if other not in keys:
        problems.append(f"data keys are {keys}, expected {other!r}")
        causes.append("the data key names the cluster for istiod; another key means another cluster name")
    elif kubeconfig is not None:
        server = _kubeconfig_server(kubeconfig)
        if server is not None and server.rstrip("/") != f"https://{other_endpoint}":
            problems.append(f"kubeconfig points at {server}, {other}'s endpoint is https://{other_endpoint}")
            causes.append(f"{other} was re-created and the secret still holds its old endpoint")
    if problems:
        return _fail(cluster, name, f"{secret_name}: " + "; ".join(problems), "; ".join(causes), fix)
    return _pass(cluster, name, secret_name)


def _kubeconfig_server(text: str) -> str | None:
    try:
        doc = yaml.safe_load(text)
        return str(doc["clusters"][0]["cluster"]["server"])
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return None


def check_cluster(snapshot: ClusterSnapshot, outputs: StackOutputs) -> list[CheckResult]:
    """Every per-cluster rule, in the order of Istio's multi-network install guide."""
    me = next(c for c in outputs.clusters if c.name == snapshot.name)
    results = [
        check_istiod(me.name, snapshot.istiod),
        check_network_label(me.name, snapshot.istio_namespace, me.network),
        check_cacerts(me.name, snapshot.cacerts, outputs.root_cert_pem),
        check_active_root(me.name, snapshot.root_configmap, outputs.root_cert_pem),
        check_eastwest(me.name, snapshot.eastwest_service, me.eastwest_address),
    ]
    for other in outputs.clusters:
        if other.name != me.name:
            results.append(check_remote_secret(me.name, other.name, snapshot.remote_secrets.get(other.name),
                                               other.endpoint))
    return results


def check_same_root(snapshots: Sequence[ClusterSnapshot]) -> CheckResult:
    """Mesh-wide: every reachable cluster's cacerts carries the same root."""
    name = "same root in every cluster"
    groups: dict[str, list[str]] = {}
    for s in snapshots:
        groups.setdefault(fingerprint(decode_data(s.cacerts, ROOT_CERT_KEY)), []).append(s.name)
    if not groups:
        return _fail(MESH, name, "no cluster could be read", "see the failures above", "fix them and rerun")
    if len(groups) == 1:
        return _pass(MESH, name, f"{next(iter(groups))} in {', '.join(s.name for s in snapshots)}")
    detail = "; ".join(f"{', '.join(names)}: {fp}" for fp, names in groups.items())
    return _fail(MESH, name, detail,
                 "clusters trust different roots, so cross-cluster mTLS fails (TLS errors, 503)",
                 "`pulumi up` to restore every cacerts from the stack's CA, then restart istiod and the workloads")


def unreachable_result(error: ClusterError) -> CheckResult:
    return _fail(error.name, "API server reachable", error.message, error.cause, error.fix)


def evaluate(outputs: StackOutputs, snapshots: Sequence[ClusterSnapshot],
             errors: Sequence[ClusterError]) -> list[CheckResult]:
    """All rows of the report: per cluster (in output order), then the mesh-wide ones."""
    by_name = {s.name: s for s in snapshots}
    failed = {e.name: e for e in errors}
    results: list[CheckResult] = []
    for c in outputs.clusters:
        if c.name in failed:
            results.append(unreachable_result(failed[c.name]))
        elif c.name in by_name:
            results.extend(check_cluster(by_name[c.name], outputs))
    results.append(check_same_root([by_name[c.name] for c in outputs.clusters if c.name in by_name]))
    return results
