"""One Istio primary: control plane and east-west gateway, installed as one ordered graph.

Istio's "Install Multi-Primary on different networks" (Helm variant), per cluster:
label istio-system with the network, plug in `cacerts`, install `base`, then
`istiod` (mesh ID, cluster name, network), then the east-west gateway, then expose
services through it. Everything is one dependency graph, so istiod and the gateway
always start after the plugged-in CA exists - the failure the seed's author hit
when control plane and gateways were installed separately - and
`pulumi destroy` tears it down in reverse without hand-made scripts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components.availability import gateway_ha_values, istiod_ha_values
from components.cluster import ClusterHandle
from components.config import AvailabilitySpec, ClusterSpec
from components.names import (
    CACERTS_SECRET,
    CROSS_NETWORK_GATEWAY,
    EASTWEST_RELEASE,
    INJECTION_LABEL,
    ISTIO_NAMESPACE,
    ISTIO_PRIMARY_TYPE,
    NETWORK_LABEL,
    NETWORKING_API,
    SECURITY_API,
)

EASTWEST_SELECTOR = {"istio": "eastwestgateway"}
CROSS_NETWORK_PORT = 15443
# Helm waits this long for a release's objects to become ready (LB address included).
RELEASE_TIMEOUT_SECONDS = 900


def chart_source(repository: str, chart: str) -> dict[str, Any]:
    """The Release inputs that name a chart: a chart in an https repository, or an OCI reference.

    Helm resolves `repository_opts.repo` through the repository's index.yaml, which an OCI
    registry does not have; an OCI chart is named by its full `oci://…/<chart>` reference instead.
    """
    if repository.startswith("oci://"):
        return {"chart": f"{repository.rstrip('/')}/{chart}"}
    return {"chart": chart, "repository_opts": k8s.helm.v3.RepositoryOptsArgs(repo=repository)}


# Istio's DNS proxying, so a Service in one cluster resolves from every cluster; why this one flag
# suffices in Istio 1.30: docs/blue-green.md#why-a-service-in-one-cluster-resolves-everywhere.
DNS_PROXY_METADATA = {"ISTIO_META_DNS_CAPTURE": "true"}


def deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """`a` with `b` laid over it, nested mappings merged key by key (as Helm merges values)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(out.get(k), Mapping) and isinstance(v, Mapping) else v
    return out


def istiod_values(mesh_id: str, cluster: str, network: str, cluster_local: Sequence[str],
                  replicas: int = AvailabilitySpec().istiod_replicas,
                  env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Values of the `istiod` chart for one primary of a multi-network mesh: HA, DNS proxying on.

    `env` becomes istiod's container environment (the chart's top-level `env` map).
    """
    values: dict[str, Any] = {
        "global": {
            "meshID": mesh_id,
            "multiCluster": {"clusterName": cluster},
            "network": network,
        },
        "meshConfig": {"defaultConfig": {"proxyMetadata": dict(DNS_PROXY_METADATA)}},
    }
    if env:
        values["env"] = dict(env)
    if cluster_local:
        # Istio's mesh config: these hosts are served only by endpoints in the caller's cluster.
        values["meshConfig"]["serviceSettings"] = [{"settings": {"clusterLocal": True}, "hosts": list(cluster_local)}]
    return deep_merge(values, istiod_ha_values(replicas))


def eastwest_gateway_values(network: str, address: str, source_ranges: Sequence[str],
                            replicas: int = AvailabilitySpec().eastwest_replicas) -> dict[str, Any]:
    """Values of the `gateway` chart for the east-west gateway of one network.

    `networkGateway` is the whole multi-network setup in the chart: it labels the
    Service and the pods `topology.istio.io/network`, sets ISTIO_META_REQUESTED_NETWORK_VIEW,
    and renders exactly the ports status-port 15021, tls 15443, tls-istiod 15012 and
    tls-webhook 15017 (templates/service.yaml takes `service.ports` only when it is
    unset). So neither the network label nor ports are repeated here: a second
    `topology.istio.io/network` key in `labels` would render a duplicate mapping key.
    """
    return {
        "name": EASTWEST_RELEASE,
        "networkGateway": network,
        "labels": {**EASTWEST_SELECTOR, "app": EASTWEST_RELEASE},
        "service": {
            "type": "LoadBalancer",
            "loadBalancerIP": address,
            "loadBalancerSourceRanges": list(source_ranges),
        },
        # The only way into this network: replicated, disruption-budgeted, spread over zones.
        **gateway_ha_values(replicas),
    }


def cross_network_gateway() -> dict[str, Any]:
    """samples/multicluster/expose-services.yaml: mTLS passthrough for every *.local service."""
    return {
        "apiVersion": NETWORKING_API,
        "kind": "Gateway",
        "metadata": {"name": CROSS_NETWORK_GATEWAY, "namespace": ISTIO_NAMESPACE},
        "spec": {
            "selector": dict(EASTWEST_SELECTOR),
            "servers": [{
                "port": {"number": CROSS_NETWORK_PORT, "name": "tls", "protocol": "TLS"},
                "tls": {"mode": "AUTO_PASSTHROUGH"},
                "hosts": ["*.local"],
            }],
        },
    }


def strict_mtls() -> dict[str, Any]:
    """Mesh-wide STRICT mTLS: a PeerAuthentication named default in the root namespace."""
    return {
        "apiVersion": SECURITY_API,
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": ISTIO_NAMESPACE},
        "spec": {"mtls": {"mode": "STRICT"}},
    }


def mesh_namespace_labels() -> dict[str, str]:
    return {INJECTION_LABEL: "enabled"}


@dataclass(frozen=True)
class IstioPrimaryArgs:
    cluster: ClusterSpec
    target: ClusterHandle
    mesh_id: str
    istio_version: str
    chart_repository: str
    cacerts: pulumi.Input[Mapping[str, str]]
    cluster_local: Sequence[str]
    mesh_namespaces: Sequence[str]
    # The other networks' NAT egress addresses as /32s: the only sources the east-west gateway admits.
    peer_egress: Sequence[pulumi.Input[str]]
    availability: AvailabilitySpec
    # istiod's extra environment (ISTIO_MULTIROOT_MESH during a root transition).
    istiod_env: Mapping[str, str] = field(default_factory=dict)


class IstioPrimary(pulumi.ComponentResource):
    """istio-system, cacerts, base -> istiod -> east-west gateway -> Istio resources."""

    namespace: k8s.core.v1.Namespace
    base: k8s.helm.v3.Release
    istiod: k8s.helm.v3.Release
    eastwest: k8s.helm.v3.Release
    eastwest_address: pulumi.Output[str]
    mesh_namespaces: list[k8s.core.v1.Namespace]

    def __init__(self, name: str, args: IstioPrimaryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ISTIO_PRIMARY_TYPE, name, None, opts)
        spec = args.cluster
        # Plain in-cluster objects need no delete call when their whole cluster goes.
        in_cluster = args.target.in_cluster(self)

        def after(*deps: pulumi.Resource) -> pulumi.ResourceOptions:
            return args.target.in_cluster(self, deps)

        # 1. The cluster's network, on the namespace istiod and the gateways run in.
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-istio-system",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ISTIO_NAMESPACE, labels={NETWORK_LABEL: spec.network}),
            opts=in_cluster,
        )

        # 2. Plug in the mesh CA before istiod starts: istiod reads it only at start-up.
        self.cacerts = k8s.core.v1.Secret(
            f"{name}-cacerts",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=CACERTS_SECRET, namespace=ISTIO_NAMESPACE),
            string_data=args.cacerts,
            type="Opaque",
            opts=after(self.namespace),
        )

        def release(step: str, release_name: str, chart: str, values: pulumi.Input[Mapping[str, Any]],
                    opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
            """One of Istio's charts at this cluster's version; the Release waits until it is ready."""
            return k8s.helm.v3.Release(
                f"{name}-{step}", name=release_name, **chart_source(args.chart_repository, chart),
                version=args.istio_version, namespace=ISTIO_NAMESPACE, values=values,
                timeout=RELEASE_TIMEOUT_SECONDS, opts=opts,
            )

        # 3. CRDs and the istio-reader-service-account.
        self.base = release("base", "istio-base", "base", {"defaultRevision": "default"}, after(self.namespace))

        # 4. The control plane, named for the mesh, this cluster and its network.
        self.istiod = release(
            "istiod", "istiod", "istiod",
            istiod_values(args.mesh_id, spec.name, spec.network, args.cluster_local,
                          args.availability.istiod_replicas, args.istiod_env),
            after(self.base, self.cacerts),
        )

        # 5. The east-west gateway on a reserved address, known before the install. It owns a
        # cloud load balancer, so it is always deleted for real (never skipped with the cluster).
        address = gcp.compute.Address(
            f"{name}-eastwest",
            region=spec.region,
            address_type="EXTERNAL",
            network_tier="PREMIUM",
            description=f"Istio east-west gateway of {spec.name} ({spec.network})",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.eastwest_address = address.address
        self.eastwest = release(
            "eastwestgateway", EASTWEST_RELEASE, "gateway",
            pulumi.Output.all(address.address, *args.peer_egress).apply(
                lambda a: eastwest_gateway_values(spec.network, a[0], a[1:], args.availability.eastwest_replicas)),
            # istiod injects the gateway's Envoy (the chart's pods carry the gateway injection template);
            # istiod itself already waited for cacerts, so that wait is not repeated here.
            pulumi.ResourceOptions(parent=self, provider=args.target.provider, depends_on=[self.istiod]),
        )

        # 6. Istio resources only once istiod serves its validation webhook (Release waits for it).
        # The Gateway is configuration selecting the east-west pods by label: it needs istiod's
        # webhook, not the pods or their load balancer, so it no longer waits for that release.
        gateway = cross_network_gateway()
        self.cross_network_gateway = k8s.apiextensions.CustomResource(
            f"{name}-cross-network-gateway",
            api_version=gateway["apiVersion"], kind=gateway["kind"],
            metadata=gateway["metadata"], spec=gateway["spec"],
            opts=after(self.istiod),
        )
        mtls = strict_mtls()
        self.peer_authentication = k8s.apiextensions.CustomResource(
            f"{name}-strict-mtls",
            api_version=mtls["apiVersion"], kind=mtls["kind"],
            metadata=mtls["metadata"], spec=mtls["spec"],
            opts=after(self.istiod),
        )

        # 7. Workload namespaces, the same in every cluster (namespace sameness), sidecars on.
        # A namespace is no Istio resource (no webhook of istiod's checks it) and its injection
        # label is read only when a pod is admitted, so it waits for nothing but the cluster.
        self.mesh_namespaces = [
            k8s.core.v1.Namespace(
                f"{name}-ns.{ns}",  # dot-joined: no DNS label has one, so no two pairs collide
                metadata=k8s.meta.v1.ObjectMetaArgs(name=ns, labels=mesh_namespace_labels()),
                opts=in_cluster,
            )
            for ns in args.mesh_namespaces
        ]

        # What the mesh link waits for: the base chart owns istio-reader-service-account and the
        # istiod chart binds it to the reader role, so a token is useful only once both exist.
        self.link_ready: list[pulumi.Resource] = [self.base, self.istiod]
        # What routing waits for: istiod's validation webhook and the namespaces routes live in.
        self.routing_ready: list[pulumi.Resource] = [self.istiod, *self.mesh_namespaces]

        self.register_outputs({
            "eastWestGatewayAddress": self.eastwest_address,
            "istioVersion": args.istio_version,
        })
