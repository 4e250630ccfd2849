"""GkeCluster: private, hardened GKE with a node pool and a provider that never falls back."""

from __future__ import annotations

import base64

import pytest
import yaml

from components.cluster import CLOUD_PLATFORM_SCOPE, NODE_ROLE, gke_kubeconfig
from offline import GCP_PROJECT_DEFAULT, ROOT, Program, Resource, stack_file_config
from offline.configs import base

DEV = {c["name"]: c for c in base()["clusters"]}
OTHER = {"blue": "green", "green": "blue"}


def _in(stack: Program, cluster: str, type_: str) -> Resource:
    component = stack.find("gke-istio-mesh:index:GkeCluster", cluster)
    (found,) = [r for r in stack.children(component) if r.type == type_]
    return found


def test_kubeconfig_uses_googles_exec_plugin_and_no_stored_credential() -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n...").decode()
    doc = yaml.safe_load(gke_kubeconfig("gke_p_us-west1_blue", "34.1.2.3", ca))
    (cluster,) = doc["clusters"]
    assert cluster["cluster"] == {"server": "https://34.1.2.3", "certificate-authority-data": ca}
    assert doc["current-context"] == "gke_p_us-west1_blue"
    (ctx,) = doc["contexts"]
    assert ctx["context"] == {"cluster": "gke_p_us-west1_blue", "user": "gke_p_us-west1_blue"}
    (user,) = doc["users"]
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "gke-gcloud-auth-plugin"
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert exec_["provideClusterInfo"] is True
    assert set(user["user"]) == {"exec"}, "no token, password or client certificate may be stored"


@pytest.mark.parametrize("name", sorted(DEV))
def test_cluster_is_private_hardened_and_vpc_native(base_stack: Program, name: str) -> None:
    spec = DEV[name]
    c = _in(base_stack, name, "gcp:container/cluster:Cluster")
    net = base_stack.find("gke-istio-mesh:index:MeshNetwork", spec["network"])
    vpc, subnet = (next(r for r in base_stack.children(net) if r.type == t)
                   for t in ("gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork"))
    i = c.inputs
    assert i["location"] == spec["region"]
    assert (i["network"], i["subnetwork"]) == (vpc.id, subnet.id)
    assert i["networkingMode"] == "VPC_NATIVE"
    secondary = {r["rangeName"] for r in subnet.inputs["secondaryIpRanges"]}
    assert {i["ipAllocationPolicy"]["clusterSecondaryRangeName"],
            i["ipAllocationPolicy"]["servicesSecondaryRangeName"]} == secondary
    assert i["privateClusterConfig"] == {
        "enablePrivateNodes": True, "enablePrivateEndpoint": False, "masterIpv4CidrBlock": spec["masterCidr"]}
    assert i["workloadIdentityConfig"] == {"workloadPool": f"{GCP_PROJECT_DEFAULT}.svc.id.goog"}
    assert i["releaseChannel"] == {"channel": spec["releaseChannel"]}
    assert i["datapathProvider"] == "ADVANCED_DATAPATH"
    assert i["enableShieldedNodes"] is True
    assert i["enableLegacyAbac"] is False
    assert i["masterAuth"]["clientCertificateConfig"] == {"issueClientCertificate": False}
    assert "username" not in i["masterAuth"] and "password" not in i["masterAuth"]
    assert i["removeDefaultNodePool"] is True
    assert i["deletionProtection"] is spec["deletionProtection"]
    assert i["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] is False


@pytest.mark.parametrize("name", sorted(DEV))
def test_control_plane_admits_operators_and_the_other_clusters_nat_only(base_stack: Program, name: str) -> None:
    c = _in(base_stack, name, "gcp:container/cluster:Cluster")
    blocks = c.inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]
    other_net = base_stack.find("gke-istio-mesh:index:MeshNetwork", DEV[OTHER[name]]["network"])
    own_net = base_stack.find("gke-istio-mesh:index:MeshNetwork", DEV[name]["network"])
    other_ips = [r.outputs["address"] for r in base_stack.children(other_net)
                 if r.type == "gcp:compute/address:Address"]
    own_ips = [r.outputs["address"] for r in base_stack.children(own_net) if r.type == "gcp:compute/address:Address"]
    operators = [{"cidrBlock": n["cidr"], "displayName": n["name"]} for n in base()["authorizedNetworks"]]
    assert blocks == operators + [{"cidrBlock": f"{ip}/32", "displayName": f"istiod in {OTHER[name]}"}
                                  for ip in other_ips]
    assert not any(b["cidrBlock"] in {f"{ip}/32" for ip in own_ips} for b in blocks)
    assert all(b["cidrBlock"] != "0.0.0.0/0" for b in blocks)


@pytest.mark.parametrize("name", sorted(DEV))
def test_node_pool_autoscales_self_heals_and_runs_as_a_least_privileged_account(base_stack: Program, name: str) -> None:
    spec = DEV[name]
    pool = _in(base_stack, name, "gcp:container/nodePool:NodePool")
    cluster = _in(base_stack, name, "gcp:container/cluster:Cluster")
    account = _in(base_stack, name, "gcp:serviceaccount/account:Account")
    role = _in(base_stack, name, "gcp:projects/iAMMember:IAMMember")
    assert pool.inputs["cluster"] == cluster.outputs["name"]
    assert pool.inputs["location"] == spec["region"]
    assert pool.inputs["autoscaling"] == {"minNodeCount": spec["minNodes"], "maxNodeCount": spec["maxNodes"]}
    assert pool.inputs["management"] == {"autoRepair": True, "autoUpgrade": True}
    node = pool.inputs["nodeConfig"]
    assert node["machineType"] == spec["machineType"]
    assert node["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert node["serviceAccount"] == account.outputs["email"]
    assert node["oauthScopes"] == [CLOUD_PLATFORM_SCOPE]
    assert role.inputs == {"project": GCP_PROJECT_DEFAULT, "role": NODE_ROLE,
                           "member": f"serviceAccount:{account.outputs['email']}"}
    assert base_stack.waits_for(pool, role), "nodes must not start before their account may log and pull"
    nat = base_stack.find("gcp:compute/routerNat:RouterNat", f"{DEV[name]['network']}-nat")
    assert base_stack.waits_for(pool, nat), "private nodes pull Istio's images through Cloud NAT"
    assert 6 <= len(account.inputs["accountId"]) <= 30


@pytest.mark.parametrize("name", sorted(DEV))
def test_provider_targets_its_cluster_waits_for_nodes_and_keeps_a_stable_identity(
        base_stack: Program, name: str) -> None:
    provider = _in(base_stack, name, "pulumi:providers:kubernetes")
    cluster = _in(base_stack, name, "gcp:container/cluster:Cluster")
    pool = _in(base_stack, name, "gcp:container/nodePool:NodePool")
    assert provider.inputs["clusterIdentifier"] == cluster.id
    assert pool.urn in provider.dependencies
    assert "kubeconfig" in provider.secret_inputs
    kubeconfig = yaml.safe_load(provider.inputs["kubeconfig"])
    server = kubeconfig["clusters"][0]["cluster"]
    assert server["server"] == f"https://{cluster.outputs['endpoint']}"
    assert server["certificate-authority-data"] == cluster.outputs["masterAuth"]["clusterCaCertificate"]


def test_deletion_protection_follows_config(run, base_config) -> None:
    base_config["clusters"][0]["deletionProtection"] = True
    del base_config["clusters"][1]["deletionProtection"]  # the default protects
    stack = run(base_config)
    flags = {r.name: r.inputs["deletionProtection"] for r in stack.of_type("gcp:container/cluster:Cluster")}
    assert flags == {"blue": True, "green": True}


@pytest.mark.parametrize("stack", sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml")))
def test_stack_files_disable_the_default_kubernetes_provider(stack: str) -> None:
    assert "kubernetes" in stack_file_config(stack)["pulumi:disable-default-providers"]


def test_every_kubernetes_object_names_its_clusters_provider(base_stack: Program) -> None:
    providers = {r.urn for r in base_stack.of_type("pulumi:providers:kubernetes")}
    for r in base_stack.resources:
        if r.custom and r.type.startswith("kubernetes:"):
            assert r.provider_urn in providers, f"{r.type} {r.name} would use the ambient kubeconfig"


def test_the_temporary_default_pools_settings_never_replace_a_running_cluster(run, base_config) -> None:
    """Every `node_config` field forces a new cluster in the provider; the pool is gone after creation."""
    before = run(base_config)
    base_config["hardening"] = {**base_config.get("hardening", {}), "imageType": "UBUNTU_CONTAINERD"}
    after = run(base_config)
    for name in DEV:
        old, new = (_in(s, name, "gcp:container/cluster:Cluster") for s in (before, after))
        assert new.ignore_changes == ["nodeConfig", "initialNodeCount"]
        assert set(new.ignore_changes) <= set(new.inputs), "ignored names must be the Cluster's real inputs"
        changed = {k for k in set(old.inputs) | set(new.inputs) if old.inputs.get(k) != new.inputs.get(k)}
        assert changed == {"nodeConfig"}, "the image edit reaches the cluster only in an ignored input"
        pool = _in(after, name, "gcp:container/nodePool:NodePool")
        assert pool.inputs["nodeConfig"]["imageType"] == "UBUNTU_CONTAINERD", "the real pool takes the edit"


@pytest.mark.parametrize(("min_nodes", "max_nodes", "expected"), [(0, 3, 1), (1, 3, 1), (2, 10, 2), (0, 1, 1)])
def test_node_pools_start_with_nodes_in_every_zone(run, base_config, min_nodes: int, max_nodes: int,
                                                    expected: int) -> None:
    """Without initialNodeCount the pool starts with 0 nodes per zone (a min of 1 still gives 0), and GKE
    makes the edge's NEGs only in zones with nodes. minNodes may be 0; the first size is never 0."""
    for c in base_config["clusters"]:
        c["minNodes"], c["maxNodes"] = min_nodes, max_nodes
    program = run(base_config)
    for name in DEV:
        pool = _in(program, name, "gcp:container/nodePool:NodePool")
        assert pool.inputs["initialNodeCount"] == expected
        assert pool.inputs["autoscaling"] == {"minNodeCount": min_nodes, "maxNodeCount": max_nodes}
        assert "nodeCount" not in pool.inputs, "the provider refuses both; the autoscaler owns the size"


def _engine_inputs(old: dict, new: dict, ignore: list[str]) -> dict:
    """The inputs the engine diffs after ignoreChanges (pulumi step_generator.go processIgnoreChanges,
    PropertyPath.Reset: the old value is kept; a path the old inputs lack is deleted from the new)."""
    out = dict(new)
    for key in ignore:
        if key in old:
            out[key] = old[key]
        else:
            out.pop(key, None)
    return out


def test_adding_the_initial_size_never_replaces_a_running_pool(base_stack: Program, run, base_config) -> None:
    """initial_node_count is ForceNew (resource_container_node_pool.go.tmpl): a pool deployed without it must
    see no change, and a later edit of minNodes must not replace a pool either; the autoscaler owns the size."""
    for name in DEV:
        pool = _in(base_stack, name, "gcp:container/nodePool:NodePool")
        assert pool.ignore_changes == ["initialNodeCount"]
        deployed_before = {k: v for k, v in pool.inputs.items() if k != "initialNodeCount"}
        assert _engine_inputs(deployed_before, pool.inputs, pool.ignore_changes) == deployed_before
    for c in base_config["clusters"]:
        c["minNodes"], c["maxNodes"] = 2, 5
    edited = run(base_config)
    for name in DEV:
        old, new = (_in(p, name, "gcp:container/nodePool:NodePool") for p in (base_stack, edited))
        seen = _engine_inputs(old.inputs, new.inputs, new.ignore_changes)
        changed = {k for k in set(old.inputs) | set(seen) if old.inputs.get(k) != seen.get(k)}
        assert changed == {"autoscaling"}, "only the autoscaler's bounds change, in place"
