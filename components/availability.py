"""High availability of the traffic path: Helm values for replicated, disruption-budgeted, zone-spread pods.

Why: the east-west gateway is the only way into a network and istiod the only source of
its endpoints. With the charts' defaults (one replica, no PodDisruptionBudget) every node
drain - GKE auto-upgrade, auto-repair - cuts a cluster off from the other networks.
Each value below is one the Istio 1.30.3 charts read (`manifests/charts/gateway` and
`manifests/charts/istio-control/istio-discovery`, values.yaml and templates):

- gateway: `autoscaling.minReplicas` feeds the HPA (templates/hpa.yaml) and
  `podDisruptionBudget` is copied into the PDB's spec (templates/poddisruptionbudget.yaml),
  which the chart renders only when `autoscaling.minReplicas > 1`;
  `topologySpreadConstraints` is copied into the pod spec (templates/deployment.yaml).
- istiod: `autoscaleMin` feeds its HPA (templates/autoscale.yaml); the PDB
  (templates/poddisruptionbudget.yaml) needs `global.defaultPodDisruptionBudget.enabled` and
  `autoscaleMin > 1`, and takes `pdb.minAvailable`/`pdb.unhealthyPodEvictionPolicy`;
  `topologySpreadConstraints` goes into the pod spec (templates/deployment.yaml).
"""

from __future__ import annotations

from typing import Any

ZONE_KEY = "topology.kubernetes.io/zone"
HOSTNAME_KEY = "kubernetes.io/hostname"
# The HPA's ceiling: the gateway chart's default maxReplicas, and istiod's autoscaleMax.
DEFAULT_MAX_REPLICAS = 5
# A drain may evict a pod only while another one is serving.
MIN_AVAILABLE = 1
# Evict pods that are not ready anyway, so a broken pod never blocks a node drain
# (PodDisruptionBudget `unhealthyPodEvictionPolicy`, accepted by both charts' PDB templates).
UNHEALTHY_POD_EVICTION_POLICY = "AlwaysAllow"
# istiod's pod labels when no revision is set (istio-discovery templates/deployment.yaml).
ISTIOD_POD_LABELS = {"app": "istiod", "istio": "pilot"}
# Every gateway pod carries `app.kubernetes.io/name: <release name>` and `istio: <name>`
# (gateway templates/deployment.yaml, _helpers.tpl gateway.selectorLabels).
GATEWAY_NAME_LABEL = "app.kubernetes.io/name"


def _min_replicas(replicas: int) -> int:
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 2:
        raise ValueError(f"replicas {replicas!r}: high availability needs at least 2")
    return replicas


def spread_constraints(selector: dict[str, Any], match_label_keys: list[str] | None = None) -> list[dict[str, Any]]:
    """Pods of one workload spread across zones (required) and nodes (preferred).

    Zones are required (`DoNotSchedule`): two replicas in one zone are one zone outage from
    none. Nodes are preferred only, so a small node pool still schedules every replica.
    `pod-template-hash` (set by the Deployment controller) keeps a rollout's new pods
    spread among themselves, as Kubernetes' topology-spread docs recommend.
    """
    keys = [*(match_label_keys or []), "pod-template-hash"]
    return [
        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": when, "labelSelector": selector,
         "matchLabelKeys": keys}
        for key, when in ((ZONE_KEY, "DoNotSchedule"), (HOSTNAME_KEY, "ScheduleAnyway"))
    ]


def gateway_ha_values(replicas: int) -> dict[str, Any]:
    """Values of Istio's `gateway` chart: >= 2 replicas, a PodDisruptionBudget, spread over zones.

    The chart's pods are selected by their release name label without knowing it here:
    `matchLabelKeys` takes the value from each incoming pod (Kubernetes forbids the same key
    in `labelSelector` too, so the selector only requires the gateway's `istio` label).
    """
    replicas = _min_replicas(replicas)
    return {
        "autoscaling": {"enabled": True, "minReplicas": replicas,
                        "maxReplicas": max(DEFAULT_MAX_REPLICAS, replicas)},
        "podDisruptionBudget": {"minAvailable": MIN_AVAILABLE,
                                "unhealthyPodEvictionPolicy": UNHEALTHY_POD_EVICTION_POLICY},
        "topologySpreadConstraints": spread_constraints(
            {"matchExpressions": [{"key": "istio", "operator": "Exists"}]}, [GATEWAY_NAME_LABEL]),
    }


def istiod_ha_values(replicas: int) -> dict[str, Any]:
    """Values of the `istiod` chart: >= 2 replicas, its PodDisruptionBudget on, spread over zones."""
    replicas = _min_replicas(replicas)
    return {
        "autoscaleEnabled": True,
        "autoscaleMin": replicas,
        "autoscaleMax": max(DEFAULT_MAX_REPLICAS, replicas),
        # Used only if autoscaling is turned off later; keeps the same floor.
        "replicaCount": replicas,
        "pdb": {"minAvailable": MIN_AVAILABLE, "unhealthyPodEvictionPolicy": UNHEALTHY_POD_EVICTION_POLICY},
        "topologySpreadConstraints": spread_constraints({"matchLabels": dict(ISTIOD_POD_LABELS)}),
        "global": {"defaultPodDisruptionBudget": {"enabled": True}},
    }
