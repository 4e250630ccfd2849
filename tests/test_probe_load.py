"""The probe's load feeds a flip's judgement: `verify --probe --duration 10m --rate 5` through the edge.

The probe runs as the README writes it, against the fake clusters of tests/test_verify.py, on a fake
clock; a stand-in for the global load balancer picks a cluster per request by the weights, and the
fake Prometheus reports exactly those requests as the ingress gateways would (reporter="source").
The flip's own reader and judge (tools/flip/prometheus.py, tools/flip/judge.py) then judge a hold.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from components.config import FlipSpec
from offline.configs import base, with_edge, write_stack_file
from tests.fakes.fake_kube import staged_mesh
from tests.fakes.fake_prometheus import FakePrometheus, sent_edge_traffic
from tests.test_verify import edge_outputs, mesh, staged_edge  # noqa: F401  (mesh is a fixture)
from tools.flip.judge import Verdict, judge
from tools.flip.prometheus import PrometheusClient
from tools.verify.load import LoadPlan, sustained_load

FQDN = "helloworld.sample.svc.cluster.local"
HOST = "hello.example.com"
WEIGHTS = {"blue": 90, "green": 10}  # a flip's first step: the 10 % cluster is the one short of requests
FLIP = FlipSpec()


class Clock:
    """Fake time: `sleep` moves it on."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def load_balancer(weights: dict[str, int], clock: Clock, sent: list[tuple[float, str, int | None]],
                  status: Callable[[str], int | None] = lambda cluster: 200) -> Callable[[str, str], int | None]:
    """The URL map's weighted split, request by request (every 100 requests follow the weights exactly)."""
    order = itertools.cycle([c for c, pct in weights.items() for _ in range(pct)])

    def request(url: str, host: str) -> int | None:
        assert (url, host) == ("http://34.120.0.9", HOST)
        cluster = next(order)
        sent.append((clock(), cluster, status(cluster)))
        return status(cluster)

    return request


def judged(sent: list[tuple[float, str, int | None]], at: float, hold: int = FLIP.hold_seconds):
    """A hold of `hold` seconds ending at `at`, read and judged as the flip does."""
    fake = FakePrometheus(lambda kind, window, at: {}).start()
    try:
        fake.by_reporter = sent_edge_traffic(sent)
        measured = PrometheusClient(fake.url).measure([FQDN], hold, at)
    finally:
        fake.stop()
    return judge(WEIGHTS, measured, FLIP)


def run_probe(mesh, clock: Clock, sent: list, *extra: str, status: Callable[[str], int | None] = lambda c: 200):  # noqa: F811
    config = write_stack_file(mesh.tmp / "Pulumi.edge.yaml", with_edge(base()))
    for f in mesh.fakes.values():
        f.job_hook = staged_mesh({"blue": {"blue": 100}, "green": {"blue": 100}})
    return mesh.run(*mesh.probe_args("--config", str(config), *extra), outputs=edge_outputs(mesh),
                    edge_request=staged_edge({"blue": 100}, []), edge_load=load_balancer(WEIGHTS, clock, sent, status),
                    clock=clock, sleep=clock.sleep)


def test_a_sustained_probe_load_through_the_edge_leads_the_flips_judge_to_a_pass(mesh) -> None:  # noqa: F811
    clock, sent = Clock(), []
    start = clock()
    code, out, err = run_probe(mesh, clock, sent, "--duration", "10m", "--rate", "5")
    assert code == 0, out + err
    # 5 requests a second for 10 minutes, paced, and nothing after.
    assert len(sent) == 3000
    assert sent[0][0] == start and sent[-1][0] == pytest.approx(start + 599.8)
    assert all(b[0] - a[0] == pytest.approx(0.2) for a, b in itertools.pairwise(sent))
    assert (f"load: 5 requests/s to each of {HOST} through http://34.120.0.9 for 600 s (3000 requests); a cluster "
            f"given at least 4 % of the split receives flip.minRequests (50) in a flip.hold (300 s)") in out
    progress = [line for line in out.splitlines() if line.startswith("load: ") and "requests sent," in line]
    assert len(progress) == 19 and progress[0] == "load: 151/3000 requests sent, 0 failed or 5xx, 570 s left"
    assert (f"load: 3000 requests to http://34.120.0.9 with Host {HOST}: 3000 answered, 0 failed or 5xx "
            "(counted by a flip's judge: the ingress gateways report them)") in out
    # Any hold inside the load's ten minutes sees enough requests at 10 %: the judge passes the step.
    for end in (start + 300, start + 450, start + 600):
        verdict = judged(sent, end)
        assert verdict.verdict is Verdict.PASS, verdict.reasons
        assert verdict.measured["green"].requests >= FLIP.min_requests


def test_the_judgement_fed_by_the_load_still_fails_a_failing_cluster(mesh) -> None:  # noqa: F811
    """The load is evidence, not a pass: a cluster answering 503 fails the step."""
    clock, sent = Clock(), []
    code, out, _ = run_probe(mesh, clock, sent, "--duration", "5m", "--rate", "5",
                             status=lambda c: 503 if c == "green" else 200)
    assert code == 0, out
    verdict = judged(sent, clock())
    assert verdict.verdict is Verdict.FAIL and "green: success rate 0.00% < 99%" in verdict.reasons[0]


def test_the_default_burst_gives_a_ten_percent_cluster_too_little_to_judge(mesh) -> None:  # noqa: F811
    """Why the sustained mode exists: 200 requests at once, before a hold, leave 20 at 10 % (minRequests 50),
    and a hold that starts later sees none of them."""
    clock, sent = Clock(), []
    code, out, _ = run_probe(mesh, clock, sent)
    assert code == 0, out
    assert len(sent) == 200 and {t for t, _, _ in sent} == {clock()}
    assert judged(sent, clock()).verdict is Verdict.NO_TRAFFIC
    assert judged(sent, clock() + 400).verdict is Verdict.NO_TRAFFIC


@pytest.mark.parametrize(("args", "message"), [
    (["--duration", "10m"], "--duration goes with --probe"),
    (["--probe", "--rate", "5"], "--rate goes with --duration"),
    (["--probe", "--duration", "30s"], "--duration 30s must be from 60s (one judgement's window) to 7200s"),
    (["--probe", "--duration", "3h"], "--duration 10800s must be from 60s (one judgement's window) to 7200s"),
    (["--probe", "--duration", "soon"], "--duration 'soon' must be a duration such as 600, 90s, 10m or 1h"),
    (["--probe", "--duration", "10m", "--rate", "50"], "--rate 50 must be from 0.1 to 20"),
])
def test_bad_load_arguments_are_refused_naming_the_argument(mesh, args: list[str], message: str) -> None:  # noqa: F811
    config = write_stack_file(mesh.tmp / "Pulumi.edge.yaml", with_edge(base()))
    code, out, err = mesh.run(*args, "--config", str(config), outputs=edge_outputs(mesh))
    assert code == 2 and message in err, err
    assert "load:" not in out


def test_without_the_edge_a_sustained_load_is_refused(mesh) -> None:  # noqa: F811
    code, _, err = mesh.run("--probe", "--duration", "10m")
    assert code == 2 and "--duration sends load through the edge, but the stack has no `edge` output" in err


def test_a_slow_edge_makes_fewer_requests_never_a_longer_run() -> None:
    clock, lines = Clock(), []
    start = clock()

    def slow(url: str, host: str) -> int:
        clock.sleep(1.0)  # each answer takes a second: 5 requests/s cannot be kept
        return 200

    counts = sustained_load("http://edge", LoadPlan((HOST,), 5.0, 120), slow, clock=clock, sleep=clock.sleep,
                            report=lines.append)
    assert counts[0].answered == 120 and clock() - start <= 121
    assert lines[-1] == "load: the edge answered slower than --rate 5: 120 of 600 requests sent in 120 s"


DOCS = Path(__file__).resolve().parents[1] / "docs"


def documented_load_commands() -> list[tuple[str, str]]:
    """Every `make verify ... --duration ...` line of docs/flip.md and docs/verify.md, as (STACK, ARGS)."""
    found = []
    for doc in ("flip.md", "verify.md"):
        for line in (DOCS / doc).read_text().splitlines():
            command = line.split("#")[0].strip()
            if command.startswith("make verify") and "--duration" in command:
                make, target, stack, args = shlex.split(command)
                assert (make, target) == ("make", "verify") and stack.startswith("STACK=") and args.startswith("ARGS=")
                found.append((stack.removeprefix("STACK="), args.removeprefix("ARGS=")))
    return found


def test_the_documented_load_commands_send_what_they_say(mesh) -> None:  # noqa: F811
    """The flags the runbooks show, as make passes them (`--stack $(STACK) $(ARGS)`), on the fake clock."""
    commands = documented_load_commands()
    assert {s for s, _ in commands} == {"prod", "dev"}
    for stack, args in commands:
        clock, sent = Clock(), []
        code, out, err = run_probe(mesh, clock, sent, "--stack", stack, *shlex.split(args))
        assert code == 0, out + err
        assert len(sent) == 5 * 30 * 60 and sent[-1][0] - sent[0][0] == pytest.approx(30 * 60 - 0.2)
        assert judged(sent, clock()).verdict is Verdict.PASS
