"""The stack's Cloud Monitoring dashboard: the split as it moves, the gateways, Cloud NAT.

`dashboard()` is pure: config in, the Dashboard resource's JSON out (Cloud Monitoring API v1,
`projects.dashboards`: a 48-column mosaic of section headers and PromQL xyCharts), so adding a
cluster or a routed service adds its panels. `MeshDashboard` declares it; its URL is a stack output.
What each panel shows and why: docs/observability.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from components import promql
from components.config import FlipSpec, NatSpec
from components.names import DASHBOARD_TYPE

COLUMNS = 48
CHART_HEIGHT = 16
HEADER_HEIGHT = 4
CONSOLE_URL = "https://console.cloud.google.com/monitoring/dashboards/builder/{id}?project={project}"


@dataclass(frozen=True)
class ObservedCluster:
    """One cluster as its metrics name it."""

    name: str  # Istio's source_cluster / destination_cluster (the stack's cluster name)
    network: str
    gke_name: str  # Managed Service for Prometheus' `cluster` label
    nat_gateway: str  # the Cloud NAT gateway's name (`gateway_name` of router.googleapis.com/nat/*)


@dataclass(frozen=True)
class ObservedService:
    """One routed service: its FQDN, its configured split and whether the edge serves it."""

    label: str  # host.namespace, as the trafficSplit output names it
    fqdn: str
    weights: tuple[tuple[str, int], ...]
    edge: bool


def _chart(title: str, datasets: Sequence[tuple[str, str]], y_label: str,
           thresholds: Sequence[tuple[float, str, str]] = ()) -> dict[str, Any]:
    """An xyChart widget: (PromQL, plot type) datasets, and (value, label, direction) threshold lines."""
    chart: dict[str, Any] = {
        "dataSets": [{"timeSeriesQuery": {"prometheusQuery": q}, "plotType": plot, "targetAxis": "Y1"}
                     for q, plot in datasets],
        "yAxis": {"label": y_label, "scale": "LINEAR"},
        "chartOptions": {"mode": "COLOR"},
    }
    if thresholds:
        chart["thresholds"] = [{"value": v, "label": label, "direction": d, "color": "RED", "targetAxis": "Y1"}
                               for v, label, d in thresholds]
    return {"title": title, "xyChart": chart}


def _header(title: str, subtitle: str) -> dict[str, Any]:
    return {"title": title, "sectionHeader": {"subtitle": subtitle, "dividerBelow": True}}


class _Mosaic:
    """Places widgets left to right in rows of equal width."""

    def __init__(self) -> None:
        self.tiles: list[dict[str, Any]] = []
        self.y = 0

    def row(self, widgets: Sequence[dict[str, Any]], height: int = CHART_HEIGHT) -> None:
        width = COLUMNS // len(widgets)
        for i, w in enumerate(widgets):
            self.tiles.append({"xPos": i * width, "yPos": self.y, "width": width, "height": height, "widget": w})
        self.y += height


def service_panels(s: ObservedService, flip: FlipSpec) -> list[list[dict[str, Any]]]:
    """Rows for one routed service: share beside the configured weight, success rate, p99; mesh and edge."""
    sources = [promql.MESH] + ([promql.EDGE] if s.edge else [])
    services = [s.fqdn]
    return [
        [_chart(f"{s.label}: share per destination cluster, from the {src} (%)",
                [(promql.share(services, src), "LINE"), (promql.configured_weights(dict(s.weights)), "LINE")],
                "% of requests") for src in sources],
        [_chart(f"{s.label}: success rate per destination cluster, from the {src} (%)",
                [(promql.success_rate(services, src), "LINE")], "% not 5xx",
                [(flip.min_success_rate, "flip threshold", "BELOW")]) for src in sources],
        [_chart(f"{s.label}: p99 latency per destination cluster, from the {src} (ms)",
                [(promql.p99(services, src), "LINE")], "ms",
                [(flip.max_p99_ms, "flip threshold", "ABOVE")]) for src in sources],
    ]


def cluster_panels(c: ObservedCluster, edge: bool) -> list[dict[str, Any]]:
    """One row for one cluster: gateway readiness and cross-network requests."""
    gateways = [(promql.gateway_available(c.gke_name, promql.EASTWEST_DEPLOYMENT), "LINE")]
    if edge:
        gateways.append((promql.gateway_available(c.gke_name, promql.INGRESS_DEPLOYMENT), "LINE"))
    return [
        _chart(f"{c.name}: available east-west{' and ingress' if edge else ''} gateway replicas", gateways,
               "replicas", [(1, "none ready", "BELOW")]),
        _chart(f"{c.name}: cross-network requests out, per destination cluster (req/s)",
               [(promql.cross_network_out(c.name), "STACKED_AREA")], "req/s"),
        _chart(f"{c.name}: cross-network requests in, per source cluster (req/s)",
               [(promql.cross_network_in(c.name), "STACKED_AREA")], "req/s"),
    ]


def nat_panels(c: ObservedCluster, nat: NatSpec) -> list[dict[str, Any]]:
    """One row for one network's Cloud NAT: ports and drops."""
    return [
        _chart(f"{c.network}: Cloud NAT allocated ports per NAT address", [(promql.nat_allocated_ports(c.nat_gateway),
                                                                            "STACKED_AREA")], "ports"),
        _chart(f"{c.network}: Cloud NAT most connections from one VM to one destination",
               [(promql.nat_port_usage(c.nat_gateway), "LINE")], "ports",
               [(nat.max_ports_per_vm, "nat.maxPortsPerVm", "ABOVE")]),
        _chart(f"{c.network}: Cloud NAT dropped sent packets per reason (packets/s)",
               [(promql.nat_dropped(c.nat_gateway), "STACKED_BAR")], "packets/s"),
    ]


def dashboard(title: str, clusters: Sequence[ObservedCluster], services: Sequence[ObservedService],
              flip: FlipSpec, nat: NatSpec, edge: bool) -> dict[str, Any]:
    """The Dashboard resource's JSON (Cloud Monitoring API v1)."""
    m = _Mosaic()
    for s in services:
        m.row([_header(f"Traffic split: {s.label}", f"{s.fqdn}: what each destination cluster receives, beside "
                       "its configured weight, and how it answers")], HEADER_HEIGHT)
        for row in service_panels(s, flip):
            m.row(row)
    m.row([_header("Clusters", "gateway readiness and the traffic that crosses networks")], HEADER_HEIGHT)
    for c in clusters:
        m.row(cluster_panels(c, edge))
    m.row([_header("Cloud NAT", "per network: ports and drops (a node's cross-network connections all go "
                   "to one peer east-west gateway)")], HEADER_HEIGHT)
    for c in clusters:
        m.row(nat_panels(c, nat))
    return {"displayName": title, "mosaicLayout": {"columns": COLUMNS, "tiles": m.tiles}}


def queries(document: Mapping[str, Any]) -> list[str]:
    """Every PromQL query of a dashboard document."""
    return [d["timeSeriesQuery"]["prometheusQuery"] for t in document["mosaicLayout"]["tiles"]
            for d in t["widget"].get("xyChart", {}).get("dataSets", [])]


def console_url(dashboard_id: str, project: str) -> str:
    """The console page of a dashboard; the provider's id is projects/<p>/dashboards/<id>."""
    return CONSOLE_URL.format(id=dashboard_id.rsplit("/", 1)[-1], project=project)


@dataclass(frozen=True)
class MeshDashboardArgs:
    title: str
    project: str
    # (cluster, network, GKE cluster name, Cloud NAT gateway name) per cluster, in config order.
    clusters: Sequence[tuple[str, str, pulumi.Input[str], pulumi.Input[str]]]
    services: Sequence[ObservedService]
    flip: FlipSpec
    nat: NatSpec
    edge: bool


class MeshDashboard(pulumi.ComponentResource):
    """The stack's dashboard in Cloud Monitoring."""

    url: pulumi.Output[str]

    def __init__(self, name: str, args: MeshDashboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DASHBOARD_TYPE, name, None, opts)
        names = pulumi.Output.all(*[pulumi.Output.all(g, n) for _, _, g, n in args.clusters])
        document = names.apply(lambda resolved: json.dumps(dashboard(
            args.title, [ObservedCluster(c, net, g, n) for (c, net, _, _), (g, n) in zip(args.clusters, resolved,
                                                                                         strict=True)],
            args.services, args.flip, args.nat, args.edge), sort_keys=True))
        self.dashboard = gcp.monitoring.Dashboard(name, dashboard_json=document, project=args.project,
                                                  opts=pulumi.ResourceOptions(parent=self))
        self.url = self.dashboard.id.apply(lambda i: console_url(i, args.project))
        self.register_outputs({"url": self.url})
