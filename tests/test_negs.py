"""One `up` creates the edge and one `destroy` removes it: the NEGs GKE makes are waited for both ways.

Against tests/fakes/neg_controller.py (GKE's NEG controller: neg-status before the NEGs, NEGs only
in zones with nodes after a delay, garbage collection on a 120 s timer), on a fake clock.
"""

from __future__ import annotations

import asyncio
import graphlib
import json
from typing import Any

import pulumi
import pytest

import components.ingress as ingress
from components.ingress import neg_self_links, reported_zones, wait_for_negs
from components.names import (
    BACKEND_SERVICE,
    GKE_CLUSTER,
    HELM_RELEASE,
    NAMESPACE,
    NODE_POOL,
    SERVICE,
)
from offline import Program, ProgramError, run_program
from offline.configs import base, with_edge
from offline.graph import skipped_on_delete, wait_edges
from tests.fakes.neg_controller import GC_PERIOD, NegControllerModel

PROJECT = "mesh-test-project"
WEST = ["us-west1-a", "us-west1-b", "us-west1-c"]
CENTRAL = ["us-central1-a", "us-central1-b", "us-central1-c"]


def _model(**kwargs: Any) -> NegControllerModel:
    return NegControllerModel(nodes={z: 1 for z in WEST + CENTRAL}, **kwargs)


async def _lookup_in(model: NegControllerModel, project: str, zone: str, name: str) -> None:
    if not model.exists(project, zone, name):
        raise RuntimeError(f"projects/{project}/zones/{zone}/networkEndpointGroups/{name} not found")


def _wait(model: NegControllerModel, zones: list[str], name: str, timeout: float) -> list[str]:
    # A loop of its own: asyncio.run would unset the thread's loop the program runs use.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(wait_for_negs(
            PROJECT, zones, name, cluster="blue", timeout=timeout, interval=10.0,
            lookup=lambda p, z, n: _lookup_in(model, p, z, n), clock=model.clock, sleep=model.sleep))
    finally:
        loop.close()


def test_the_wait_returns_once_every_reported_neg_exists_not_when_it_is_reported() -> None:
    model = _model(create_delay=45.0)
    zones = model.service_created(PROJECT, WEST, "blue-ingress-abc123")
    assert zones == WEST and not any(model.exists(PROJECT, z, "blue-ingress-abc123") for z in WEST)
    links = _wait(model, zones, "blue-ingress-abc123", timeout=600.0)
    assert links == neg_self_links(PROJECT, WEST, "blue-ingress-abc123")
    assert 45.0 <= model.now < 45.0 + 10.0, "polled every 10 s until the controller made them"


def test_a_neg_that_never_comes_fails_the_up_with_what_is_missing() -> None:
    model = _model(create_delay=10_000.0)
    zones = model.service_created(PROJECT, WEST, "blue-ingress-abc123")
    with pytest.raises(pulumi.RunError) as error:
        _wait(model, zones, "blue-ingress-abc123", timeout=600.0)
    message = str(error.value)
    assert "cluster blue" in message and "NEG blue-ingress-abc123" in message
    assert "us-west1-a, us-west1-b, us-west1-c" in message and "within 600 s" in message
    assert "not found" in message, "the data source's last answer is shown"
    assert 600.0 <= model.now <= 610.0


def test_only_zones_with_nodes_are_reported_and_listed() -> None:
    model = _model(create_delay=0.0)
    model.scale_zone("us-west1-c", 0)
    status = json.dumps({"network_endpoint_groups": {"80": "n"},
                         "zones": model.service_created(PROJECT, WEST, "n")})
    assert reported_zones(status, "n", WEST) == ["us-west1-a", "us-west1-b"]
    with pytest.raises(pulumi.RunError, match="names NEG 'other' for port 80, not 'n'"):
        reported_zones('{"network_endpoint_groups":{"80":"other"},"zones":["us-west1-a"]}', "n", WEST)
    with pytest.raises(pulumi.RunError, match="no zone has a node yet"):
        reported_zones('{"network_endpoint_groups":{"80":"n"},"zones":[]}', "n", WEST)
    with pytest.raises(pulumi.RunError, match=r"has no cloud\.google\.com/neg-status annotation"):
        reported_zones(None, "n", WEST)


def test_a_zone_scaled_to_zero_later_keeps_its_neg() -> None:
    """ingress-gce marks it INACTIVE (negstatushandler/svcneg.go), it does not delete it: the edge's reference holds."""
    model = _model(create_delay=0.0)
    model.service_created(PROJECT, WEST, "n")
    model.scale_zone("us-west1-b", 0)
    model.advance(10 * GC_PERIOD)
    assert all(model.exists(PROJECT, z, "n") for z in WEST)


def _backend_zones(program: Program, service: str) -> list[str]:
    backends = program.find(BACKEND_SERVICE, service).inputs["backends"]
    return [b["group"].split("/zones/")[1].split("/")[0] for b in backends]


def test_the_program_lists_only_zones_gke_reports() -> None:
    model = _model(create_delay=0.0)
    model.scale_zone("us-west1-c", 0)
    program = run_program(with_edge(base()), negs=model)
    assert _backend_zones(program, "edge-blue") == ["us-west1-a", "us-west1-b", *CENTRAL]
    assert _backend_zones(program, "edge-green") == [*CENTRAL, "us-west1-a", "us-west1-b"]


def test_the_program_stops_before_the_edge_when_a_neg_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(ingress, "NEG_WAIT_SECONDS", 0.0)
    model = _model(create_delay=10_000.0)
    with pytest.raises(ProgramError) as error:
        run_program(with_edge(base()), negs=model)
    assert "GKE's NEG controller has not created NEG" in str(error.value)
    assert not [r for r in error.value.declared if r.type == BACKEND_SERVICE], "no backend service is sent"


@pytest.fixture(scope="module")
def edge() -> Program:
    return run_program(with_edge(base()))


def _in(program: Program, cluster: str, type_: str) -> Any:
    (found,) = [r for r in program.of_type(type_) if r.name.startswith(f"{cluster}-")]
    return found


def test_create_order_service_then_negs_then_backend_services(edge: Program) -> None:
    for cluster in ("blue", "green"):
        service = _in(edge, cluster, SERVICE)
        release = edge.find(HELM_RELEASE, f"{cluster}-ingress-ingressgateway")
        namespace = edge.find(NAMESPACE, f"{cluster}-ingress-namespace")
        assert edge.waits_for(service, release) and edge.waits_for(release, namespace)
        for backend in edge.of_type(BACKEND_SERVICE):
            # The backends input is built from the Service's reported NEGs (a property dependency).
            assert service.urn in backend.property_dependencies["backends"], backend.name
        annotations = service.inputs["metadata"]["annotations"]
        assert annotations["pulumi.com/waitFor"] == "jsonpath={.metadata.annotations['cloud.google.com/neg-status']}"
        assert release.inputs["values"]["service"] == {"type": "None"}, "the chart renders no Service of its own"
        assert service.inputs["spec"]["selector"] == {"istio": "ingressgateway", "app": "istio-ingressgateway"}


def _destroy_order(program: Program) -> list[str]:
    """A deletion order the engine may take: whatever waits for X goes before X (reverse dependencies)."""
    edges = wait_edges(program)
    dependants: dict[str, set[str]] = {u: set() for u in edges}
    for urn, waits in edges.items():
        for d in waits:
            dependants[d].add(urn)
    return list(graphlib.TopologicalSorter(dependants).static_order())


def test_destroy_order_leaves_no_neg_for_the_network_to_trip_on(edge: Program) -> None:
    """Backend services, then the Service, then its namespace - which waits for the NEG GC - then the cluster
    and the network. The namespace and Service are deleted for real, never skipped with the cluster."""
    model = _model(create_delay=0.0)
    negs = {}
    for cluster, zones in (("blue", WEST), ("green", CENTRAL)):
        service = _in(edge, cluster, SERVICE)
        name = service.inputs["metadata"]["annotations"]["cloud.google.com/neg"].split('"name": "')[1].split('"')[0]
        negs[cluster] = name
        model.service_created(PROJECT, zones, name)
        model.referenced |= {(PROJECT, z, name) for z in zones}
        namespace = edge.find(NAMESPACE, f"{cluster}-ingress-namespace")
        assert service.deleted_with == namespace.deleted_with == ""
        for gone_later in (*edge.of_type(GKE_CLUSTER), *edge.of_type(NODE_POOL),
                           *edge.of_type("gcp:compute/network:Network"),
                           *edge.of_type("gcp:compute/subnetwork:Subnetwork")):
            if gone_later.name.startswith(cluster) or gone_later.name.startswith("network1" if cluster == "blue"
                                                                                   else "network2"):
                assert edge.waits_for(namespace, gone_later), gone_later.name
    gone = {r.urn for r in edge.resources}
    for urn in _destroy_order(edge):
        r = edge.by_urn[urn]
        if skipped_on_delete(r, gone):
            continue
        if r.type == BACKEND_SERVICE:
            groups = [b["group"] for b in r.inputs["backends"]]
            model.referenced -= {k for k in model.referenced
                                 if any(g.endswith(f"/zones/{k[1]}/networkEndpointGroups/{k[2]}") for g in groups)}
        elif r.type == SERVICE:
            model.service_deleted(negs[r.name.split("-")[0]])
        elif r.type == NAMESPACE and r.name.endswith("-ingress-namespace"):
            name = negs[r.name.split("-")[0]]
            waited = 0.0
            while not model.namespace_gone(name):
                assert waited < 20 * 60, "the namespace delete timeout (20m) must cover the NEG GC"
                model.advance(5.0)
                waited += 5.0
            assert waited <= 2 * GC_PERIOD
        elif r.type in ("gcp:compute/subnetwork:Subnetwork", "gcp:compute/network:Network"):
            assert not model.negs, f"{r.name} deleted while NEGs remain: {sorted(model.negs)}"
    assert not model.negs
