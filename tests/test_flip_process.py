"""The flip through the REAL Automation API, with a stand-in `pulumi` binary (tests/fakes/pulumi_cli.py).

Nothing here replaces tools.flip's stack: `AutomationStack` runs `pulumi.automation` exactly as in
production, which starts the stand-in from PATH; the stand-in keeps a DIY-backend lock during
`up`, cancels on SIGINT (slowly, still holding the lock), dies on a closed stdout. The clusters are
fake Kubernetes API servers and the metrics a fake Prometheus, both on loopback. Signals are real:
the flip runs in a subprocess and the test signals its whole process group, as a terminal's
Ctrl-C or a CI runner does.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components.traffic import virtual_service
from offline.configs import base, write_stack_file
from tests.fakes import fake_kube
from tests.fakes.fake_kube import FakeCluster
from tests.fakes.fake_prometheus import FakePrometheus, traffic
from tests.fakes.stand_in import FINAL, STAND_IN, START, install, parse, seed
from tools.flip import cli
from tools.flip import journal as journals
from tools.flip.lease import FileStore, acquire

REPO = Path(__file__).resolve().parents[1]
HALF = {"blue": 50, "green": 50}


def _config() -> dict[str, Any]:
    config = base()
    config["ca"] = {"algorithm": "ECDSA"}
    config["flip"] = {"hold": "2m", "interval": "30s", "minRequests": 50}
    return config


@dataclass
class Project:
    """A project directory, a file:// backend holding the stand-in's state, fake clusters and metrics."""

    root: Path
    config: dict[str, Any]
    clusters: dict[str, FakeCluster] = field(default_factory=dict)
    prometheus: FakePrometheus | None = None

    @property
    def backend(self) -> Path:
        return self.root / "state"

    @property
    def state_file(self) -> Path:
        return self.backend / ".pulumi" / "stacks" / "gke-istio-mesh" / "dev.json"

    @property
    def locks(self) -> Path:
        return self.backend / ".pulumi" / "locks" / "organization" / "gke-istio-mesh" / "dev"

    @property
    def log(self) -> Path:
        return self.root / "pulumi-calls.jsonl"

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def served(self) -> dict[str, dict[str, int]]:
        return fake_kube.served_splits(self.clusters)

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.root / 'bin'}{os.pathsep}{os.environ['PATH']}",
                "PULUMI_BACKEND_URL": f"file://{self.backend}", "FAKE_PULUMI_LOG": str(self.log),
                "PULUMI_HOME": str(self.root / "home"), **extra}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    config = _config()
    p = Project(tmp_path, config)
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    write_stack_file(tmp_path / "Pulumi.dev.yaml", config)
    install(tmp_path / "bin")
    for name in ("blue", "green"):
        fake = FakeCluster(name).start()
        fake.put(fake_kube.namespace("sample"))
        fake.put(fake_kube.eastwest_service("34.64.0.10"))
        fake.put(fake_kube.endpoint_slice("istio-eastwestgateway", "istio-system", ready=1))
        fake.put(fake_kube.endpoint_slice("helloworld", "sample", ready=2))
        for service in parse(config).traffic.services:  # deployed at the start split
            fake.put(virtual_service(service, START))
        p.clusters[name] = fake
    seed(p.backend, config, {
        "clusters": {n: {"name": n, "region": "us-west1", "network": f"network-{n}", "endpoint": "127.0.0.1",
                         "eastWestGatewayAddress": "34.64.0.10"} for n in p.clusters},
        "kubeconfigs": {n: f.kubeconfig() for n, f in p.clusters.items()},
        "rootCertPem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}, list(p.clusters))
    # The stand-in serves the clusters' split; traffic follows what blue's VirtualService says.
    p.prometheus = FakePrometheus(traffic(lambda: p.state()["served"]["blue"], rps=20)).start()
    for k, v in p.env().items():
        monkeypatch.setenv(k, v)
    yield p
    for fake in p.clusters.values():
        fake.stop()
    p.prometheus.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_flip_through_the_real_automation_api_applies_only_the_previewed_routing_resources(
        project: Project) -> None:
    clock = FakeClock()
    out, err = io.StringIO(), io.StringIO()
    assert project.prometheus is not None
    code = cli.main(["--stack", "dev", "--to", "green", "--steps", "50,100", "--prometheus-url",
                     project.prometheus.url], stack_dir=project.root, clock=clock, sleep=clock.sleep, out=out, err=err)
    assert (code, err.getvalue()) == (cli.EXIT_OK, ""), out.getvalue()
    assert project.served() == {"blue": FINAL, "green": FINAL}
    assert "final weights: blue=0,green=100 (flip complete)" in out.getvalue()
    ups = [c for c in project.calls() if "up" in c]
    routing = sorted(project.state()["routing"])
    assert len(ups) == 2
    for call in ups:  # each update targets exactly the routing resources its preview showed, nothing else
        targets = sorted(call[i + 1] for i, a in enumerate(call) if a == "--target")
        assert targets == routing
        assert "--policy-pack" in call
    assert not any(project.locks.glob("*.json"))
    journal = journals.read(FileStore(project.backend), "dev")
    assert journal is not None and (journal.phase, journal.deployed, journal.exit) == ("ended", FINAL, 0)
    assert not (project.backend / ".pulumi-flip" / "gke-istio-mesh" / "dev" / "lease.json").exists()


def test_a_staged_change_outside_routing_is_never_applied_even_by_the_rollback(project: Project) -> None:
    state = project.state()
    firewall = "urn:pulumi:dev::gke-istio-mesh::gcp:compute/firewall:Firewall::network1-istio-webhook"
    # Step 1 is clean; then something else drifts: step 2's preview shows a firewall deletion.
    clock = FakeClock()
    out = io.StringIO()
    assert project.prometheus is not None
    calls = 0

    def drift_after_first_up(seconds: float) -> None:
        nonlocal calls
        clock.sleep(seconds)
        calls += 1
        if calls == 1:
            s = project.state()
            s["extra"] = [["delete", firewall]]
            project.state_file.write_text(json.dumps(s))

    project.state_file.write_text(json.dumps(state))
    code = cli.main(["--stack", "dev", "--to", "green", "--steps", "50,100", "--prometheus-url",
                     project.prometheus.url], stack_dir=project.root, clock=clock, sleep=drift_after_first_up,
                    out=out, err=io.StringIO())
    assert code == cli.EXIT_ROLLED_BACK, out.getvalue()
    assert f"delete {firewall}" in out.getvalue()
    assert project.state().get("appliedExtra", []) == []
    assert project.served() == {"blue": HALF, "green": HALF}


def test_the_rollback_waits_for_a_locked_stack(project: Project) -> None:
    """A cancelled update still releasing its lock: the update is retried until the lock is gone."""
    project.locks.mkdir(parents=True)
    stale = project.locks / "cancelling.json"
    stale.write_text(json.dumps({"pid": 1, "username": "ci", "hostname": "runner",
                                 "timestamp": "2026-12-04T20:00:00Z"}))
    clock = FakeClock()
    retries: list[float] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if ups_started(project) and stale.exists():  # the update met the lock and waits: the cancel ends
            retries.append(seconds)
            if len(retries) == 3:
                stale.unlink()

    out = io.StringIO()
    assert project.prometheus is not None
    code = cli.main(["--stack", "dev", "--to", "green", "--steps", "100", "--prometheus-url", project.prometheus.url],
                    stack_dir=project.root, clock=clock, sleep=sleep, out=out, err=io.StringIO())
    assert code == cli.EXIT_OK, out.getvalue()
    assert len(retries) == 3 and ups_started(project) == 4, "refused three times while locked, then applied"
    assert project.served()["green"] == FINAL


def test_a_second_flip_is_refused_naming_the_holder_and_since_when(project: Project) -> None:
    store = FileStore(project.backend)
    lease = acquire(store, "dev")
    out = io.StringIO()
    assert project.prometheus is not None
    code = cli.main(["--stack", "dev", "--to", "green", "--prometheus-url", project.prometheus.url],
                    stack_dir=project.root, out=out, err=io.StringIO())
    assert code == cli.EXIT_LEASE_HELD
    assert f"held by another flip: {lease.holder}, since {lease.since}" in out.getvalue()
    assert not [c for c in project.calls() if "set-all" in c or "up" in c], "nothing was written"
    lease.release()


# ------------------------------------------------------------------ real signals, whole process group


def start_flip(project: Project, *args: str, **env: str) -> subprocess.Popen[str]:
    assert project.prometheus is not None
    driver = (f"import signal, sys; from pathlib import Path; from tools.flip.cli import main; "
              f"code = main(sys.argv[1:], stack_dir=Path({str(project.root)!r})); "
              "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "sys.exit(code)")
    return subprocess.Popen(
        [sys.executable, "-c", driver, "--stack", "dev", "--to", "green", "--prometheus-url", project.prometheus.url,
         *args], cwd=REPO, env=project.env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def ups_started(project: Project) -> int:
    return len([c for c in project.calls() if "up" in c])


def no_stand_in_left() -> bool:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return str(STAND_IN) + " --non-interactive up" not in ps


def test_ctrl_c_during_an_update_waits_for_the_cli_to_cancel_then_rolls_back(project: Project) -> None:
    """Ctrl-C in a terminal: SIGINT to the whole foreground process group while `pulumi up` runs.

    Without the fix the SDK abandons the CLI 0.25 s after KeyboardInterrupt, the cancelling update
    keeps the lock and the rollback's update is refused (exit 4, lock left).
    """
    flip = start_flip(project, "--steps", "100", "--hold", "60s", "--interval", "1s",
                      FAKE_PULUMI_UP_SECONDS="3", FAKE_PULUMI_CANCEL_SECONDS="1.5")
    try:
        wait_for(lambda: ups_started(project) == 1 and any(project.locks.glob("*.json")))
        os.killpg(flip.pid, signal.SIGINT)  # the flip's group; the CLI has its own session and gets one SIGINT
        out, _ = flip.communicate(timeout=90)
    finally:
        if flip.poll() is None:
            flip.kill()
    assert flip.returncode == cli.EXIT_INTERRUPTED, out
    assert "rolled back: every primary serves blue=100,green=0" in out
    assert project.served() == {"blue": START, "green": START}
    assert not any(project.locks.glob("*.json")), "the cancelled update released its lock"
    assert no_stand_in_left()
    journal = journals.read(FileStore(project.backend), "dev")
    assert journal is not None and (journal.deployed, journal.exit) == (START, cli.EXIT_INTERRUPTED)


def test_a_github_cancel_ends_rolled_back_or_with_a_journal_that_abort_completes(project: Project) -> None:
    """GitHub cancels with SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s after that, during step 1's hold."""
    flip = start_flip(project, "--steps", "100", "--hold", "60s", "--interval", "1s")
    try:
        wait_for(lambda: project.state()["served"]["blue"] == FINAL)
        time.sleep(0.5)
        os.killpg(flip.pid, signal.SIGINT)
        try:
            out, _ = flip.communicate(timeout=7.5)
        except subprocess.TimeoutExpired:
            os.killpg(flip.pid, signal.SIGTERM)
            try:
                out, _ = flip.communicate(timeout=2.5)
            except subprocess.TimeoutExpired:
                os.killpg(flip.pid, signal.SIGKILL)
                out, _ = flip.communicate()
    finally:
        if flip.poll() is None:
            flip.kill()
    store = FileStore(project.backend)
    journal = journals.read(store, "dev")
    assert journal is not None
    assert flip.returncode in (cli.EXIT_INTERRUPTED, -signal.SIGKILL), out
    if journal.phase == "ended":  # the rollback finished inside GitHub's 10 s (the kill may still hit the exit)
        assert project.served() == {"blue": START, "green": START}
        assert (journal.deployed, journal.exit) == (START, cli.EXIT_INTERRUPTED)
    else:  # killed midway: the journal says what is live, and --abort drives it to the last good split
        assert journal.phase == "running" and journal.last_good == START
        assert journal.deployed in (START, FINAL) or journal.applying == START
        wait_for(no_stand_in_left)
        code = cli.main(["--stack", "dev", "--abort"], stack_dir=project.root, out=io.StringIO(), err=io.StringIO())
        assert code == cli.EXIT_OK
        assert project.served() == {"blue": START, "green": START}
        assert journals.read(store, "dev").phase == "ended"  # type: ignore[union-attr]
    assert not any(project.locks.glob("*.json"))


def test_sigterm_alone_during_a_hold_rolls_back_to_the_last_good_weights(project: Project) -> None:
    """A runner shut down (or `kill` on the group) with SIGTERM only: the rollback runs, exit 143."""
    flip = start_flip(project, "--steps", "100", "--hold", "60s", "--interval", "1s")
    try:
        store = FileStore(project.backend)
        # The journal says every primary serves step 1 only once it was read back: its hold runs.
        wait_for(lambda: (j := journals.read(store, "dev")) is not None and j.deployed == FINAL)
        time.sleep(0.5)
        os.killpg(flip.pid, signal.SIGTERM)
        out, _ = flip.communicate(timeout=30)
    finally:
        if flip.poll() is None:
            flip.kill()
    assert flip.returncode == cli.EXIT_TERMINATED, out
    assert "applied; every primary serves blue=0,green=100" in out and "interrupted (SIGTERM)" in out
    assert "rolled back: every primary serves blue=100,green=0" in out
    assert project.served() == {"blue": START, "green": START}
    journal = journals.read(store, "dev")
    assert journal is not None
    assert (journal.phase, journal.deployed, journal.exit) == ("ended", START, cli.EXIT_TERMINATED)
    assert not any(project.locks.glob("*.json")) and no_stand_in_left()
