"""One hardened, private GKE cluster per mesh network, and a Kubernetes provider for it.

The control plane keeps a public endpoint (istiod in every other cluster must watch
it) but admits only the operators' networks and the other clusters' NAT egress
addresses. Nodes are private, shielded and use Workload Identity; nothing in the
cluster is declared before its node pool exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components.config import AuthorizedNetwork, ClusterSpec, Hardening, MaintenanceExclusion, MaintenanceWindow
from components.names import (
    GKE_CLUSTER_TYPE,
    SECRETS_CRYPTO_KEY,
    gke_service_agent,
    node_pool_name,
    node_tag,
    secrets_key_ring_name,
)
from components.network import PODS_RANGE, SERVICES_RANGE, MeshNetwork

NODE_ROLE = "roles/container.defaultNodeServiceAccount"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
KMS_ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
# A new primary key version every 90 days (CryptoKey.rotation_period: seconds, more than a day).
SECRETS_KEY_ROTATION = "7776000s"
# The temporary default pool's settings (Cluster inputs, engine names): read only when the cluster
# is created. terraform-provider-google marks `node_config` ForceNew and the pool is deleted right
# after creation, so a later edit (or a field added here) would otherwise replace a running cluster.
DEFAULT_POOL_CREATE_ONLY = ("nodeConfig", "initialNodeCount")
# The node pool's size at creation, per zone: read only then. Without it the provider creates the
# pool with 0 nodes per zone (terraform-provider-google issues 8270, 11594: a minimum of 1 still
# gives 0), the autoscaler adds nodes only where pods are pending, and GKE's NEG controller makes
# the edge's NEGs only in zones with nodes. `initial_node_count` is ForceNew and Computed
# (resource_container_node_pool.go.tmpl), read back from the API: a pool created without it holds
# 0 in state, so adding it would REPLACE every running pool. Ignored on update, the engine keeps
# the old input - and for a pool that never had one it drops the new value (pulumi
# PropertyPath.Reset: a path missing in the old inputs is deleted from the new): existing pools
# see no change, new pools start with nodes in every zone, and the autoscaler owns the size.
NODE_POOL_CREATE_ONLY = ("initialNodeCount",)
AUTH_PLUGIN_HINT = (
    "Install gke-gcloud-auth-plugin for use with kubectl by following "
    "https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin"
)


def gke_kubeconfig(context: str, endpoint: str, ca_certificate_b64: str) -> str:
    """A kubeconfig as Google documents it: the gke-gcloud-auth-plugin exec credential.

    No token is stored, so nothing in it expires; the machine running Pulumi needs
    the plugin and gcloud credentials.
    """
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": context,
            "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": ca_certificate_b64},
        }],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "users": [{
            "name": context,
            "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "gke-gcloud-auth-plugin",
                "installHint": AUTH_PLUGIN_HINT,
                "provideClusterInfo": True,
            }},
        }],
    }, sort_keys=False)


def initial_nodes_per_zone(min_nodes: int, max_nodes: int) -> int:
    """Nodes per zone when the pool is created: at least one, within the autoscaling bounds."""
    return min(max(1, min_nodes), max_nodes)


# A fixed Monday in the past: GKE takes the first window's date from start_time and repeats it.
MAINTENANCE_EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
_ZULU = "%Y-%m-%dT%H:%M:%SZ"


def maintenance_policy(window: MaintenanceWindow, exclusions: Sequence[MaintenanceExclusion]) -> dict[str, Any]:
    """GKE's recurring window (RFC 3339 start/end, RFC 5545 weekly RRULE) and the exclusions.

    Windows of different clusters never overlap (components/config), so GKE never upgrades
    or repairs two clusters of the mesh at once.
    """
    start = MAINTENANCE_EPOCH + timedelta(hours=window.week_start)
    end = start + timedelta(hours=window.duration_hours)
    return {
        "recurring_window": {"start_time": start.strftime(_ZULU), "end_time": end.strftime(_ZULU),
                             "recurrence": f"FREQ=WEEKLY;BYDAY={window.day}"},
        "maintenance_exclusions": [
            {"exclusion_name": e.name, "start_time": e.start_time, "end_time": e.end_time,
             "exclusion_options": {"scope": e.scope}}
            for e in exclusions
        ],
    }


def _maintenance_policy_args(policy: dict[str, Any]) -> gcp.container.ClusterMaintenancePolicyArgs:
    return gcp.container.ClusterMaintenancePolicyArgs(
        recurring_window=gcp.container.ClusterMaintenancePolicyRecurringWindowArgs(**policy["recurring_window"]),
        maintenance_exclusions=[
            gcp.container.ClusterMaintenancePolicyMaintenanceExclusionArgs(
                exclusion_name=e["exclusion_name"], start_time=e["start_time"], end_time=e["end_time"],
                exclusion_options=gcp.container.ClusterMaintenancePolicyMaintenanceExclusionExclusionOptionsArgs(
                    **e["exclusion_options"]))
            for e in policy["maintenance_exclusions"]
        ] or None,
    )


@dataclass(frozen=True)
class ClusterHandle:
    """What later components need of one GKE cluster: where its objects go and how to reach it.

    `provider` deploys into the cluster; objects that live only inside it are `deleted_with`
    `gke_cluster`; `endpoint` and `ca_certificate_b64` are what a remote secret points istiod at.
    """

    name: str
    provider: k8s.Provider
    gke_cluster: gcp.container.Cluster
    endpoint: pulumi.Output[str]
    ca_certificate_b64: pulumi.Output[str]

    def in_cluster(self, parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        """Options of a plain in-cluster object: this cluster's provider, skipped on delete with the cluster."""
        return pulumi.ResourceOptions(parent=parent, provider=self.provider, deleted_with=self.gke_cluster,
                                      depends_on=list(depends_on))


@dataclass(frozen=True)
class GkeClusterArgs:
    cluster: ClusterSpec
    project: str
    mesh_id: str
    network: MeshNetwork
    authorized_networks: Sequence[AuthorizedNetwork]
    # (peer cluster, /32 of its network's NAT egress): every other cluster's istiod calls this API server.
    peer_egress: Sequence[tuple[str, pulumi.Input[str]]]
    hardening: Hardening = field(default_factory=Hardening)
    # Mesh-wide periods without automatic upgrades (maintenanceExclusions).
    maintenance_exclusions: Sequence[MaintenanceExclusion] = ()


class GkeCluster(pulumi.ComponentResource):
    """A private, VPC-native GKE Standard cluster with one autoscaling node pool."""

    cluster: gcp.container.Cluster
    node_pool: gcp.container.NodePool
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    handle: ClusterHandle

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(GKE_CLUSTER_TYPE, name, None, opts)
        spec = args.cluster
        child = pulumi.ResourceOptions(parent=self)

        # Nodes run as a dedicated, least-privileged service account, not the Compute default.
        suffix = random.RandomId(f"{name}-sa-suffix", byte_length=2, opts=child)
        self.node_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            account_id=suffix.hex.apply(lambda h: f"{spec.name[:17]}-nodes-{h}"),
            display_name=f"GKE nodes of mesh cluster {spec.name}",
            opts=child,
        )
        node_role = gcp.projects.IAMMember(
            f"{name}-nodes-role",
            project=args.project,
            role=NODE_ROLE,
            member=self.node_account.email.apply(lambda e: f"serviceAccount:{e}"),
            opts=child,
        )

        # CIS GKE 5.3.1: Secrets encrypted in etcd with a Cloud KMS key of the cluster's own, in its
        # region, which the GKE service agent (service-<project number>@container-engine-robot) may use.
        cluster_deps: list[pulumi.Resource] = [node_role]
        database_encryption = None
        if args.hardening.database_encryption:
            ring_suffix = random.RandomId(f"{name}-key-ring-suffix", byte_length=2, opts=child)
            self.key_ring = gcp.kms.KeyRing(
                f"{name}-secrets",
                name=ring_suffix.hex.apply(lambda h: secrets_key_ring_name(spec.name, h)),
                location=spec.region,
                project=args.project,
                opts=child,
            )
            self.secrets_key = gcp.kms.CryptoKey(
                f"{name}-secrets-key",
                name=SECRETS_CRYPTO_KEY,
                key_ring=self.key_ring.id,
                purpose="ENCRYPT_DECRYPT",
                rotation_period=SECRETS_KEY_ROTATION,
                opts=child,
            )
            # The project number is only the provider's to know: a data source, answered in previews too.
            number = gcp.organizations.get_project_output(project_id=args.project).number
            key_user = gcp.kms.CryptoKeyIAMMember(
                f"{name}-secrets-key-gke",
                crypto_key_id=self.secrets_key.id,
                role=KMS_ENCRYPTER_DECRYPTER,
                member=number.apply(lambda n: f"serviceAccount:{gke_service_agent(n)}"),
                opts=child,
            )
            cluster_deps.append(key_user)
            database_encryption = gcp.container.ClusterDatabaseEncryptionArgs(
                state="ENCRYPTED", key_name=self.secrets_key.id)

        authorized = [
            gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                cidr_block=n.cidr, display_name=n.name)
            for n in args.authorized_networks
        ] + [
            gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                cidr_block=cidr,
                display_name=f"istiod in {peer}")
            for peer, cidr in args.peer_egress
        ]

        self.cluster = gcp.container.Cluster(
            name,
            location=spec.region,
            network=args.network.vpc.id,
            subnetwork=args.network.subnet.id,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=PODS_RANGE,
                services_secondary_range_name=SERVICES_RANGE,
            ),
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=False,
                master_ipv4_cidr_block=spec.master_cidr,
            ),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=authorized,
                gcp_public_cidrs_access_enabled=False,
            ),
            master_auth=gcp.container.ClusterMasterAuthArgs(
                client_certificate_config=gcp.container.ClusterMasterAuthClientCertificateConfigArgs(
                    issue_client_certificate=False),
            ),
            enable_legacy_abac=False,
            database_encryption=database_encryption,
            # CIS GKE 5.10.5: admission evaluates the project's Binary Authorization policy (whose
            # enforcementMode decides block or dry-run audit); DISABLED only where the config says so.
            binary_authorization=gcp.container.ClusterBinaryAuthorizationArgs(
                evaluation_mode=args.hardening.binary_authorization),
            enable_shielded_nodes=True,
            datapath_provider="ADVANCED_DATAPATH",
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{args.project}.svc.id.goog"),
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=spec.release_channel),
            # A floor only: in a release channel GKE auto-upgrades past it; None (the default) sends nothing.
            min_master_version=spec.min_master_version,
            maintenance_policy=_maintenance_policy_args(
                maintenance_policy(spec.maintenance, args.maintenance_exclusions)),
            # Managed Service for Prometheus collects Istio's metrics (components/telemetry.py) for tools/flip.
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                managed_prometheus=gcp.container.ClusterMonitoringConfigManagedPrometheusArgs(enabled=True)),
            # The default pool cannot be managed well in place; a separate pool replaces it. It still
            # boots once, so it runs as the dedicated account too (CIS GKE 5.2.1: organisations that
            # disable the Compute Engine default service account refuse it otherwise). Its settings
            # matter only at creation: every `node_config` field forces a new cluster in the provider,
            # and the pool is gone after the first `up`, so they are ignored on update (below).
            remove_default_node_pool=True,
            initial_node_count=1,
            node_config=gcp.container.ClusterNodeConfigArgs(
                service_account=self.node_account.email,
                oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                image_type=args.hardening.image_type,
                shielded_instance_config=gcp.container.ClusterNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True),
                workload_metadata_config=gcp.container.ClusterNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"),
                metadata={"disable-legacy-endpoints": "true"},
            ),
            deletion_protection=spec.deletion_protection,
            resource_labels={"mesh": args.mesh_id, "mesh-cluster": spec.name},
            opts=pulumi.ResourceOptions(parent=self, protect=spec.protect, depends_on=cluster_deps,
                                        ignore_changes=list(DEFAULT_POOL_CREATE_ONLY)),
        )

        self.node_pool = gcp.container.NodePool(
            node_pool_name(name),
            cluster=self.cluster.name,
            location=spec.region,
            # Every zone starts with nodes (at least 1, at least minNodes): the HA spread, the NAT
            # sizing and the edge's zonal NEGs all assume a node per zone.
            initial_node_count=initial_nodes_per_zone(spec.min_nodes, spec.max_nodes),
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                min_node_count=spec.min_nodes, max_node_count=spec.max_nodes),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=spec.machine_type,
                # CIS GKE 5.5.1: Container-Optimized OS with containerd unless the config says otherwise.
                image_type=args.hardening.image_type,
                service_account=self.node_account.email,
                oauth_scopes=[CLOUD_PLATFORM_SCOPE],
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True),
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"),
                metadata={"disable-legacy-endpoints": "true"},
                tags=[node_tag(spec.name)],
                labels={"mesh-cluster": spec.name},
            ),
            # Private nodes pull images (Istio's included) through Cloud NAT: no node before it.
            # `clusters[i].protect` guards the cluster and its pool (set false first to retire it).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_role, args.network.nat], protect=spec.protect,
                                        ignore_changes=list(NODE_POOL_CREATE_ONLY)),
        )

        self.endpoint = self.cluster.endpoint
        context = pulumi.Output.concat("gke_", args.project, "_", spec.region, "_", self.cluster.name)
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            context, self.cluster.endpoint, self.cluster.master_auth.cluster_ca_certificate,
        ).apply(lambda a: gke_kubeconfig(a[0], a[1], a[2])))

        # Everything in the cluster goes through this provider. It waits for the node pool
        # (pods need nodes), and `cluster_identifier` keeps it - and every object it owns -
        # from being replaced when only the kubeconfig's text changes.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            cluster_identifier=self.cluster.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.node_pool]),
        )

        self.handle = ClusterHandle(
            name=spec.name, provider=self.provider, gke_cluster=self.cluster, endpoint=self.endpoint,
            ca_certificate_b64=self.cluster.master_auth.cluster_ca_certificate,
        )

        self.register_outputs({
            "clusterName": self.cluster.name,
            "endpoint": self.endpoint,
            "kubeconfig": self.kubeconfig,
        })
