"""Generated configs: every valid one runs, renders and validates; every broken one names its key.

tests/test_config.py has one explicit test per validation rule; these are the generated
counterpart: random meshes of 2-5 clusters, and single known mutations of them.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from components.config import DEFAULT_ISTIO_VERSION, MIN_ISTIO_VERSION, RESERVED_NAMESPACES
from offline import ProgramError, run_program
from offline.manifests import render
from offline.schemas import validate_rendered

REGIONS = ("us-west1", "us-central1", "europe-west4", "asia-east1", "southamerica-east1")
# No shrinking: one example takes ~0.3 s, and shrinking a failure could stall CI for minutes;
# the failing config is printed as generated.
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])
MINIMUM = ".".join(map(str, MIN_ISTIO_VERSION))
MAJOR, MINOR, _ = MIN_ISTIO_VERSION
ISTIO_VERSIONS = (MINIMUM, DEFAULT_ISTIO_VERSION, f"{MAJOR}.{MINOR + 4}.0-rc.1")

# DNS-1035 labels (clusters, networks): letters, digits and '-'.
labels = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
# Hosts and namespaces are DNS labels too ('-' included, so `shop`/`cart-api` and `shop-cart`/`api`
# come up), and `root` is drawn more often: both once collided with other resource names.
cluster_names = st.one_of(st.just("root"), labels)
words = labels
namespaces = words.filter(lambda s: s not in RESERVED_NAMESPACES)


@st.composite
def split(draw: st.DrawFn, names: list[str]) -> dict[str, int]:
    """Weights 0-100 summing to 100; clusters left out get 0."""
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(names) - 1, max_size=len(names) - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    keep = draw(st.lists(st.booleans(), min_size=len(names), max_size=len(names)))
    out = {n: w for n, w, k in zip(names, weights, keep, strict=True) if k or w}
    return out or {names[0]: 100}


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 5))
    names = draw(st.lists(cluster_names, min_size=n, max_size=n, unique=True))
    networks = draw(st.lists(labels, min_size=n, max_size=n, unique=True))
    blocks = draw(st.lists(st.integers(0, 15), min_size=n, max_size=n, unique=True))
    clusters = []
    for name, network, k in zip(names, networks, blocks, strict=True):
        # Cluster k owns 10.(16k).0.0/12: nodes, pods and services in disjoint quarters of it.
        clusters.append({
            "name": name, "network": network, "region": draw(st.sampled_from(REGIONS)),
            "nodeCidr": f"10.{16 * k}.0.0/{draw(st.integers(20, 24))}",
            # /20 at the smallest: a /24 per node for the default maxNodes 3 in 3 zones.
            "podCidr": f"10.{16 * k + 4}.0.0/{draw(st.integers(14, 20))}",
            "serviceCidr": f"10.{16 * k + 8}.0.0/{draw(st.integers(20, 27))}",
            "masterCidr": f"172.16.{k}.{16 * draw(st.integers(0, 15))}/28",
            "deletionProtection": draw(st.booleans()),
        })
    mesh_ns = draw(st.lists(namespaces, min_size=1, max_size=3, unique=True))
    services = draw(st.lists(st.tuples(words, st.sampled_from(mesh_ns)), min_size=1, max_size=3, unique=True))
    traffic: dict[str, Any] = {
        "subsetLabel": draw(st.sampled_from(["network", "cluster"])),
        "weights": draw(split(names)),
        "services": [{"host": h, "namespace": ns} for h, ns in services],
    }
    if draw(st.booleans()):
        traffic["services"][0]["weights"] = draw(split(names))
    return {
        "meshId": draw(labels),
        "istio": {"version": draw(st.sampled_from(ISTIO_VERSIONS))},
        "clusters": clusters,
        "traffic": traffic,
        "meshNamespaces": mesh_ns,
        "authorizedNetworks": [{"name": "ci", "cidr": "198.51.100.7/32"}],
        "ca": {"algorithm": "ECDSA"},
    }


@settings(SETTINGS)
@given(config=valid_configs())
def test_every_valid_config_runs_renders_and_validates(config: dict[str, Any]) -> None:
    program = run_program(config)
    rendered = render(program, "generated")
    assert rendered.clusters == sorted(c["name"] for c in config["clusters"])
    assert [str(p) for p in validate_rendered(rendered)] == []
    label = {"network": "topology.istio.io/network", "cluster": "topology.istio.io/cluster"}[
        config["traffic"]["subsetLabel"]]
    for service in config["traffic"]["services"]:
        weights = service.get("weights", config["traffic"]["weights"])
        for cluster in config["clusters"]:
            objects = {m.kind: m.document for m in rendered.manifests
                       if m.cluster == cluster["name"] and m.namespace == service["namespace"]
                       and m.name == f"{service['host']}-clusters"}
            routes = objects["VirtualService"]["spec"]["http"][0]["route"]
            assert {r["destination"]["subset"]: r["weight"] for r in routes} == {
                c["name"]: weights.get(c["name"], 0) for c in config["clusters"]}
            subsets = {s["name"]: s["labels"][label] for s in objects["DestinationRule"]["spec"]["subsets"]}
            value = "network" if label.endswith("network") else "name"
            assert subsets == {c["name"]: c[value] for c in config["clusters"]}


Mutation = Callable[[dict[str, Any], int], str]  # edits the config, returns the key it must be reported under


def duplicate_name(c: dict[str, Any], i: int) -> str:
    j = (i + 1) % len(c["clusters"])
    c["clusters"][j]["name"] = c["clusters"][i]["name"]
    return f"clusters[{max(i, j)}].name"


def duplicate_network(c: dict[str, Any], i: int) -> str:
    j = (i + 1) % len(c["clusters"])
    c["clusters"][j]["network"] = c["clusters"][i]["network"]
    return f"clusters[{max(i, j)}].network"


def overlapping_cidrs(c: dict[str, Any], i: int) -> str:
    node = ipaddress.ip_network(c["clusters"][i]["nodeCidr"])
    c["clusters"][i]["serviceCidr"] = str(next(node.subnets(new_prefix=27)))
    return f"clusters[{i}].serviceCidr"


def weights_not_100(c: dict[str, Any], i: int) -> str:
    weights = c["traffic"]["weights"]
    name = next(n for n, w in weights.items() if w < 100) if any(w < 100 for w in weights.values()) else None
    if name is None:
        name = next(x["name"] for x in c["clusters"] if x["name"] not in weights)
        weights[name] = 0
    weights[name] += 1
    return "traffic.weights"


def unknown_cluster_in_weights(c: dict[str, Any], i: int) -> str:
    c["traffic"]["weights"]["Nowhere"] = 0
    return "traffic.weights.Nowhere"


def bad_subset_label(c: dict[str, Any], i: int) -> str:
    c["traffic"]["subsetLabel"] = "zone"
    return "traffic.subsetLabel"


def bad_host(c: dict[str, Any], i: int) -> str:
    c["traffic"]["services"][0]["host"] = "hello_world.example"
    return "traffic.services[0].host"


def namespace_not_in_mesh(c: dict[str, Any], i: int) -> str:
    c["traffic"]["services"][0]["namespace"] = "notmeshed-" + "x" * 5
    return "traffic.services[0].namespace"


def master_not_28(c: dict[str, Any], i: int) -> str:
    c["clusters"][i]["masterCidr"] = c["clusters"][i]["masterCidr"].replace("/28", "/29")
    return f"clusters[{i}].masterCidr"


def old_istio(c: dict[str, Any], i: int) -> str:
    c["istio"]["version"] = f"{MAJOR}.{MINOR - 1}.9"
    return "istio.version"


def bad_cluster_istio(c: dict[str, Any], i: int) -> str:
    c["clusters"][i]["istioVersion"] = "1.30"
    return f"clusters[{i}].istioVersion"


def zone_not_region(c: dict[str, Any], i: int) -> str:
    c["clusters"][i]["region"] += "-b"
    return f"clusters[{i}].region"


def min_over_max(c: dict[str, Any], i: int) -> str:
    c["clusters"][i].update(minNodes=4, maxNodes=3)
    return f"clusters[{i}].minNodes"


def unknown_cluster_key(c: dict[str, Any], i: int) -> str:
    c["clusters"][i]["nodeCIDR"] = c["clusters"][i]["nodeCidr"]
    return f"clusters[{i}].nodeCIDR"


def one_cluster(c: dict[str, Any], i: int) -> str:
    c["clusters"] = [c["clusters"][i]]
    c["traffic"] = {"subsetLabel": c["traffic"]["subsetLabel"]}
    return "clusters"


MUTATIONS: list[Mutation] = [
    duplicate_name, duplicate_network, overlapping_cidrs, weights_not_100, unknown_cluster_in_weights,
    bad_subset_label, bad_host, namespace_not_in_mesh, master_not_28, old_istio, bad_cluster_istio,
    zone_not_region, min_over_max, unknown_cluster_key, one_cluster,
]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.__name__ for m in MUTATIONS])
@settings(SETTINGS, max_examples=3)
@given(config=valid_configs(), data=st.data())
def test_every_broken_config_names_its_key_and_declares_nothing(mutation: Mutation, config: dict[str, Any],
                                                                data: st.DataObject) -> None:
    broken = copy.deepcopy(config)
    key = mutation(broken, data.draw(st.integers(0, len(config["clusters"]) - 1), label="cluster"))
    with pytest.raises(ProgramError) as error:
        run_program(broken)
    problems = [line.strip() for line in str(error.value).splitlines()]
    assert any(line.startswith(f"- {key} ") for line in problems), (key, problems)
    assert error.value.declared == []
