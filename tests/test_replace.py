"""`tools.replace`: the successor's entry, every phase's config, the stack-file edits and the command."""

from __future__ import annotations

import copy
import ipaddress
import itertools
import json
import re
import shlex
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components import config
from components.config.model import MIN_WINDOW_HOURS, WEEKDAYS
from offline import ROOT, run_program
from offline.configs import MAX_CLUSTERS, base, n_clusters, with_edge, write_stack_file
from tests.fakes import fake_kube
from tests.fakes.fake_kube import FakeCluster
from tools.replace import stackfile
from tools.replace.cli import main, parse_args
from tools.replace.plan import CIDR_KEYS, Changes, ReplaceError, plan
from tools.replace.preview import check_add

PROJECT_ID = "mesh-test-project"


def _ranges(raw: dict) -> list[tuple[str, str, ipaddress.IPv4Network]]:
    return [(c["name"], k, ipaddress.IPv4Network(c[k])) for c in raw["clusters"] for k in CIDR_KEYS]


def _slots(n: int) -> st.SearchStrategy[list[int]]:
    """Distinct aligned 12-hour slots for n clusters (explicit windows), or [] (position defaults)."""
    return st.one_of(st.just([]), st.permutations(range(168 // MIN_WINDOW_HOURS)).map(lambda p: list(p[:n])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, MAX_CLUSTERS - 1).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(0, n - 1), _slots(n), st.sampled_from([None, "1.31.0", "1.29.2"]),
    st.sampled_from([None, "1.33", "1.34.1-gke.100"]), st.booleans())))
def test_for_any_valid_stack_the_plans_additions_pass_the_full_validation(case) -> None:
    n, old_index, slots, istio, gke, protected = case
    raw = n_clusters(n)
    for c, slot in zip(raw["clusters"], slots, strict=False):
        start = slot * MIN_WINDOW_HOURS
        c["maintenance"] = {"day": WEEKDAYS[start // 24], "startHour": start % 24}
    old = raw["clusters"][old_index]["name"]
    raw["clusters"][old_index].update(protect=protected, deletionProtection=protected)
    rp = plan(raw, old=old, new="successor", changes=Changes(istio_version=istio, gke_version=gke), project=PROJECT_ID)
    for state in (rp.added, rp.flipped, rp.unprotected, rp.retired):
        if state is not None:
            config.parse(state, project=PROJECT_ID)  # every phase's config is one the program accepts
    added = config.parse(rp.added, project=PROJECT_ID)
    # No range of the successor overlaps any range of any cluster (the program itself would allow it).
    mine = [net for name, _, net in _ranges(rp.added) if name == "successor"]
    others = [net for name, _, net in _ranges(rp.added) if name != "successor"]
    assert not [(a, b) for a in mine for b in others if a.overlaps(b)]
    # Same sizes as the cluster it replaces, and every weekly window disjoint from every other.
    assert [ipaddress.IPv4Network(rp.entry[k]).prefixlen for k in CIDR_KEYS] == \
        [ipaddress.IPv4Network(raw["clusters"][old_index][k]).prefixlen for k in CIDR_KEYS]
    for a, b in itertools.combinations(added.clusters, 2):
        assert not a.maintenance.hours() & b.maintenance.hours()
    # Windows of the clusters that stay are where they were, before and after OLD is retired.
    now = {c.name: c.maintenance for c in config.parse(raw, project=PROJECT_ID).clusters}
    after = {c.name: c.maintenance for c in config.parse(rp.retired, project=PROJECT_ID).clusters}
    assert {k: v for k, v in after.items() if k != "successor"} == {k: v for k, v in now.items() if k != old}
    # Traffic: the add moves none, the flip moves exactly OLD's share, the retire keeps the split.
    split = lambda cfg: dict(config.parse(cfg, project=PROJECT_ID).traffic.weights)  # noqa: E731
    assert split(rp.added) == split(raw) | {"successor": 0}
    assert split(rp.flipped)["successor"] == split(raw)[old] and split(rp.flipped)[old] == 0
    assert split(rp.retired) == {k: v for k, v in split(rp.flipped).items() if k != old}
    assert rp.entry.get("istioVersion") == (istio or raw["clusters"][old_index].get("istioVersion"))
    assert rp.entry.get("minMasterVersion") == gke


def test_the_successor_takes_free_ranges_a_free_network_and_a_free_slot() -> None:
    rp = plan(base(), old="blue", new="blue2", project=PROJECT_ID)
    assert rp.entry["network"] == "network3"
    assert (rp.entry["podCidr"], rp.entry["serviceCidr"], rp.entry["nodeCidr"], rp.entry["masterCidr"]) == \
        ("10.0.0.0/14", "10.4.0.0/20", "10.4.16.0/20", "172.16.0.32/28")
    # blue MO 00-12 and green MO 12-24 by position: the first free 12-hour slot is TU 00:00.
    assert rp.entry["maintenance"] == {"day": "TU", "startHour": 0, "durationHours": 12}
    # green's default window depends on its position after blue: written out so the retirement keeps it.
    assert rp.pinned == ((1, {"day": "MO", "startHour": 12, "durationHours": 12}),)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("purple", "blue2", "--replace 'purple' is not a cluster of this stack (clusters: blue, green)"),
    ("blue", "green", "--with 'green' is already a cluster of this stack"),
    ("blue", "Blue_2", "adding Blue_2: clusters[2].name 'Blue_2' must be a DNS label"),
])
def test_bad_arguments_are_named(old, new, message) -> None:
    with pytest.raises(ReplaceError) as failure:
        plan(base(), old=old, new=new, project=PROJECT_ID)
    assert any(message in p for p in failure.value.problems), failure.value.problems


def test_a_change_beyond_the_supported_skew_is_refused_with_the_key_named() -> None:
    with pytest.raises(ReplaceError) as failure:
        plan(base(), old="blue", new="blue2", changes=Changes(istio_version="1.32.0"), project=PROJECT_ID)
    assert any(p.startswith("adding blue2: clusters[2].istioVersion 1.32.0 (blue2) is 2 minor releases")
               for p in failure.value.problems), failure.value.problems


def test_a_full_week_has_no_slot_for_a_successor() -> None:
    with pytest.raises(ReplaceError, match="no 12-hour weekly window is free"):
        plan(n_clusters(14), old="blue", new="successor", project=PROJECT_ID)


def test_byo_intermediates_need_one_for_the_successor_before_it_is_added(base_config) -> None:
    raw = copy.deepcopy(base_config)
    raw["ca"] = {"intermediates": {"blue": {}, "green": {}}}
    with pytest.raises(ReplaceError) as failure:
        plan(raw, old="blue", new="blue2", project=PROJECT_ID)
    assert failure.value.problems[0].startswith("the stack's config as it is: ")


# ------------------------------------------------------------------ the stack file


STACK_TEXT = """\
# my stack: keep this comment
config:
  gcp:project: mesh-test-project
  gke-istio-mesh:clusters:
    # the running cluster
    - name: blue
      network: network1
      region: us-west1
      nodeCidr: 10.10.0.0/20
      podCidr: 10.12.0.0/14
      serviceCidr: 10.16.0.0/20
      masterCidr: 172.16.0.0/28
      protect: true  # prod-like
    - name: green
      network: network2
      region: us-central1
      nodeCidr: 10.20.0.0/20
      podCidr: 10.24.0.0/14
      serviceCidr: 10.28.0.0/20
      masterCidr: 172.16.0.16/28
  gke-istio-mesh:traffic:
    weights:
      blue: 60   # most of it
      green: 40
    services:
      - host: helloworld
        namespace: sample
        weights: {blue: 100}
  gke-istio-mesh:meshNamespaces: [sample]
"""


def test_each_phase_is_a_minimal_edit_that_keeps_the_users_comments() -> None:
    raw = stackfile.project_config(STACK_TEXT)
    assert stackfile.rewrite(STACK_TEXT, raw) == STACK_TEXT
    rp = plan(raw, old="blue", new="blue2", project=PROJECT_ID)
    text = STACK_TEXT
    for state in (rp.added, rp.flipped, rp.unprotected, rp.retired):
        text = stackfile.rewrite(text, state)
        assert stackfile.project_config(text) == state
        assert "# my stack: keep this comment" in text and "# the running cluster" in text
    added = stackfile.rewrite(STACK_TEXT, rp.added)
    diff = stackfile.diff(STACK_TEXT, added, "Pulumi.x.yaml", "add blue2")
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == []  # adding only adds lines
    assert "+      blue2: 0" in diff and "# the running cluster" in added and "protect: true  # prod-like" in added
    # green follows blue: its position-derived window is written out before blue leaves.
    assert "+      maintenance:" in diff
    # The per-service split moves with the flip; blue was protected, so the retire needs its own unprotect.
    assert rp.flipped["traffic"]["services"][0]["weights"] == {"blue": 0, "blue2": 100}
    assert rp.unprotected["clusters"][0]["protect"] is False


# ------------------------------------------------------------------ the add preview


@pytest.fixture(scope="module")
def edge_plan():
    raw = with_edge(base())
    rp = plan(raw, old="blue", new="blue2", project=PROJECT_ID)
    return rp, run_program(rp.before), run_program(rp.added)


def test_the_add_creates_only_the_successors_resources_and_changes_only_allow_lists_and_routing(edge_plan) -> None:
    rp, before, after = edge_plan
    check = check_add(before, after, "blue2", rp.entry["network"])
    assert check.problems == ()
    changed = dict(check.changed)
    assert changed["blue"] == changed["green"] == "control plane admits the successor's NAT address"
    assert changed["blue-eastwestgateway"] == "east-west gateway admits the successor's NAT address"
    assert "mesh-link.blue2.in.blue" in check.added and "blue2" in check.added


def test_an_add_that_moves_traffic_or_touches_a_peer_is_refused(edge_plan) -> None:
    rp, before, _ = edge_plan
    moved = copy.deepcopy(rp.added)
    moved["traffic"]["weights"] = {"blue": 90, "green": 0, "blue2": 10}
    moved["clusters"][1]["machineType"] = "e2-standard-8"
    check = check_add(before, run_program(moved), "blue2", rp.entry["network"])
    assert any("helloworld.sample: the split would change" in p for p in check.problems), check.problems
    assert any(p.startswith("gcp:container/nodePool:NodePool green-pool") for p in check.problems), check.problems


# ------------------------------------------------------------------ the command


@pytest.fixture
def stack_file(tmp_path: Path) -> Path:
    return write_stack_file(tmp_path / "Pulumi.test.yaml", base())


def test_plan_prints_every_phase_the_edits_and_the_cost_and_touches_nothing(stack_file, capsys) -> None:
    before = stack_file.read_text()
    rc = main(["--stack", "test", "--stack-file", str(stack_file), "--replace", "blue", "--with", "blue2",
               "--gke-version", "1.34", "--plan"])
    out = capsys.readouterr().out
    assert rc == 0
    assert stack_file.read_text() == before
    for marker in ("a. add", "b. parity", "c. flip", "d. soak", "e. retire",
                   "+    - name: blue2", "+      minMasterVersion: '1.34'", "offline preview: ",
                   'make flip STACK=test ARGS="--weights blue2=100 --steps 10,25,50,100 --hold 300s"',
                   "a month more"):
        assert marker in out, marker


def test_a_bad_argument_exits_2_naming_it(stack_file, capsys) -> None:
    rc = main(["--stack", "test", "--stack-file", str(stack_file), "--replace", "purple", "--with", "blue2",
               "--plan"])
    assert rc == 2
    assert "--replace 'purple' is not a cluster of this stack" in capsys.readouterr().err


def test_the_documented_command_runs_as_written_on_the_shipped_dev_stack(capsys) -> None:
    """Every `make replace STACK=… ARGS="…"` line of docs/replace.md, run as the Makefile runs it."""
    runbook = (ROOT / "docs" / "replace.md").read_text()
    commands = re.findall(r'^make replace STACK=(\w+) ARGS="([^"]*)"$', runbook, re.M)
    assert commands
    for stack, args in commands:
        argv = ["--stack", stack, *shlex.split(args)]
        if "--plan" not in args:
            parsed = parse_args(argv)
            # --check-parity runs against fake clusters below; the phase runs in tests/test_replace_run.py
            assert parsed.check_parity or parsed.resume or parsed.abort or parsed.replace
            continue
        rc = main(argv)
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert "e. retire" in out


# ------------------------------------------------------------------ phase b on its own: --check-parity


def _stage(f: FakeCluster, address: str, *, with_app: bool) -> None:
    f.put(fake_kube.namespace("istio-system"))
    f.put(fake_kube.namespace("sample", {"istio-injection": "enabled"}))
    f.put(fake_kube.eastwest_service(address))
    f.put(fake_kube.endpoint_slice("istio-eastwestgateway", "istio-system", ready=2))
    if with_app:
        app = fake_kube.workload("Deployment", "helloworld-v1", "sample", {"helloworld": "docker.io/x/hello:1"})
        f.put(app)
        for i in range(2):
            f.put(fake_kube.workload_pod(app, i, {"helloworld": f"docker.io/x/hello@sha256:{'a' * 64}"}))
        f.put(fake_kube.endpoint_slice("helloworld", "sample", ready=2))


def test_check_parity_stops_on_a_missing_workload_and_passes_once_it_is_delivered(tmp_path, capsys) -> None:
    rp = plan(base(), old="blue", new="blue2", project=PROJECT_ID)
    stack = write_stack_file(tmp_path / "Pulumi.test.yaml", rp.added)
    fakes = {n: FakeCluster(n).start() for n in ("blue", "blue2")}
    try:
        addresses = {"blue": "34.71.20.1", "blue2": "34.71.20.9"}
        _stage(fakes["blue"], addresses["blue"], with_app=True)
        _stage(fakes["blue2"], addresses["blue2"], with_app=False)
        outputs = {"clusters": {n: {"name": n, "region": "us-west1", "network": n, "endpoint": f.url,
                                    "eastWestGatewayAddress": addresses[n]} for n, f in fakes.items()},
                   "kubeconfigs": {n: f.kubeconfig() for n, f in fakes.items()},
                   "rootCertPem": "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n"}
        (tmp_path / "outputs.json").write_text(json.dumps(outputs))
        argv = ["--stack", "test", "--stack-file", str(stack), "--replace", "blue", "--with", "blue2",
                "--check-parity", "--outputs", str(tmp_path / "outputs.json")]
        assert main(argv) == 1
        out = capsys.readouterr().out
        assert "Deployment/helloworld-v1: runs in blue but not in blue2" in out
        assert "Service/helloworld: 0/0 endpoints ready in blue2" in out
        _stage(fakes["blue2"], addresses["blue2"], with_app=True)
        assert main(argv) == 0
        assert capsys.readouterr().out.startswith("parity: blue2 runs what blue runs")
    finally:
        for f in fakes.values():
            f.stop()


def test_encrypted_ca_values_are_left_alone_in_the_plan_and_the_stack_file() -> None:
    text = STACK_TEXT + "  gke-istio-mesh:ca:\n    rootKeyPem:\n      secure: v1:abcdef==\n"
    raw = stackfile.project_config(text)
    rp = plan(raw, old="green", new="green2", project=PROJECT_ID)
    assert rp.added["ca"] == {"rootKeyPem": {"secure": "v1:abcdef=="}}
    assert "      secure: v1:abcdef==" in stackfile.rewrite(text, rp.retired)
