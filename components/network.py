"""One VPC per mesh network.

Multi-network Istio means the clusters' pods cannot reach each other directly: each
cluster lives in its own custom-mode VPC, leaves it only through Cloud NAT on
reserved addresses (which the other clusters' control planes then allow), and
admits from outside only what private GKE and Istio's webhooks need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from components.config import ClusterSpec, Hardening, NatSpec
from components.names import MESH_NETWORK_TYPE, node_tag, webhook_firewall_name

PODS_RANGE = "pods"
SERVICES_RANGE = "services"
# Istio's sidecar-injector and validation webhooks: the GKE control plane calls istiod here.
ISTIO_WEBHOOK_PORT = "15017"


@dataclass(frozen=True)
class MeshNetworkArgs:
    cluster: ClusterSpec
    nat: NatSpec
    hardening: Hardening = field(default_factory=Hardening)


class MeshNetwork(pulumi.ComponentResource):
    """Custom-mode VPC, subnet with pod/service ranges, NAT on reserved egress, firewall."""

    vpc: gcp.compute.Network
    subnet: gcp.compute.Subnetwork
    egress_addresses: list[gcp.compute.Address]

    def __init__(self, name: str, args: MeshNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(MESH_NETWORK_TYPE, name, None, opts)
        spec = args.cluster
        child = pulumi.ResourceOptions(parent=self)
        # `clusters[i].protect`: the VPC and subnet outlive any config edit or destroy until unset.
        kept = pulumi.ResourceOptions(parent=self, protect=spec.protect)

        # A custom-mode VPC: no auto subnets, nothing shared with the other networks.
        self.vpc = gcp.compute.Network(
            f"{name}-vpc",
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            description=f"Istio mesh network {spec.network} (cluster {spec.name})",
            opts=kept,
        )

        # VPC-native cluster: nodes on the primary range, pods and services on secondary ranges.
        # Private Google Access lets private nodes pull images and reach Google APIs.
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            region=spec.region,
            network=self.vpc.id,
            ip_cidr_range=spec.node_cidr,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=PODS_RANGE, ip_cidr_range=spec.pod_cidr),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=SERVICES_RANGE, ip_cidr_range=spec.service_cidr),
            ],
            private_ip_google_access=True,
            # CIS GKE 5.6.1: VPC Flow Logs on the nodes' subnet (Compute Engine's defaults but the sampling).
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_SEC",
                flow_sampling=args.hardening.flow_sampling,
                metadata="INCLUDE_ALL_METADATA",
            ) if args.hardening.subnet_flow_logs else None,
            opts=kept,
        )

        # Private nodes leave the VPC only through Cloud NAT, on an address we reserve so the
        # other clusters' control planes can allow exactly it (istiod watches their API servers).
        self.egress_addresses = [
            gcp.compute.Address(
                f"{name}-egress" if k == 0 else f"{name}-egress-{k + 1}",
                region=spec.region,
                address_type="EXTERNAL",
                network_tier="PREMIUM",
                description=f"Cloud NAT egress of mesh network {spec.network}",
                opts=child,
            )
            for k in range(args.nat.addresses)
        ]
        self.router = gcp.compute.Router(
            f"{name}-router", region=spec.region, network=self.vpc.id, opts=child
        )
        self.nat = gcp.compute.RouterNat(
            f"{name}-nat",
            router=self.router.name,
            region=spec.region,
            nat_ip_allocate_option="MANUAL_ONLY",
            nat_ips=[a.self_link for a in self.egress_addresses],
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            # Every cross-network connection of a node goes to one destination, the peer's east-west
            # gateway on 15443, and a NAT port serves one connection per destination: ports per VM
            # are the node's concurrent connections to one peer. Dynamic allocation gives each VM
            # `min` ports and grows it up to `max` (powers of two; it requires endpoint-independent
            # mapping off). Dropped packets show up in the ERRORS_ONLY log.
            enable_dynamic_port_allocation=True,
            enable_endpoint_independent_mapping=False,
            min_ports_per_vm=args.nat.min_ports_per_vm,
            max_ports_per_vm=args.nat.max_ports_per_vm,
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )

        # GKE opens 443 and 10250 from the control plane by itself; Istio's webhooks need 15017.
        self.webhook_firewall = gcp.compute.Firewall(
            webhook_firewall_name(name),
            network=self.vpc.id,
            direction="INGRESS",
            source_ranges=[spec.master_cidr],
            target_tags=[node_tag(spec.name)],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[ISTIO_WEBHOOK_PORT])],
            description="GKE control plane -> istiod webhooks (sidecar injection, validation)",
            opts=child,
        )

        self.egress_ips: list[pulumi.Output[str]] = [a.address for a in self.egress_addresses]
        # The same addresses as /32 CIDRs, made once here: every other cluster's control-plane
        # allow-list and east-west gateway admit exactly these.
        self.egress_cidrs: list[pulumi.Output[str]] = [ip.apply(lambda a: f"{a}/32") for ip in self.egress_ips]

        self.register_outputs({
            "vpcId": self.vpc.id,
            "subnetId": self.subnet.id,
            "egressAddresses": self.egress_ips,
        })
