"""`make replace` runs the phases: blue replaced by blue2 end to end under the test doubles.

The doubles: the fake Automation API stack (tests/fakes/fake_automation.py) for the flip, which is
`tools.flip` itself with its gate, judge, lease and journal; fake Kubernetes API servers for every
cluster (the parity gate and the flip's readiness gate read them); a fake Prometheus whose traffic
follows the weights deployed (the flip's judge and the soak read it). `deploy` stands in for
`pulumi up` of the whole stack: each cluster the stack file declares gets a fake API server (with
the sample app when the team's delivery has put it there), a cluster no longer declared is gone,
and every cluster serves the file's split. A kill is an exception no code path catches
(BaseException), raised from inside a phase: what a SIGKILL leaves is what this leaves.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import config as stack_config
from components.traffic import virtual_service
from offline import ROOT
from offline.configs import base, write_stack_file
from offline.engine import run_program
from tests.fakes import fake_kube
from tests.fakes.fake_automation import FakeStack
from tests.fakes.fake_kube import FakeCluster
from tests.fakes.fake_prometheus import FakePrometheus, traffic
from tools.flip import cli as flip_cli
from tools.flip import journal as flip_journals
from tools.flip.lease import FileStore, read_lease
from tools.flip.prometheus import PrometheusClient
from tools.flip.stack import StackError
from tools.replace import runner as phases
from tools.replace.cli import main
from tools.replace.plan import parseable
from tools.replace.preview import AddPreview, check_add
from tools.verify.checks import StackOutputs, parse_outputs
from tools.verify.kube import default_client_factory

IMAGE = "docker.io/istio/examples-helloworld-v1:1.0"
DIGEST = f"docker.io/istio/examples-helloworld-v1@sha256:{'a' * 64}"
_ADD_PREVIEWS: dict[str, AddPreview] = {}


class Killed(BaseException):
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0
        self.kill_in_sleep: int | None = None  # raise Killed at the n-th sleep from now on
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.kill_in_sleep is not None and self.sleeps >= self.kill_in_sleep:
            self.kill_in_sleep = None
            raise Killed
        self.now += max(seconds, 0.0)


class World:
    """The dev-like stack (blue 100, green 0) and everything the phases talk to."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.stack_file = tmp / "Pulumi.dev.yaml"
        config = base()
        config["ca"] = {"algorithm": "ECDSA"}
        config["flip"] = {"steps": [50, 100], "hold": "2m", "interval": "30s", "minRequests": 50}
        write_stack_file(self.stack_file, config)
        self.store = FileStore(tmp / "state")
        self.clock = Clock()
        self.clusters: dict[str, FakeCluster] = {}
        self.delivered = True  # the team's delivery (or Config Sync) puts the app into a new cluster
        self.kill: dict[str, int] = {}  # port -> Killed on its n-th call
        self.calls: dict[str, int] = {}
        self.flip_stack: FakeStack | None = None
        self.deployed: dict[str, int] = self.file_weights()
        self.prometheus = FakePrometheus(traffic(lambda: self.deployed, 20.0)).start()
        self.out = io.StringIO()
        self.deploy()

    def stop(self) -> None:
        for f in self.clusters.values():
            f.stop()
        self.prometheus.stop()

    def _maybe_kill(self, port: str) -> None:
        self.calls[port] = self.calls.get(port, 0) + 1
        if self.kill.get(port) == self.calls[port]:
            del self.kill[port]
            raise Killed

    def parsed(self) -> stack_config.StackConfig:
        raw = yaml.safe_load(self.stack_file.read_text())["config"]
        project = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("gke-istio-mesh:") and k != "ca"}
        return stack_config.parse(parseable(project), project="mesh-test-project")

    def file_weights(self) -> dict[str, int]:
        return dict(self.parsed().traffic.weights)

    # -- `pulumi up` of the whole stack

    def deploy(self) -> None:
        self._maybe_kill("deploy")
        cfg = self.parsed()
        names = [c.name for c in cfg.clusters]
        for gone in [n for n in self.clusters if n not in names]:
            self.clusters.pop(gone).stop()
        for i, name in enumerate(names):
            if name not in self.clusters:
                f = FakeCluster(name).start()
                f.put(fake_kube.namespace("istio-system", {"topology.istio.io/network": f"network{i}"}))
                f.put(fake_kube.namespace("sample", {"istio-injection": "enabled"}))
                f.put(fake_kube.eastwest_service(f"34.71.20.{i + 1}"))
                f.put(fake_kube.endpoint_slice("istio-eastwestgateway", "istio-system", ready=2))
                if name in ("blue", "green") or self.delivered:
                    self.put_app(f)
                self.clusters[name] = f
        for f in self.clusters.values():
            for service in cfg.traffic.services:
                f.put(virtual_service(service, cfg.traffic.weights_for(service)))
        self.deployed = dict(cfg.traffic.weights)

    @staticmethod
    def put_app(f: FakeCluster) -> None:
        app = fake_kube.workload("Deployment", "helloworld-v1", "sample", {"helloworld": IMAGE})
        f.put(app)
        for i in range(2):
            f.put(fake_kube.workload_pod(app, i, {"helloworld": DIGEST}))
        f.put(fake_kube.endpoint_slice("helloworld", "sample", ready=2))

    def raw_outputs(self) -> dict[str, Any]:
        cfg = self.parsed()
        return {"clusters": {c.name: {"name": c.name, "region": c.region, "network": c.network,
                                      "endpoint": self.clusters[c.name].url,
                                      "eastWestGatewayAddress": f"34.71.20.{i + 1}"}
                             for i, c in enumerate(cfg.clusters) if c.name in self.clusters},
                "kubeconfigs": {n: f.kubeconfig() for n, f in self.clusters.items()},
                "rootCertPem": "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n"}

    def outputs(self) -> StackOutputs:
        self._maybe_kill("outputs")
        return parse_outputs(self.raw_outputs())

    # -- tools.flip, on the fake Automation API stack

    def flip(self, argv: Sequence[str]) -> int:
        self._maybe_kill("flip")
        stack = FakeStack("dev", self.stack_file, self.clusters, error=StackError)
        stack.outputs = self.raw_outputs  # type: ignore[method-assign]
        self.flip_stack = stack

        def follow() -> dict[str, int]:
            self.deployed = dict(stack.deployed)
            return self.deployed

        self.prometheus.responder = traffic(follow, 20.0)
        code = flip_cli.main(["--stack", "dev", "--prometheus-url", self.prometheus.url, *argv],
                             open_stack=lambda name: stack, clock=self.clock, sleep=self.clock.sleep,
                             store=self.store, stack_dir=self.tmp, out=self.out, err=self.out)
        self.deployed = dict(stack.deployed)
        return code

    def add_preview(self, before: Mapping[str, Any], added: Mapping[str, Any], new: str, network: str) -> AddPreview:
        key = json.dumps([before, added, new, network], sort_keys=True)
        if key not in _ADD_PREVIEWS:  # the same configs give the same preview: run the engine once per session
            _ADD_PREVIEWS[key] = check_add(run_program(parseable(before), gcp_project="mesh-test-project"),
                                           run_program(parseable(added), gcp_project="mesh-test-project"),
                                           new, network)
        return _ADD_PREVIEWS[key]

    def ports(self, args: argparse.Namespace, path: Path, project: str) -> phases.Ports:
        return phases.Ports(store=self.store, stack_file=path, project=project, deploy=self.deploy,
                            outputs=self.outputs, client_factory=_factory, flip=self.flip,
                            metrics=PrometheusClient(self.prometheus.url), clock=self.clock, sleep=self.clock.sleep,
                            check_add=self.add_preview, out=self.out)

    def replace(self, *argv: str) -> int:
        return main(["--stack", "dev", "--stack-file", str(self.stack_file), *argv], make_ports=self.ports)

    def served(self) -> dict[str, dict[str, int]]:
        return fake_kube.served_splits(self.clusters)

    def journal(self) -> phases.Journal:
        j = phases.read(self.store, "dev")
        assert j is not None
        return j


def _factory(c: Any) -> Any:
    return default_client_factory(c)


START = ("add", "--replace", "blue", "--with", "blue2", "--soak", "10m")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.stop()


def deploy_check(w: World) -> int:
    """`python -m tools.flip --stack dev --deploy-check`, as the deploy workflow runs it before `pulumi up`."""
    out = io.StringIO()
    code = flip_cli.main(["--stack", "dev", "--deploy-check"], store=w.store, stack_dir=w.tmp, out=out, err=out)
    w.out.write(out.getvalue())
    return code


def _replaced(w: World) -> None:
    names = [c.name for c in w.parsed().clusters]
    assert names == ["green", "blue2"], names
    assert w.file_weights() == {"green": 0, "blue2": 100}
    assert set(w.clusters) == {"green", "blue2"}
    assert all(split == {"green": 0, "blue2": 100} for split in w.served().values()), w.served()
    assert w.journal().status == phases.DONE
    assert read_lease(w.store, "dev") is None
    assert deploy_check(w) == 0, "the deploy workflow's check: the flip's weights are in the file"


def test_blue_is_replaced_by_blue2_through_every_phase(world: World) -> None:
    code = world.replace(*START[1:], "--confirm-retire")
    out = world.out.getvalue()
    assert code == phases.EXIT_OK, out
    for line in ("add: blue2 written into Pulumi.dev.yaml at weight 0", "parity: blue2 runs what blue runs",
                 "flip: blue=100,green=0,blue2=0 -> blue=0,green=0,blue2=100", "flip dev:",
                 "soak: no request reached blue in 600s", "retire: blue removed", "replace: blue2 has replaced blue"):
        assert line in out, out
    _replaced(world)
    assert world.journal().done == list(phases.PHASES)


def test_retire_waits_for_the_explicit_confirmation(world: World) -> None:
    assert world.replace(*START[1:]) == phases.EXIT_CONFIRM
    assert "blue" in [c.name for c in world.parsed().clusters] and "blue" in world.clusters
    assert world.journal().status == phases.PAUSED and world.journal().done == ["add", "parity", "flip", "soak"]
    assert world.replace("--resume", "--confirm-retire") == phases.EXIT_OK
    _replaced(world)


def test_until_stops_after_a_phase_and_resume_goes_on(world: World) -> None:
    assert world.replace(*START[1:], "--until", "add") == phases.EXIT_OK
    assert world.journal().done == ["add"] and world.file_weights()["blue2"] == 0
    assert world.replace(*START[1:]) == phases.EXIT_HELD, "a second replacement is refused while one is recorded"
    assert world.replace("--resume", "--until", "add") == phases.EXIT_USAGE
    assert "--until add: that phase is already done" in world.out.getvalue()
    assert world.replace("--resume", "--until", "flip") == phases.EXIT_OK
    assert world.journal().done == ["add", "parity", "flip"] and world.file_weights()["blue2"] == 100
    assert world.replace("--resume", "--confirm-retire") == phases.EXIT_OK
    _replaced(world)


def test_a_parity_failure_stops_before_any_traffic_moves(world: World) -> None:
    world.delivered = False
    assert world.replace(*START[1:], "--confirm-retire") == phases.EXIT_STOPPED
    out = world.out.getvalue()
    assert "Deployment/helloworld-v1: runs in blue but not in blue2" in out
    assert "replace stopped in phase parity" in out
    j = world.journal()
    assert (j.status, j.done) == (phases.PAUSED, ["add"])
    assert world.file_weights() == {"blue": 100, "green": 0, "blue2": 0}
    assert all(split["blue"] == 100 for split in world.served().values())
    assert flip_journals.read(world.store, "dev") is None, "the flip never started"
    World.put_app(world.clusters["blue2"])  # the team delivers it
    assert world.replace("--resume", "--confirm-retire") == phases.EXIT_OK
    _replaced(world)


def left_as_sigkill_leaves_it(world: World) -> None:
    """A Python exception runs the `finally` that releases the lease; SIGKILL does not: put it back."""
    holder = world.journal().lease_holder
    assert holder
    world.store.write(".pulumi-flip/gke-istio-mesh/dev/lease.json",
                      json.dumps({"holder": holder, "since": "2026-12-04T21:00:00Z", "stack": "dev"}).encode())


# (port, its call that dies): one kill inside each phase.
KILLS = {
    "add": ("deploy", 2),  # `pulumi up` of the add (the fixture's own deploy was call 1)
    "parity": ("outputs", 1),
    "flip": ("sleep", 3),  # during the flip's holds
    "soak": ("sleep", None),  # during the soak's wait
    "retire": ("deploy", 3),
}


@pytest.mark.parametrize("phase", list(KILLS))
def test_a_kill_in_each_phase_is_resumed_to_the_end(world: World, phase: str) -> None:
    port, nth = KILLS[phase]
    if port == "sleep":
        if phase == "soak":
            world.replace(*START[1:], "--until", "flip")
            world.clock.kill_in_sleep = world.clock.sleeps + 1
            with pytest.raises(Killed):
                world.replace("--resume", "--confirm-retire")
        else:
            world.clock.kill_in_sleep = nth
            with pytest.raises(Killed):
                world.replace(*START[1:], "--confirm-retire")
    else:
        world.kill[port] = nth
        with pytest.raises(Killed):
            world.replace(*START[1:], "--confirm-retire")
    j = world.journal()
    assert (j.status, j.current) == (phases.RUNNING, phase), (j.status, j.current, j.done)
    if port == "deploy":  # killed in `pulumi up`, under the stack's lease
        left_as_sigkill_leaves_it(world)
    assert world.replace("--resume", "--confirm-retire") == phases.EXIT_OK, world.out.getvalue()
    if phase == "flip":
        assert "resuming it (tools.flip --resume)" in world.out.getvalue()
    _replaced(world)


def test_an_abort_after_the_flip_leaves_the_old_cluster_serving(world: World) -> None:
    assert world.replace(*START[1:], "--until", "flip") == phases.EXIT_OK
    assert world.file_weights()["blue2"] == 100
    assert world.replace("--abort") == phases.EXIT_OK
    assert world.file_weights() == {"blue": 100, "green": 0}
    assert [c.name for c in world.parsed().clusters] == ["blue", "green"]
    assert set(world.clusters) == {"blue", "green"}
    assert all(split == {"blue": 100, "green": 0} for split in world.served().values()), world.served()
    assert world.journal().status == phases.ABORTED
    assert world.replace("--resume") == phases.EXIT_USAGE
    assert deploy_check(world) == 0


def test_an_abort_of_a_killed_flip_rolls_it_back_first(world: World) -> None:
    world.clock.kill_in_sleep = 3
    with pytest.raises(Killed):
        world.replace(*START[1:], "--confirm-retire")
    assert world.journal().current == "flip"
    assert world.replace("--abort") == phases.EXIT_OK, world.out.getvalue()
    assert [c.name for c in world.parsed().clusters] == ["blue", "green"]
    assert all(split["blue"] == 100 for split in world.served().values())


def test_the_soak_fails_when_the_old_cluster_still_gets_requests(world: World) -> None:
    assert world.replace(*START[1:], "--until", "flip") == phases.EXIT_OK
    # A client outside the mesh still calls blue directly.
    world.prometheus.responder = traffic(lambda: {"blue": 5, "blue2": 95}, 20.0)
    assert world.replace("--resume", "--confirm-retire") == phases.EXIT_STOPPED
    assert "soak: blue received 600 requests of the routed services in the last 600s" in world.out.getvalue()
    assert "blue" in world.clusters and world.journal().done == ["add", "parity", "flip"]


def test_resume_and_abort_without_a_replacement_are_refused(world: World, capsys) -> None:
    assert world.replace("--resume") == phases.EXIT_USAGE
    assert "no replacement of stack dev is in progress (journal: none)" in capsys.readouterr().err


def test_unusable_metrics_in_the_soak_follow_the_flips_inconclusive_budget(world: World) -> None:
    """As a flip's hold: a few unusable reads are waited out; more than flip.inconclusiveLimit in a row stop it."""
    assert world.replace(*START[1:], "--until", "flip") == phases.EXIT_OK
    first = len(world.prometheus.queries)
    world.prometheus.fail_on = lambda n: (503, "backend unavailable") if n <= first + 2 else None
    assert world.replace("--resume", "--until", "soak") == phases.EXIT_OK, world.out.getvalue()
    assert "soak: no request reached blue" in world.out.getvalue()

    (world.tmp / "other").mkdir()
    other = World(world.tmp / "other")
    try:
        assert other.replace(*START[1:], "--until", "flip") == phases.EXIT_OK
        other.prometheus.fail_on = lambda n: (503, "backend unavailable")
        assert other.replace("--resume", "--confirm-retire") == phases.EXIT_STOPPED
        assert "soak: 5 consecutive metric reads were inconclusive (flip.inconclusiveLimit 4)" in other.out.getvalue()
        assert "blue" in other.clusters and other.journal().done == ["add", "parity", "flip"]
    finally:
        other.stop()


def test_a_stack_file_edited_between_phases_is_not_overwritten(world: World) -> None:
    assert world.replace(*START[1:], "--until", "soak") == phases.EXIT_OK
    text = world.stack_file.read_text()
    world.stack_file.write_text(text.replace("meshId: mesh1", "meshId: mesh2"))
    assert world.replace("--resume", "--confirm-retire") == phases.EXIT_STOPPED
    assert "retire: Pulumi.dev.yaml was edited since the replacement planned it (meshId differ)" in world.out.getvalue()
    assert "blue" in [c.name for c in world.parsed().clusters] and "meshId: mesh2" in world.stack_file.read_text()


def test_resume_names_an_argument_that_is_not_the_recorded_replacement(world: World, capsys) -> None:
    assert world.replace(*START[1:], "--until", "add") == phases.EXIT_OK
    assert world.replace("--resume", "--with", "blue3") == phases.EXIT_USAGE
    assert "--resume: --with 'blue3' is not the recorded replacement of blue by blue2" in capsys.readouterr().err


def test_the_runbooks_phase_commands_run_as_written(world: World, tmp_path: Path) -> None:
    """docs/replace.md's `make replace` lines that run phases, in the runbook's order, on the doubles."""
    runbook = (ROOT / "docs" / "replace.md").read_text()
    lines = [(stack, shlex.split(args)) for stack, args in
             re.findall(r'^make replace STACK=(\w+) ARGS="([^"]*)"$', runbook, re.M)
             if "--plan" not in args and "--check-parity" not in args]
    assert [argv[0] for _, argv in lines] == ["--replace", "--resume", "--resume", "--abort"], lines
    assert all(stack == "dev" for stack, _ in lines)
    for _, argv in lines[:3]:
        assert world.replace(*argv) in (phases.EXIT_OK,), world.out.getvalue()
    _replaced(world)

    (tmp_path / "again").mkdir()
    again = World(tmp_path / "again")
    try:
        assert again.replace(*lines[0][1]) == phases.EXIT_OK
        assert again.replace(*lines[3][1]) == phases.EXIT_OK
        assert [c.name for c in again.parsed().clusters] == ["blue", "green"]
    finally:
        again.stop()


def test_the_real_wiring_needs_the_flips_backend_and_names_it(world: World, monkeypatch, capsys) -> None:
    """Without test doubles the journal lives where the flip's lease does: an unsupported backend is named."""
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://bucket/state")
    code = main(["--stack", "dev", "--stack-file", str(world.stack_file), "--replace", "blue", "--with", "blue2"])
    assert code == phases.EXIT_USAGE
    assert "backend s3://bucket/state: the flip's lease and journal live beside the state" in capsys.readouterr().err
    assert "blue2" not in world.stack_file.read_text(), "nothing was written"


def test_a_resume_takes_over_only_the_lease_its_killed_run_left(world: World) -> None:
    world.kill["deploy"] = 2  # killed in the add's `pulumi up`, holding the lease
    with pytest.raises(Killed):
        world.replace(*START[1:], "--until", "add")
    left_as_sigkill_leaves_it(world)
    lease_key = ".pulumi-flip/gke-istio-mesh/dev/lease.json"
    world.store.write(lease_key, json.dumps({"holder": "a flip that started since", "since": "now"}).encode())
    assert world.replace("--resume", "--until", "add") == phases.EXIT_HELD
    assert "held by a flip that started since" in world.out.getvalue()
    world.store.delete(lease_key)
    assert world.replace("--resume", "--until", "add") == phases.EXIT_OK
    assert world.journal().done == ["add"] and read_lease(world.store, "dev") is None
