"""CIS GKE hardening as the program declares it (docs/cis.md): each default, and each relaxation.

The policy pack's side (prod refuses a relaxation) is in test_policy.py; the config rules in
test_config.py. Here: what a real `pulumi up` would create for each item.
"""

from __future__ import annotations

import re

import pytest

from components.names import GKE_CLUSTER, KMS_CRYPTO_KEY, KMS_KEY_RING, NODE_POOL
from offline import Program, Resource, run_program
from offline.configs import base

CLUSTERS = [c["name"] for c in base()["clusters"]]
REGIONS = {c["name"]: c["region"] for c in base()["clusters"]}
GKE_AGENT = re.compile(r"^serviceAccount:service-\d{12}@container-engine-robot\.iam\.gserviceaccount\.com$")
KEY_IAM = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
SUBNET = "gcp:compute/subnetwork:Subnetwork"


def _in(stack: Program, component_type: str, name: str, type_: str) -> list[Resource]:
    component = stack.find(component_type, name)
    return [r for r in stack.children(component) if r.type == type_]


def _cluster_part(stack: Program, cluster: str, type_: str) -> Resource:
    (found,) = _in(stack, "gke-istio-mesh:index:GkeCluster", cluster, type_)
    return found


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_secrets_are_encrypted_with_the_clusters_own_kms_key_in_its_region(base_stack: Program, cluster: str) -> None:
    ring = _cluster_part(base_stack, cluster, KMS_KEY_RING)
    key = _cluster_part(base_stack, cluster, KMS_CRYPTO_KEY)
    gke = _cluster_part(base_stack, cluster, GKE_CLUSTER)
    # GKE wants the key in the cluster's location.
    assert ring.inputs["location"] == gke.inputs["location"] == REGIONS[cluster]
    assert key.inputs["keyRing"] == ring.id and key.inputs["purpose"] == "ENCRYPT_DECRYPT"
    assert key.inputs["rotationPeriod"] == "7776000s"
    assert gke.inputs["databaseEncryption"] == {"state": "ENCRYPTED", "keyName": key.id}


def test_every_cluster_has_a_key_ring_of_its_own(base_stack: Program) -> None:
    rings = {_cluster_part(base_stack, c, KMS_KEY_RING).inputs["name"] for c in CLUSTERS}
    assert len(rings) == len(CLUSTERS)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_the_gke_service_agent_may_use_the_key_before_the_cluster_is_created(
        base_stack: Program, cluster: str) -> None:
    grant = _cluster_part(base_stack, cluster, KEY_IAM)
    key = _cluster_part(base_stack, cluster, KMS_CRYPTO_KEY)
    assert grant.inputs["cryptoKeyId"] == key.id
    assert grant.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert GKE_AGENT.match(grant.inputs["member"]), grant.inputs["member"]
    assert grant.urn in _cluster_part(base_stack, cluster, GKE_CLUSTER).dependencies


def test_the_service_agent_is_the_one_of_the_configured_project(base_stack: Program) -> None:
    """The project number comes from the getProject data source for gcp:project, so another project's differs."""
    other = run_program({**base(), "ca": {"algorithm": "ECDSA"}}, gcp_project="team-b-project")
    assert (_cluster_part(other, "blue", KEY_IAM).inputs["member"]
            != _cluster_part(base_stack, "blue", KEY_IAM).inputs["member"])


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_binary_authorization_evaluates_the_project_policy(base_stack: Program, cluster: str) -> None:
    gke = _cluster_part(base_stack, cluster, GKE_CLUSTER)
    assert gke.inputs["binaryAuthorization"] == {"evaluationMode": "PROJECT_SINGLETON_POLICY_ENFORCE"}


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_both_the_temporary_default_pool_and_the_real_one_run_cos_as_the_dedicated_account(
        base_stack: Program, cluster: str) -> None:
    account = _cluster_part(base_stack, cluster, "gcp:serviceaccount/account:Account")
    gke = _cluster_part(base_stack, cluster, GKE_CLUSTER)
    pool = _cluster_part(base_stack, cluster, NODE_POOL)
    for node_config in (gke.inputs["nodeConfig"], pool.inputs["nodeConfig"]):
        assert node_config["serviceAccount"] == account.outputs["email"]
        assert node_config["imageType"] == "COS_CONTAINERD"
    # The default pool boots before the account has its role otherwise.
    role = _cluster_part(base_stack, cluster, "gcp:projects/iAMMember:IAMMember")
    assert role.urn in gke.dependencies


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_the_nodes_subnet_records_flow_logs(base_stack: Program, cluster: str) -> None:
    network = next(c["network"] for c in base()["clusters"] if c["name"] == cluster)
    (subnet,) = _in(base_stack, "gke-istio-mesh:index:MeshNetwork", network, SUBNET)
    assert subnet.inputs["logConfig"] == {"aggregationInterval": "INTERVAL_5_SEC", "flowSampling": 0.5,
                                          "metadata": "INCLUDE_ALL_METADATA"}


def test_each_item_can_be_relaxed_by_config() -> None:
    cfg = {**base(), "ca": {"algorithm": "ECDSA"}, "hardening": {
        "databaseEncryption": False, "binaryAuthorization": "DISABLED", "imageType": "UBUNTU_CONTAINERD",
        "subnetFlowLogs": False}}
    stack = run_program(cfg)
    assert stack.of_type(KMS_KEY_RING) == stack.of_type(KMS_CRYPTO_KEY) == stack.of_type(KEY_IAM) == []
    for gke in stack.of_type(GKE_CLUSTER):
        assert "databaseEncryption" not in gke.inputs
        assert gke.inputs["binaryAuthorization"] == {"evaluationMode": "DISABLED"}
        assert gke.inputs["nodeConfig"]["imageType"] == "UBUNTU_CONTAINERD"
    assert {p.inputs["nodeConfig"]["imageType"] for p in stack.of_type(NODE_POOL)} == {"UBUNTU_CONTAINERD"}
    assert all("logConfig" not in s.inputs for s in stack.of_type(SUBNET))
