"""offline.schemas: everything rendered validates, and each validator rejects real mistakes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from offline import run_program
from offline.configs import base, three_clusters
from offline.manifests import HELM_RELEASE_TYPE, is_kubernetes_object, render
from offline.schemas import (
    ISTIO_MODELS,
    KUBERNETES_VERSION,
    NOT_SCHEMA_CHECKED,
    validate_document,
    validate_istio,
    validate_kubernetes,
    validate_pod_monitoring,
    validate_rendered,
    validator_for,
)


@pytest.fixture(scope="module")
def base_render(base_stack):
    return render(base_stack, "dev")


@pytest.fixture(scope="module")
def three_stack():
    return run_program(three_clusters({**base(), "ca": {"algorithm": "ECDSA"}}))


def test_dev_stack_validates(base_render) -> None:
    # The mesh objects of both clusters, and per cluster a PodMonitoring for istiod, one for the gateways in
    # istio-system and one per mesh namespace.
    assert len(base_render.manifests) == 24
    assert [str(p) for p in validate_rendered(base_render)] == []


def test_three_clusters_validate(three_stack) -> None:
    rendered = render(three_stack, "three")
    assert rendered.clusters == ["blue", "green", "teal"]
    assert len(rendered.manifests) == 3 * 13  # two remote secrets and three PodMonitorings per cluster
    assert [str(p) for p in validate_rendered(rendered)] == []


def test_every_declared_kubernetes_object_has_a_validator(base_stack, three_stack) -> None:
    for stack in (base_stack, three_stack):
        kinds = {(r.inputs["apiVersion"], r.inputs["kind"]) for r in stack.resources if is_kubernetes_object(r)}
        assert kinds == {("v1", "Namespace"), ("v1", "Secret"), *ISTIO_MODELS,
                         ("monitoring.googleapis.com/v1", "PodMonitoring")}
        for api_version, kind in kinds:
            assert validator_for({"apiVersion": api_version, "kind": kind}) is not None, kind
        assert {validator_for({"apiVersion": a, "kind": k}) for a, k in kinds} == {validate_kubernetes, validate_istio,
                                                                                  validate_pod_monitoring}
        # The only declared Kubernetes-provider resources left out are the ones named, with a reason.
        unchecked = {r.type for r in stack.resources
                     if r.custom and r.type.startswith("kubernetes:") and not is_kubernetes_object(r)}
        assert unchecked == set(NOT_SCHEMA_CHECKED) == {HELM_RELEASE_TYPE}


def test_a_kind_without_a_schema_is_a_problem_not_a_skip() -> None:
    for api_version, kind in (("networking.istio.io/v1", "Sidecar"), ("example.com/v1", "Widget"),
                              ("networking.istio.io/v1", "NetworkPolicy")):
        problems = validate_document({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}})
        assert len(problems) == 1 and "no schema" in problems[0], (kind, problems)


def test_kubernetes_version_is_one_the_package_ships() -> None:
    """The pinned version's schemas are really loaded: a good object passes, a misspelt field fails by name."""
    doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    assert validate_kubernetes(doc) == []
    (problem,) = validate_kubernetes({**doc, "spec": {"finalizer": ["kubernetes"]}})
    assert "finalizer" in problem and f"Kubernetes {KUBERNETES_VERSION} schema" in problem, problem


def _doc(rendered, kind: str, name: str | None = None) -> dict[str, Any]:
    m = next(m for m in rendered.manifests if m.kind == kind and (name is None or m.name == name))
    return copy.deepcopy(m.document)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _rename(path: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[new] = node.pop(last)

    return mutate


# (kind, object name, mutation, text the problem must contain)
MISTAKES = [
    ("Namespace", "istio-system", _rename("metadata.labels", "label"),
     "metadata: Additional properties are not allowed ('label' was unexpected)"),
    ("Namespace", "istio-system", _set("spec", {"finalizer": ["kubernetes"]}),
     "spec: Additional properties are not allowed ('finalizer' was unexpected)"),
    ("Secret", "cacerts", _rename("stringData", "stringdata"),
     "Additional properties are not allowed ('stringdata' was unexpected)"),
    ("Secret", "cacerts", _set("type", 7), "type: 7 is not of type 'string'"),
    ("Secret", "cacerts", _set("immutable", "yes"), "immutable: 'yes' is not of type 'boolean'"),
    ("DestinationRule", None, _rename("spec.trafficPolicy.tls", "tlss"),
     "spec.trafficPolicy.tlss: unknown field (not in Istio 1.24's DestinationRule API)"),
    ("DestinationRule", None, _set("spec.trafficPolicy.tls.mode", "ISTIO_MUTUALX"),
     "spec.trafficPolicy.tls.mode: Input should be 'DISABLE', 'SIMPLE', 'MUTUAL' or 'ISTIO_MUTUAL'"),
    ("DestinationRule", None, _set("spec.trafficPolicy.outlierDetection.consecutive5xxErrors", "5"),
     "spec.trafficPolicy.outlierDetection.consecutive5xxErrors: Input should be a valid integer"),
    ("DestinationRule", None, _rename("spec.subsets.0.labels", "label"),
     "spec.subsets[0].label: unknown field"),
    ("VirtualService", None, _set("spec.http.0.route.0.weight", "90"),
     "spec.http.0.route.0.weight: Input should be a valid integer"),
    ("VirtualService", None, _rename("spec.http.0.route.1.destination.subset", "subsets"),
     "spec.http[0].route[1].destination.subsets: unknown field"),
    ("VirtualService", None, _rename("metadata.namespace", "namespce"), "metadata.namespce: unknown field"),
    ("Gateway", None, _set("spec.servers.0.tls.mode", "PASSTHROUGH_AUTO"),
     "spec.servers.0.tls.mode: Input should be"),
    ("Gateway", None, _set("spec.servers.0.port.number", "15443"),
     "spec.servers.0.port.number: Input should be a valid integer"),
    ("Gateway", None, _rename("spec.selector", "selectors"), "spec.selectors: unknown field"),
    ("PeerAuthentication", None, _set("spec.mtls.mode", "STRICTER"),
     "spec.mtls.mode: Input should be 'UNSET', 'DISABLE', 'PERMISSIVE' or 'STRICT'"),
    ("PeerAuthentication", None, _rename("spec.mtls", "mTLS"), "spec.mTLS: unknown field"),
]


@pytest.mark.parametrize(("kind", "name", "mutate", "expected"), MISTAKES,
                         ids=[f"{m[0]}-{m[3][:40]}" for m in MISTAKES])
def test_each_validator_rejects_a_real_mistake(base_render, kind, name, mutate, expected) -> None:
    doc = _doc(base_render, kind, name)
    assert validate_document(doc) == []
    mutate(doc)
    problems = validate_document(doc)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_unknown_fields_are_each_reported_once_at_their_root(base_render) -> None:
    doc = _doc(base_render, "DestinationRule")
    doc["spec"]["trafficPolicy"]["tlss"] = {"mode": "ISTIO_MUTUAL", "sni": "x"}
    doc["spec"]["subsetz"] = []
    doc["spec"]["subsets"][1]["trafficPolicy"] = {"loadBalancer": {"simple": "ROUND_ROBIN"}, "tls": {"mod": "X"}}
    assert validate_istio(doc) == [
        "spec.subsets[1].trafficPolicy.tls.mod: unknown field (not in Istio 1.24's DestinationRule API)",
        "spec.subsetz: unknown field (not in Istio 1.24's DestinationRule API)",
        "spec.trafficPolicy.tlss: unknown field (not in Istio 1.24's DestinationRule API)",
    ]


def test_validate_rendered_names_the_cluster_and_object(base_render) -> None:
    broken = copy.deepcopy(base_render)
    manifest = next(m for m in broken.manifests if m.kind == "VirtualService" and m.cluster == "green")
    manifest.document["spec"]["http"][0]["route"][0]["weigth"] = 1
    (problem,) = validate_rendered(broken)
    assert str(problem) == ("green: networking.istio.io/v1 VirtualService sample/helloworld-clusters: "
                            "spec.http[0].route[0].weigth: unknown field (not in Istio 1.24's VirtualService API)")
