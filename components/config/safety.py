"""Cross-key rules that keep the traffic path up: NAT capacity, pod ranges, maintenance, prod's protection.

- `check_nat_capacity`: the NAT addresses hold every node's minimum ports.
- `check_pod_range`: the pod range holds a /24 for every node the pool can reach.
- `parse_maintenance`: per-cluster windows (configured or derived) that never overlap.
- `parse_maintenance_exclusions`: real times in order, GKE's limits.
- `check_prod_protection`: what a prod stack may not switch off.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from components.config.model import (
    GKE_MAINTENANCE_PERIOD_DAYS,
    GKE_MIN_MAINTENANCE_HOURS,
    MAX_CLUSTERS,
    MAX_MAINTENANCE_EXCLUSIONS,
    MIN_WINDOW_HOURS,
    NAT_PORTS_PER_ADDRESS,
    NODE_POD_PREFIX,
    PROD_STACKS,
    ZONES_PER_REGION,
    ClusterSpec,
    MaintenanceExclusion,
    MaintenanceWindow,
    NatSpec,
    TrafficSpec,
    default_window,
)
from components.config.rules import Problems

# GKE: a "No upgrades" exclusion may last at most 30 days.
MAX_NO_UPGRADES_DAYS = 30


def check_nat_capacity(nat: NatSpec, clusters: Sequence[ClusterSpec], raw_clusters: Any, p: Problems) -> None:
    """Every node is guaranteed its minimum: the addresses must hold that many for the largest pool."""
    vms = nat.addresses * NAT_PORTS_PER_ADDRESS // nat.min_ports_per_vm
    index = _index(raw_clusters)
    for c in clusters:
        i = index[c.name]
        nodes = c.max_nodes * ZONES_PER_REGION
        if nodes > vms:
            p.add(f"clusters[{i}].maxNodes {c.max_nodes} ({nodes} nodes in {ZONES_PER_REGION} zones) needs more "
                  f"NAT ports than nat.addresses {nat.addresses} hold: {nat.addresses} x {NAT_PORTS_PER_ADDRESS} ports "
                  f"give {vms} nodes nat.minPortsPerVm {nat.min_ports_per_vm} each; raise nat.addresses")


def check_pod_range(i: int, c: ClusterSpec, p: Problems) -> None:
    """GKE gives every node a /24 of the pod range (110 pods per node by default), so the range must hold
    one for every node the regional pool can reach: maxNodes in each of its zones."""
    prefix = ipaddress.IPv4Network(c.pod_cidr).prefixlen
    ranges = 2 ** max(NODE_POD_PREFIX - prefix, 0)
    nodes = c.max_nodes * ZONES_PER_REGION
    if nodes > ranges:
        needed = NODE_POD_PREFIX - (nodes - 1).bit_length()
        p.add(f"clusters[{i}].podCidr {c.pod_cidr} holds {ranges} node range(s) of /{NODE_POD_PREFIX} (GKE's default "
              f"110 pods per node) but clusters[{i}].maxNodes {c.max_nodes} in {ZONES_PER_REGION} zones can reach "
              f"{nodes} nodes: use a /{needed} or larger, or lower maxNodes")


def check_prod_protection(raw_clusters: Any, clusters: Sequence[ClusterSpec], traffic: TrafficSpec,
                          p: Problems) -> None:
    """A prod cluster keeps GKE deletion protection and Pulumi `protect` on; retiring one turns both off in
    its own `up` first (docs/blue-green.md), which this allows only for a cluster that serves no traffic."""
    index = _index(raw_clusters)
    serving = {c for split in [dict(traffic.weights), *traffic.splits().values()] for c, w in split.items() if w > 0}
    for c in clusters:
        i = index[c.name]
        if c.name not in serving:
            continue
        for attr, name in (("deletion_protection", "deletionProtection"), ("protect", "protect")):
            if not getattr(c, attr):
                p.add(f"clusters[{i}].{name} is false in a prod stack ({', '.join(PROD_STACKS)}) while "
                      f"{c.name} receives traffic: a serving prod cluster keeps deletion protection and Pulumi "
                      "protect; to retire it, move its traffic away first (docs/blue-green.md)")


def _index(raw_clusters: Any) -> dict[Any, int]:
    items = raw_clusters if isinstance(raw_clusters, list) else []
    return {c["name"]: i for i, c in enumerate(items) if isinstance(c, dict) and isinstance(c.get("name"), str)}


def _describe(w: MaintenanceWindow) -> str:
    return f"{w.day} {w.start_hour:02d}:00 UTC for {w.duration_hours} h"


def parse_maintenance(raw_clusters: Any, clusters: tuple[ClusterSpec, ...], p: Problems) -> tuple[ClusterSpec, ...]:
    """Every cluster's weekly window (configured, else derived from its position); no two may overlap.

    Overlapping windows let GKE drain two clusters at once; with a blue/green pair that can be
    every cluster carrying traffic.
    """
    items = raw_clusters if isinstance(raw_clusters, list) else []
    too_many = len(items) > MAX_CLUSTERS
    if too_many:
        p.add(f"clusters lists {len(items)} clusters; GKE requires {GKE_MIN_MAINTENANCE_HOURS} h of maintenance "
              f"availability in every {GKE_MAINTENANCE_PERIOD_DAYS} days (a weekly window of at least "
              f"{MIN_WINDOW_HOURS} h), and a week holds only {MAX_CLUSTERS} such windows that never overlap: "
              f"at most {MAX_CLUSTERS} clusters")
    index = _index(raw_clusters)
    out: list[ClusterSpec] = []
    placed: list[tuple[str, MaintenanceWindow]] = []
    for c in clusters:
        i = index[c.name]
        configured = items[i].get("maintenance") is not None
        window = c.maintenance if configured else default_window(i)
        label = f"clusters[{i}].maintenance" if configured else f"clusters[{i}] (default {_describe(window)})"
        for other_label, other in placed:
            if window.hours() & other.hours() and not too_many:
                p.add(f"{label} ({_describe(window)}) overlaps {other_label} ({_describe(other)}); GKE could "
                      "drain both clusters at once: give each cluster its own hours")
        placed.append((label, window))
        out.append(dataclasses.replace(c, maintenance=window))
    return tuple(out)


def _timestamp(value: str, key: str, p: Problems) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        p.add(f"{key} {value!r} is not a real date and time")
        return None


def parse_maintenance_exclusions(exclusions: Sequence[MaintenanceExclusion], p: Problems,
                                 ) -> tuple[MaintenanceExclusion, ...]:
    """Periods without automatic upgrades in every cluster (e.g. a freeze around a flip): real times in
    order, a NO_UPGRADES one at most 30 days, unique names, and no more than GKE keeps per cluster."""
    if len(exclusions) > MAX_MAINTENANCE_EXCLUSIONS:
        p.add(f"maintenanceExclusions lists {len(exclusions)} exclusions; GKE allows at most "
              f"{MAX_MAINTENANCE_EXCLUSIONS} per cluster")
    names: dict[str, int] = {}
    for i, e in enumerate(exclusions):
        key = f"maintenanceExclusions[{i}]"
        start = _timestamp(e.start_time, f"{key}.startTime", p)
        end = _timestamp(e.end_time, f"{key}.endTime", p)
        if start and end and end <= start:
            p.add(f"{key}.endTime {e.end_time} must be after {key}.startTime {e.start_time}")
        elif start and end and e.scope == "NO_UPGRADES" and end - start > timedelta(days=MAX_NO_UPGRADES_DAYS):
            p.add(f"{key} lasts {(end - start).days} days; GKE allows a NO_UPGRADES exclusion at most "
                  f"{MAX_NO_UPGRADES_DAYS} days")
        if e.name in names:
            p.add(f"{key}.name {e.name!r} is listed twice")
        names.setdefault(e.name, i)
    return tuple(exclusions)
