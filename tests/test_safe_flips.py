"""Safe flips: the traffic path stays up under drains, maintenance, NAT load and name lookups.

HA values as the charts render them (validated against Kubernetes' schemas), DNS proxying,
Cloud NAT sized for one destination per node, GKE maintenance windows that never overlap,
and every new config rule with its message (nothing declared when it fails).
"""

from __future__ import annotations

import itertools
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import config
from components.availability import gateway_ha_values, istiod_ha_values
from components.config.model import GKE_MIN_MAINTENANCE_HOURS, NAT_PORTS_PER_ADDRESS, MaintenanceWindow
from offline import Program, ProgramError
from offline.configs import MAX_CLUSTERS, base, n_clusters
from offline.schemas import KUBERNETES_VERSION

RELEASE = "kubernetes:helm.sh/v3:Release"
CLUSTER = "gcp:container/cluster:Cluster"
NAT = "gcp:compute/routerNat:RouterNat"


def _release(stack: Program, cluster: str, chart: str) -> Any:
    (r,) = [r for r in stack.of_type(RELEASE) if r.inputs["chart"] == chart and r.name.startswith(f"{cluster}-")]
    return r


# ------------------------------------------------------------------ high availability


@pytest.mark.parametrize("cluster", ["blue", "green"])
def test_eastwest_gateway_and_istiod_are_replicated_budgeted_and_zone_spread(base_stack: Program, cluster) -> None:
    gw = _release(base_stack, cluster, "gateway").inputs["values"]
    assert gw["autoscaling"]["enabled"] is True and gw["autoscaling"]["minReplicas"] == 2
    # The chart renders its PDB only when minReplicas > 1 (templates/poddisruptionbudget.yaml).
    assert gw["podDisruptionBudget"]["minAvailable"] == 1
    zones = [c for c in gw["topologySpreadConstraints"] if c["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zones and zones[0]["whenUnsatisfiable"] == "DoNotSchedule"

    istiod = _release(base_stack, cluster, "istiod").inputs["values"]
    assert istiod["autoscaleMin"] == 2 and istiod["autoscaleEnabled"] is True
    assert istiod["global"]["defaultPodDisruptionBudget"] == {"enabled": True}
    assert istiod["pdb"]["minAvailable"] == 1
    zones = [c for c in istiod["topologySpreadConstraints"] if c["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zones[0]["labelSelector"] == {"matchLabels": {"app": "istiod", "istio": "pilot"}}


def test_replicas_come_from_config(run, base_config) -> None:
    base_config["availability"] = {"istiodReplicas": 3, "eastWestGatewayReplicas": 4}
    stack = run(base_config)
    assert _release(stack, "green", "istiod").inputs["values"]["autoscaleMin"] == 3
    assert _release(stack, "green", "gateway").inputs["values"]["autoscaling"]["minReplicas"] == 4


def _pod(spread: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "i"}], "topologySpreadConstraints": spread}}


def _pdb(spec: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
            "spec": {"selector": {"matchLabels": selector}, **spec}}


def test_ha_values_are_valid_kubernetes_where_the_charts_copy_them() -> None:
    """The charts copy these values verbatim into the pod spec and the PDB spec (toYaml)."""
    gw = gateway_ha_values(2)
    kubernetes_validate.validate(_pod(gw["topologySpreadConstraints"], {"istio": "eastwestgateway"}),
                                 KUBERNETES_VERSION, strict=True)
    kubernetes_validate.validate(_pdb(gw["podDisruptionBudget"], {"istio": "eastwestgateway"}),
                                 KUBERNETES_VERSION, strict=True)
    istiod = istiod_ha_values(2)
    kubernetes_validate.validate(_pod(istiod["topologySpreadConstraints"], {"app": "istiod"}),
                                 KUBERNETES_VERSION, strict=True)
    kubernetes_validate.validate(_pdb(istiod["pdb"], {"app": "istiod"}), KUBERNETES_VERSION, strict=True)
    # Kubernetes forbids a key in both labelSelector and matchLabelKeys.
    for c in gw["topologySpreadConstraints"] + istiod["topologySpreadConstraints"]:
        selected = set(c["labelSelector"].get("matchLabels", {})) | {
            e["key"] for e in c["labelSelector"].get("matchExpressions", [])}
        assert not selected & set(c["matchLabelKeys"])


@pytest.mark.parametrize("replicas", [0, 1, True])
def test_ha_values_refuse_a_single_replica(replicas) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        gateway_ha_values(replicas)


# ------------------------------------------------------------------ DNS proxying


def test_dns_proxying_is_on_in_every_primary(base_stack: Program) -> None:
    for cluster in ("blue", "green"):
        meta = _release(base_stack, cluster, "istiod").inputs["values"]["meshConfig"]["defaultConfig"]["proxyMetadata"]
        assert meta["ISTIO_META_DNS_CAPTURE"] == "true"


def test_dns_proxying_survives_cluster_local_settings(run, base_config) -> None:
    base_config["clusterLocal"] = ["*.cache.svc.cluster.local"]
    mesh = _release(run(base_config), "blue", "istiod").inputs["values"]["meshConfig"]
    assert mesh["defaultConfig"]["proxyMetadata"]["ISTIO_META_DNS_CAPTURE"] == "true"
    assert mesh["serviceSettings"][0]["hosts"] == ["*.cache.svc.cluster.local"]


# ------------------------------------------------------------------ Cloud NAT


def test_nat_uses_dynamic_ports_enough_for_1024_connections_to_one_peer(base_stack: Program) -> None:
    for nat in base_stack.of_type(NAT):
        i = nat.inputs
        assert i["enableDynamicPortAllocation"] is True
        assert i["enableEndpointIndependentMapping"] is False
        # One port per concurrent connection to ONE destination (peer gateway :15443).
        assert i["minPortsPerVm"] >= 1024
        assert i["maxPortsPerVm"] > i["minPortsPerVm"]
        assert i["logConfig"] == {"enable": True, "filter": "ERRORS_ONLY"}


def test_more_nat_addresses_reach_the_peers_allow_lists_and_gateway(run, base_config) -> None:
    base_config["nat"] = {"addresses": 3, "minPortsPerVm": 2048, "maxPortsPerVm": 8192}
    stack = run(base_config)
    green_net = stack.find("gke-istio-mesh:index:MeshNetwork", "network2")
    ips = [r.outputs["address"] for r in stack.children(green_net) if r.type == "gcp:compute/address:Address"]
    assert len(ips) == 3
    (nat,) = [r for r in stack.children(green_net) if r.type == NAT]
    assert (nat.inputs["minPortsPerVm"], nat.inputs["maxPortsPerVm"]) == (2048, 8192)
    assert len(nat.inputs["natIps"]) == 3
    blue = stack.find(CLUSTER, "blue")
    allowed = [b["cidrBlock"] for b in blue.inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"]]
    assert all(f"{ip}/32" in allowed for ip in ips)
    gw = _release(stack, "blue", "gateway").inputs["values"]
    # Registration order of sibling resources is not fixed: the ranges and addresses are sets.
    assert sorted(gw["service"]["loadBalancerSourceRanges"]) == sorted(f"{ip}/32" for ip in ips)
    assert sorted(stack.exports["clusters"]["green"]["natEgressAddresses"]) == sorted(ips)


# ------------------------------------------------------------------ maintenance


def _window(cluster: Any) -> dict[str, Any]:
    return cluster.inputs["maintenancePolicy"]["recurringWindow"]


def test_every_cluster_has_a_weekly_window_and_they_never_overlap(base_stack: Program) -> None:
    blue, green = (_window(base_stack.find(CLUSTER, n)) for n in ("blue", "green"))
    assert blue == {"startTime": "2026-01-05T00:00:00Z", "endTime": "2026-01-05T12:00:00Z",
                    "recurrence": "FREQ=WEEKLY;BYDAY=MO"}
    assert green == {"startTime": "2026-01-05T12:00:00Z", "endTime": "2026-01-06T00:00:00Z",
                     "recurrence": "FREQ=WEEKLY;BYDAY=MO"}


@settings(max_examples=13, deadline=None)
@given(st.integers(min_value=2, max_value=MAX_CLUSTERS))
def test_default_windows_satisfy_gke_and_never_overlap_for_every_supported_count(n: int) -> None:
    parsed = config.parse(n_clusters(n), project="mesh-test-project")
    windows = [c.maintenance for c in parsed.clusters]
    for w in windows:
        # A weekly window recurs at least 4 times in any 32 days; >= 4 h contiguous.
        assert 4 * w.duration_hours >= GKE_MIN_MAINTENANCE_HOURS and w.duration_hours >= 4
    for a, b in itertools.combinations(windows, 2):
        assert not a.hours() & b.hours(), (a, b)


def test_configured_window_and_mesh_wide_freeze_reach_every_cluster(run, base_config) -> None:
    base_config["clusters"][0]["maintenance"] = {"day": "SA", "startHour": 2, "durationHours": 16}
    base_config["maintenanceExclusions"] = [{"name": "flip-freeze", "startTime": "2026-12-01T18:00:00Z",
                                             "endTime": "2026-12-03T18:00:00Z"}]
    stack = run(base_config)
    assert _window(stack.find(CLUSTER, "blue")) == {
        "startTime": "2026-01-10T02:00:00Z", "endTime": "2026-01-10T18:00:00Z", "recurrence": "FREQ=WEEKLY;BYDAY=SA"}
    for name in ("blue", "green"):
        (ex,) = stack.find(CLUSTER, name).inputs["maintenancePolicy"]["maintenanceExclusions"]
        assert ex == {"exclusionName": "flip-freeze", "startTime": "2026-12-01T18:00:00Z",
                      "endTime": "2026-12-03T18:00:00Z", "exclusionOptions": {"scope": "NO_UPGRADES"}}


def test_window_hours_wrap_around_the_week() -> None:
    assert MaintenanceWindow(day="SU", start_hour=20, duration_hours=12).hours() & \
        MaintenanceWindow(day="MO", start_hour=0, duration_hours=12).hours()


def test_nat_capacity_arithmetic_matches_the_docs() -> None:
    # docs/config.md: one address holds 64,512 ports; at 1,024 per VM that is 63 nodes.
    assert NAT_PORTS_PER_ADDRESS // 1024 == 63


# ------------------------------------------------------------------ config rules

RULES: list[tuple[str, dict[str, Any], str]] = [
    ("replicas-one", {"availability": {"istiodReplicas": 1}},
     "availability.istiodReplicas 1 must be an integer from 2 to 20 (two replicas are the least that survive a "
     "node drain)"),
    ("replicas-text", {"availability": {"eastWestGatewayReplicas": "2"}},
     "availability.eastWestGatewayReplicas '2' must be an integer from 2 to 20"),
    ("availability-unknown", {"availability": {"replicas": 2}},
     "availability.replicas is not a known key; did you mean istiodReplicas? "
     "(known: istiodReplicas, eastWestGatewayReplicas)"),
    ("nat-min-not-power", {"nat": {"minPortsPerVm": 1000}},
     "nat.minPortsPerVm 1000 must be a power of two from 32 to 32768 (Cloud NAT dynamic port allocation)"),
    ("nat-max-too-big", {"nat": {"maxPortsPerVm": 131072}},
     "nat.maxPortsPerVm 131072 must be a power of two from 64 to 65536"),
    ("nat-max-not-above-min", {"nat": {"minPortsPerVm": 4096, "maxPortsPerVm": 4096}},
     "nat.maxPortsPerVm 4096 must be greater than nat.minPortsPerVm 4096"),
    ("nat-addresses", {"nat": {"addresses": 0}},
     "nat.addresses 0 must be an integer from 1 to 16 (NAT addresses per network)"),
    ("nat-too-few-addresses", {"nat": {"minPortsPerVm": 32768}},
     "clusters[0].maxNodes 3 (9 nodes in 3 zones) needs more NAT ports than nat.addresses 1 hold: 1 x 64512 ports "
     "give 1 nodes nat.minPortsPerVm 32768 each; raise nat.addresses"),
    ("window-too-short", {"clusters[0].maintenance": {"day": "SA", "startHour": 0, "durationHours": 8}},
     "clusters[0].maintenance.durationHours 8 must be an integer from 12 to 24: GKE requires 48 h of maintenance "
     "availability in every 32 days and a weekly window recurs only 4 times in some of them"),
    ("window-day", {"clusters[0].maintenance": {"day": "Saturday"}},
     "clusters[0].maintenance.day 'Saturday' must be one of MO, TU, WE, TH, FR, SA, SU (UTC)"),
    ("window-hour", {"clusters[0].maintenance": {"day": "SA", "startHour": 24}},
     "clusters[0].maintenance.startHour 24 must be an integer from 0 to 23 (UTC)"),
    ("windows-overlap", {"clusters[0].maintenance": {"day": "SA", "startHour": 0},
                         "clusters[1].maintenance": {"day": "SA", "startHour": 6}},
     "clusters[1].maintenance (SA 06:00 UTC for 12 h) overlaps clusters[0].maintenance (SA 00:00 UTC for 12 h); "
     "GKE could drain both clusters at once: give each cluster its own hours"),
    ("window-overlaps-a-default", {"clusters[1].maintenance": {"day": "MO", "startHour": 6}},
     "clusters[1].maintenance (MO 06:00 UTC for 12 h) overlaps clusters[0] (default MO 00:00 UTC for 12 h)"),
    ("exclusion-time", {"maintenanceExclusions": [{"name": "f", "startTime": "2026-12-01 18:00",
                                                   "endTime": "2026-12-02T18:00:00Z"}]},
     "maintenanceExclusions[0].startTime '2026-12-01 18:00' must be an RFC 3339 UTC time such as "
     "2026-12-01T18:00:00Z"),
    ("exclusion-order", {"maintenanceExclusions": [{"name": "f", "startTime": "2026-12-02T18:00:00Z",
                                                    "endTime": "2026-12-01T18:00:00Z"}]},
     "maintenanceExclusions[0].endTime 2026-12-01T18:00:00Z must be after maintenanceExclusions[0].startTime "
     "2026-12-02T18:00:00Z"),
    ("exclusion-too-long", {"maintenanceExclusions": [{"name": "f", "startTime": "2026-12-01T00:00:00Z",
                                                       "endTime": "2027-01-15T00:00:00Z"}]},
     "maintenanceExclusions[0] lasts 45 days; GKE allows a NO_UPGRADES exclusion at most 30 days"),
    ("exclusion-scope", {"maintenanceExclusions": [{"name": "f", "startTime": "2026-12-01T00:00:00Z",
                                                    "endTime": "2026-12-02T00:00:00Z", "scope": "NONE"}]},
     "maintenanceExclusions[0].scope 'NONE' must be one of NO_UPGRADES, NO_MINOR_UPGRADES, NO_MINOR_OR_NODE_UPGRADES"),
]


def _apply(cfg: dict[str, Any], edits: dict[str, Any]) -> None:
    for key, value in edits.items():
        if key.startswith("clusters["):
            i = int(key[len("clusters["):key.index("]")])
            cfg["clusters"][i][key.rsplit(".", 1)[1]] = value
        else:
            cfg[key] = value


@pytest.mark.parametrize(("edits", "message"), [pytest.param(e, m, id=i) for i, e, m in RULES])
def test_each_safety_rule_stops_the_program_with_its_message(run, base_config, edits, message) -> None:
    _apply(base_config, edits)
    with pytest.raises(ProgramError) as failure:
        run(base_config)
    assert message in str(failure.value), str(failure.value)
    assert failure.value.declared == []


def test_more_clusters_than_a_week_of_windows_holds_is_refused() -> None:
    cfg = n_clusters(MAX_CLUSTERS)
    extra = dict(cfg["clusters"][-1], name="extra", network="network-extra")
    cfg["clusters"].append(extra)
    with pytest.raises(config.ConfigError) as e:
        config.parse(cfg, project="mesh-test-project")
    assert (f"clusters lists {MAX_CLUSTERS + 1} clusters; GKE requires 48 h of maintenance availability in every "
            f"32 days (a weekly window of at least 12 h), and a week holds only {MAX_CLUSTERS} such windows that never "
            f"overlap: at most {MAX_CLUSTERS} clusters") in e.value.problems


def test_authorized_network_limit_counts_every_peer_nat_address(base_config) -> None:
    base_config["nat"] = {"addresses": 3}
    base_config["authorizedNetworks"] = [{"name": f"n{i}", "cidr": f"198.51.100.{i}/32"} for i in range(48)]
    with pytest.raises(config.ConfigError) as e:
        config.parse(base_config, project="mesh-test-project")
    assert ("authorizedNetworks has 48 entries; with 3 other-cluster NAT addresses that is 51, over GKE's limit "
            "of 50") in e.value.problems


def test_defaults_of_the_safety_sections(base_config) -> None:
    parsed = config.parse(base_config, project="mesh-test-project")
    assert parsed.availability == config.AvailabilitySpec(istiod_replicas=2, eastwest_replicas=2)
    assert parsed.nat == config.NatSpec(min_ports_per_vm=1024, max_ports_per_vm=65536, addresses=1)
    assert parsed.maintenance_exclusions == ()
    assert base() == base_config


_windows = st.fixed_dictionaries({"day": st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]),
                                  "startHour": st.integers(0, 23), "durationHours": st.integers(12, 24)})


@settings(max_examples=150, deadline=None)
@given(a=_windows, b=_windows)
def test_configured_windows_are_accepted_exactly_when_they_never_overlap(a: dict[str, Any], b: dict[str, Any]) -> None:
    cfg = base()
    cfg["clusters"][0]["maintenance"], cfg["clusters"][1]["maintenance"] = a, b
    wa, wb = (MaintenanceWindow(day=w["day"], start_hour=w["startHour"], duration_hours=w["durationHours"])
              for w in (a, b))
    try:
        parsed = config.parse(cfg, project="mesh-test-project")
    except config.ConfigError as error:
        assert wa.hours() & wb.hours(), error.problems
        (line,) = error.problems
        assert line.startswith("clusters[1].maintenance (") and " overlaps clusters[0].maintenance (" in line
    else:
        assert not wa.hours() & wb.hours()
        assert [c.maintenance for c in parsed.clusters] == [wa, wb]
