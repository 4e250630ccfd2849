"""Stack configs the tests and the bench own, so that no check depends on what a user edits.

`Pulumi.<stack>.yaml` files are the user's: a flip pull request edits their weights, a team
edits machine types and node counts. Tests and the bench therefore start from `base()`, a
fixed two-cluster config in the shape of the dev stack, and derive others from it
(`three_clusters`, `n_clusters`, `flipped`, `with_edge`). Tests that check the shipped stacks read
their expectations from the stack files themselves.

Every generated cluster gets its own name, network, region and a non-overlapping
address plan, so the program's validation accepts any N from 2 to MAX_CLUSTERS (14).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from components import config

PROJECT = "gke-istio-mesh"

NAMES = ("blue", "green", "teal", "amber", "coral", "indigo", "olive", "plum",
         "ruby", "sage", "slate", "ivory", "khaki", "lilac", "mint", "navy")
REGIONS = ("us-west1", "us-central1", "europe-west4", "us-east1", "europe-west1", "asia-east1",
           "asia-northeast1", "europe-north1", "us-east4", "us-west2", "australia-southeast1",
           "southamerica-east1", "northamerica-northeast1", "asia-south1", "europe-west2", "asia-southeast1")
# The program's own limit: a week holds 14 non-overlapping GKE maintenance windows.
MAX_CLUSTERS = min(len(NAMES), config.MAX_CLUSTERS)

_CLUSTER_DEFAULTS = {"machineType": "e2-standard-4", "minNodes": 1, "maxNodes": 3, "releaseChannel": "REGULAR",
                     "deletionProtection": False, "protect": False}
_BASE: dict[str, Any] = {
    "meshId": "mesh1",
    "istio": {"version": "1.30.3", "chartRepository": "https://istio-release.storage.googleapis.com/charts"},
    "clusters": [
        {"name": "blue", "network": "network1", "region": "us-west1", "nodeCidr": "10.10.0.0/20",
         "podCidr": "10.12.0.0/14", "serviceCidr": "10.16.0.0/20", "masterCidr": "172.16.0.0/28",
         **_CLUSTER_DEFAULTS},
        {"name": "green", "network": "network2", "region": "us-central1", "nodeCidr": "10.20.0.0/20",
         "podCidr": "10.24.0.0/14", "serviceCidr": "10.28.0.0/20", "masterCidr": "172.16.0.16/28",
         **_CLUSTER_DEFAULTS},
    ],
    "traffic": {"subsetLabel": "network", "weights": {"blue": 100, "green": 0},
                "services": [{"host": "helloworld", "namespace": "sample"}]},
    "meshNamespaces": ["sample"],
    "clusterLocal": [],
    "authorizedNetworks": [{"name": "operators", "cidr": "203.0.113.0/24"}],
}


def base() -> dict[str, Any]:
    """The tests' own two-cluster config (blue 100, green 0): a fresh copy to edit."""
    return copy.deepcopy(_BASE)


def fast_ca() -> dict[str, str]:
    """The `ca` section of offline runs: ECDSA keys are generated in milliseconds, RSA 4096 in seconds."""
    return {"algorithm": "ECDSA"}


def three_clusters(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with a third cluster, teal, on its own network and address plan."""
    config = copy.deepcopy(config)
    config["clusters"].append({
        "name": "teal", "network": "network3", "region": "europe-west4",
        "nodeCidr": "10.30.0.0/20", "podCidr": "10.32.0.0/14", "serviceCidr": "10.36.0.0/20",
        "masterCidr": "172.16.0.32/28", "deletionProtection": False,
    })
    return config


def address_plan(i: int) -> dict[str, str]:
    """Cluster i's ranges: its own /12 of 10.0.0.0/8 (pods /14, services /20, nodes /20), a /28 control plane."""
    if not 0 <= i < MAX_CLUSTERS:
        raise ValueError(f"cluster index {i} is outside 0..{MAX_CLUSTERS - 1} (one /12 of 10.0.0.0/8 each)")
    block = 16 * i
    return {
        "podCidr": f"10.{block}.0.0/14",
        "serviceCidr": f"10.{block + 4}.0.0/20",
        "nodeCidr": f"10.{block + 8}.0.0/20",
        "masterCidr": f"172.16.0.{16 * i}/28",
    }


def n_clusters(n: int, *, services: int = 1, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """`base()` (or `base`) with `n` clusters and `services` routed services.

    Per-cluster settings other than identity and addresses (machine type, node counts,
    release channel...) are copied from the base's first cluster; all traffic goes to
    the first cluster; `ca.algorithm` is ECDSA.
    """
    if not 2 <= n <= MAX_CLUSTERS:
        raise ValueError(f"n={n}: the program needs at least 2 clusters and the generator names at most "
                         f"{MAX_CLUSTERS}")
    if services < 1:
        raise ValueError(f"services={services}: at least one routed service is needed to measure a flip")
    config = copy.deepcopy(_BASE if base is None else base)
    template = {k: v for k, v in config["clusters"][0].items()
                if k not in ("name", "network", "region", "nodeCidr", "podCidr", "serviceCidr", "masterCidr")}
    config["clusters"] = [
        {**template, "name": NAMES[i], "network": f"network{i + 1}", "region": REGIONS[i], **address_plan(i)}
        for i in range(n)
    ]
    namespace = config["traffic"]["services"][0]["namespace"]
    first_host = config["traffic"]["services"][0]["host"]
    config["traffic"]["services"] = [
        {"host": first_host if k == 0 else f"{first_host}{k + 1}", "namespace": namespace} for k in range(services)
    ]
    config["traffic"]["weights"] = {NAMES[0]: 100}
    config["ca"] = fast_ca()
    return config


def flipped(config: dict[str, Any]) -> dict[str, Any]:
    """The same config with the default split moved from the first cluster to the second."""
    out = copy.deepcopy(config)
    names = [c["name"] for c in out["clusters"]]
    out["traffic"]["weights"] = {names[0]: 10, names[1]: 90}
    return out


def with_edge(config: dict[str, Any], *, https: bool = False) -> dict[str, Any]:
    """`config` with the edge on and a public host on its first routed service."""
    out = copy.deepcopy(config)
    out["traffic"]["services"][0]["hosts"] = ["hello.example.com"]
    out["edge"] = {"enabled": True, "https": https}
    return out


def write_stack_file(path: Path, project: dict[str, Any], *, gcp_project: str = "mesh-test-project") -> Path:
    """`project` written as a stack file (Pulumi.<stack>.yaml format) for the commands' `--config`."""
    config: dict[str, Any] = {"pulumi:disable-default-providers": ["kubernetes"], "gcp:project": gcp_project}
    config.update({f"{PROJECT}:{k}": v for k, v in project.items()})
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path
