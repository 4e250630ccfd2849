"""gke-istio-mesh: N GKE clusters, one VPC each, one Istio multi-primary multi-network mesh."""

import pulumi

from components import config
from components.alerts import MeshAlerts, MeshAlertsArgs
from components.certificate_authority import IstioCertificateAuthority, IstioCertificateAuthorityArgs
from components.cluster import GkeCluster, GkeClusterArgs
from components.dashboard import MeshDashboard, MeshDashboardArgs, observed_clusters, observed_services
from components.edge import GlobalEdge, GlobalEdgeArgs
from components.fleet import FleetCluster, FleetWorkloads, FleetWorkloadsArgs
from components.ingress import IngressGateway, IngressGatewayArgs
from components.istio_primary import IstioPrimary, IstioPrimaryArgs
from components.last_deployment import last_deployment_gate
from components.mesh_link import LinkedCluster, MeshLink, MeshLinkArgs
from components.names import (
    CLUSTER_ROUTING_TYPE,
    GKE_CLUSTER_TYPE,
    INGRESS_GATEWAY_TYPE,
    ISTIO_PRIMARY_TYPE,
    TELEMETRY_TYPE,
    cluster_component,
)
from components.network import MeshNetwork, MeshNetworkArgs
from components.retirement import retirement_problems
from components.root_transition import multiroot_env, root_change_problems
from components.telemetry import MeshTelemetry, MeshTelemetryArgs
from components.traffic import ClusterRouting, ClusterRoutingArgs

cfg = config.load()
names = [c.name for c in cfg.clusters]
# Nothing is declared until the stack's last outputs show the edit is safe for the running mesh:
# no removed cluster still carried weight, no signing root the deployed mesh does not trust.
gated = pulumi.ResourceOptions(depends_on=last_deployment_gate([
    lambda last: retirement_problems(last, names), lambda last: root_change_problems(last, cfg.ca)]))

networks = {c.name: MeshNetwork(c.network, MeshNetworkArgs(cluster=c, nat=cfg.nat, hardening=cfg.hardening), gated)
            for c in cfg.clusters}
peer_egress = {c.name: [(o, cidr) for o in names if o != c.name for cidr in networks[o].egress_cidrs]
               for c in cfg.clusters}
clusters = {c.name: GkeCluster(cluster_component(GKE_CLUSTER_TYPE, c.name), GkeClusterArgs(
    cluster=c, project=cfg.project, mesh_id=cfg.mesh_id, network=networks[c.name],
    authorized_networks=cfg.authorized_networks, peer_egress=peer_egress[c.name], hardening=cfg.hardening,
    maintenance_exclusions=cfg.maintenance_exclusions,
), gated) for c in cfg.clusters}

ca = IstioCertificateAuthority("mesh-ca", IstioCertificateAuthorityArgs(
    ca=cfg.ca, clusters=names, protect_root=any(c.protect for c in cfg.clusters) and not cfg.ca.root_transition),
    gated)
primaries = {c.name: IstioPrimary(cluster_component(ISTIO_PRIMARY_TYPE, c.name), IstioPrimaryArgs(
    cluster=c, target=clusters[c.name].handle, mesh_id=cfg.mesh_id, istio_version=cfg.istio_version(c),
    chart_repository=cfg.istio.chart_repository,
    cacerts=ca.intermediates[c.name].cacerts(ca.root_cert_pem, ca.trusted_roots), istiod_env=multiroot_env(cfg.ca),
    cluster_local=cfg.cluster_local, mesh_namespaces=cfg.mesh_namespaces,
    peer_egress=[cidr for _, cidr in peer_egress[c.name]], availability=cfg.availability,
), gated) for c in cfg.clusters}

MeshLink("mesh-link", MeshLinkArgs(clusters={c.name: LinkedCluster(
    cluster=clusters[c.name].handle, ready=primaries[c.name].link_ready) for c in cfg.clusters},
    reader_token_generation=cfg.mesh_link.reader_token_generation), gated)

services = [(s, cfg.traffic.weights_for(s)) for s in cfg.traffic.services]
routing = {c.name: ClusterRouting(cluster_component(CLUSTER_ROUTING_TYPE, c.name), ClusterRoutingArgs(
    cluster=c.name, clusters=cfg.clusters, subset_label=cfg.traffic.subset_label, services=services,
    target=clusters[c.name].handle, depends_on=primaries[c.name].routing_ready,
), gated) for c in cfg.clusters}

edge, ingress = None, {}
if cfg.edge.enabled:
    ingress = {c.name: IngressGateway(cluster_component(INGRESS_GATEWAY_TYPE, c.name), IngressGatewayArgs(
        cluster=c, target=clusters[c.name].handle, network=networks[c.name], istio_version=cfg.istio_version(c),
        chart_repository=cfg.istio.chart_repository, replicas=cfg.edge.replicas,
        services=[s for s in cfg.traffic.services if s.hosts], depends_on=[routing[c.name]],
    ), gated) for c in cfg.clusters}
    edge = GlobalEdge("edge", GlobalEdgeArgs(
        clusters=cfg.clusters, weights=dict(cfg.traffic.weights), services=services, https=cfg.edge.https,
        negs={n: g.neg_self_links for n, g in ingress.items()}, ingress=ingress,
    ), gated)

if cfg.workloads.enabled:
    FleetWorkloads("fleet", FleetWorkloadsArgs(project=cfg.project, workloads=cfg.workloads, clusters={
        n: FleetCluster(cluster_id=clusters[n].cluster.id, gke_name=clusters[n].cluster.name) for n in names}), gated)

# The ingress gateway's monitor goes in its namespace: after it, and only with the edge.
for c in cfg.clusters:
    MeshTelemetry(cluster_component(TELEMETRY_TYPE, c.name), MeshTelemetryArgs(
        target=clusters[c.name].handle, mesh_namespaces=cfg.mesh_namespaces, depends_on=primaries[c.name].routing_ready,
        ingress_namespace=ingress[c.name].namespace if c.name in ingress else None), gated)

observed = observed_clusters(cfg.clusters, {n: g.cluster.name for n, g in clusters.items()},
                             {n: m.nat.name for n, m in networks.items()})
watched = observed_services(cfg)
dashboard = MeshDashboard("mesh-dashboard", MeshDashboardArgs(
    title=f"Mesh {cfg.mesh_id} ({pulumi.get_stack()})", project=cfg.project, clusters=observed, services=watched,
    flip=cfg.flip, nat=cfg.nat, edge=cfg.edge.enabled), gated)
alerts = MeshAlerts("mesh-alerts", MeshAlertsArgs(
    project=cfg.project, mesh_id=cfg.mesh_id, clusters=observed, services=watched, flip=cfg.flip,
    notification_channels=cfg.monitoring.notification_channels), gated)

pulumi.export("clusters", {c.name: {
    "name": c.name, "region": c.region, "network": c.network, "istioVersion": cfg.istio_version(c),
    "gkeName": clusters[c.name].cluster.name, "endpoint": clusters[c.name].endpoint,
    "natEgressAddresses": networks[c.name].egress_ips,
    "eastWestGatewayAddress": primaries[c.name].eastwest_address,
} for c in cfg.clusters})
pulumi.export("kubeconfigs", pulumi.Output.secret({n: clusters[n].kubeconfig for n in names}))
pulumi.export("rootCertPem", ca.root_cert_pem)
pulumi.export("caExpiry", ca.expiry)
pulumi.export("caTrust", ca.trust)
pulumi.export("edge", {"address": edge.address, "url": edge.url, "hosts": edge.hosts} if edge else None)
pulumi.export("dashboardUrl", dashboard.url)
pulumi.export("alertPolicies", alerts.names)
pulumi.export("trafficSplit", {s.key: w for s, w in services})
