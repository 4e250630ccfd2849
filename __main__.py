"""gke-istio-mesh: N GKE clusters, one VPC each, one Istio multi-primary multi-network mesh."""

import pulumi

from components import config
from components.cluster import GkeCluster, GkeClusterArgs
from components.network import MeshNetwork, MeshNetworkArgs

cfg = config.load()

networks = {c.name: MeshNetwork(c.network, MeshNetworkArgs(cluster=c)) for c in cfg.clusters}
clusters = {
    c.name: GkeCluster(c.name, GkeClusterArgs(
        cluster=c,
        project=cfg.project,
        mesh_id=cfg.mesh_id,
        network=networks[c.name],
        authorized_networks=cfg.authorized_networks,
        peer_egress=[(o.name, ip) for o in cfg.clusters if o.name != c.name for ip in networks[o.name].egress_ips],
    ))
    for c in cfg.clusters
}

pulumi.export("clusters", {
    c.name: {
        "name": c.name,
        "region": c.region,
        "network": c.network,
        "gkeName": clusters[c.name].cluster.name,
        "endpoint": clusters[c.name].endpoint,
        "natEgressAddresses": networks[c.name].egress_ips,
    }
    for c in cfg.clusters
})
pulumi.export("kubeconfigs", pulumi.Output.secret({c.name: clusters[c.name].kubeconfig for c in cfg.clusters}))
