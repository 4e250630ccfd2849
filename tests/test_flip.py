"""The progressive flip: plan, judge, the Prometheus client and every branch of a run, offline.

A run drives a fake Automation API stack (tests.fakes.fake_automation: the stack file written as
`pulumi config set --path` writes it, previews from the offline engine's own diff, "up" into
fake Kubernetes API servers), reads the VirtualServices back from those servers with the real
client, and judges steps from a fake Prometheus HTTP API serving scripted series. Each
scenario asserts the weights written and applied at every step; holds run on a fake clock.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from components.config import FlipSpec
from offline.configs import base, three_clusters, write_stack_file
from offline.observability import check_queries
from tests.fakes import fake_kube
from tests.fakes.fake_automation import FakeStack
from tests.fakes.fake_kube import FakeCluster
from tests.fakes.fake_monitoring import FakeMonitoring
from tests.fakes.fake_prometheus import FakePrometheus, traffic
from tools.flip import cli
from tools.flip import journal as journals
from tools.flip.judge import ClusterMeasurement, Verdict, judge
from tools.flip.lease import FileStore
from tools.flip.plan import PlanError, interpolate, parse_steps, parse_weights, plan
from tools.flip.prometheus import PrometheusClient, PrometheusError, cloud_monitoring_url, queries
from tools.flip.snooze import SnoozeClient
from tools.flip.stack import StackError, urn_key, weights_config
from tools.verify.gate import before_flip

THRESHOLDS = FlipSpec(min_success_rate=99.0, max_p99_ms=500.0, min_requests=50)


# ------------------------------------------------------------------ plan (pure)


def test_plan_two_clusters_steps_to_green() -> None:
    steps = plan({"blue": 100, "green": 0}, {"blue": 0, "green": 100}, (10, 25, 50, 100))
    assert [s.weights for s in steps] == [
        {"blue": 90, "green": 10}, {"blue": 75, "green": 25}, {"blue": 50, "green": 50}, {"blue": 0, "green": 100}]


def test_plan_n_clusters_rounds_to_integers_that_sum_to_100() -> None:
    steps = plan({"blue": 100, "green": 0, "teal": 0}, {"blue": 0, "green": 50, "teal": 50}, (25, 50, 100))
    assert [s.weights for s in steps] == [
        {"blue": 75, "green": 13, "teal": 12}, {"blue": 50, "green": 25, "teal": 25},
        {"blue": 0, "green": 50, "teal": 50}]


@given(st.lists(st.integers(0, 100), min_size=2, max_size=6), st.lists(st.integers(0, 100), min_size=2, max_size=6),
       st.lists(st.integers(1, 99), max_size=6, unique=True))
def test_every_step_sums_to_100_moves_toward_the_final_split_and_ends_on_it(a, b, middle) -> None:
    n = min(len(a), len(b))
    names = [f"c{i}" for i in range(n)]

    def split(raw: list[int]) -> dict[str, int]:
        raw = raw[:n] if sum(raw[:n]) else [1] + [0] * (n - 1)
        out = {c: v * 100 // sum(raw) for c, v in zip(names, raw, strict=True)}
        out[names[0]] += 100 - sum(out.values())
        return out

    start, final = split(a), split(b)
    steps = plan(start, final, (*sorted(middle), 100))
    assert all(sum(s.weights.values()) == 100 for s in steps)
    assert steps[-1].weights == final
    for s in steps:  # each weight lies between its start and its final value
        assert all(min(start[c], final[c]) <= s.weights[c] <= max(start[c], final[c]) for c in names)


@pytest.mark.parametrize(("text", "message"), [
    ("10,50,25,100", "--steps '10,50,25,100' must be strictly increasing (25 follows 50)"),
    ("10,50", "--steps '10,50' must end at 100"),
    ("0,100", "--steps '0,100': 0 is outside 1..100"),
    ("ten,100", "--steps 'ten,100' must be comma-separated integers"),
])
def test_bad_steps_are_refused_with_the_argument_named(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=None) as error:
        parse_steps(text)
    assert message in str(error.value)


@pytest.mark.parametrize(("text", "message"), [
    ("green=50,blue=40", "--weights 'green=50,blue=40' sums to 90; the weights must sum to 100"),
    ("purple=100", "--weights 'purple=100': 'purple' is not a cluster of this stack (clusters: blue, green)"),
    ("green", "--weights 'green': 'green' must be CLUSTER=WEIGHT"),
    ("green=150,blue=-50", "--weights 'green=150,blue=-50': green=150 must be from 0 to 100"),
])
def test_bad_weights_are_refused_with_the_argument_named(text: str, message: str) -> None:
    with pytest.raises(PlanError) as error:
        parse_weights(text, ["blue", "green"])
    assert message in str(error.value)


def test_interpolation_is_exact_at_the_ends() -> None:
    assert interpolate({"a": 30, "b": 70}, {"a": 100, "b": 0}, 100) == {"a": 100, "b": 0}


# ------------------------------------------------------------------ judge (pure)


def test_a_healthy_step_passes_and_a_receiving_cluster_without_traffic_does_not() -> None:
    healthy = {"blue": ClusterMeasurement(900, 1, 40.0), "green": ClusterMeasurement(100, 0, 60.0)}
    assert judge({"blue": 90, "green": 10}, healthy, THRESHOLDS).verdict is Verdict.PASS
    quiet = {"blue": ClusterMeasurement(900, 1, 40.0), "green": ClusterMeasurement(12, 0, 60.0)}
    verdict = judge({"blue": 90, "green": 10}, quiet, THRESHOLDS)
    assert verdict.verdict is Verdict.NO_TRAFFIC and not verdict.passed
    assert "green: 12 requests < 50 needed to judge" in verdict.reasons[0]
    missing = judge({"blue": 90, "green": 10}, {"blue": healthy["blue"]}, THRESHOLDS)
    assert missing.verdict is Verdict.NO_TRAFFIC


def test_success_rate_and_p99_fail_a_step_per_cluster() -> None:
    measured = {"blue": ClusterMeasurement(1000, 0, 40.0), "green": ClusterMeasurement(1000, 20, 900.0)}
    verdict = judge({"blue": 50, "green": 50}, measured, THRESHOLDS)
    assert verdict.verdict is Verdict.FAIL
    assert verdict.reasons == ("green: success rate 98.00% < 99%", "green: p99 900 ms > 500 ms")
    # A cluster at weight 0 is not judged.
    assert judge({"blue": 100, "green": 0}, measured, THRESHOLDS).verdict is Verdict.PASS


# ------------------------------------------------------------------ Prometheus client


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus(lambda kind, window, at: {}).start()
    yield fake
    fake.stop()


def test_the_client_queries_istio_metrics_by_destination_cluster(prometheus: FakePrometheus) -> None:
    prometheus.responder = traffic(lambda: {"blue": 75, "green": 25}, rps=10,
                                   error_pct=lambda c, w: 2.0 if c == "green" else 0.0)
    measured = PrometheusClient(prometheus.url).measure(["helloworld.sample.svc.cluster.local"], 60, 1000.0)
    assert measured == {"blue": ClusterMeasurement(450.0, 0.0, 80.0), "green": ClusterMeasurement(150.0, 3.0, 80.0)}
    sent = [q for q, _ in prometheus.queries]
    assert sent == list(queries(["helloworld.sample.svc.cluster.local"], 60).values())
    # A PromQL string escapes the regex's backslash: `\.` alone is "unknown escape sequence" to Prometheus.
    assert all('reporter="source"' in q and r'destination_service=~"helloworld\\.sample\\.svc\\.cluster\\.local"' in q
               for q in sent)
    assert "sum by (destination_cluster) (increase(istio_requests_total{" in sent[0]
    assert sent[2].startswith("histogram_quantile(0.99, sum by (destination_cluster, le) "
                              "(rate(istio_request_duration_milliseconds_bucket{")


def test_the_judges_queries_parse_as_promql(tmp_path: Path) -> None:
    """Prometheus' own parser (promtool, installed by `make test`) reads every query the judge sends."""
    sent = list(queries(["helloworld.sample.svc.cluster.local", "cart.shop.svc.cluster.local"], 90).values())
    done = check_queries(sent, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_api_error_is_reported_with_what_the_api_said(prometheus: FakePrometheus) -> None:
    prometheus.fail_on = lambda n: (503, "backend unavailable")
    with pytest.raises(PrometheusError, match="answered 503 Service Unavailable: backend unavailable"):
        PrometheusClient(prometheus.url).query("up", 1.0)


def test_cloud_monitoring_url_is_the_documented_prometheus_endpoint() -> None:
    assert cloud_monitoring_url("p1") == "https://monitoring.googleapis.com/v1/projects/p1/location/global/prometheus"


def test_weights_are_written_as_path_config_keys() -> None:
    assert weights_config({"blue": 90, "green": 10}) == {
        "gke-istio-mesh:traffic.weights.blue": "90", "gke-istio-mesh:traffic.weights.green": "10"}
    assert urn_key("urn:pulumi:dev::gke-istio-mesh::pulumi:pulumi:Stack$gke-istio-mesh:index:ClusterRouting"
                   "$kubernetes:networking.istio.io/v1:VirtualService::blue-routing.helloworld.sample-vs") == \
        urn_key("urn:pulumi:dev::gke-istio-mesh::gke-istio-mesh:index:ClusterRouting"
                "$kubernetes:networking.istio.io/v1:VirtualService::blue-routing.helloworld.sample-vs")


# ------------------------------------------------------------------ whole runs


class FakeClock:
    def __init__(self, interrupt_after: int | None = None) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []
        self.interrupt_after = interrupt_after

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.interrupt_after is not None and len(self.sleeps) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Mesh:
    tmp: Path
    config: dict[str, Any]
    stack_name: str = "dev"
    clusters: dict[str, FakeCluster] = field(default_factory=dict)
    prometheus: FakePrometheus | None = None
    stack: FakeStack | None = None
    gate_calls: list[dict[str, int]] = field(default_factory=list)
    # Cloud Monitoring's snooze API, on the run's clock, knowing the stack's alert policies.
    monitoring: FakeMonitoring = field(default_factory=lambda: FakeMonitoring(time.time, set()))
    # Draw the report's chart (the tests of the report do; the others save the ~0.3 s per flip).
    chart: bool = False

    @property
    def store(self) -> FileStore:
        """The state backend's directory: the lease and the journal live here."""
        return FileStore(self.tmp / "state")

    @property
    def stack_file(self) -> Path:
        return self.tmp / f"Pulumi.{self.stack_name}.yaml"

    def file_weights(self) -> dict[str, int]:
        return yaml.safe_load(self.stack_file.read_text())["config"]["gke-istio-mesh:traffic"]["weights"]

    def served(self) -> dict[str, dict[str, int]]:
        return fake_kube.served_splits(self.clusters)

    def run(self, *argv: str, clock: FakeClock | None = None, metrics: Any = None,
            **stack_kwargs: Any) -> tuple[int, str, str]:
        clock = clock or FakeClock()
        self.stack = FakeStack(self.stack_name, self.stack_file, self.clusters, error=StackError, **stack_kwargs)
        stack = self.stack
        self.monitoring.now = clock
        self.monitoring.policies = set(stack.alert_policies().values())
        assert self.prometheus is not None
        self.prometheus.responder = self.responder(lambda: stack.deployed)

        def gate(cfg: Any, outputs: Any, weights: Mapping[str, int], factory: Any) -> Any:
            self.gate_calls.append(dict(weights))
            return before_flip(cfg, outputs, weights, factory)  # the real gate, against the fake API servers

        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["--stack", self.stack_name, "--prometheus-url", self.prometheus.url, *argv],
                        open_stack=lambda name: stack, gate=gate, clock=clock, sleep=clock.sleep,
                        store=self.store, metrics=metrics, stack_dir=self.tmp, out=out, err=err,
                        snoozes=SnoozeClient(self.monitoring.url, token=lambda: "flip-test-token"), chart=self.chart)
        return code, out.getvalue(), err.getvalue()

    responder: Any = None


def _config(*, clusters: int = 2) -> dict[str, Any]:
    config = base() if clusters == 2 else three_clusters(base())
    config["ca"] = {"algorithm": "ECDSA"}
    config["flip"] = {"hold": "2m", "interval": "30s", "minRequests": 50}
    return config


def _ready(fake: FakeCluster) -> FakeCluster:
    """A primary the readiness gate passes: helloworld and the east-west gateway have ready endpoints."""
    fake.put(fake_kube.namespace("sample"))
    fake.put(fake_kube.eastwest_service("34.64.0.10"))
    fake.put(fake_kube.endpoint_slice("istio-eastwestgateway", "istio-system", ready=1))
    fake.put(fake_kube.endpoint_slice("helloworld", "sample", ready=2))
    return fake


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp=tmp_path, config=_config())
    write_stack_file(m.stack_file, m.config)
    m.clusters = {name: _ready(FakeCluster(name).start()) for name in ("blue", "green")}
    m.prometheus = FakePrometheus(lambda kind, window, at: {}).start()
    m.responder = lambda applied: traffic(applied, rps=20)
    m.monitoring.start()
    yield m
    for fake in m.clusters.values():
        fake.stop()
    m.prometheus.stop()
    m.monitoring.stop()


START = {"blue": 100, "green": 0}
STEPS = [{"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"blue": 0, "green": 100}]


def test_a_healthy_rollout_writes_applies_and_confirms_every_step(mesh: Mesh) -> None:
    code, out, err = mesh.run("--to", "green", "--steps", "10,50,100")
    assert (code, err) == (cli.EXIT_OK, ""), out
    assert mesh.stack is not None
    assert mesh.stack.written() == STEPS
    assert mesh.stack.applied() == STEPS
    assert mesh.file_weights() == {"blue": 0, "green": 100}
    assert mesh.served() == {"blue": {"blue": 0, "green": 100}, "green": {"blue": 0, "green": 100}}
    assert mesh.gate_calls == [{"blue": 0, "green": 100}]
    assert "final weights: blue=0,green=100 (flip complete)" in out
    # live progress: the hold's time left and the metrics so far
    # The split is seen first (a read of the last two scrape intervals, 60 s after the update), then the
    # hold's first read comes two scrape intervals after that, over those 60 s only: increase() needs two samples.
    assert ("step 2/3 blue=50,green=50  split converged after 1m00s  blue: weight 50 share 50.0% 600 req 100.00% ok "
            "p99 80ms | green: weight 50 share 50.0% 600 req 100.00% ok p99 80ms") in out
    assert ("step 2/3 blue=50,green=50  hold 1m00s left  blue: weight 50 share 50.0% 600 req 100.00% ok p99 80ms | "
            "green: weight 50 share 50.0% 600 req") in out
    table = out.split("step      weights", 1)[1]
    assert "3 (100%)  blue=0,green=100  green    2400      100.00%  80 ms  pass" in table


def test_a_failing_step_rolls_back_to_the_last_good_weights(mesh: Mesh) -> None:
    mesh.responder = lambda applied: traffic(applied, rps=20,
                                             error_pct=lambda c, w: 5.0 if c == "green" and w["green"] >= 50 else 0)
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100")
    assert code == cli.EXIT_ROLLED_BACK, out
    assert mesh.stack is not None
    assert mesh.stack.written() == [STEPS[0], STEPS[1], STEPS[0]]
    assert mesh.stack.applied() == [STEPS[0], STEPS[1], STEPS[0]]
    assert mesh.file_weights() == STEPS[0]
    assert mesh.served()["blue"] == STEPS[0] and mesh.served()["green"] == STEPS[0]
    assert "green: success rate 95.00% < 99%" in out
    assert "final weights: blue=90,green=10 (rolled back)" in out


def test_too_little_traffic_is_not_a_pass(mesh: Mesh) -> None:
    mesh.responder = lambda applied: traffic(applied, rps=1)  # 10 % of 120 requests reach green
    code, out, _ = mesh.run("--to", "green", "--steps", "10,100")
    assert code == cli.EXIT_ROLLED_BACK
    assert mesh.stack is not None
    assert mesh.stack.applied() == [STEPS[0], START]
    assert mesh.file_weights() == START
    assert "green: 12 requests < 50 needed to judge" in out and "--probe --duration 30m" in out


def test_a_metrics_api_that_keeps_failing_mid_step_rolls_back_once_the_inconclusive_budget_is_spent(
        mesh: Mesh) -> None:
    assert mesh.prometheus is not None
    # Step 1 reads 4 times (convergence + 3 hold reads, 3 queries each); from the 2nd read of step 2 on, every
    # query fails: flip.inconclusiveLimit (4) failed reads in a row are tolerated, the 5th rolls back.
    mesh.prometheus.fail_on = lambda n: (500, "internal error") if n >= 16 else None
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100")
    assert code == cli.EXIT_ROLLED_BACK, out
    assert mesh.stack is not None
    assert mesh.stack.applied() == [STEPS[0], STEPS[1], STEPS[0]]
    assert mesh.file_weights() == STEPS[0]
    assert "inconclusive read 4 of at most 4 in a row: the metrics API answered 500" in out
    assert "5 metric reads in a row could not be trusted (flip.inconclusiveLimit 4)" in out
    assert "metrics inconclusive" in out.split("step      weights", 1)[1]


def test_ctrl_c_mid_hold_leaves_the_last_good_weights_applied(mesh: Mesh) -> None:
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100", clock=FakeClock(interrupt_after=5))
    assert code == cli.EXIT_INTERRUPTED
    assert mesh.stack is not None
    assert mesh.stack.applied() == [STEPS[0], STEPS[1], STEPS[0]]
    assert mesh.file_weights() == STEPS[0]
    assert mesh.served()["green"] == STEPS[0]
    assert "interrupted" in out and "final weights: blue=90,green=10 (rolled back)" in out


def test_a_failed_update_rolls_back_and_a_failed_rollback_says_what_to_run(mesh: Mesh) -> None:
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100", fail_up=lambda n: "boom" if n == 2 else None)
    assert code == cli.EXIT_ROLLED_BACK
    assert mesh.stack is not None
    # The failed update changed nothing: the way back previews no change, applies nothing, reads back step 1.
    assert mesh.stack.applied() == [STEPS[0]]
    assert mesh.file_weights() == STEPS[0] and mesh.served()["green"] == STEPS[0]
    assert "rolled back: every primary serves blue=90,green=10" in out

    # Step 1 (45/55) fails its judgement and the rollback's update fails: exit 4, saying what is live.
    mesh.responder = lambda applied: traffic(applied, rps=20, error_pct=lambda c, w: 5.0 if c == "green" else 0)
    code, out, _ = mesh.run("--to", "green", "--steps", "50,100", fail_up=lambda n: "boom" if n >= 2 else None)
    assert code == cli.EXIT_ROLLBACK_FAILED, out
    assert "ROLLBACK FAILED" in out and "--stack dev --abort" in out
    assert ("an update to blue=90,green=10 did not complete: each routing resource serves either that or "
            "blue=45,green=55") in out
    journal = journals.read(mesh.store, "dev")
    assert journal is not None and journal.exit == 4 and journal.deployed is None
    assert (journal.applying, journal.previous) == ({"blue": 90, "green": 10}, {"blue": 45, "green": 55})
    # Each flip has its own report folder, and the second says the rollback failed and what is live.
    first, second = sorted((mesh.tmp / "build" / "flip").iterdir())
    assert second.name == f"{first.name}-2"
    assert json.loads((first / "flip-report.json").read_text())["outcome"] == "rolled back"
    report = json.loads((second / "flip-report.json").read_text())
    assert report["outcome"] == "rollback failed" and report["gates"][-1]["name"] == "rollback"
    assert "an update to blue=90,green=10 did not complete" in report["reason"]


def test_a_primary_that_does_not_serve_the_split_stops_the_flip(mesh: Mesh) -> None:
    code, out, _ = mesh.run("--to", "green", "--steps", "10,100", stale=["green"])
    assert code == cli.EXIT_ROLLED_BACK
    assert "green: helloworld.sample serves blue=100,green=0, expected blue=90,green=10" in out
    assert mesh.stack is not None and mesh.stack.applied() == [STEPS[0], START]
    assert mesh.file_weights() == START


def test_the_readiness_gate_refuses_before_anything_is_written(mesh: Mesh) -> None:
    before = mesh.stack_file.read_text()
    mesh.clusters["green"].remove("/apis/discovery.k8s.io/v1/namespaces/sample/endpointslices/helloworld-abc12")
    code, out, _ = mesh.run("--to", "green")
    assert code == cli.EXIT_GATE, out
    assert "readiness gate refused blue=0,green=100" in out
    assert "green: before flip: helloworld.sample endpoints: 0/0 endpoints ready (new weight 100%)" in out
    assert "fix:   deploy helloworld to sample in green" in out
    assert mesh.stack is not None and mesh.stack.log == []
    assert mesh.stack_file.read_text() == before
    assert journals.read(mesh.store, "dev") is None and not (mesh.tmp / "state" / ".pulumi-flip" /
                                                             "gke-istio-mesh" / "dev" / "lease.json").exists()


def test_a_preview_with_more_than_routing_changes_stops_the_flip_before_it_starts(mesh: Mesh) -> None:
    nodes = "urn:pulumi:dev::gke-istio-mesh::gcp:container/nodePool:NodePool::blue-pool"
    code, out, _ = mesh.run("--to", "green", extra_changes=[("replace", nodes)])
    assert code == cli.EXIT_GATE
    assert f"replace {nodes}" in out
    assert mesh.stack is not None and mesh.stack.applied() == []
    assert mesh.file_weights() == START
    assert mesh.monitoring.snoozes == {}, "nothing moves: the alert policy is not snoozed"


def test_an_unexpected_change_in_a_later_steps_preview_rolls_back_before_it_is_applied(mesh: Mesh) -> None:
    firewall = "urn:pulumi:dev::gke-istio-mesh::gcp:compute/firewall:Firewall::network1-istio-webhook"
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100",
                            extra_changes=lambda n: [("delete", firewall)] if n == 2 else [])
    assert code == cli.EXIT_ROLLED_BACK
    assert f"delete {firewall}" in out
    assert mesh.stack is not None
    assert mesh.stack.written() == [STEPS[0], STEPS[1], STEPS[0]]
    # Step 2 was never applied, so the way back (previewed, targeted) has nothing to apply; the firewall never was.
    assert mesh.stack.applied() == [STEPS[0]] and mesh.stack.applied_extra == []
    assert mesh.file_weights() == STEPS[0]


def test_a_policy_violation_in_the_preview_stops_the_flip(mesh: Mesh) -> None:
    code, out, _ = mesh.run("--to", "green", fail_preview=lambda n: "mandatory policy violation: routing-weights")
    assert code == cli.EXIT_GATE
    assert "policy pack or program" in out and "routing-weights" in out
    assert mesh.stack is not None and mesh.stack.applied() == []
    assert mesh.file_weights() == START


def test_plan_prints_the_steps_and_touches_nothing(mesh: Mesh) -> None:
    before = mesh.stack_file.read_text()
    code, out, _ = mesh.run("--to", "green", "--plan")
    assert code == cli.EXIT_OK
    assert "step 1 ( 10%): blue=90,green=10" in out and "step 4 (100%): blue=0,green=100" in out
    assert mesh.stack is not None and mesh.stack.log == [] and mesh.gate_calls == []
    assert mesh.stack_file.read_text() == before


@pytest.mark.parametrize(("argv", "message"), [
    (["--to", "green", "--steps", "50,25,100"], "--steps '50,25,100' must be strictly increasing"),
    (["--to", "purple"], "--to 'purple' is not a cluster of this stack"),
    (["--weights", "green=60,blue=30"], "--weights 'green=60,blue=30' sums to 90"),
    (["--to", "green", "--hold", "soon"], "--hold 'soon' must be a duration"),
    (["--to", "green", "--hold", "30s"], "--hold 30s is shorter than one judgement needs"),
])
def test_bad_arguments_exit_2_naming_the_argument_before_anything_is_written(mesh: Mesh, argv, message) -> None:
    before = mesh.stack_file.read_text()
    code, _, err = mesh.run(*argv)
    assert code == cli.EXIT_USAGE
    assert message in err
    assert mesh.stack is not None and mesh.stack.log == [] and mesh.gate_calls == []
    assert mesh.stack_file.read_text() == before


def test_an_unknown_stack_exits_2(mesh: Mesh) -> None:
    err = io.StringIO()
    code = cli.main(["--stack", "staging", "--to", "green"], stack_dir=mesh.tmp, err=err, out=io.StringIO(),
                    open_stack=lambda name: pytest.fail("nothing may be opened"))
    assert code == cli.EXIT_USAGE
    assert "--stack 'staging': there is no Pulumi.staging.yaml in " in err.getvalue()
    assert "(stacks: dev)" in err.getvalue()


def test_three_clusters_flip_to_a_final_split(tmp_path: Path) -> None:
    m = Mesh(tmp=tmp_path, config=_config(clusters=3))
    write_stack_file(m.stack_file, m.config)
    m.clusters = {name: _ready(FakeCluster(name).start()) for name in ("blue", "green", "teal")}
    m.prometheus = FakePrometheus(lambda kind, window, at: {}).start()
    m.responder = lambda applied: traffic(applied, rps=40)
    m.monitoring.start()
    try:
        code, out, _ = m.run("--weights", "green=50,teal=50", "--steps", "25,100")
    finally:
        for fake in m.clusters.values():
            fake.stop()
        m.prometheus.stop()
        m.monitoring.stop()
    assert code == cli.EXIT_OK, out
    final = {"blue": 0, "green": 50, "teal": 50}
    assert m.stack is not None
    assert m.stack.applied() == [{"blue": 75, "green": 13, "teal": 12}, final]
    assert m.file_weights() == final
    assert all(served == final for served in m.served().values())


# ------------------------------------------------------------------ the real gate and the real stack's calls


def test_a_stack_the_cli_cannot_open_exits_2_with_its_reason(mesh: Mesh) -> None:
    err = io.StringIO()

    def cannot_open(name: str) -> FakeStack:
        raise StackError("no stack named 'dev' found")

    assert mesh.prometheus is not None
    code = cli.main(["--stack", "dev", "--to", "green", "--prometheus-url", mesh.prometheus.url],
                    open_stack=cannot_open, store=mesh.store, stack_dir=mesh.tmp, out=io.StringIO(), err=err)
    assert code == cli.EXIT_USAGE
    assert "--stack 'dev': no stack named 'dev' found" in err.getvalue()


# ------------------------------------------------------------------ lease, journal, --resume/--abort, deploy-check


def _killed_flip(mesh: Mesh, *, last_good: dict[str, int], applying: dict[str, int]) -> None:
    """What a flip killed outright (SIGKILL) mid-update leaves: its lease and a running journal."""
    from tools.flip.lease import acquire

    lease = acquire(mesh.store, "dev")
    writer = journals.Writer.begin(mesh.store, "dev", lease.holder, START, {"blue": 0, "green": 100}, STEPS,
                                   (10, 50, 100))
    writer.judged_good(last_good)
    writer.applying(applying, [])


def test_a_killed_flip_blocks_the_next_and_abort_drives_it_to_the_last_good_weights(mesh: Mesh) -> None:
    _killed_flip(mesh, last_good=STEPS[0], applying=STEPS[1])
    code, out, _ = mesh.run("--to", "green")
    assert code == cli.EXIT_LEASE_HELD and "held by another flip" in out and "--resume` or `--abort" in out
    assert mesh.stack is not None and mesh.stack.log == []
    code, out, _ = mesh.run("--abort")
    assert code == cli.EXIT_OK, out
    assert "taking over the lease" in out
    assert mesh.file_weights() == STEPS[0] and mesh.served()["green"] == STEPS[0]
    journal = journals.read(mesh.store, "dev")
    assert journal is not None and (journal.phase, journal.deployed) == ("ended", STEPS[0])
    assert not (mesh.tmp / "state" / ".pulumi-flip" / "gke-istio-mesh" / "dev" / "lease.json").exists()


def test_resume_goes_back_to_the_last_good_weights_then_runs_the_remaining_steps(mesh: Mesh) -> None:
    _killed_flip(mesh, last_good=STEPS[0], applying=STEPS[1])
    code, out, _ = mesh.run("--resume")
    assert code == cli.EXIT_OK, out
    assert "resuming from blue=90,green=10 with steps 50%, 100%" in out
    assert mesh.stack is not None and mesh.stack.applied() == STEPS
    assert mesh.file_weights() == STEPS[2] and mesh.served()["blue"] == STEPS[2]
    journal = journals.read(mesh.store, "dev")
    assert journal is not None and (journal.phase, journal.deployed, journal.exit) == ("ended", STEPS[2], 0)


def test_deploy_check_refuses_a_deploy_that_would_revert_a_flip_and_lets_ordinary_edits_through(mesh: Mesh) -> None:
    code, out, _ = mesh.run("--deploy-check")
    assert (code, out.strip()) == (cli.EXIT_OK, "deploy-check dev: ok (no flip to record)")
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100")
    assert code == cli.EXIT_OK, out
    # main still carries the old split: the flip's pull request is not merged yet.
    write_stack_file(mesh.stack_file, mesh.config)
    code, out, _ = mesh.run("--deploy-check")
    assert code == cli.EXIT_DEPLOY_REFUSED
    assert "left blue=0,green=100 applied, but this Pulumi.dev.yaml says blue=100,green=0" in out
    assert "Merge the flip's pull request" in out
    # The flip's pull request (flip.yml runs --record from the journal) merged: the deploy goes ahead.
    code, out, _ = mesh.run("--record")
    assert code == cli.EXIT_OK and mesh.file_weights() == {"blue": 0, "green": 100}
    code, out, _ = mesh.run("--deploy-check")
    assert code == cli.EXIT_OK and "the flip is recorded" in out
    # Later, an ordinary weights edit by pull request (docs/blue-green.md) deploys as usual.
    config = {**mesh.config, "traffic": {**mesh.config["traffic"], "weights": {"blue": 50, "green": 50}}}
    write_stack_file(mesh.stack_file, config)
    code, out, _ = mesh.run("--deploy-check")
    assert (code, out.strip()) == (cli.EXIT_OK, "deploy-check dev: ok (no flip to record)")


def test_deploy_check_refuses_while_a_flip_runs_or_was_killed(mesh: Mesh) -> None:
    _killed_flip(mesh, last_good=STEPS[0], applying=STEPS[1])
    code, out, _ = mesh.run("--deploy-check")
    assert code == cli.EXIT_LEASE_HELD and "REFUSED: a flip holds the stack" in out
    (mesh.tmp / "state" / ".pulumi-flip" / "gke-istio-mesh" / "dev" / "lease.json").unlink()
    code, out, _ = mesh.run("--deploy-check")
    assert code == cli.EXIT_DEPLOY_REFUSED and "did not finish (killed?)" in out and "--abort" in out


@pytest.mark.parametrize("url", ["localhost:9090", "ftp://metrics.example.com", "http://", "monitoring"])
def test_a_bad_prometheus_url_is_refused_before_anything_is_written(mesh: Mesh, url: str) -> None:
    code, out, err = mesh.run("--to", "green", "--prometheus-url", url)
    assert code == cli.EXIT_USAGE, out
    assert f"--prometheus-url {url!r} must be an http:// or https:// URL with a host" in err
    assert mesh.stack is not None and mesh.stack.log == [] and mesh.file_weights() == START


def test_record_writes_the_weights_an_ended_flip_left_deployed(mesh: Mesh) -> None:
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100")
    assert code == cli.EXIT_OK, out
    write_stack_file(mesh.stack_file, mesh.config)  # the workflow's checkout: main's old split
    code, out, _ = mesh.run("--record")
    assert code == cli.EXIT_OK, out
    assert mesh.file_weights() == {"blue": 0, "green": 100}
    assert "Pulumi.dev.yaml now says blue=0,green=100" in out and "exit 0" in out


def test_record_never_rewrites_a_recorded_flip_over_later_edits(mesh: Mesh) -> None:
    """flip.yml runs --record even when a later flip stopped at exit 2: an old journal must not revert main."""
    code, out, _ = mesh.run("--to", "green", "--steps", "10,100")
    assert code == cli.EXIT_OK, out
    assert mesh.run("--deploy-check")[0] == cli.EXIT_OK  # main carries the flip: the journal is `recorded`
    edited = {**mesh.config, "traffic": {**mesh.config["traffic"], "weights": {"blue": 50, "green": 50}}}
    write_stack_file(mesh.stack_file, edited)  # a later weights edit by pull request
    code, out, _ = mesh.run("--record")
    assert code == cli.EXIT_OK and "already recorded" in out and "nothing to record" in out
    assert mesh.file_weights() == {"blue": 50, "green": 50}


def test_record_refuses_while_another_flip_holds_the_lease(mesh: Mesh) -> None:
    from tools.flip.lease import acquire

    code, out, _ = mesh.run("--to", "green", "--steps", "10,100")
    assert code == cli.EXIT_OK, out
    write_stack_file(mesh.stack_file, mesh.config)
    lease = acquire(mesh.store, "dev")  # another runner's flip is judging its split
    code, out, _ = mesh.run("--record")
    assert code == cli.EXIT_LEASE_HELD, out
    assert f"REFUSED: a flip holds the stack ({lease.holder}, since {lease.since})" in out
    assert mesh.file_weights() == START, "nothing was written"


def test_record_refuses_a_flip_that_did_not_end(mesh: Mesh) -> None:
    _killed_flip(mesh, last_good=STEPS[0], applying=STEPS[1])
    (mesh.tmp / "state" / ".pulumi-flip" / "gke-istio-mesh" / "dev" / "lease.json").unlink()
    code, out, _ = mesh.run("--record")
    assert code == cli.EXIT_DEPLOY_REFUSED, out
    assert "did not finish (journal: running)" in out and "--resume` or `--abort` first" in out
    assert mesh.file_weights() == START, "nothing was written"


def test_an_unexpected_error_mid_step_still_rolls_back(mesh: Mesh) -> None:
    """A bug or an answer nobody expected (here: the metrics client raises ValueError) is not an escape hatch."""
    class Broken:
        def measure(self, services: Any, window: int, at: float) -> Any:
            raise ValueError("could not convert string to float: 'NaN?'")

    code, out, _ = mesh.run("--to", "green", "--steps", "10,100", metrics=Broken())
    assert code == cli.EXIT_ROLLED_BACK, out
    assert "unexpected error: ValueError: could not convert string to float" in out
    assert mesh.stack is not None and mesh.stack.applied() == [STEPS[0], START]
    assert mesh.file_weights() == START and mesh.served()["green"] == START


def test_the_stopper_raises_once_records_while_shielded_and_forwards_one_sigint_to_the_cli() -> None:
    import signal
    import subprocess
    import sys

    from tools.flip.stop import Stopped, Stopper

    s = Stopper()
    with pytest.raises(Stopped) as stop:
        s.handle(signal.SIGTERM)
    assert stop.value.signum == signal.SIGTERM and cli.exit_for(stop.value) == cli.EXIT_TERMINATED
    s.handle(signal.SIGINT)  # a second signal outside a child: recorded, not raised again
    shielded = Stopper()
    with shielded.shield():
        shielded.handle(signal.SIGINT)  # during a rollback: recorded only
    assert shielded.signum == signal.SIGINT
    # A child in its own session: one SIGINT reaches it, however many arrive.
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; n = []\n"
                              "signal.signal(signal.SIGINT, lambda *a: n.append(1))\n"
                              "time.sleep(1.5); print(len(n))"], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    time.sleep(0.5)
    s2 = Stopper()
    with s2.child():
        s2.child_pid = child.pid
        s2.handle(signal.SIGINT)
        s2.handle(signal.SIGINT)
        s2.handle(signal.SIGTERM)
        out, _ = child.communicate(timeout=10)
    assert out.strip() == "1"
    with pytest.raises(Stopped):
        s2.raise_if_stopped()


def test_a_cli_that_never_finishes_cancelling_gets_a_second_sigint_then_is_killed_and_said_so() -> None:
    import signal
    import subprocess
    import sys

    from tools.flip.stack import _wait
    from tools.flip.stop import Stopper

    child = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                              "signal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\n"
                              "time.sleep(60)"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    s = Stopper()
    notes: list[str] = []
    with s.child():
        s.child_pid = child.pid
        s.handle(signal.SIGINT)
        started = time.monotonic()
        code = _wait(child, s, 0.3, 0.3, notes)
    assert code == -signal.SIGKILL and time.monotonic() - started < 5
    assert "sent a second SIGINT (terminate)" in notes[0] and "`pulumi cancel`, `pulumi refresh`" in notes[1]


# ------------------------------------------------------------------ the recording and its report, however a flip ends


class Tap:
    """The real Prometheus client, keeping every answer it gave the judge: (window, time, measurements)."""

    def __init__(self, url: str) -> None:
        self.client = PrometheusClient(url)
        self.answers: list[tuple[int, float, dict[str, ClusterMeasurement]]] = []

    def measure(self, services: Any, window_seconds: int, at: float) -> dict[str, ClusterMeasurement]:
        measured = self.client.measure(services, window_seconds, at)
        self.answers.append((window_seconds, at, measured))
        return measured


def _report(mesh: Mesh, out: str) -> Path:
    (folder,) = (mesh.tmp / "build" / "flip").iterdir()
    assert folder.name.startswith("dev-") and folder.name.endswith("Z")  # build/flip/<stack>-<UTC time>/
    assert f") in {folder}/: " in out and "flip-report.json, flip-report.md and the recording recording.json" in out
    return folder


def test_a_flip_writes_its_recording_from_the_judges_reads_and_renders_the_report(mesh: Mesh) -> None:
    mesh.chart = True
    from tools.flip.report_chart import parse, to_json

    assert mesh.prometheus is not None
    tap = Tap(mesh.prometheus.url)
    clock = FakeClock()
    started = clock.now
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100", metrics=tap, clock=clock)
    assert code == cli.EXIT_OK, out
    folder = _report(mesh, out)
    raw = json.loads((folder / "recording.json").read_text())
    recording = parse(raw)
    assert to_json(recording) == raw, "the renderer reads back exactly what the flip wrote"
    assert recording.outcome == "completed" and recording.stack == "dev"
    assert (recording.start_weights, recording.target_weights) == (START, {"blue": 0, "green": 100})
    assert recording.services == ["helloworld.sample.svc.cluster.local"]
    # One sample per read the judge made, in order: its time, window and what each cluster got.
    assert [(s.window_seconds, s.at, {c: ClusterMeasurement(m.requests, m.errors, m.p99_ms)
                                      for c, m in s.clusters.items()}) for s in recording.samples] == \
        [(w, at - started, measured) for w, at, measured in tap.answers]
    # ... with the weights applied when it was read: a convergence read and three hold reads per step.
    assert [s.weights for s in recording.samples] == [w for w in STEPS for _ in range(4)]
    assert [s.phase for s in recording.samples] == ["converge", "hold", "hold", "hold"] * 3
    assert [(g.name, g.passed) for g in recording.gates] == [
        ("readiness", True), ("preview", True), ("step 10%", True), ("step 50%", True), ("step 100%", True)]
    png = (folder / "flip-report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    report = json.loads((folder / "flip-report.json").read_text())
    # Overlapping windows are counted once: step 2's last hold read (120 s, 1200 each) and the convergence read
    # just before the hold (60 s, 600 each) - not the sum of every read (3300).
    assert report["steps"][1]["clusters"]["blue"]["requests"] == 1800
    assert "| step 100% | passed |" in (folder / "flip-report.md").read_text()


def test_a_rolled_back_flips_report_carries_the_verdict_and_the_reason(mesh: Mesh) -> None:
    mesh.responder = lambda applied: traffic(applied, rps=20,
                                             error_pct=lambda c, w: 5.0 if c == "green" and w["green"] >= 50 else 0)
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100")
    assert code == cli.EXIT_ROLLED_BACK, out
    folder = _report(mesh, out)
    report = json.loads((folder / "flip-report.json").read_text())
    assert report["outcome"] == "rolled back"
    assert report["reason"] == "step 50%: green: success rate 95.00% < 99%"
    assert [(g["name"], g["passed"]) for g in report["gates"]] == [
        ("readiness", True), ("preview", True), ("step 10%", True), ("step 50%", False), ("rollback", True)]
    assert report["gates"][-1]["detail"] == "every primary serves blue=90,green=10"
    table = (folder / "flip-report.md").read_text()
    assert table.startswith("### flip of `dev` (blue=100,green=0 → blue=0,green=100): rolled back")
    assert "| step 50% | **failed** | green: success rate 95.00% < 99% |" in table


def test_an_interrupted_flip_and_a_refused_one_leave_a_report_too(mesh: Mesh) -> None:
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100", clock=FakeClock(interrupt_after=5))
    assert code == cli.EXIT_INTERRUPTED
    report = json.loads((_report(mesh, out) / "flip-report.json").read_text())
    assert report["outcome"] == "interrupted"
    assert [g["name"] for g in report["gates"]][-2:] == ["interrupted", "rollback"]
    assert report["gates"][-1]["passed"] is True

    for folder in (mesh.tmp / "build" / "flip").iterdir():
        shutil.rmtree(folder)
    mesh.clusters["green"].remove("/apis/discovery.k8s.io/v1/namespaces/sample/endpointslices/helloworld-abc12")
    code, out, _ = mesh.run("--to", "green")
    assert code == cli.EXIT_GATE
    report = json.loads((_report(mesh, out) / "flip-report.json").read_text())
    assert report["outcome"] == "stopped" and report["steps"] == []
    assert report["reason"].startswith("readiness: green: before flip: helloworld.sample endpoints")


def test_a_report_that_cannot_be_written_is_reported_and_never_breaks_the_rollback(mesh: Mesh) -> None:
    mesh.chart = True
    mesh.responder = lambda applied: traffic(applied, rps=20, error_pct=lambda c, w: 5.0 if c == "green" else 0)
    blocked = mesh.tmp / "not-a-folder"
    blocked.write_text("a file where the report folder should be")
    code, out, _ = mesh.run("--to", "green", "--steps", "10,100", "--report-dir", str(blocked / "report"))
    assert code == cli.EXIT_ROLLED_BACK, out
    assert mesh.stack is not None and mesh.stack.applied() == [STEPS[0], START]
    assert mesh.file_weights() == START and mesh.served()["green"] == START
    assert f"WARNING: the flip's report could not be written to {blocked / 'report'}: " in out
    assert "final weights: blue=100,green=0 (rolled back)" in out


def test_report_dir_puts_the_recording_and_report_where_asked(mesh: Mesh) -> None:
    mesh.chart = True
    folder = mesh.tmp / "flip-report"
    code, out, _ = mesh.run("--to", "green", "--steps", "100", "--report-dir", str(folder))
    assert code == cli.EXIT_OK, out
    assert sorted(p.name for p in folder.iterdir()) == [
        "flip-report.json", "flip-report.md", "flip-report.png", "recording.json"]
    assert (f"report (completed) in {folder}/: flip-report.png, flip-report.json, flip-report.md and the recording "
            "recording.json") in out
    assert not (mesh.tmp / "build").exists()


# ------------------------------------------------------------------ the success-rate alert is snoozed during a flip


def test_a_flip_snoozes_the_success_rate_policy_while_it_runs_and_ends_the_snooze_after_it(mesh: Mesh) -> None:
    from tools.flip.snooze import LOOKBACK_SECONDS, expected_seconds, rfc3339

    mesh.responder = lambda applied: traffic(applied, rps=20,
                                             error_pct=lambda c, w: 5.0 if c == "green" and w["green"] >= 50 else 0)
    clock = FakeClock()
    begun = clock.now
    code, out, _ = mesh.run("--to", "green", "--steps", "10,50,100", clock=clock)
    assert code == cli.EXIT_ROLLED_BACK, out
    assert mesh.stack is not None
    policy = mesh.stack.alert_policies()["success"]
    ((name, snooze),) = mesh.monitoring.snoozes.items()
    assert name.startswith("projects/mesh-test-project/snoozes/")
    assert snooze["criteria"] == {"policies": [policy]}  # that one policy, nothing else
    bound = expected_seconds(3, 120, 30, mesh.stack.parsed().flip)
    methods = [(m, path.split("?")[0], auth) for m, path, _, auth in mesh.monitoring.requests]
    assert methods == [("POST", "/v3/projects/mesh-test-project/snoozes", "Bearer flip-test-token"),
                       ("PATCH", f"/v3/{name}", "Bearer flip-test-token")]
    create, end = (body for _, _, body, _ in mesh.monitoring.requests)
    # Bounded from the start: it ends by itself when the longest 3 steps and a rollback would have ended.
    assert create["interval"] == {"startTime": rfc3339(begun), "endTime": rfc3339(begun + bound)}
    # Ended after the rollback, once the policy's 10-minute window no longer holds the failed step's 5xx.
    assert mesh.monitoring.requests[1][1].endswith("?updateMask=interval.end_time")
    assert snooze["interval"]["endTime"] == rfc3339(clock.now + LOOKBACK_SECONDS) == end["interval"]["endTime"]
    assert out.index("snoozed the success-rate alert policy until") < out.index("step 1/3")
    assert out.index("rolled back: every primary serves") < out.index("the success-rate alert policy is snoozed "
                                                                       "until")


def test_a_snooze_the_api_refuses_is_said_and_the_flip_goes_on(mesh: Mesh) -> None:
    mesh.monitoring.fail = lambda method: (403, "Permission monitoring.snoozes.create denied")
    code, out, _ = mesh.run("--to", "green", "--steps", "10,100")
    assert code == cli.EXIT_OK, out
    assert ("WARNING: the success-rate alert policy could not be snoozed (POST projects/mesh-test-project/snoozes "
            "answered 403 Forbidden: Permission monitoring.snoozes.create denied)") in out
    assert mesh.stack is not None and mesh.stack.applied() == [STEPS[0], {"blue": 0, "green": 100}]
    assert mesh.monitoring.snoozes == {}
