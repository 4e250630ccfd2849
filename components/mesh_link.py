"""Endpoint discovery between primaries: every istiod watches every other cluster's API server.

Istio's "Enable Endpoint Discovery" step, without `istioctl create-remote-secret`:
for each cluster A, a long-lived token for A's `istio-reader-service-account`
(Kubernetes >= 1.24 creates none by itself), and in every other cluster B a remote
secret `istio-remote-secret-<A>` holding a token kubeconfig for A. istiod cannot
run exec plugins, so the kubeconfig carries the token itself. Every name comes
from the cluster's config `name`, the same value istiod gets as
`global.multiCluster.clusterName`: a mismatch silently breaks cluster-subset routing.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.cluster import ClusterHandle
from components.names import (
    CLUSTER_ANNOTATION,
    ISTIO_NAMESPACE,
    MESH_LINK_TYPE,
    MULTICLUSTER_LABEL,
    READER_SERVICE_ACCOUNT,
    reader_token_secret_name,
    remote_secret_name,
)


def remote_kubeconfig(cluster: str, server: str, ca_data_b64: str, token: str) -> str:
    """A kubeconfig istiod can use: bearer token user, cluster named by its mesh cluster name."""
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca_data_b64}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "current-context": cluster,
        "preferences": {},
        "users": [{"name": cluster, "user": {"token": token}}],
    }, sort_keys=False)


def remote_secret_metadata(cluster: str) -> dict[str, object]:
    return {
        "name": remote_secret_name(cluster),
        "namespace": ISTIO_NAMESPACE,
        "labels": {MULTICLUSTER_LABEL: "true"},
        "annotations": {CLUSTER_ANNOTATION: cluster},
    }


@dataclass(frozen=True)
class LinkedCluster:
    """What the link needs from one primary."""

    cluster: ClusterHandle
    # IstioPrimary.link_ready: the reader account exists and is bound to its role.
    ready: Sequence[pulumi.Resource]

    @property
    def name(self) -> str:
        return self.cluster.name


@dataclass(frozen=True)
class MeshLinkArgs:
    clusters: Mapping[str, LinkedCluster]
    # meshLink.readerTokenGeneration: a new number renames every token Secret, so the next `up`
    # creates new tokens, rewrites every remote secret with them, then deletes the old token
    # Secrets - which revokes the old tokens (Kubernetes invalidates a secret-based token with its Secret).
    reader_token_generation: int = 0


class MeshLink(pulumi.ComponentResource):
    """N reader tokens and N x (N-1) remote secrets: a full mesh of endpoint discovery."""

    remote_secrets: dict[tuple[str, str], k8s.core.v1.Secret]

    def __init__(self, name: str, args: MeshLinkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(MESH_LINK_TYPE, name, None, opts)
        kubeconfigs: dict[str, pulumi.Output[str]] = {}

        # In each cluster: a token for the reader account the base chart created.
        for c in args.clusters.values():
            token_secret = k8s.core.v1.Secret(
                f"{name}.{c.name}.reader-token",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=reader_token_secret_name(args.reader_token_generation),
                    namespace=ISTIO_NAMESPACE,
                    annotations={"kubernetes.io/service-account.name": READER_SERVICE_ACCOUNT},
                ),
                type="kubernetes.io/service-account-token",
                opts=c.cluster.in_cluster(self, c.ready),
            )
            token = token_secret.data.apply(lambda d: base64.b64decode(d["token"]).decode())
            kubeconfigs[c.name] = pulumi.Output.secret(pulumi.Output.all(
                c.name, c.cluster.endpoint, c.cluster.ca_certificate_b64, token,
            ).apply(lambda a: remote_kubeconfig(a[0], f"https://{a[1]}", a[2], a[3])))

        # In every other cluster: the remote secret istiod discovers by its label.
        self.remote_secrets = {}
        for source in args.clusters.values():
            for target in args.clusters.values():
                if target.name == source.name:
                    continue
                self.remote_secrets[(source.name, target.name)] = k8s.core.v1.Secret(
                    f"{name}.{source.name}.in.{target.name}",
                    metadata=remote_secret_metadata(source.name),
                    string_data=kubeconfigs[source.name].apply(lambda k, n=source.name: {n: k}),
                    type="Opaque",
                    opts=target.cluster.in_cluster(self, target.ready),
                )

        self.register_outputs({
            "remoteSecrets": [f"{t}/{remote_secret_name(s)}" for s, t in self.remote_secrets],
        })
