"""The flip's judgement: what is counted, when the clock starts, and that no answer is trusted blindly.

- The judge counts `reporter="source"` (Istio's standard metrics: client proxies AND gateways),
  so a step with only users of the global load balancer - reported by the ingress gateways - is
  judgeable, each request counts once, and a gateway's `no healthy upstream` is never a pass.
- A hold starts when the observed split matches the step's weights (`flip.shareTolerance`),
  within `flip.convergeTimeout`; its window never reaches back before that.
- NaN, ±Inf, negative, unlabelled, non-numeric, non-UTF-8, truncated or unparsable answers are
  inconclusive; more than `flip.inconclusiveLimit` in a row fail the step.
- Every request to the metrics API and to a Kubernetes API server has a total deadline, proven
  against servers that drip their answer a byte at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.config import FlipSpec
from tests.fakes.fake_prometheus import Answer, FakePrometheus, edge_traffic, traffic, vector
from tests.fakes.loopback import LoopbackServer
from tools.deadline import DeadlineExceeded
from tools.flip.hold import HoldSpec, hold_and_judge
from tools.flip.judge import ClusterMeasurement, Verdict, judge, off_split
from tools.flip.prometheus import Inconclusive, PrometheusClient, PrometheusError, _vector
from tools.verify import kube
from tools.verify.checks import ClusterOutputs

RULES = FlipSpec(min_success_rate=99.0, max_p99_ms=500.0, min_requests=50, share_tolerance=5.0,
                 converge_timeout_seconds=300, inconclusive_limit=2)
SERVICES = ["helloworld.sample.svc.cluster.local"]
SPLIT = {"blue": 50, "green": 50}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def run_hold(metrics: Any, weights: Mapping[str, int] = SPLIT, *, hold: int = 120, interval: int = 30,
             rules: FlipSpec = RULES, clock: Clock | None = None) -> tuple[Any, list[str]]:
    clock = clock or Clock()
    lines: list[str] = []
    verdict = hold_and_judge(HoldSpec(weights, SERVICES, rules, hold, interval, "step"), metrics,
                             clock=clock, sleep=clock.sleep, say=lines.append)
    return verdict, lines


class Timeline:
    """Metrics over a timeline: `rps` in total, split by the weights live at each second, as increase() sees it."""

    def __init__(self, clock: Clock, rps: float = 20.0) -> None:
        self.clock, self.rps = clock, rps
        # (from time, weights, error percent per cluster)
        self.phases: list[tuple[float, Mapping[str, int], Mapping[str, float]]] = []
        self.windows: list[tuple[float, int]] = []
        self.failures: Callable[[int], str | None] = lambda n: None

    def live(self, since: float, weights: Mapping[str, int], errors: Mapping[str, float] | None = None) -> None:
        self.phases.append((since, dict(weights), dict(errors or {})))

    def measure(self, services: Sequence[str], window_seconds: int, at: float) -> dict[str, ClusterMeasurement]:
        self.windows.append((at, window_seconds))
        problem = self.failures(len(self.windows))
        if problem:
            raise PrometheusError(problem)
        requests: dict[str, float] = {}
        errors: dict[str, float] = {}
        for second in range(int(at - window_seconds), int(at)):
            _, weights, error_pct = max((p for p in self.phases if p[0] <= second), key=lambda p: p[0])
            for cluster, weight in weights.items():
                n = self.rps * weight / 100
                requests[cluster] = requests.get(cluster, 0.0) + n
                errors[cluster] = errors.get(cluster, 0.0) + n * error_pct.get(cluster, 0.0) / 100
        return {c: ClusterMeasurement(requests[c], errors[c], 80.0 if requests[c] else None)
                for c in requests if requests[c] > 0}


# ------------------------------------------------------------------ the pure judge never passes what cannot be true


BAD_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -0.5])


@settings(deadline=None)
@given(st.sampled_from(["requests", "errors", "p99_ms"]), BAD_NUMBERS, st.integers(50, 10_000))
def test_a_non_finite_or_negative_measurement_is_inconclusive_never_a_pass(field: str, bad: float, n: int) -> None:
    good = {"requests": float(n), "errors": 0.0, "p99_ms": 80.0}
    measured = {"blue": ClusterMeasurement(**good), "green": ClusterMeasurement(**{**good, field: bad})}
    verdict = judge(SPLIT, measured, RULES)
    assert verdict.verdict is Verdict.INCONCLUSIVE and not verdict.passed
    assert verdict.reasons and "green" in verdict.reasons[0]


@pytest.mark.parametrize(("measured", "reason"), [
    # more 5xx than requests: today's code computed a success rate above 100 %
    ({"blue": ClusterMeasurement(100, 0, 80), "green": ClusterMeasurement(100, 150, 80)}, "150 5xx out of 100"),
    ({"blue": ClusterMeasurement(100, 0, 80), "purple": ClusterMeasurement(100, 0, 80)},
     "destination cluster 'purple', which is not a cluster of this stack (blue, green)"),
    ({"blue": ClusterMeasurement(100, 0, 80), "green": ClusterMeasurement(100, 0, None)},
     "green: 100 requests but no latency samples"),
])
def test_impossible_measurements_are_inconclusive(measured, reason: str) -> None:
    verdict = judge(SPLIT, measured, RULES)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert reason in verdict.reasons[0]


def test_the_split_is_off_until_every_cluster_is_within_the_tolerance_with_enough_requests() -> None:
    m = ClusterMeasurement
    assert off_split(SPLIT, {"blue": m(520, 0, 80), "green": m(480, 0, 80)}, RULES) == []
    assert off_split(SPLIT, {"blue": m(900, 0, 80), "green": m(100, 0, 80)}, RULES) == [
        "blue 90.0% vs weight 50 (tolerance 5 points)", "green 10.0% vs weight 50 (tolerance 5 points)"]
    assert off_split({"blue": 97, "green": 3}, {"blue": m(1000, 0, 80)}, RULES) == [
        "green receives nothing (weight 3)"]
    assert off_split(SPLIT, {"blue": m(20, 0, 80), "green": m(20, 0, 80)}, RULES) == [
        "40 requests in all < 50 needed to see the split"]


# ------------------------------------------------------------------ convergence and the hold's window


def test_the_hold_starts_when_the_split_is_seen_and_its_window_never_reaches_back_before_that() -> None:
    clock = Clock()
    metrics = Timeline(clock)
    applied = clock.now
    metrics.live(applied - 3600, {"blue": 100, "green": 0})
    metrics.live(applied + 95, SPLIT)  # the URL map reaches the front ends 95 s after the update
    verdict, lines = run_hold(metrics, clock=clock)
    assert verdict.verdict is Verdict.PASS, lines
    converging = [r for r in verdict.reads if r.phase == "converge"]
    holding = [r for r in verdict.reads if r.phase == "hold"]
    # reads every 30 s from 60 s after the update (the first window lies wholly after it) until the split shows
    assert [r.at - applied for r in converging] == [60, 90, 120, 150]
    assert lines[-4] == "  step  split converged after 2m30s: blue 54.2% green 45.8%"
    converged = converging[-1].at
    assert all(r.at - r.window_seconds >= converged for r in holding)
    assert [(r.at - converged, r.window_seconds) for r in holding] == [(60, 60), (90, 90), (120, 120)]
    assert verdict.measured == {"blue": ClusterMeasurement(1200, 0, 80), "green": ClusterMeasurement(1200, 0, 80)}


def test_a_split_that_never_converges_fails_the_step_at_the_converge_timeout() -> None:
    clock = Clock()
    metrics = Timeline(clock)
    metrics.live(clock.now - 3600, {"blue": 100, "green": 0})  # the new weights never reach the data path
    verdict, _ = run_hold(metrics, clock=clock)
    assert verdict.verdict is Verdict.NOT_CONVERGED and not verdict.passed
    assert verdict.reasons == ("the observed split did not reach the step's weights within flip.convergeTimeout "
                               "300s: blue 100.0% vs weight 50 (tolerance 5 points); green receives nothing "
                               "(weight 50)",)
    assert clock.now - verdict.reads[0].at == 240  # first read at 60 s, the last at the 300 s timeout
    assert all(r.phase == "converge" for r in verdict.reads)


def test_a_short_hold_judges_its_own_traffic_not_the_previous_steps() -> None:
    """The old hold read a 60 s window 30 s after the update: half of it was the previous step's clean traffic,
    so green's 1.5 % of 5xx read as 99.3 % success and the failing split became the "last good" one."""
    clock = Clock()
    metrics = Timeline(clock, rps=40)
    applied = clock.now
    metrics.live(applied - 3600, {"blue": 40, "green": 60})
    metrics.live(applied, SPLIT, errors={"green": 1.5})
    verdict, lines = run_hold(metrics, hold=30, interval=30, clock=clock)
    assert verdict.verdict is Verdict.FAIL, lines
    assert verdict.reasons == ("green: success rate 98.50% < 99%",)
    assert all(r.at - r.window_seconds >= applied for r in verdict.reads)
    old_window = metrics.measure(SERVICES, 60, applied + 30)  # what the old hold judged
    assert judge(SPLIT, old_window, RULES).verdict is Verdict.PASS


def test_a_hold_shorter_than_one_judgement_is_held_for_two_scrape_intervals() -> None:
    clock = Clock()
    metrics = Timeline(clock)
    metrics.live(clock.now - 3600, SPLIT)
    verdict, lines = run_hold(metrics, hold=30, interval=30, clock=clock)
    assert "  hold 30s is shorter than one judgement needs; holding 60s" in lines
    assert verdict.verdict is Verdict.PASS
    assert [(r.phase, r.window_seconds) for r in verdict.reads] == [("converge", 60), ("hold", 60)]


def test_inconclusive_reads_within_the_budget_are_waited_out_and_one_more_fails_the_step() -> None:
    clock = Clock()
    metrics = Timeline(clock)
    metrics.live(clock.now - 3600, SPLIT)
    # reads 2 and 3 (the first two of the hold) fail: 2 in a row is flip.inconclusiveLimit, tolerated
    metrics.failures = lambda n: "the metrics API answered 503" if n in (2, 3) else None
    verdict, lines = run_hold(metrics, clock=clock)
    assert verdict.verdict is Verdict.PASS, lines
    assert [r.conclusive for r in verdict.reads] == [True, False, False, True]

    clock = Clock()
    metrics = Timeline(clock)
    metrics.live(clock.now - 3600, SPLIT)
    metrics.failures = lambda n: "the metrics API answered 503" if n >= 2 else None
    verdict, lines = run_hold(metrics, clock=clock)
    assert verdict.verdict is Verdict.INCONCLUSIVE and not verdict.passed
    assert verdict.reasons == ("3 metric reads in a row could not be trusted (flip.inconclusiveLimit 2); the last: "
                               "the metrics API answered 503",)
    assert "  step  inconclusive read 2 of at most 2 in a row: the metrics API answered 503" in lines


def test_the_hold_does_not_end_on_an_inconclusive_read() -> None:
    clock = Clock()
    metrics = Timeline(clock)
    metrics.live(clock.now - 3600, SPLIT)
    metrics.failures = lambda n: "cut off" if n == 4 else None  # the read at the end of the hold
    verdict, _ = run_hold(metrics, clock=clock)
    assert verdict.verdict is Verdict.PASS
    assert [(r.phase, r.conclusive) for r in verdict.reads][-2:] == [("hold", False), ("hold", True)]
    assert verdict.measured == verdict.reads[-1].measured


# ------------------------------------------------------------------ edge users only, through the real client


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus(lambda kind, window, at: {}).start()
    yield fake
    fake.stop()


def test_a_step_with_only_edge_users_is_judged_from_the_gateways_reports_each_request_once(
        prometheus: FakePrometheus) -> None:
    prometheus.by_reporter = edge_traffic(lambda: SPLIT, rps=20)
    client = PrometheusClient(prometheus.url)
    verdict, lines = run_hold(client)
    assert verdict.verdict is Verdict.PASS, lines
    # 120 s at 20 rps, half each: the gateway's reports, not the sum with the sidecars' (which doubles it)
    assert verdict.measured == {"blue": ClusterMeasurement(1200, 0, 80), "green": ClusterMeasurement(1200, 0, 80)}
    doubled = prometheus.values('sum(increase(istio_requests_total{destination_service=~"x"}[120s]))', 120, 0)
    assert doubled == {"blue": 2400, "green": 2400}
    assert all('reporter="source"' in q for q, _ in prometheus.queries)
    # Only the gateways' series exist (no sidecar reports at all): the same verdict from the same numbers.
    edge = edge_traffic(lambda: SPLIT, rps=20)
    prometheus.by_reporter = lambda reporter, kind, window, at: edge(reporter, kind, window, at) \
        if reporter == "source" else {}
    only_gateways, _ = run_hold(client)
    assert (only_gateways.verdict, only_gateways.measured) == (Verdict.PASS, verdict.measured)


def test_no_healthy_upstream_at_the_gateway_is_never_a_pass(prometheus: FakePrometheus) -> None:
    """The gateway answers 503 (UH) for green's share and reports it with destination_cluster "unknown";
    the server side never sees those requests. Counted by `destination`, blue alone would pass."""
    prometheus.by_reporter = edge_traffic(lambda: SPLIT, rps=20, unhealthy=lambda c: c == "green")
    verdict, _ = run_hold(PrometheusClient(prometheus.url))
    assert not verdict.passed
    assert verdict.verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_CONVERGED)
    assert "5xx answers of the routed services name no destination cluster" in verdict.reasons[0]


# ------------------------------------------------------------------ answers that cannot be trusted


@pytest.mark.parametrize(("name", "answer", "message"), [
    ("NaN requests", Answer(vector({"blue": "NaN"})), "blue: the count of requests is NaN"),
    ("+Inf requests", Answer(vector({"blue": "+Inf"})), "blue: the value inf is not a finite, non-negative number"),
    ("negative", Answer(vector({"blue": "-12"})), "blue: the value -12 is not a finite, non-negative number"),
    ("non-numeric", Answer(vector({"blue": "lots"})), "blue: the value 'lots' is not a number"),
    ("number not string", Answer(vector({"blue": 12})), 'blue: the sample is not [time, "value"]'),
    ("no cluster label", Answer(b'{"status":"success","data":{"resultType":"vector","result":'
                                b'[{"metric":{},"value":[0,"5"]}]}}'), "a series carries no destination_cluster"),
    ("two series, one cluster", Answer(b'{"status":"success","data":{"resultType":"vector","result":['
                                       b'{"metric":{"destination_cluster":"blue"},"value":[0,"5"]},'
                                       b'{"metric":{"destination_cluster":"blue"},"value":[0,"6"]}]}}'),
     "blue: two series for one cluster"),
    ("a matrix", Answer(b'{"status":"success","data":{"resultType":"matrix","result":[]}}'),
     "expected an instant vector, got 'matrix'"),
    ("non-UTF-8", Answer(b'{"status":"success","data":\xff\xfe}'), "bytes that are not UTF-8"),
    ("not JSON", Answer(b"<html>502 Bad Gateway</html>"), "something that is not JSON"),
    ("truncated", Answer(vector({"blue": "12"})[:40], length=200), "cut off"),
    ("truncated JSON", Answer(vector({"blue": "12"})[:40]), "something that is not JSON (or was cut off)"),
])
def test_an_answer_that_cannot_be_true_is_inconclusive(prometheus: FakePrometheus, name: str, answer: Answer,
                                                       message: str) -> None:
    prometheus.responder = traffic(lambda: SPLIT, rps=10)
    prometheus.answer = lambda n, kind: answer if kind == "requests" else None
    with pytest.raises(Inconclusive) as error:
        PrometheusClient(prometheus.url).measure(SERVICES, 60, 1000.0)
    assert message in str(error.value), name


SAMPLE_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["NaN", "+Inf", "-Inf", "1e400"]),
    st.text(max_size=8), st.integers(), st.none(), st.floats(allow_nan=False, allow_infinity=False))


@settings(deadline=None)
@given(st.dictionaries(st.sampled_from(["blue", "green", ""]), SAMPLE_VALUES, max_size=3))
def test_whatever_the_api_answers_a_value_is_a_finite_non_negative_number_or_nan_or_the_read_is_refused(
        values: dict[str, Any]) -> None:
    body = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"destination_cluster": c}, "value": [0, v]} for c, v in values.items()]}}
    try:
        parsed = _vector(body)
    except PrometheusError:
        return
    assert set(parsed) <= {"blue", "green"}
    assert all(math.isnan(v) or (math.isfinite(v) and v >= 0) for v in parsed.values())


def test_an_infinite_p99_is_inconclusive_and_a_nan_p99_means_no_samples(prometheus: FakePrometheus) -> None:
    prometheus.responder = traffic(lambda: {"blue": 100, "green": 0}, rps=10)
    prometheus.answer = lambda n, kind: Answer(vector({"blue": "+Inf"})) if kind == "p99" else None
    with pytest.raises(Inconclusive, match="blue: the value inf"):
        PrometheusClient(prometheus.url).measure(SERVICES, 60, 1000.0)
    prometheus.answer = lambda n, kind: Answer(vector({"blue": "NaN"})) if kind == "p99" else None
    measured = PrometheusClient(prometheus.url).measure(SERVICES, 60, 1000.0)
    assert measured == {"blue": ClusterMeasurement(600, 0, None)}
    # ... and with enough requests, a p99 that cannot be computed makes the read inconclusive, not a pass
    assert judge({"blue": 100, "green": 0}, measured, RULES).verdict is Verdict.INCONCLUSIVE


# ------------------------------------------------------------------ total deadlines against dripping servers


DRIP = 0.05  # seconds between bytes: far below any read timeout, so only a total deadline stops it


def test_a_dripping_metrics_api_is_cut_off_at_the_total_deadline(prometheus: FakePrometheus) -> None:
    body = vector({"blue": "12", "green": "13"}) + b" " * 200  # ~15 s at one byte per DRIP
    prometheus.answer = lambda n, kind: Answer(body, drip=DRIP)
    client = PrometheusClient(prometheus.url, timeout=30.0, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(PrometheusError, match="no complete answer within 1s"):
        client.query("up", 1000.0)
    assert time.monotonic() - started < 2.0


class _DrippingApiServer(LoopbackServer):
    """A Kubernetes API server that sends its headers, then one byte of the body every DRIP seconds."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                body = b'{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"sample"}}' + b" " * 300
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(DRIP)
                except OSError:
                    return

        super().__init__(Handler)


def test_a_dripping_kubernetes_api_is_cut_off_at_the_total_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client as k8s

    server = _DrippingApiServer().start()
    try:
        kubeconfig = (
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            f"clusters: [{{name: c, cluster: {{server: '{server.url}'}}}}]\n"
            "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n")
        cluster = ClusterOutputs("blue", "europe-west1", "network1", server.url.removeprefix("http://"),
                                 "203.0.113.1", kubeconfig)
        monkeypatch.setattr(kube, "REQUEST_DEADLINE_SECONDS", 1.0)
        api = k8s.CoreV1Api(kube.default_client_factory(cluster))
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as error:
            api.read_namespace("sample", _request_timeout=kube.REQUEST_TIMEOUT)
        assert time.monotonic() - started < 2.0
        failure = kube.describe_failure(cluster, error.value)
        assert failure.message == f"https://{cluster.endpoint} gave no complete answer within 1s"
    finally:
        server.stop()
