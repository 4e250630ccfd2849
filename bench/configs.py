"""N-cluster stack configs in the shape of Pulumi.dev.yaml, for measuring how the graph scales.

Every generated cluster gets its own name, network, region and a non-overlapping
address plan, so the program's validation accepts any N from 2 to 16. The CA uses
ECDSA: the bench measures the graph and the program, not RSA-4096 key generation
in the mocks (which would dominate the evaluation time for every new cluster name).
"""

from __future__ import annotations

import copy
from typing import Any

from tools.offline import project_config

NAMES = ("blue", "green", "teal", "amber", "coral", "indigo", "olive", "plum",
         "ruby", "sage", "slate", "ivory", "khaki", "lilac", "mint", "navy")
REGIONS = ("us-west1", "us-central1", "europe-west4", "us-east1", "europe-west1", "asia-east1",
           "asia-northeast1", "europe-north1", "us-east4", "us-west2", "australia-southeast1",
           "southamerica-east1", "northamerica-northeast1", "asia-south1", "europe-west2", "asia-southeast1")
MAX_CLUSTERS = len(NAMES)


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
    """The dev stack's project config with `n` clusters and `services` routed services.

    Per-cluster settings other than identity and addresses (machine type, node counts,
    release channel...) are copied from the base's first cluster; all traffic goes to
    the first cluster; `ca.algorithm` is ECDSA.
    """
    if not 2 <= n <= MAX_CLUSTERS:
        raise ValueError(f"n={n}: the program needs at least 2 clusters and the generator names at most "
                         f"{MAX_CLUSTERS}")
    if services < 1:
        raise ValueError(f"services={services}: at least one routed service is needed to measure a flip")
    config = copy.deepcopy(project_config("dev") if base is None else base)
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
    config["ca"] = {"algorithm": "ECDSA"}
    return config


def flipped(config: dict[str, Any]) -> dict[str, Any]:
    """The same config with the default split moved from the first cluster to the second."""
    out = copy.deepcopy(config)
    names = [c["name"] for c in out["clusters"]]
    out["traffic"]["weights"] = {names[0]: 10, names[1]: 90}
    return out
