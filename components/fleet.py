"""Fleet membership and Config Sync: every cluster pulls the same workloads from one Git path.

Why: a successor cluster (tools/replace) must run what the cluster it replaces runs before it
gets traffic. With `workloads.enabled`, each cluster joins the project's fleet and Config Sync
applies `workloads.repo` at `workloads.path` to it, so a new cluster converges on the same
Deployments with no hand work; the parity gate (tools/verify/parity.py) then proves it.
Field names are pulumi-gcp 10.2's `gkehub.FeatureMembership` (configmanagement.config_sync.git)
and `gkehub.Membership` (endpoint.gke_cluster.resource_link); requirements and pricing:
docs/replace.md#workloads-fleet-and-config-sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from components.config import WorkloadsSpec
from components.names import FLEET_WORKLOADS_TYPE

# The fleet feature that runs Config Sync is named "configmanagement" and is global.
CONFIG_SYNC_FEATURE = "configmanagement"
FLEET_LOCATION = "global"
# Repositories readable without credentials; a private one needs a git-creds Secret this program does not declare.
SECRET_TYPE = "none"
# Plain manifests (not the hierarchical ACM repository layout).
SOURCE_FORMAT = "unstructured"


def membership_resource_link(cluster_id: str) -> str:
    """The Membership's endpoint for a GKE cluster: its full resource name under container.googleapis.com."""
    return f"//container.googleapis.com/{cluster_id}"


def config_sync(workloads: WorkloadsSpec) -> dict[str, Any]:
    """FeatureMembership.configmanagement for one cluster: Config Sync from the repo's path, auto-upgraded."""
    if not workloads.enabled or workloads.repo is None:
        raise ValueError("config_sync needs workloads.enabled and workloads.repo")
    return {
        # Google upgrades Config Sync itself; no `version` is pinned with automatic management.
        "management": "MANAGEMENT_AUTOMATIC",
        "config_sync": {
            "enabled": True,
            "source_format": SOURCE_FORMAT,
            "git": {
                "sync_repo": workloads.repo,
                "sync_branch": workloads.branch,
                "policy_dir": workloads.path,
                "secret_type": SECRET_TYPE,
            },
        },
    }


@dataclass(frozen=True)
class FleetCluster:
    """What the fleet needs of one cluster: its GKE resource id (for the membership) and GKE name."""

    cluster_id: pulumi.Input[str]
    gke_name: pulumi.Input[str]


@dataclass(frozen=True)
class FleetWorkloadsArgs:
    project: str
    workloads: WorkloadsSpec
    clusters: Mapping[str, FleetCluster]


class FleetWorkloads(pulumi.ComponentResource):
    """The Config Sync feature once, then a Membership and a FeatureMembership per cluster."""

    def __init__(self, name: str, args: FleetWorkloadsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(FLEET_WORKLOADS_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.feature = gcp.gkehub.Feature(
            f"{name}-config-sync", name=CONFIG_SYNC_FEATURE, location=FLEET_LOCATION, project=args.project,
            opts=child)
        self.memberships: dict[str, gcp.gkehub.Membership] = {}
        spec = config_sync(args.workloads)
        for cluster, c in args.clusters.items():
            membership = gcp.gkehub.Membership(
                f"{cluster}-membership",
                # The GKE name is unique in the project (auto-named), so two stacks in one project never collide.
                membership_id=c.gke_name,
                location=FLEET_LOCATION,
                project=args.project,
                endpoint={"gke_cluster": {"resource_link": pulumi.Output.from_input(c.cluster_id).apply(
                    membership_resource_link)}},
                opts=child)
            self.memberships[cluster] = membership
            gcp.gkehub.FeatureMembership(
                f"{cluster}-config-sync",
                location=FLEET_LOCATION,
                feature=self.feature.name,
                membership=membership.membership_id,
                membership_location=FLEET_LOCATION,
                project=args.project,
                configmanagement=spec,
                opts=child)
        self.register_outputs({"memberships": {n: m.membership_id for n, m in self.memberships.items()}})
