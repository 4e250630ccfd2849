"""Per-cluster component names: built and decoded by components.names, so the render knows every owner."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from components.names import (
    FIREWALL,
    INGRESS_GATEWAY_TYPE,
    PER_CLUSTER_COMPONENTS,
    cluster_component,
    component_cluster,
    edge_firewall_name,
)
from offline import run_program
from offline.configs import base, with_edge
from offline.graph import owners

LABEL = st.from_regex(r"[a-z]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


@given(st.sampled_from(sorted(PER_CLUSTER_COMPONENTS)), st.lists(LABEL, min_size=1, max_size=5, unique=True))
def test_every_per_cluster_name_decodes_to_its_cluster(type_token: str, clusters: list[str]) -> None:
    for cluster in clusters:
        assert component_cluster(type_token, cluster_component(type_token, cluster), clusters) == cluster


def test_a_name_of_another_cluster_or_type_decodes_to_none() -> None:
    assert component_cluster(INGRESS_GATEWAY_TYPE, "teal-ingress", ["blue", "green"]) is None
    assert component_cluster("gke-istio-mesh:index:Unknown", "blue-ingress", ["blue"]) is None


def test_every_per_cluster_component_and_the_edge_firewall_rules_belong_to_their_cluster() -> None:
    """The render groups resources by cluster: the edge firewall rule sits in `<cluster>-ingress`."""
    program = run_program(with_edge(base()))
    owner = owners(program)
    clusters = {name: c["network"] for name, c in program.exports["clusters"].items()}
    components = [r for r in program.resources if r.type in PER_CLUSTER_COMPONENTS]
    assert {r.type for r in components} == set(PER_CLUSTER_COMPONENTS)
    for r in components:
        assert owner[r.urn] == component_cluster(r.type, r.name, clusters), r.name
        assert owner[r.urn] is not None
    firewalls = {r.name: owner[r.urn] for r in program.resources
                 if r.type == FIREWALL and r.name.startswith(tuple(edge_firewall_name(n) for n in clusters.values()))}
    assert firewalls == {edge_firewall_name(net): name for name, net in clusters.items()}
