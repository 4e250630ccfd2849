"""MeshNetwork: one custom-mode VPC per mesh network, NAT on reserved egress, minimal firewall."""

from __future__ import annotations

import pytest

from components.names import node_tag
from offline import Program, Resource
from offline.configs import base

DEV = {c["name"]: c for c in base()["clusters"]}


def _network(stack: Program, cluster: str) -> Resource:
    return stack.find("gke-istio-mesh:index:MeshNetwork", DEV[cluster]["network"])


def _child(stack: Program, cluster: str, type_: str) -> list[Resource]:
    net = _network(stack, cluster)
    return [r for r in stack.children(net) if r.type == type_]


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_vpc_is_custom_mode_and_subnet_carries_the_cluster_ranges(base_stack: Program, cluster: str) -> None:
    spec = DEV[cluster]
    (vpc,) = _child(base_stack, cluster, "gcp:compute/network:Network")
    assert vpc.inputs["autoCreateSubnetworks"] is False
    (subnet,) = _child(base_stack, cluster, "gcp:compute/subnetwork:Subnetwork")
    assert subnet.inputs["network"] == vpc.id
    assert subnet.inputs["region"] == spec["region"]
    assert subnet.inputs["ipCidrRange"] == spec["nodeCidr"]
    assert subnet.inputs["privateIpGoogleAccess"] is True
    ranges = {r["rangeName"]: r["ipCidrRange"] for r in subnet.inputs["secondaryIpRanges"]}
    assert ranges == {"pods": spec["podCidr"], "services": spec["serviceCidr"]}


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_nat_uses_only_the_reserved_egress_addresses(base_stack: Program, cluster: str) -> None:
    spec = DEV[cluster]
    (router,) = _child(base_stack, cluster, "gcp:compute/router:Router")
    (nat,) = _child(base_stack, cluster, "gcp:compute/routerNat:RouterNat")
    addresses = _child(base_stack, cluster, "gcp:compute/address:Address")
    assert addresses, "NAT needs at least one reserved address"
    for address in addresses:
        assert address.inputs["addressType"] == "EXTERNAL"
        assert address.inputs["region"] == spec["region"]
    assert nat.inputs["natIpAllocateOption"] == "MANUAL_ONLY"
    assert nat.inputs["natIps"] == [a.outputs["selfLink"] for a in addresses]
    assert nat.inputs["router"] == router.outputs["name"]
    assert nat.inputs["region"] == router.inputs["region"] == spec["region"]
    # Pods (secondary ranges) must egress through NAT too: istiod runs in a pod.
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"


@pytest.mark.parametrize("cluster", sorted(DEV))
def test_firewall_opens_only_istio_webhook_from_the_control_plane(base_stack: Program, cluster: str) -> None:
    spec = DEV[cluster]
    rules = _child(base_stack, cluster, "gcp:compute/firewall:Firewall")
    (webhook,) = rules
    assert webhook.inputs["direction"] == "INGRESS"
    assert webhook.inputs["sourceRanges"] == [spec["masterCidr"]]
    # Istio's sidecar-injector and validation webhooks listen on 15017.
    assert webhook.inputs["allows"] == [{"protocol": "tcp", "ports": ["15017"]}]
    assert webhook.inputs["targetTags"] == [node_tag(cluster)]
    # The tag is the one the cluster's nodes carry.
    pools = [r for r in base_stack.of_type("gcp:container/nodePool:NodePool") if r.name == f"{cluster}-pool"]
    assert pools[0].inputs["nodeConfig"]["tags"] == [node_tag(cluster)]


def test_nothing_is_opened_to_the_internet(base_stack: Program) -> None:
    for rule in base_stack.of_type("gcp:compute/firewall:Firewall"):
        assert "0.0.0.0/0" not in rule.inputs.get("sourceRanges", [])
        assert not rule.inputs.get("sourceTags")


def test_each_network_gets_its_own_vpc(base_stack: Program) -> None:
    vpcs = base_stack.of_type("gcp:compute/network:Network")
    assert len(vpcs) == len(DEV)
    assert len({v.outputs["selfLink"] for v in vpcs}) == len(DEV)
    network_types = {"gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork", "gcp:compute/router:Router",
                     "gcp:compute/routerNat:RouterNat", "gcp:compute/firewall:Firewall"}
    for r in base_stack.resources:
        if r.type in network_types:
            assert base_stack.by_urn[r.parent].type == "gke-istio-mesh:index:MeshNetwork"
