"""MeshLink: N reader tokens and N x (N-1) remote secrets, each a working token kubeconfig."""

from __future__ import annotations

import base64
import itertools

import pytest
import yaml

from components.mesh_link import remote_kubeconfig
from offline import Program
from offline.configs import base, three_clusters

SECRET = "kubernetes:core/v1:Secret"


def provider_of(stack: Program, cluster: str) -> str:
    return stack.find("pulumi:providers:kubernetes", f"{cluster}-k8s").urn


def remote_secrets(stack: Program) -> list:
    return [r for r in stack.of_type(SECRET)
            if r.inputs["metadata"].get("labels", {}).get("istio/multiCluster") == "true"]


def token_secrets(stack: Program) -> list:
    return [r for r in stack.of_type(SECRET) if r.inputs.get("type") == "kubernetes.io/service-account-token"]


def test_remote_kubeconfig_is_a_token_kubeconfig_named_for_the_cluster() -> None:
    doc = yaml.safe_load(remote_kubeconfig("blue", "https://34.1.2.3", "Q0E=", "tok"))
    assert doc["current-context"] == "blue"
    assert doc["clusters"] == [{"name": "blue", "cluster": {"server": "https://34.1.2.3",
                                                            "certificate-authority-data": "Q0E="}}]
    assert doc["contexts"] == [{"name": "blue", "context": {"cluster": "blue", "user": "blue"}}]
    assert doc["users"] == [{"name": "blue", "user": {"token": "tok"}}]


def check_full_mesh(stack: Program, names: list[str]) -> None:
    tokens = token_secrets(stack)
    assert len(tokens) == len(names)
    for name in names:
        (token,) = [t for t in tokens if t.provider_urn == provider_of(stack, name)]
        assert token.inputs["metadata"] == {
            "name": "istio-reader-service-account-istio-remote-secret-token", "namespace": "istio-system",
            "annotations": {"kubernetes.io/service-account.name": "istio-reader-service-account"}}
        # The account comes from the base chart (never declared again); istiod's chart binds it to
        # the reader ClusterRole, so a token issued before istiod would only earn 403s.
        assert stack.waits_for(token, stack.find("kubernetes:helm.sh/v3:Release", f"{name}-base"))
        assert stack.waits_for(token, stack.find("kubernetes:helm.sh/v3:Release", f"{name}-istiod"))
    assert not stack.of_type("kubernetes:core/v1:ServiceAccount")

    secrets = remote_secrets(stack)
    assert len(secrets) == len(names) * (len(names) - 1)
    for source, target in itertools.permutations(names, 2):
        # In target's istio-system, the secret that lets target's istiod watch source.
        (secret,) = [s for s in secrets if s.provider_urn == provider_of(stack, target)
                     and s.inputs["metadata"]["name"] == f"istio-remote-secret-{source}"]
        meta = secret.inputs["metadata"]
        assert meta["namespace"] == "istio-system"
        assert meta["annotations"] == {"networking.istio.io/cluster": source}
        istiod_values = stack.find("kubernetes:helm.sh/v3:Release", f"{source}-istiod").inputs["values"]
        assert istiod_values["global"]["multiCluster"]["clusterName"] == source
        assert list(secret.inputs["stringData"]) == [source]
        assert "stringData" in secret.secret_inputs
        kubeconfig = yaml.safe_load(secret.inputs["stringData"][source])
        gke = stack.find("gcp:container/cluster:Cluster", source)
        assert kubeconfig["current-context"] == source
        (cluster,) = kubeconfig["clusters"]
        assert cluster["cluster"]["server"] == f"https://{gke.outputs['endpoint']}"
        assert cluster["cluster"]["certificate-authority-data"] == gke.outputs["masterAuth"]["clusterCaCertificate"]
        (user,) = kubeconfig["users"]
        assert set(user["user"]) == {"token"}, "istiod refuses exec plugins"
        (token,) = [t for t in token_secrets(stack) if t.provider_urn == provider_of(stack, source)]
        assert user["user"]["token"] == base64.b64decode(token.outputs["data"]["token"]).decode()


def test_dev_full_mesh(base_stack: Program) -> None:
    check_full_mesh(base_stack, [c["name"] for c in base()["clusters"]])


def test_three_cluster_full_mesh(run, base_config) -> None:
    config = three_clusters(base_config)
    check_full_mesh(run(config), [c["name"] for c in config["clusters"]])


@pytest.mark.parametrize("subset_label", ["network", "cluster"])
def test_names_stay_consistent_when_clusters_are_renamed(run, base_config, subset_label: str) -> None:
    """Secret names, annotations, data keys and clusterName come from one config value."""
    base_config["clusters"][0]["name"] = "blue-2"
    base_config["traffic"]["weights"] = {"blue-2": 100, "green": 0}
    base_config["traffic"]["subsetLabel"] = subset_label
    check_full_mesh(run(base_config), ["blue-2", "green"])


def _token_of(secret) -> str:
    (kubeconfig,) = secret.inputs["stringData"].values()
    return yaml.safe_load(kubeconfig)["users"][0]["user"]["token"]


def test_a_new_reader_token_generation_replaces_every_token_and_remote_secret_in_one_up(run, base_config) -> None:
    """meshLink.readerTokenGeneration: new token Secrets (new names, so new tokens), every remote
    secret rewritten with them, nothing else touched; the old Secrets go, revoking the old tokens."""
    from offline import changed_resources

    base_config["ca"] = {"algorithm": "ECDSA"}
    before = run(base_config)
    base_config["meshLink"] = {"readerTokenGeneration": 1}
    after = run(base_config)
    diff = changed_resources(before, after)
    assert diff.added == diff.removed == ()
    changed = {after.by_urn[u].name for u in diff.changed}
    assert changed == {r.name for r in token_secrets(after)} | {r.name for r in remote_secrets(after)}
    assert {r.inputs["metadata"]["name"] for r in token_secrets(after)} == {
        "istio-reader-service-account-istio-remote-secret-token-g1"}
    old = {r.name: _token_of(r) for r in remote_secrets(before)}
    new = {r.name: _token_of(r) for r in remote_secrets(after)}
    assert old.keys() == new.keys() and all(old[k] != new[k] for k in old), "a remote secret kept an old token"
    # Still one token per source cluster, shared by that cluster's remote secrets in every peer.
    assert len(set(new.values())) == len(base_config["clusters"])
