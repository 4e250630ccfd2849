"""Config sections that keep the traffic path up: availability, Cloud NAT, GKE maintenance.

Kept apart from `parsing` so each section is one function: `parse_availability`,
`parse_nat`, `parse_maintenance` (per-cluster windows that never overlap) and
`parse_maintenance_exclusions`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from components.config.model import (
    DEFAULT_HA_REPLICAS,
    DEFAULT_NAT_ADDRESSES,
    DEFAULT_NAT_MAX_PORTS,
    DEFAULT_NAT_MIN_PORTS,
    EXCLUSION_SCOPES,
    GKE_MAINTENANCE_PERIOD_DAYS,
    GKE_MIN_MAINTENANCE_HOURS,
    MAX_CLUSTERS,
    MAX_HA_REPLICAS,
    MAX_NAT_ADDRESSES,
    MAX_WINDOW_HOURS,
    MIN_HA_REPLICAS,
    MIN_WEEKLY_OCCURRENCES,
    MIN_WINDOW_HOURS,
    NAT_MAX_PORTS_RANGE,
    NAT_MIN_PORTS_RANGE,
    NAT_PORTS_PER_ADDRESS,
    WEEKDAYS,
    ZONES_PER_REGION,
    AvailabilitySpec,
    ClusterSpec,
    MaintenanceExclusion,
    MaintenanceWindow,
    NatSpec,
    default_window,
)
from components.config.rules import Problems, as_mapping, is_int, known_keys, mapping_items, string_at

RFC3339_ZULU = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# GKE: a "No upgrades" exclusion may last at most 30 days.
MAX_NO_UPGRADES_DAYS = 30


def _int_in(raw: Any, key: str, low: int, high: int, default: int, why: str, p: Problems) -> int:
    value = default if raw is None else raw
    if not is_int(value) or not low <= value <= high:
        p.add(f"{key} {value!r} must be an integer from {low} to {high}{why}")
        return default
    return value


def parse_availability(raw: Any, p: Problems) -> AvailabilitySpec:
    section = as_mapping(raw, "availability", p) or {}
    known_keys(section, "availability", ("istiodReplicas", "eastWestGatewayReplicas"), p)
    why = " (two replicas are the least that survive a node drain)"
    return AvailabilitySpec(
        istiod_replicas=_int_in(section.get("istiodReplicas"), "availability.istiodReplicas",
                                MIN_HA_REPLICAS, MAX_HA_REPLICAS, DEFAULT_HA_REPLICAS, why, p),
        eastwest_replicas=_int_in(section.get("eastWestGatewayReplicas"), "availability.eastWestGatewayReplicas",
                                  MIN_HA_REPLICAS, MAX_HA_REPLICAS, DEFAULT_HA_REPLICAS, why, p),
    )


def _power_of_two(value: Any, key: str, bounds: tuple[int, int], p: Problems) -> bool:
    low, high = bounds
    if not is_int(value) or not low <= value <= high or value & (value - 1):
        p.add(f"{key} {value!r} must be a power of two from {low} to {high} (Cloud NAT dynamic port allocation)")
        return False
    return True


def parse_nat(raw: Any, clusters: Sequence[ClusterSpec], p: Problems) -> NatSpec:
    """Dynamic port allocation sized for one destination per node: the peer gateway's 15443."""
    section = as_mapping(raw, "nat", p) or {}
    known_keys(section, "nat", ("minPortsPerVm", "maxPortsPerVm", "addresses"), p)
    low = section.get("minPortsPerVm", DEFAULT_NAT_MIN_PORTS)
    high = section.get("maxPortsPerVm", DEFAULT_NAT_MAX_PORTS)
    ok = _power_of_two(low, "nat.minPortsPerVm", NAT_MIN_PORTS_RANGE, p)
    ok = _power_of_two(high, "nat.maxPortsPerVm", NAT_MAX_PORTS_RANGE, p) and ok
    if ok and high <= low:
        p.add(f"nat.maxPortsPerVm {high} must be greater than nat.minPortsPerVm {low}")
        ok = False
    addresses = _int_in(section.get("addresses"), "nat.addresses", 1, MAX_NAT_ADDRESSES, DEFAULT_NAT_ADDRESSES,
                        " (NAT addresses per network)", p)
    if ok:
        # Every node is guaranteed its minimum: the addresses must hold that many for the largest pool.
        vms = addresses * NAT_PORTS_PER_ADDRESS // low
        for i, c in enumerate(clusters):
            nodes = c.max_nodes * ZONES_PER_REGION
            if nodes > vms:
                p.add(f"clusters[{i}].maxNodes {c.max_nodes} ({nodes} nodes in {ZONES_PER_REGION} zones) needs more "
                      f"NAT ports than nat.addresses {addresses} hold: {addresses} x {NAT_PORTS_PER_ADDRESS} ports "
                      f"give {vms} nodes nat.minPortsPerVm {low} each; raise nat.addresses")
        return NatSpec(min_ports_per_vm=low, max_ports_per_vm=high, addresses=addresses)
    return NatSpec(addresses=addresses)


def _parse_window(raw: Any, key: str, default: MaintenanceWindow, p: Problems) -> MaintenanceWindow:
    section = as_mapping(raw, key, p)
    if section is None:
        return default
    if not section:
        return default
    known_keys(section, key, ("day", "startHour", "durationHours"), p)
    before = len(p.items)
    day = section.get("day", default.day)
    if day not in WEEKDAYS:
        p.add(f"{key}.day {day!r} must be one of {', '.join(WEEKDAYS)} (UTC)")
    start = _int_in(section.get("startHour"), f"{key}.startHour", 0, 23, default.start_hour, " (UTC)", p)
    duration = _int_in(section.get("durationHours"), f"{key}.durationHours", MIN_WINDOW_HOURS, MAX_WINDOW_HOURS,
                       default.duration_hours,
                       f": GKE requires {GKE_MIN_MAINTENANCE_HOURS} h of maintenance availability in every "
                       f"{GKE_MAINTENANCE_PERIOD_DAYS} days and a weekly window recurs only "
                       f"{MIN_WEEKLY_OCCURRENCES} times in some of them", p)
    if len(p.items) > before:
        return default
    return MaintenanceWindow(day=day, start_hour=start, duration_hours=duration)


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
    index = {c.get("name"): i for i, c in enumerate(items) if isinstance(c, dict)}
    out: list[ClusterSpec] = []
    placed: list[tuple[str, MaintenanceWindow]] = []
    for c in clusters:
        i = index[c.name]
        key = f"clusters[{i}].maintenance"
        configured = key if isinstance(items[i], dict) and items[i].get("maintenance") else None
        window = _parse_window(items[i].get("maintenance"), key, default_window(i), p)
        label = configured or f"clusters[{i}] (default {_describe(window)})"
        for other_label, other in placed:
            if window.hours() & other.hours() and not too_many:
                p.add(f"{label} ({_describe(window)}) overlaps {other_label} ({_describe(other)}); GKE could "
                      "drain both clusters at once: give each cluster its own hours")
        placed.append((label, window))
        out.append(dataclasses.replace(c, maintenance=window))
    return tuple(out)


def _timestamp(value: Any, key: str, p: Problems) -> datetime | None:
    if not isinstance(value, str) or not RFC3339_ZULU.match(value):
        p.add(f"{key} {value!r} must be an RFC 3339 UTC time such as 2026-12-01T18:00:00Z")
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        p.add(f"{key} {value!r} is not a real date and time")
        return None


def parse_maintenance_exclusions(raw: Any, p: Problems) -> tuple[MaintenanceExclusion, ...]:
    """Periods without automatic upgrades in every cluster (e.g. a freeze around a flip)."""
    result: list[MaintenanceExclusion] = []
    for _, key, entry in mapping_items(raw, "maintenanceExclusions", p):
        before = len(p.items)
        known_keys(entry, key, ("name", "startTime", "endTime", "scope"), p)
        name = string_at(entry, "name", f"{key}.name", p)
        start = _timestamp(entry.get("startTime"), f"{key}.startTime", p)
        end = _timestamp(entry.get("endTime"), f"{key}.endTime", p)
        scope = entry.get("scope", "NO_UPGRADES")
        if scope not in EXCLUSION_SCOPES:
            p.add(f"{key}.scope {scope!r} must be one of {', '.join(EXCLUSION_SCOPES)}")
        if start and end and end <= start:
            p.add(f"{key}.endTime {entry['endTime']} must be after {key}.startTime {entry['startTime']}")
        elif start and end and scope == "NO_UPGRADES" and end - start > timedelta(days=MAX_NO_UPGRADES_DAYS):
            p.add(f"{key} lasts {(end - start).days} days; GKE allows a NO_UPGRADES exclusion at most "
                  f"{MAX_NO_UPGRADES_DAYS} days")
        if name is not None and any(e.name == name for e in result):
            p.add(f"{key}.name {name!r} is listed twice")
        if len(p.items) == before and name:
            result.append(MaintenanceExclusion(name=name, start_time=entry["startTime"], end_time=entry["endTime"],
                                               scope=scope))
    return tuple(result)
