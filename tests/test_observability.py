"""The dashboard and the alert policies: schema-valid, parsed by Prometheus, and each alert fires when it should.

promtool (Debian's `prometheus` package) is installed by `make test`; these tests fail, never
skip, without it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components import alerts, dashboard, promql
from components.config import FlipSpec, NatSpec
from components.dashboard import ObservedCluster, ObservedService
from components.names import ALERT_POLICY, DASHBOARD
from offline import Program
from offline.observability import check_queries, dashboard_problems, run_rule_tests

FQDN = "helloworld.sample.svc.cluster.local"
CLUSTERS = [ObservedCluster("blue", "network1", "gke-blue", "nat-blue"),
            ObservedCluster("green", "network2", "gke-green", "nat-green")]
SERVICES = [ObservedService("helloworld.sample", FQDN, (("blue", 90), ("green", 10)), edge=True)]
FLIP = FlipSpec()


def build(clusters: list[ObservedCluster] = CLUSTERS, services: list[ObservedService] = SERVICES,
          edge: bool = True) -> dict[str, Any]:
    return dashboard.dashboard("Mesh test", clusters, services, FLIP, NatSpec(), edge)


def titles(document: dict[str, Any]) -> list[str]:
    return [t["widget"]["title"] for t in document["mosaicLayout"]["tiles"]]


# ------------------------------------------------------------------ the dashboard


def test_the_dashboard_is_a_valid_cloud_monitoring_dashboard() -> None:
    document = build()
    assert dashboard_problems(document) == []
    tiles = document["mosaicLayout"]["tiles"]
    assert all(t["xPos"] + t["width"] <= dashboard.COLUMNS for t in tiles)
    cells = [(x, y) for t in tiles for x in range(t["xPos"], t["xPos"] + t["width"])
             for y in range(t["yPos"], t["yPos"] + t["height"])]
    assert len(cells) == len(set(cells)), "tiles overlap"


def test_the_schema_check_can_fail() -> None:
    document = build()
    broken = copy.deepcopy(document)
    chart = broken["mosaicLayout"]["tiles"][1]["widget"]["xyChart"]
    chart["dataSets"][0]["timeSeriesQuery"]["prometheusQeury"] = "up"
    chart["dataSets"][0]["plotType"] = "PIE"
    broken["mosaicLayout"]["columns"] = "48"
    problems = dashboard_problems(broken)
    assert any("prometheusQeury: no such field" in p for p in problems)
    assert any("'PIE' is not one of" in p for p in problems)
    assert any("columns: expected an integer" in p for p in problems)


def test_every_query_parses_with_prometheus(tmp_path: Path) -> None:
    queries = dashboard.queries(build()) + [r.expr for r in alerts.alert_rules(CLUSTERS, SERVICES, FLIP)]
    done = check_queries(queries, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout
    bad = check_queries(["sum by (destination_cluster (rate(istio_requests_total[5m]))"], tmp_path)
    assert bad.returncode != 0


def test_each_service_and_cluster_gets_its_panels() -> None:
    three = [*CLUSTERS, ObservedCluster("red", "network3", "gke-red", "nat-red")]
    cart = ObservedService("cart.shop", "cart.shop.svc.cluster.local", (("blue", 0), ("green", 50), ("red", 50)),
                           edge=False)
    small, big = build(), build(three, [*SERVICES, cart])
    assert len(titles(big)) - len(titles(small)) == 1 + 3 + 3 + 3  # cart: header + 3 rows; red: 3 + 3 panels
    assert [t for t in titles(big) if t.startswith("cart.shop:")] == [
        "cart.shop: share per destination cluster, from the mesh (%)",
        "cart.shop: success rate per destination cluster, from the mesh (%)",
        "cart.shop: p99 latency per destination cluster, from the mesh (ms)"]  # no hosts: no edge panels
    assert sum(t.startswith("red:") for t in titles(big)) == 3
    assert "network3: Cloud NAT dropped sent packets per reason (packets/s)" in titles(big)


def test_the_share_panel_shows_the_configured_weight_and_the_thresholds_are_the_flips() -> None:
    tiles = {t["widget"]["title"]: t["widget"] for t in build()["mosaicLayout"]["tiles"]}
    share = tiles["helloworld.sample: share per destination cluster, from the edge (%)"]["xyChart"]
    observed, configured = (d["timeSeriesQuery"]["prometheusQuery"] for d in share["dataSets"])
    assert 'source_workload="istio-ingressgateway"' in observed
    assert 'destination_service=~"helloworld\\\\.sample\\\\.svc\\\\.cluster\\\\.local"' in observed
    assert configured == ('label_replace(vector(90), "destination_cluster", "blue", "", "") or '
                          'label_replace(vector(10), "destination_cluster", "green", "", "")')
    rate = tiles["helloworld.sample: success rate per destination cluster, from the mesh (%)"]["xyChart"]
    assert rate["thresholds"][0]["value"] == FLIP.min_success_rate
    p99 = tiles["helloworld.sample: p99 latency per destination cluster, from the mesh (ms)"]["xyChart"]
    assert p99["thresholds"][0]["value"] == FLIP.max_p99_ms


def test_cloud_monitoring_metric_names_follow_googles_mapping_rule() -> None:
    assert promql.NAT_DROPPED_SENT == "router_googleapis_com:nat_dropped_sent_packets_count"
    assert promql.cloud_monitoring_metric("kubernetes.io/container/cpu/limit_cores") == \
        "kubernetes_io:container_cpu_limit_cores"


# ------------------------------------------------------------------ the alerts, against synthetic series

EW = ('kube_deployment_status_replicas_available'
      '{cluster="%s",namespace="istio-system",deployment="istio-eastwestgateway"}')
REQ = ('istio_requests_total{reporter="source",destination_service="' + FQDN +
       '",source_cluster="%s",destination_cluster="%s",response_code="%s"}')
NAT = 'router_googleapis_com:nat_dropped_sent_packets_count{gateway_name="nat-blue",reason="%s"}'


def case(name: str, at: str, series: dict[str, str], expected: list[dict[str, str]]) -> dict[str, Any]:
    return {"name": name, "interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{"eval_time": at, "alertname": name.split(":")[0],
                                 "exp_alerts": [{"exp_labels": e} for e in expected]}]}


def traffic(blue_to_blue: str = "0+60x40", green_to_green: str = "0+60x40", green_to_blue: str | None = "0+30x40",
            blue_5xx: str = "0x40") -> dict[str, str]:
    series = {REQ % ("blue", "blue", "200"): blue_to_blue, REQ % ("green", "green", "200"): green_to_green,
              REQ % ("blue", "green", "200"): "0+30x40", REQ % ("blue", "blue", "503"): blue_5xx}
    if green_to_blue is not None:
        series[REQ % ("green", "blue", "200")] = green_to_blue
    return series


DAY = 86400
CASES = [
    case("EastWestGatewayUnready: fires", "25m", {EW % "gke-blue": "2x10 0x20", EW % "gke-green": "2x30"},
         [{"cluster": "gke-blue", "policy": "eastwest"}]),
    case("EastWestGatewayUnready: fires when the Deployment is gone from the metrics", "10m",
         {EW % "gke-blue": "2x30"},
         [{"cluster": "gke-green", "namespace": "istio-system", "deployment": "istio-eastwestgateway",
           "policy": "eastwest"}]),
    case("EastWestGatewayUnready: quiet", "25m", {EW % "gke-blue": "2x10 1x20", EW % "gke-green": "2x30"}, []),
    case("NoCrossNetworkTraffic: fires", "30m", traffic(green_to_blue=None),
         [{"destination_cluster": "blue", "destination_service": FQDN, "policy": "eastwest"}]),
    case("NoCrossNetworkTraffic: quiet", "30m", traffic(), []),
    case("NoCrossNetworkTraffic: quiet when the cluster serves nothing (weight 0)", "30m",
         traffic(blue_to_blue="0x40", green_to_blue=None), []),
    case("DestinationClusterSuccessRateLow: fires", "20m", traffic(blue_5xx="0+5x40"),
         [{"destination_cluster": "blue", "policy": "success"}]),
    case("DestinationClusterSuccessRateLow: quiet", "20m", traffic(blue_5xx="0+0x40"), []),
    case("DestinationClusterSuccessRateLow: quiet with too few requests to judge", "20m",
         traffic(blue_to_blue="0+1x40", green_to_blue="0x40", blue_5xx="0+1x40"), []),
    case("CloudNatOutOfResources: fires", "15m", {NAT % "OUT_OF_RESOURCES": "0x5 0+10x20"},
         [{"gateway_name": "nat-blue", "policy": "nat"}]),
    case("CloudNatOutOfResources: quiet (other drop reasons are not a lack of ports)", "15m",
         {NAT % "OUT_OF_RESOURCES": "0x25", NAT % "ENDPOINT_INDEPENDENCE_CONFLICT": "0+10x25"}, []),
    case("IntermediateCertificateRenewalWindow: fires", "10m",
         {'citadel_server_cert_chain_expiry_timestamp{cluster="gke-blue"}': f"{600 + 10 * DAY}x20"},
         [{"cluster": "gke-blue", "policy": "ca"}]),
    case("IntermediateCertificateRenewalWindow: quiet", "10m",
         {'citadel_server_cert_chain_expiry_timestamp{cluster="gke-blue"}': f"{600 + 60 * DAY}x20"}, []),
    case("RootCertificateRenewalWindow: fires", "10m",
         {'citadel_server_root_cert_expiry_timestamp{cluster="gke-green"}': f"{600 + 60 * DAY}x20"},
         [{"cluster": "gke-green", "policy": "ca"}]),
    case("RootCertificateRenewalWindow: quiet", "10m",
         {'citadel_server_root_cert_expiry_timestamp{cluster="gke-green"}': f"{600 + 400 * DAY}x20"}, []),
]


def test_each_alert_fires_on_its_condition_and_stays_quiet_otherwise(tmp_path: Path) -> None:
    rules = alerts.alert_rules(CLUSTERS, SERVICES, FLIP)
    names = {r.name for r in rules}
    fires = {c["name"].split(":")[0] for c in CASES if c["alert_rule_test"][0]["exp_alerts"]}
    quiet = {c["name"].split(":")[0] for c in CASES if not c["alert_rule_test"][0]["exp_alerts"]}
    assert names == fires == quiet, "every alert needs a firing and a quiet case"
    done = run_rule_tests(alerts.rules_file(rules), CASES, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_rule_test_fails_when_an_alert_would_not_fire(tmp_path: Path) -> None:
    """The harness can fail: a stricter threshold keeps the 95 % cluster quiet, so its firing case breaks."""
    lenient = FlipSpec(min_success_rate=90.0)
    rules = alerts.alert_rules(CLUSTERS, SERVICES, lenient)
    done = run_rule_tests(alerts.rules_file(rules), [c for c in CASES if c["name"].startswith("DestinationCluster")],
                      tmp_path)
    assert done.returncode != 0 and "DestinationClusterSuccessRateLow" in done.stdout + done.stderr


# ------------------------------------------------------------------ the program


def test_the_stack_declares_the_dashboard_and_its_url(base_stack: Program) -> None:
    (board,) = base_stack.of_type(DASHBOARD)
    document = json.loads(board.inputs["dashboardJson"])
    assert dashboard_problems(document) == []
    gke = {r.outputs["name"] for r in base_stack.of_type("gcp:container/cluster:Cluster")}
    queries = " ".join(dashboard.queries(document))
    assert all(f'cluster="{g}"' in queries for g in gke)
    url = base_stack.exports["dashboardUrl"]
    assert url.startswith("https://console.cloud.google.com/monitoring/dashboards/builder/")
    assert url.endswith(f"?project={board.inputs['project']}")
    assert url.split("/builder/")[1].split("?")[0] == board.id.rsplit("/", 1)[-1] != ""


def test_alert_policies_notify_the_configured_channels_and_nobody_by_default(run, base_config) -> None:
    quiet = run(base_config)
    policies = quiet.of_type(ALERT_POLICY)
    assert {p.inputs["displayName"] for p in policies} == {p.title for p in alerts.POLICIES}
    assert all(not p.inputs.get("notificationChannels") for p in policies)
    assert set(quiet.exports["alertPolicies"]) == {p.key for p in alerts.POLICIES}
    channel = "projects/my-proj-1/notificationChannels/4242"
    base_config["monitoring"] = {"notificationChannels": [channel]}
    loud = run(base_config)
    assert all(p.inputs["notificationChannels"] == [channel] for p in loud.of_type(ALERT_POLICY))
    conditions = [c for p in loud.of_type(ALERT_POLICY) for c in p.inputs["conditions"]]
    assert {c["conditionPrometheusQueryLanguage"]["alertRule"] for c in conditions} == {
        r.name for r in alerts.alert_rules(CLUSTERS, SERVICES, FLIP)}


@pytest.mark.parametrize("channels, message", [
    (["123"], "monitoring.notificationChannels[0] '123' must be a channel's full name, "
              "projects/<project-id>/notificationChannels/<number>"),
    ("projects/p/notificationChannels/1", "monitoring.notificationChannels must be a list, got str"),
    (["projects/my-proj-1/notificationChannels/7"] * 2,
     "monitoring.notificationChannels[1] 'projects/my-proj-1/notificationChannels/7' is listed twice"),
])
def test_bad_notification_channels_are_refused(run, base_config, channels: Any, message: str) -> None:
    from offline import ProgramError

    base_config["monitoring"] = {"notificationChannels": channels}
    with pytest.raises(ProgramError, match=None) as raised:
        run(base_config)
    assert message in str(raised.value)


def test_the_readme_pictures_are_drawn_by_the_command_it_shows(tmp_path: Path) -> None:
    """`venv/bin/python -m tools.render.pictures --out docs/img` (README, docs/observability.md), into a temp folder."""
    import subprocess

    from offline import ROOT

    done = subprocess.run([str(ROOT / "venv" / "bin" / "python"), "-m", "tools.render.pictures", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("dashboard.png", "alerts.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG") and 20_000 < len(data) < 400_000, (name, len(data))
    readme = (ROOT / "README.md").read_text()
    assert "venv/bin/python -m tools.render.pictures --out docs/img" in readme
    assert "(docs/img/dashboard.png)" in readme and "(docs/img/alerts.png)" in readme


@given(st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20), min_size=1,
                max_size=4))
def test_a_name_matcher_matches_exactly_the_names_it_lists(names: list[str]) -> None:
    """Cluster, GKE and NAT gateway names go into `=~` matchers: regex characters in them stay literal."""
    import re

    pattern = json.loads(promql.one_of(names))  # the PromQL string literal (same escapes as JSON here)
    for name in names:
        assert re.fullmatch(pattern, name)
        assert not re.fullmatch(pattern, name + "x") or name + "x" in names
