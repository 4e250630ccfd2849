"""High availability for Istio's `gateway` chart: more than one pod, a disruption budget, zones apart.

The chart (1.30.3 `manifests/charts/gateway`) defaults to `autoscaling.enabled: true`,
`minReplicas: 1`, `maxReplicas: 5` and an empty `podDisruptionBudget`; its
`poddisruptionbudget.yaml` renders a budget only when `podDisruptionBudget` is set AND
(with autoscaling on) `minReplicas > 1`; `deployment.yaml` copies `topologySpreadConstraints`
into the pod spec as given. Node auto-upgrade and auto-repair drain nodes at any time,
so a one-pod gateway is a cluster-wide outage on every drain.
"""

from __future__ import annotations

from typing import Any

# The chart's default ceiling for its HorizontalPodAutoscaler (values.yaml `autoscaling.maxReplicas`).
CHART_MAX_REPLICAS = 5
ZONE_KEY = "topology.kubernetes.io/zone"
# Set by the Deployment controller on every pod of one ReplicaSet. `matchLabelKeys` narrows the
# selector to the incoming pod's own value, so each gateway's current ReplicaSet is spread on its
# own, without naming the gateway's labels here (Kubernetes "Pod Topology Spread Constraints").
POD_TEMPLATE_HASH = "pod-template-hash"


def gateway_ha_values(replicas: int) -> dict[str, Any]:
    """`gateway` chart values: at least `replicas` pods, at most one unavailable, spread across zones.

    The autoscaler keeps its job (the floor is `replicas`), the budget lets a drain take one pod at
    a time, and the spread is `ScheduleAnyway` so a zone outage does not leave pods unscheduled.
    """
    if replicas < 2:
        raise ValueError(f"replicas={replicas}: a gateway needs at least 2 pods for a disruption budget")
    return {
        "autoscaling": {"enabled": True, "minReplicas": replicas, "maxReplicas": max(CHART_MAX_REPLICAS, replicas)},
        "podDisruptionBudget": {"maxUnavailable": 1},
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": ZONE_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchExpressions": [{"key": POD_TEMPLATE_HASH, "operator": "Exists"}]},
            "matchLabelKeys": [POD_TEMPLATE_HASH],
        }],
    }
