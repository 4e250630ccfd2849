"""The CrossGuard pack (policy/): every rule both ways, the dev stack passes it, edits of it do not.

Rules are called the way the analyzer calls them - a rule's `validate(args, report)` with
properties wrapped in pulumi-policy's unknown-checking proxies - without the CLI. The
dev stack is converted from what the offline engine recorded: a resource rule sees a
resource's inputs (Analyze), a stack rule every resource's outputs with its provider
(AnalyzeStack). One test starts the real pack entry point and speaks gRPC to it.
"""

from __future__ import annotations

import base64
import copy
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from offline import ROOT, Program, pem_key, run_program, self_signed_pem
from policy import policies as pol

# --------------------------------------------------------------------------- calling rules like the analyzer


def _opts(parent: str | None = None, protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def resource_args(type_: str, props: dict[str, Any], name: str = "r", stack: str = "test") -> ResourceValidationArgs:
    return ResourceValidationArgs(type_, unknown_checking_proxy(copy.deepcopy(props)),
                                  f"urn:pulumi:{stack}::proj::{type_}::{name}", name, _opts(), None)


def violations(policy: Policy, args: ResourceValidationArgs | StackValidationArgs) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    result = policy.validate(args, lambda message, urn=None: found.append((message, urn)))  # type: ignore[arg-type]
    assert result is None, "rules are synchronous"
    return found


def messages(policy: Policy, args: ResourceValidationArgs | StackValidationArgs) -> list[str]:
    return [m for m, _ in violations(policy, args)]


@dataclass
class Declared:
    """One resource as a stack rule sees it; props are editable to derive violating stacks."""

    type: str
    name: str
    urn: str
    props: dict[str, Any]
    provider: str = ""
    parent: str = ""
    dependencies: tuple[str, ...] = ()


def stack_args(declared: list[Declared]) -> StackValidationArgs:
    """What the analyzer builds for AnalyzeStack: proxied props, provider, parent, dependencies."""
    by_urn = {d.urn: d for d in declared}
    resources: dict[str, PolicyResource] = {}
    for d in declared:
        provider = None
        if d.provider in by_urn:
            p = by_urn[d.provider]
            provider = PolicyProviderResource(p.type, unknown_checking_proxy(copy.deepcopy(p.props)), p.urn, p.name)
        resources[d.urn] = PolicyResource(d.type, unknown_checking_proxy(copy.deepcopy(d.props)), d.urn, d.name,
                                          _opts(d.parent or None), provider, None, [], {})
    for d in declared:
        resources[d.urn].parent = resources.get(d.parent)
        resources[d.urn].dependencies = [resources[u] for u in d.dependencies if u in resources]
    return StackValidationArgs(list(resources.values()))


def from_program(stack: Program) -> list[Declared]:
    """The recorded stack as AnalyzeStack sends it: outputs (inputs plus what providers computed)."""
    return [Declared(r.type, r.name, r.urn, copy.deepcopy(r.outputs), r.provider_urn, r.parent,
                     tuple(r.dependencies)) for r in stack.resources]


def find(declared: list[Declared], type_: str, name: str) -> Declared:
    (match,) = [d for d in declared if d.type == type_ and d.name == name]
    return match


# --------------------------------------------------------------------------- GKE cluster and node pool rules

CLUSTER_RULES = [pol.GKE_PRIVATE_NODES, pol.GKE_WORKLOAD_IDENTITY, pol.GKE_SHIELDED_NODES, pol.GKE_NO_LEGACY_ABAC,
                 pol.GKE_CONTROL_PLANE_NOT_PUBLIC]

GOOD_CLUSTER: dict[str, Any] = {
    "location": "us-west1",
    "privateClusterConfig": {"enablePrivateNodes": True, "enablePrivateEndpoint": False,
                             "masterIpv4CidrBlock": "172.16.0.0/28"},
    "workloadIdentityConfig": {"workloadPool": "my-project.svc.id.goog"},
    "enableShieldedNodes": True,
    "enableLegacyAbac": False,
    "removeDefaultNodePool": True,
    "initialNodeCount": 1.0,
    # The temporary default pool: the dedicated account and COS containerd (no shielded config, so the
    # removeDefaultNodePool case below shows the secure-boot rule looking at it).
    "nodeConfig": {"serviceAccount": "blue-nodes-1a2b@my-project.iam.gserviceaccount.com",
                   "imageType": "COS_CONTAINERD"},
    "databaseEncryption": {"state": "ENCRYPTED",
                           "keyName": "projects/my-project/locations/us-west1/keyRings/blue-secrets-1a2b/cryptoKeys/"
                                      "gke-secrets"},
    "binaryAuthorization": {"evaluationMode": "PROJECT_SINGLETON_POLICY_ENFORCE"},
    "masterAuthorizedNetworksConfig": {
        "cidrBlocks": [{"cidrBlock": "203.0.113.0/24", "displayName": "operators"},
                       {"cidrBlock": "34.81.0.7/32", "displayName": "istiod in green"}],
        "gcpPublicCidrsAccessEnabled": False,
    },
}

GOOD_POOL: dict[str, Any] = {
    "cluster": "blue-1234567",
    "nodeConfig": {
        "machineType": "e2-standard-4",
        "imageType": "COS_CONTAINERD",
        "serviceAccount": "blue-nodes-1a2b@my-project.iam.gserviceaccount.com",
        "shieldedInstanceConfig": {"enableSecureBoot": True, "enableIntegrityMonitoring": True},
        "workloadMetadataConfig": {"mode": "GKE_METADATA"},
    },
}


def edited(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the dotted `path` set to `value` (a _DELETE value removes it)."""
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return out


_DELETE = object()


GOOD_SUBNET: dict[str, Any] = {
    "ipCidrRange": "10.10.0.0/20", "region": "us-west1",
    "logConfig": {"aggregationInterval": "INTERVAL_5_SEC", "flowSampling": 0.5, "metadata": "INCLUDE_ALL_METADATA"},
}


def test_hardened_cluster_and_node_pool_pass_every_rule() -> None:
    for policy in pol.RESOURCE_POLICIES:
        for stack in ("dev", "prod"):
            assert messages(policy, resource_args(pol.CLUSTER, GOOD_CLUSTER, stack=stack)) == [], policy.name
            assert messages(policy, resource_args(pol.NODE_POOL, GOOD_POOL, stack=stack)) == [], policy.name
            assert messages(policy, resource_args(pol.SUBNETWORK, GOOD_SUBNET, stack=stack)) == [], policy.name


# (policy, resource type, path, value, the line prod must see). In any other stack config may relax these.
PROD_ONLY = [
    (pol.GKE_SECRETS_ENCRYPTED, pol.CLUSTER, "databaseEncryption", "delete",
     "databaseEncryption.state is not set; it must be ENCRYPTED with a Cloud KMS key"),
    (pol.GKE_SECRETS_ENCRYPTED, pol.CLUSTER, "databaseEncryption.state", "DECRYPTED",
     "databaseEncryption.state is 'DECRYPTED'; it must be ENCRYPTED"),
    (pol.GKE_SECRETS_ENCRYPTED, pol.CLUSTER, "databaseEncryption.keyName", "",
     "databaseEncryption.keyName is not set"),
    (pol.GKE_BINARY_AUTHORIZATION, pol.CLUSTER, "binaryAuthorization.evaluationMode", "DISABLED",
     "binaryAuthorization.evaluationMode is 'DISABLED'; it must be PROJECT_SINGLETON_POLICY_ENFORCE"),
    (pol.GKE_BINARY_AUTHORIZATION, pol.CLUSTER, "binaryAuthorization", "delete",
     "binaryAuthorization.evaluationMode is not set"),
    (pol.GKE_COS_CONTAINERD, pol.CLUSTER, "nodeConfig.imageType", "UBUNTU_CONTAINERD",
     "nodeConfig.imageType is 'UBUNTU_CONTAINERD'; it must be COS_CONTAINERD"),
    (pol.GKE_COS_CONTAINERD, pol.NODE_POOL, "nodeConfig.imageType", "delete",
     "nodeConfig.imageType is not set; it must be COS_CONTAINERD"),
    (pol.VPC_FLOW_LOGS, pol.SUBNETWORK, "logConfig", "delete",
     "logConfig is not set, so the subnet records no VPC Flow Logs"),
    (pol.VPC_FLOW_LOGS, pol.SUBNETWORK, "logConfig.flowSampling", 0,
     "logConfig.flowSampling is 0, so the subnet records no VPC Flow Logs"),
    (pol.GKE_AUTHORIZED_PREFIX, pol.CLUSTER, "masterAuthorizedNetworksConfig.cidrBlocks",
     [{"cidrBlock": "203.0.113.0/24"}, {"cidrBlock": "198.51.0.0/16"}],
     "masterAuthorizedNetworksConfig.cidrBlocks[1].cidrBlock 198.51.0.0/16 is broader than /24"),
]
_GOOD = {pol.CLUSTER: GOOD_CLUSTER, pol.NODE_POOL: GOOD_POOL, pol.SUBNETWORK: GOOD_SUBNET}


@pytest.mark.parametrize(("policy", "type_", "path", "value", "expected"), PROD_ONLY)
def test_each_cis_default_is_enforced_in_prod_and_relaxable_elsewhere(policy, type_, path, value, expected) -> None:
    props = edited(_GOOD[type_], path, _DELETE if value == "delete" else value)
    found = messages(policy, resource_args(type_, props, stack="prod"))
    assert len(found) == 1 and found[0].startswith(expected), found
    assert found[0].endswith("(required in stack prod)"), found
    assert messages(policy, resource_args(type_, props, stack="dev")) == []


@pytest.mark.parametrize(("type_", "path", "value", "expected"), [
    (pol.CLUSTER, "nodeConfig", _DELETE, "nodeConfig.serviceAccount is not set, so the default node pool"),
    (pol.CLUSTER, "nodeConfig.serviceAccount", "123456789012-compute@developer.gserviceaccount.com",
     "nodeConfig.serviceAccount is '123456789012-compute@developer.gserviceaccount.com', so the default node pool"),
    (pol.NODE_POOL, "nodeConfig.serviceAccount", "default",
     "nodeConfig.serviceAccount is 'default', so this pool runs as the Compute Engine default service account"),
])
def test_every_pool_runs_as_a_dedicated_account_in_every_stack(type_, path, value, expected) -> None:
    props = edited(_GOOD[type_], path, value)
    for stack in ("dev", "prod"):
        (found,) = messages(pol.GKE_DEDICATED_NODE_ACCOUNT, resource_args(type_, props, stack=stack))
        assert found.startswith(expected), found


def test_authorized_networks_that_together_cover_the_internet_are_caught() -> None:
    props = edited(GOOD_CLUSTER, "masterAuthorizedNetworksConfig.cidrBlocks",
                   [{"cidrBlock": "0.0.0.0/1"}, {"cidrBlock": "128.0.0.0/2"}, {"cidrBlock": "192.0.0.0/2"}])
    assert messages(pol.GKE_CONTROL_PLANE_NOT_PUBLIC, resource_args(pol.CLUSTER, props)) == [
        "masterAuthorizedNetworksConfig.cidrBlocks together cover every IPv4 address (0.0.0.0/1, 128.0.0.0/2, "
        "192.0.0.0/2); that opens the control plane to the whole internet"]
    one_short = edited(GOOD_CLUSTER, "masterAuthorizedNetworksConfig.cidrBlocks",
                       [{"cidrBlock": "0.0.0.0/1"}, {"cidrBlock": "128.0.0.0/2"}])
    assert messages(pol.GKE_CONTROL_PLANE_NOT_PUBLIC, resource_args(pol.CLUSTER, one_short)) == []


@pytest.mark.parametrize(("policy", "path", "value", "expected"), [
    (pol.GKE_PRIVATE_NODES, "privateClusterConfig.enablePrivateNodes", False,
     "privateClusterConfig.enablePrivateNodes is false; it must be true"),
    (pol.GKE_PRIVATE_NODES, "privateClusterConfig", _DELETE, "privateClusterConfig.enablePrivateNodes is not set"),
    (pol.GKE_WORKLOAD_IDENTITY, "workloadIdentityConfig", _DELETE, "workloadIdentityConfig.workloadPool is not set"),
    (pol.GKE_WORKLOAD_IDENTITY, "workloadIdentityConfig.workloadPool", "my-project.iam.gserviceaccount.com",
     "is not a Workload Identity pool"),
    (pol.GKE_SHIELDED_NODES, "enableShieldedNodes", False, "enableShieldedNodes is false"),
    (pol.GKE_SHIELDED_NODES, "removeDefaultNodePool", False,
     "nodeConfig (default node pool).shieldedInstanceConfig.enableSecureBoot is not set"),
    (pol.GKE_NO_LEGACY_ABAC, "enableLegacyAbac", True, "enableLegacyAbac is true"),
    (pol.GKE_CONTROL_PLANE_NOT_PUBLIC, "masterAuthorizedNetworksConfig", _DELETE,
     "masterAuthorizedNetworksConfig is not set"),
    (pol.GKE_CONTROL_PLANE_NOT_PUBLIC, "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled", True,
     "gcpPublicCidrsAccessEnabled is true"),
    (pol.GKE_CONTROL_PLANE_NOT_PUBLIC, "masterAuthorizedNetworksConfig.cidrBlocks",
     [{"cidrBlock": "0.0.0.0/0", "displayName": "everyone"}],
     "cidrBlocks[0].cidrBlock 0.0.0.0/0 (everyone) opens the control plane to the whole internet"),
])
def test_each_cluster_rule_catches_its_weakening_and_only_it(policy, path, value, expected) -> None:
    props = edited(GOOD_CLUSTER, path, value)
    found = messages(policy, resource_args(pol.CLUSTER, props))
    assert len(found) == 1 and expected in found[0], found
    others = [p.name for p in CLUSTER_RULES if p is not policy and messages(p, resource_args(pol.CLUSTER, props))]
    assert others == []


@pytest.mark.parametrize(("policy", "path", "value", "expected"), [
    (pol.GKE_SHIELDED_NODES, "nodeConfig.shieldedInstanceConfig", _DELETE,
     "nodeConfig.shieldedInstanceConfig.enableSecureBoot is not set; it must be true"),
    (pol.GKE_SHIELDED_NODES, "nodeConfig.shieldedInstanceConfig.enableIntegrityMonitoring", False,
     "enableIntegrityMonitoring is false"),
    (pol.GKE_PRIVATE_NODES, "networkConfig.enablePrivateNodes", False,
     "networkConfig.enablePrivateNodes is false"),
    (pol.GKE_WORKLOAD_IDENTITY, "nodeConfig.workloadMetadataConfig.mode", "GCE_METADATA",
     "workloadMetadataConfig.mode is 'GCE_METADATA'"),
])
def test_node_pool_rules(policy, path, value, expected) -> None:
    found = messages(policy, resource_args(pol.NODE_POOL, edited(GOOD_POOL, path, value)))
    assert len(found) == 1 and expected in found[0], found


def test_cidr_not_known_during_preview_is_skipped_but_the_rest_is_still_checked() -> None:
    props = edited(GOOD_CLUSTER, "masterAuthorizedNetworksConfig.cidrBlocks",
                   [{"cidrBlock": UNKNOWN_STRING_VALUE, "displayName": "istiod in green"}])
    assert messages(pol.GKE_CONTROL_PLANE_NOT_PUBLIC, resource_args(pol.CLUSTER, props)) == []
    props["masterAuthorizedNetworksConfig"]["cidrBlocks"].append({"cidrBlock": "::/0"})
    (found,) = messages(pol.GKE_CONTROL_PLANE_NOT_PUBLIC, resource_args(pol.CLUSTER, props))
    assert "cidrBlocks[1].cidrBlock ::/0 opens the control plane" in found


# --------------------------------------------------------------------------- VirtualService weights


def virtual_service(kind: str = "http", weights: tuple[Any, ...] = (100, 0)) -> dict[str, Any]:
    host = "helloworld.sample.svc.cluster.local"
    route = [{"destination": {"host": host, "subset": s}, **({"weight": float(w)} if w is not None else {})}
             for s, w in zip(("blue", "green", "teal"), weights, strict=False)]
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "helloworld-clusters", "namespace": "sample"},
            "spec": {"hosts": [host], kind: [{"route": route}]}}


@pytest.mark.parametrize("type_", pol.VIRTUAL_SERVICE_TYPES)
@pytest.mark.parametrize("kind", ["http", "tcp", "tls"])
def test_route_weights_must_sum_to_100(type_, kind) -> None:
    assert messages(pol.ISTIO_ROUTE_WEIGHTS, resource_args(type_, virtual_service(kind, (90, 10)))) == []
    (found,) = messages(pol.ISTIO_ROUTE_WEIGHTS, resource_args(type_, virtual_service(kind, (90, 20))))
    assert f"spec.{kind}[0].route weights sum to 110 (subset blue 90, subset green 20); they must sum to 100" in found


@pytest.mark.parametrize(("weights", "expected"), [
    ((None,), None),  # one destination, no weight: it gets everything
    ((None, None), None),  # no weights at all: Istio's default split, nothing to check
    ((100, None), None),  # a missing weight counts as 0
    ((60, None, 30), "weights sum to 90 (subset blue 60, subset green 0, subset teal 30)"),
    ((0, 0), "weights sum to 0"),
    ((110, -10), "route[1].weight -10.0 must be a whole number >= 0"),
    ((50.5, 49.5), "route[0].weight 50.5 must be a whole number >= 0"),
])
def test_route_weight_edge_cases(weights, expected) -> None:
    found = messages(pol.ISTIO_ROUTE_WEIGHTS, resource_args(pol.VIRTUAL_SERVICE_TYPES[0],
                                                           virtual_service("http", weights)))
    if expected is None:
        assert found == []
    else:
        assert any(expected in m for m in found), found


def test_weights_rule_ignores_other_kinds() -> None:
    dr = virtual_service("http", (90, 20)) | {"kind": "DestinationRule"}
    args = resource_args("kubernetes:networking.istio.io/v1:DestinationRule", dr)
    assert messages(pol.ISTIO_ROUTE_WEIGHTS, args) == []


# --------------------------------------------------------------------------- STRICT mTLS in every cluster


def k8s_cluster(name: str, *, istiod: bool = True, mtls: dict[str, Any] | None = None,
                extra: tuple[Declared, ...] = ()) -> list[Declared]:
    """A provider and what goes through it: optionally istiod and a PeerAuthentication."""
    provider = Declared(pol.K8S_PROVIDER, f"{name}-k8s", f"urn:pulumi:t::p::{pol.K8S_PROVIDER}::{name}-k8s",
                        {"clusterIdentifier": f"projects/p/locations/r/clusters/{name}"})
    out = [provider, Declared("kubernetes:core/v1:Namespace", f"{name}-istio-system", f"urn:ns:{name}",
                              {"metadata": {"name": "istio-system"}}, provider.urn)]
    if istiod:
        out.append(Declared(pol.HELM_RELEASE, f"{name}-istiod", f"urn:istiod:{name}",
                            {"chart": "istiod", "name": "istiod", "namespace": "istio-system"}, provider.urn))
    if mtls is not None:
        out.append(Declared(pol.PEER_AUTHENTICATION_TYPES[0], f"{name}-strict-mtls", f"urn:pa:{name}",
                            {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", **mtls},
                            provider.urn))
    return out + [Declared(d.type, d.name, d.urn, d.props, provider.urn) for d in extra]


STRICT = {"metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}}


def test_strict_mtls_in_every_istio_cluster_passes() -> None:
    stack = k8s_cluster("blue", mtls=STRICT) + k8s_cluster("green", mtls=STRICT) + k8s_cluster("tools", istiod=False)
    assert violations(pol.ISTIO_STRICT_MTLS, stack_args(stack)) == []


@pytest.mark.parametrize(("mtls", "expected"), [
    (None, "has no mesh-wide STRICT mTLS: declare"),
    (edited(STRICT, "spec.mtls.mode", "PERMISSIVE"), "(green-strict-mtls: its spec.mtls.mode is 'PERMISSIVE')"),
    (edited(STRICT, "spec.mtls", _DELETE), "its spec.mtls.mode is not set"),
    (edited(STRICT, "spec.selector", {"matchLabels": {"app": "x"}}), "it has a workload selector"),
    (edited(STRICT, "metadata.namespace", "sample"), "has no mesh-wide STRICT mTLS: declare"),
    (edited(STRICT, "metadata.name", "strict"), "has no mesh-wide STRICT mTLS: declare"),
])
def test_a_cluster_without_mesh_wide_strict_mtls_is_reported_at_its_provider(mtls, expected) -> None:
    green = k8s_cluster("green", mtls=mtls)
    (found,) = violations(pol.ISTIO_STRICT_MTLS, stack_args(k8s_cluster("blue", mtls=STRICT) + green))
    assert found[1] == green[0].urn
    assert "Kubernetes provider green-k8s runs Istio (Helm release green-istiod (chart istiod))" in found[0]
    assert expected in found[0]


def test_istio_resources_without_istiod_also_count_as_istio() -> None:
    vs = Declared(pol.VIRTUAL_SERVICE_TYPES[0], "edge-vs", "urn:vs:edge", virtual_service())
    (found,) = violations(pol.ISTIO_STRICT_MTLS, stack_args(k8s_cluster("edge", istiod=False, extra=(vs,))))
    assert "runs Istio (VirtualService edge-vs)" in found[0]


def test_peer_authentication_in_another_cluster_does_not_count() -> None:
    """Each istiod reads only its own cluster: blue's policy does not cover green."""
    blue = k8s_cluster("blue", mtls=STRICT)
    green = k8s_cluster("green", mtls=None)
    found = violations(pol.ISTIO_STRICT_MTLS, stack_args(blue + green))
    assert [urn for _, urn in found] == [green[0].urn]


# --------------------------------------------------------------------------- the root CA key never in a cluster


def _ca_pair(cn: str) -> tuple[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    return self_signed_pem(key, cn), key


ROOT_CERT, ROOT_KEY = _ca_pair("Root CA")
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL
INTER_CERT, INTER_KEY = _ca_pair("Intermediate CA")


def ca_stack(*secrets: dict[str, Any], generated_root: bool = True) -> list[Declared]:
    """pulumi-tls root (key + self-signed cert) when `generated_root`, plus Secrets in one cluster."""
    out = k8s_cluster("blue", mtls=STRICT)
    if generated_root:
        out += [
            Declared(pol.TLS_PRIVATE_KEY, "mesh-ca-root-key", "urn:tls:root-key",
                     {"algorithm": "ECDSA", "privateKeyPem": pem_key(ROOT_KEY, TRADITIONAL),
                      "privateKeyPemPkcs8": pem_key(ROOT_KEY)}),
            Declared(pol.TLS_SELF_SIGNED_CERT, "mesh-ca-root-cert", "urn:tls:root-cert",
                     {"isCaCertificate": True, "privateKeyPem": pem_key(ROOT_KEY), "certPem": ROOT_CERT},
                     dependencies=("urn:tls:root-key",)),
        ]
    for i, secret in enumerate(secrets):
        out.append(Declared("kubernetes:core/v1:Secret", f"secret-{i}", f"urn:secret:{i}",
                            {"type": "Opaque", "metadata": {"name": f"s{i}", "namespace": "istio-system"}, **secret},
                            out[0].urn))
    return out


CACERTS = {"stringData": {"ca-cert.pem": INTER_CERT, "ca-key.pem": pem_key(INTER_KEY), "root-cert.pem": ROOT_CERT,
                          "cert-chain.pem": INTER_CERT + ROOT_CERT}}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_cacerts_with_the_intermediate_key_passes() -> None:
    assert violations(pol.ROOT_CA_KEY_NOT_IN_CLUSTER, stack_args(ca_stack(CACERTS))) == []
    as_live = {"data": {k: _b64(v) for k, v in CACERTS["stringData"].items()}}
    assert violations(pol.ROOT_CA_KEY_NOT_IN_CLUSTER, stack_args(ca_stack(as_live))) == []


@pytest.mark.parametrize(("secret", "where"), [
    ({"stringData": {"ca-key.pem": pem_key(ROOT_KEY)}}, "stringData[ca-key.pem]"),
    # Same key, other encoding (PKCS#1-style EC key) and embedded in a larger value.
    ({"stringData": {"bundle": "x\n" + pem_key(ROOT_KEY, TRADITIONAL)}},
     "stringData[bundle]"),
    # `data` values are base64: the live object after `stringData` was applied.
    ({"data": {"root-key.pem": _b64(pem_key(ROOT_KEY))}}, "data[root-key.pem]"),
])
def test_a_secret_holding_the_generated_root_key_is_reported(secret, where) -> None:
    stack = ca_stack(CACERTS, secret)
    (found,) = violations(pol.ROOT_CA_KEY_NOT_IN_CLUSTER, stack_args(stack))
    assert found[1] == "urn:secret:1"
    assert (f"Secret istio-system/s1 (secret-1) {where} holds the private key of the root CA "
            "(key mesh-ca-root-key, which signs mesh-ca-root-cert)") in found[0]


def test_bring_your_own_root_is_recognised_by_the_root_cert_pem_of_cacerts() -> None:
    """No pulumi-tls root in the stack: the root is known only as cacerts' root-cert.pem."""
    leak = {"data": {"key": _b64(pem_key(ROOT_KEY))}}
    stack = ca_stack(CACERTS, leak, generated_root=False)
    (found,) = violations(pol.ROOT_CA_KEY_NOT_IN_CLUSTER, stack_args(stack))
    assert "holds the private key of the root CA CN=Root CA (the root-cert.pem of Secret istio-system/s0" in found[0]
    other_key = {"stringData": {"key": pem_key(ec.generate_private_key(ec.SECP256R1()))}}
    assert violations(pol.ROOT_CA_KEY_NOT_IN_CLUSTER, stack_args(ca_stack(CACERTS, other_key,
                                                                          generated_root=False))) == []


def test_secret_values_not_known_during_preview_are_skipped() -> None:
    stack = ca_stack({"stringData": {"ca-key.pem": UNKNOWN_STRING_VALUE}, "data": UNKNOWN_STRING_VALUE},
                     {"stringData": {"leak": pem_key(ROOT_KEY)}})
    assert [urn for _, urn in violations(pol.ROOT_CA_KEY_NOT_IN_CLUSTER, stack_args(stack))] == ["urn:secret:1"]


# --------------------------------------------------------------------------- the dev stack against its own pack


def run_resource_rules(stack: Program, edit: Callable[[Any, dict[str, Any]], None] | None = None,
                       ) -> dict[str, list[tuple[str, str]]]:
    """Every resource rule on every resource's inputs (as Analyze sees them); edit may alter a copy."""
    found: dict[str, list[tuple[str, str]]] = {}
    for r in stack.resources:
        inputs = copy.deepcopy(r.inputs)
        if edit:
            edit(r, inputs)
        args = ResourceValidationArgs(r.type, unknown_checking_proxy(inputs), r.urn, r.name, _opts(r.parent),
                                      None)
        for policy in pol.RESOURCE_POLICIES:
            for message, _ in violations(policy, args):
                found.setdefault(policy.name, []).append((r.name, message))
    return found


def run_stack_rules(declared: list[Declared]) -> dict[str, list[tuple[str, str | None]]]:
    args = stack_args(declared)
    return {p.name: v for p in pol.STACK_POLICIES if (v := violations(p, args))}


def test_the_dev_stack_passes_its_own_pack(base_stack: Program) -> None:
    types = {r.type for r in base_stack.resources}
    # Not vacuous: every rule has something of its kind to look at.
    assert {pol.CLUSTER, pol.NODE_POOL, pol.K8S_PROVIDER, pol.HELM_RELEASE, pol.TLS_PRIVATE_KEY,
            pol.TLS_SELF_SIGNED_CERT, pol.VIRTUAL_SERVICE_TYPES[0], pol.PEER_AUTHENTICATION_TYPES[0],
            pol.SECRET_TYPES[0]} <= types
    assert run_resource_rules(base_stack) == {}
    assert run_stack_rules(from_program(base_stack)) == {}


def test_the_prod_stack_passes_the_pack_too() -> None:
    """Pulumi.prod.yaml (bigger pools, protect on, other CIDRs) must not drift out of the pack."""
    prod = run_program(None, stack="prod")
    assert len(prod.of_type(pol.CLUSTER)) >= 2
    assert run_resource_rules(prod) == {}
    assert run_stack_rules(from_program(prod)) == {}


RELAXED = {"databaseEncryption": False, "binaryAuthorization": "DISABLED", "imageType": "UBUNTU_CONTAINERD",
           "subnetFlowLogs": False, "authorizedNetworkMinPrefix": 16}
CIS_PROD_RULES = {pol.GKE_SECRETS_ENCRYPTED.name, pol.GKE_BINARY_AUTHORIZATION.name, pol.GKE_COS_CONTAINERD.name,
                  pol.VPC_FLOW_LOGS.name, pol.GKE_AUTHORIZED_PREFIX.name}


@pytest.mark.parametrize(("stack", "caught"), [("prod", CIS_PROD_RULES), ("dev", set())])
def test_relaxed_hardening_passes_in_dev_and_is_refused_in_prod(base_config, stack: str, caught: set[str]) -> None:
    cfg = {**base_config, "hardening": RELAXED, "ca": {"algorithm": "ECDSA"},
           "authorizedNetworks": [{"name": "corp", "cidr": "198.51.0.0/16"}],
           # the program itself refuses a serving prod cluster without its protection (test_config.py)
           "clusters": [{**c, "protect": True, "deletionProtection": True} for c in base_config["clusters"]]}
    assert set(run_resource_rules(run_program(cfg, stack=stack))) == caught


def test_dev_cluster_with_public_nodes_is_caught(base_stack: Program) -> None:
    def public_green(r: Any, inputs: dict[str, Any]) -> None:
        if r.type == pol.CLUSTER and r.name == "green":
            inputs["privateClusterConfig"]["enablePrivateNodes"] = False

    assert run_resource_rules(base_stack, public_green) == {"gke-private-nodes": [
        ("green", "privateClusterConfig.enablePrivateNodes is false; it must be true so that nodes get no public "
                  "IP addresses")]}


def test_dev_routes_that_do_not_sum_to_100_are_caught(base_stack: Program) -> None:
    def overbooked(r: Any, inputs: dict[str, Any]) -> None:
        if r.type in pol.VIRTUAL_SERVICE_TYPES and r.name.startswith("blue-"):
            inputs["spec"]["http"][0]["route"][1]["weight"] = 20.0

    found = run_resource_rules(base_stack, overbooked)
    assert list(found) == ["istio-route-weights-sum-to-100"]
    assert [name for name, _ in found["istio-route-weights-sum-to-100"]] == ["blue-routing.helloworld.sample-vs"]


def test_dev_cluster_without_its_peer_authentication_is_caught(base_stack: Program) -> None:
    declared = [d for d in from_program(base_stack) if d.name != "green-strict-mtls"]
    green_provider = base_stack.find(pol.K8S_PROVIDER, "green-k8s")
    found = run_stack_rules(declared)
    assert list(found) == ["istio-strict-mtls-in-every-cluster"]
    assert [urn for _, urn in found["istio-strict-mtls-in-every-cluster"]] == [green_provider.urn]


def test_dev_cacerts_holding_the_root_key_is_caught(base_stack: Program) -> None:
    declared = from_program(base_stack)
    root_key = find(declared, pol.TLS_PRIVATE_KEY, "mesh-ca-root-key").props["privateKeyPemPkcs8"]
    cacerts = find(declared, "kubernetes:core/v1:Secret", "blue-cacerts")
    cacerts.props["stringData"]["ca-key.pem"] = root_key
    green = find(declared, "kubernetes:core/v1:Secret", "green-cacerts")
    green.props["data"] = {"extra.pem": _b64(root_key)}
    found = run_stack_rules(declared)
    assert list(found) == ["mesh-root-ca-key-not-in-any-cluster"]
    reported = sorted((urn, msg.split(" holds")[0]) for msg, urn in found["mesh-root-ca-key-not-in-any-cluster"])
    assert reported == sorted([
        (cacerts.urn, "Secret istio-system/cacerts (blue-cacerts) stringData[ca-key.pem]"),
        (green.urn, "Secret istio-system/cacerts (green-cacerts) data[extra.pem]"),
    ])


def test_bring_your_own_root_stack_passes_and_its_root_key_is_still_guarded(run, base_config) -> None:
    cert_pem, key = _ca_pair("Team Root")
    key_pem = pem_key(key)
    base_config["ca"] = {"algorithm": "ECDSA", "rootCertPem": cert_pem, "rootKeyPem": key_pem}
    stack = run(base_config, secret_keys=["ca"])
    assert run_resource_rules(stack) == {}
    declared = from_program(stack)
    assert run_stack_rules(declared) == {}
    find(declared, "kubernetes:core/v1:Secret", "green-cacerts").props["stringData"]["ca-key.pem"] = key_pem
    (found,) = run_stack_rules(declared)["mesh-root-ca-key-not-in-any-cluster"]
    assert "holds the private key of the root CA CN=Team Root (the root-cert.pem of Secret" in found[0]


# --------------------------------------------------------------------------- the pack as the CLI runs it


def test_pack_entry_point_serves_every_rule_as_mandatory_over_grpc() -> None:
    """`python -m pulumi.policy <engine> policy` is how the CLI starts a Python pack."""
    process = subprocess.Popen([sys.executable, "-m", "pulumi.policy", "127.0.0.1:1", str(ROOT / "policy")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        port = int(process.stdout.readline().strip())  # type: ignore[union-attr]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
            assert info.name == pol.PACK_NAME
            assert {p.name: p.enforcementLevel for p in info.policies} == {
                p.name: analyzer_pb2.MANDATORY for p in pol.POLICIES}
            props = struct_pb2.Struct()
            props.update(edited(GOOD_CLUSTER, "enableLegacyAbac", True))
            response = stub.Analyze(analyzer_pb2.AnalyzeRequest(
                type=pol.CLUSTER, properties=props, urn="urn:pulumi:dev::p::gcp:container/cluster:Cluster::blue",
                name="blue"), timeout=10)
            assert [(d.policyName, d.enforcementLevel) for d in response.diagnostics] == [
                ("gke-no-legacy-abac", analyzer_pb2.MANDATORY)]
            assert "enableLegacyAbac is true" in response.diagnostics[0].message
    finally:
        process.kill()
        process.communicate(timeout=10)


# --------------------------------------------------------------------------- edge URL map weights


def _url_map(default: list[float], matcher: list[float]) -> dict[str, Any]:
    def action(weights: list[float]) -> dict[str, Any]:
        return {"weightedBackendServices": [{"backendService": f"projects/p/global/backendServices/b{i}",
                                             "weight": w} for i, w in enumerate(weights)]}
    return {"defaultRouteAction": action(default),
            "pathMatchers": [{"name": "m", "defaultRouteAction": action(matcher)}]}


def test_edge_url_map_rule_wants_weights_that_route_somewhere() -> None:
    rule = pol.EDGE_URL_MAP_WEIGHTS
    assert messages(rule, resource_args(pol.URL_MAP, _url_map([100.0, 0.0], [0.0, 100.0]))) == []
    assert messages(rule, resource_args(pol.URL_MAP, _url_map([0.0, 0.0], [50.0, 50.0]))) == [
        "defaultRouteAction.weightedBackendServices weights are all 0: the edge would serve nothing"]
    assert messages(rule, resource_args(pol.URL_MAP, _url_map([100.0, 0.0], [1001.0, 0.5]))) == [
        "pathMatchers[0].defaultRouteAction.weightedBackendServices[0].weight 1001.0 must be a whole number "
        "from 0 to 1000",
        "pathMatchers[0].defaultRouteAction.weightedBackendServices[1].weight 0.5 must be a whole number "
        "from 0 to 1000"]
    # A redirect-only URL map (HTTP -> HTTPS) has no weighted route to check.
    assert messages(rule, resource_args(pol.URL_MAP, {"defaultUrlRedirect": {"httpsRedirect": True}})) == []


def test_the_edge_stacks_url_maps_pass_the_pack(run, base_config) -> None:
    base_config["traffic"]["services"][0]["hosts"] = ["hello.example.com"]
    base_config["edge"] = {"enabled": True, "https": True}
    stack = run(base_config)
    assert len(stack.of_type(pol.URL_MAP)) == 2
    assert run_resource_rules(stack) == {}
