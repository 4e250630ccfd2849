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
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import yaml

from components.istio_primary import ISTIO_NAMESPACE

READER_SERVICE_ACCOUNT = "istio-reader-service-account"
# The name `istioctl create-remote-secret` gives the token it creates (tokenSecretName in remote_secret.go).
READER_TOKEN_SECRET = f"{READER_SERVICE_ACCOUNT}-istio-remote-secret-token"
MULTICLUSTER_LABEL = "istio/multiCluster"
CLUSTER_ANNOTATION = "networking.istio.io/cluster"


def remote_secret_name(cluster: str) -> str:
    """The name `istioctl create-remote-secret` gives the secret for `cluster`."""
    return f"istio-remote-secret-{cluster}"


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

    name: str
    endpoint: pulumi.Input[str]
    ca_certificate_b64: pulumi.Input[str]
    provider: k8s.Provider
    gke_cluster: gcp.container.Cluster
    # Istio's base chart (owner of istio-reader-service-account) and istiod (whose chart binds
    # that account to its reader ClusterRole): a token is useful only once both exist.
    ready: list[pulumi.Resource]


@dataclass(frozen=True)
class MeshLinkArgs:
    clusters: Mapping[str, LinkedCluster]


class MeshLink(pulumi.ComponentResource):
    """N reader tokens and N x (N-1) remote secrets: a full mesh of endpoint discovery."""

    remote_secrets: dict[tuple[str, str], k8s.core.v1.Secret]

    def __init__(self, name: str, args: MeshLinkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gke-istio-mesh:index:MeshLink", name, None, opts)
        kubeconfigs: dict[str, pulumi.Output[str]] = {}

        # In each cluster: a token for the reader account the base chart created.
        for c in args.clusters.values():
            token_secret = k8s.core.v1.Secret(
                f"{name}.{c.name}.reader-token",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=READER_TOKEN_SECRET,
                    namespace=ISTIO_NAMESPACE,
                    annotations={"kubernetes.io/service-account.name": READER_SERVICE_ACCOUNT},
                ),
                type="kubernetes.io/service-account-token",
                opts=pulumi.ResourceOptions(parent=self, provider=c.provider, depends_on=c.ready,
                                            deleted_with=c.gke_cluster),
            )
            token = token_secret.data.apply(lambda d: base64.b64decode(d["token"]).decode())
            kubeconfigs[c.name] = pulumi.Output.secret(pulumi.Output.all(
                c.name, c.endpoint, c.ca_certificate_b64, token,
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
                    opts=pulumi.ResourceOptions(parent=self, provider=target.provider, depends_on=target.ready,
                                                deleted_with=target.gke_cluster),
                )

        self.register_outputs({
            "remoteSecrets": [f"{t}/{remote_secret_name(s)}" for s, t in self.remote_secrets],
        })
