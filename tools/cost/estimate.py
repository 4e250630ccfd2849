"""A monthly cost estimate from what the program declares, priced from prices.yaml (pure).

It counts the billable things a run of the program registers: GKE cluster fees, nodes
(at the pools' minimum and maximum), their boot disks, Cloud NAT gateways and their
addresses, the east-west gateways' forwarding rules and addresses. Traffic is not declared,
so data processing and egress are given as rates per GiB, never as a total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.names import (
    ADDRESS,
    GKE_CLUSTER,
    GLOBAL_ADDRESS,
    GLOBAL_FORWARDING_RULE,
    HELM_RELEASE,
    NODE_POOL,
    ROUTER_NAT,
)
from offline.engine import Program
from offline.graph import owners

PRICES_FILE = Path(__file__).with_name("prices.yaml")


class PriceError(LookupError):
    """The price table lacks what a declared resource needs."""


@dataclass(frozen=True)
class Price:
    key: str
    value: float
    unit: str
    source: str
    read: str
    verified: bool


@dataclass(frozen=True)
class Prices:
    hours: float
    prices: Mapping[str, Price]
    machine_types: Mapping[str, Mapping[str, float]]
    regions: frozenset[str]
    zones: int
    default_disk_gib: float

    def __getitem__(self, key: str) -> float:
        return self.prices[key].value


def load_prices(path: Path = PRICES_FILE) -> Prices:
    data = yaml.safe_load(path.read_text())
    prices = {k: Price(k, float(v["value"]), v["unit"], v["source"], str(v["read"]), bool(v["verified"]))
              for k, v in data["prices"].items()}
    return Prices(float(data["hours_per_month"]), prices, data["machine_types"],
                  frozenset(data["regions_priced"]), int(data["zones_per_regional_pool"]),
                  float(data["default_boot_disk_gib"]))


@dataclass(frozen=True)
class Line:
    """One line of the estimate: what, how many, and the monthly cost at the pools' min and max."""

    item: str
    quantity: str
    low: float
    high: float
    prices: tuple[str, ...]  # keys of prices.yaml used


@dataclass(frozen=True)
class Estimate:
    lines: tuple[Line, ...]
    rates: tuple[tuple[str, Price], ...]  # per-GiB prices: not in the total
    prices: Prices

    @property
    def low(self) -> float:
        return sum(line.low for line in self.lines)

    @property
    def high(self) -> float:
        return sum(line.high for line in self.lines)

    @property
    def read(self) -> str:
        """The latest day any price this estimate used was read."""
        used = {k for line in self.lines for k in line.prices} | {p.key for _, p in self.rates}
        return max(self.prices.prices[k].read for k in used)


def _nodes(pool: Any, prices: Prices) -> tuple[int, int]:
    """Nodes of a regional pool at its autoscaling minimum and maximum (the counts are per zone)."""
    auto = pool.inputs.get("autoscaling") or {}
    zones = len(pool.inputs.get("nodeLocations") or ()) or prices.zones
    return int(auto.get("minNodeCount", 0)) * zones, int(auto.get("maxNodeCount", 0)) * zones


def estimate(program: Program, prices: Prices | None = None) -> Estimate:
    p = prices or load_prices()
    h = p.hours
    lines: list[Line] = []
    clusters = program.of_type(GKE_CLUSTER)
    fee = len(clusters) * p["gke_cluster_fee"] * h
    lines.append(Line("GKE cluster management fee", f"{len(clusters)} regional clusters", fee, fee,
                      ("gke_cluster_fee",)))
    owner = owners(program)
    nodes_of: dict[str | None, list[int]] = {}
    for pool in program.of_type(NODE_POOL):
        config = pool.inputs.get("nodeConfig") or {}
        machine = config.get("machineType")
        region = pool.inputs.get("location")
        if machine not in p.machine_types:
            raise PriceError(f"node pool {pool.name}: no shape for machine type {machine!r} in {PRICES_FILE.name}")
        if region not in p.regions:
            raise PriceError(f"node pool {pool.name}: no price for region {region!r} in {PRICES_FILE.name} "
                             f"(priced: {', '.join(sorted(p.regions))})")
        shape = p.machine_types[machine]
        vcpu, memory = f"{shape['family']}_vcpu", f"{shape['family']}_memory"
        if vcpu not in p.prices or memory not in p.prices:
            raise PriceError(f"node pool {pool.name}: machine type {machine!r} is of family {shape['family']!r}, "
                             f"which has no {vcpu} and {memory} prices in {PRICES_FILE.name}")
        per_node = (shape["vcpus"] * p[vcpu] + shape["memory_gib"] * p[memory]) * h
        lo, hi = _nodes(pool, p)
        counts = nodes_of.setdefault(owner[pool.urn], [0, 0])
        counts[0] += lo
        counts[1] += hi
        lines.append(Line(f"nodes of {pool.name}", f"{lo}–{hi} × {machine} in {region}",
                          lo * per_node, hi * per_node, (vcpu, memory)))
        disk = float(config.get("diskSizeGb") or p.default_disk_gib)
        lines.append(Line(f"boot disks of {pool.name} (pd-balanced)", f"{lo}–{hi} × {disk:g} GiB",
                          lo * disk * p["pd_balanced"], hi * disk * p["pd_balanced"], ("pd_balanced",)))
    nats = program.of_type(ROUTER_NAT)
    nat_ips = {u for nat in nats for u in nat.property_dependencies.get("natIps", [])}
    # A gateway is billed by the VMs that use it (its own cluster's nodes), capped per gateway.
    gw = [sum(min(nodes_of.get(owner[nat.urn], [0, 0])[i] * p["nat_gateway_per_vm"], p["nat_gateway_cap"]) * h
              for nat in nats) for i in (0, 1)]
    lines.append(Line("Cloud NAT gateways", f"{len(nats)} gateways", gw[0], gw[1],
                      ("nat_gateway_per_vm", "nat_gateway_cap")))
    lines.append(Line("Cloud NAT addresses", f"{len(nat_ips)} addresses", len(nat_ips) * p["nat_ip"] * h,
                      len(nat_ips) * p["nat_ip"] * h, ("nat_ip",)))
    balancers = [r for r in program.of_type(HELM_RELEASE)
                 if ((r.inputs.get("values") or {}).get("service") or {}).get("type") == "LoadBalancer"]
    rules = len(balancers) * p["forwarding_rule"] * h
    lines.append(Line("load balancer forwarding rules (east-west gateways)", f"{len(balancers)} rules",
                      rules, rules, ("forwarding_rule",)))
    # The edge (components/edge.py): its global forwarding rules (HTTP, and HTTPS when on) on one global address.
    edge_rules = program.of_type(GLOBAL_FORWARDING_RULE)
    if edge_rules:
        cost = len(edge_rules) * p["forwarding_rule"] * h
        lines.append(Line("load balancer forwarding rules (edge)", f"{len(edge_rules)} rules", cost, cost,
                          ("forwarding_rule",)))
    other = [a for a in (*program.of_type(ADDRESS), *program.of_type(GLOBAL_ADDRESS)) if a.urn not in nat_ips]
    ips = len(other) * p["static_ip_in_use"] * h
    lines.append(Line("static addresses in use (east-west gateways, edge)", f"{len(other)} addresses", ips, ips,
                      ("static_ip_in_use",)))
    rates = tuple((what, p.prices[k]) for what, k in (
        ("Cloud NAT data processed", "nat_data"),
        ("traffic between regions (cross-network requests through the east-west gateways)", "egress_inter_region"),
        ("traffic to the internet", "egress_internet")))
    return Estimate(tuple(lines), rates, p)


def money(x: float) -> str:
    return f"${x:,.2f}"


def render(est: Estimate, title: str) -> str:
    out = [f"{title}: {money(est.low)} – {money(est.high)} a month (nodes at the pools' min – max; "
           f"list prices read {est.read})"]
    for line in est.lines:
        cost = money(line.low) if line.low == line.high else f"{money(line.low)} – {money(line.high)}"
        out.append(f"  {line.item}: {line.quantity}: {cost}")
    out.append("  not in the total (no volume is declared), per GiB:")
    out += [f"    {what}: ${price.value:g} ({price.unit})" for what, price in est.rates]
    unverified = sorted(k for k, v in est.prices.prices.items() if not v.verified)
    if unverified:
        out.append(f"  unverified prices (see tools/cost/prices.yaml): {', '.join(unverified)}")
    return "\n".join(out)


def render_change(before: Estimate, after: Estimate) -> str:
    """The monthly change a pull request brings, line by line."""
    old = {line.item: line for line in before.lines}
    new = {line.item: line for line in after.lines}
    out = [f"cost: {money(before.low)} – {money(before.high)} → {money(after.low)} – {money(after.high)} a month "
           f"({_signed(after.low - before.low)} – {_signed(after.high - before.high)}; list prices read {after.read})"]
    for item in sorted(set(old) | set(new)):
        a, b = old.get(item), new.get(item)
        if a is not None and b is not None and (a.low, a.high, a.quantity) == (b.low, b.high, b.quantity):
            continue
        was = f"{a.quantity} {money(a.low)}" if a else "none"
        now = f"{b.quantity} {money(b.low)}" if b else "none"
        out.append(f"  {item}: {was} → {now}")
    return "\n".join(out)


def _signed(x: float) -> str:
    return ("+" if x >= 0 else "−") + money(abs(x))
