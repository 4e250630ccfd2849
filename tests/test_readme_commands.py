"""`make verify`, `make verify ARGS=--before-flip` and `make flip ...` exactly as README.md writes them.

They run in a copy of the project (so the user's Pulumi.dev.yaml is neither read nor written) whose
venv is this one, with the stand-in `pulumi` (tests/fakes/pulumi_cli.py) first on PATH and a
`file://` backend (PULUMI_BACKEND_URL, the variable the Pulumi CLI itself reads). The clusters are
fake Kubernetes API servers named by the stack outputs' kubeconfigs - the seam the real tools read -
so nothing is injected: no --config, no --outputs, no replaced gate. The flip is interrupted with
Ctrl-C (SIGINT to make's whole process group) during its first hold, as a user would.
"""

from __future__ import annotations

import copy as copy_module
import datetime as dt
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import config as stack_config
from components.traffic import virtual_service
from offline.configs import base, write_stack_file
from tests.fakes import fake_kube
from tests.fakes.fake_kube import FakeCluster
from tests.fakes.stand_in import install, root_pem, seed

CLUSTERS = [("blue", "network1", "us-west1", "34.82.10.1", "34.83.20.1"),
            ("green", "network2", "us-central1", "34.70.10.2", "34.71.20.2")]

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
START = {"blue": 100, "green": 0}


def readme_command(pattern: str) -> list[str]:
    """The README's command line that matches `pattern`, without its trailing comment, as argv for make."""
    (line,) = {line.strip() for line in README.splitlines() if re.fullmatch(pattern, line.split("#")[0].strip())}

    return shlex.split(line.split("#")[0].strip())  # what a shell passes to make


def project_copy(tmp_path: Path, stacks: tuple[str, ...] = ("dev",),
                 extra: tuple[str, ...] = ()) -> tuple[Path, dict[str, FakeCluster], dict[str, str]]:
    """A copy of the project (the tests' config as each of `stacks`, with an ECDSA CA), fake API
    servers for its clusters serving START, the stand-in `pulumi` on PATH and a file:// backend
    seeded with each stack's outputs. `extra` names more top-level folders to copy (docs, tests)."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", "Pulumi.yaml", "__main__.py", "requirements.txt", "requirements-test.txt"):
        shutil.copy2(REPO / name, project / name)
        os.utime(project / name, (0, 0))  # never newer than venv/.installed: make installs nothing
    for name in ("components", "offline", "tools", "policy", *extra):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "venv"))
    (project / "venv").symlink_to((REPO / "venv").resolve())
    config = base()
    config["ca"] = {"algorithm": "ECDSA"}
    configs = {stack: _for_stack(config, stack) for stack in stacks}
    for stack in stacks:
        write_stack_file(project / f"Pulumi.{stack}.yaml", configs[stack])
    services = stack_config.parse({k: v for k, v in config.items() if k != "ca"},
                                  project="mesh-test-project").traffic.services
    fakes: dict[str, FakeCluster] = {}
    for name, network, _, _, eastwest in CLUSTERS:
        f = FakeCluster(name).start()
        f.put(fake_kube.namespace("istio-system", {"topology.istio.io/network": network}))
        f.put(fake_kube.namespace("sample", {"istio-injection": "enabled"}))
        f.put(fake_kube.istiod_deployment())
        f.put(fake_kube.eastwest_service(eastwest))
        f.put(fake_kube.endpoint_slice("istio-eastwestgateway", "istio-system", ready=2))
        f.put(fake_kube.endpoint_slice("helloworld", "sample", ready=2))
        f.put(fake_kube.secret("cacerts", {"root-cert.pem": root_pem()}))
        f.put(fake_kube.configmap("istio-ca-root-cert", {"root-cert.pem": root_pem()}))
        for other, _, _, endpoint, _ in CLUSTERS:
            if other != name:
                f.put(fake_kube.remote_secret(other, endpoint))
        for service in services:
            f.put(virtual_service(service, START))
        fakes[name] = f
    backend = tmp_path / "state"
    for stack in stacks:
        seed(backend, configs[stack], {
            "clusters": {n: {"name": n, "region": r, "network": net, "istioVersion": "1.30.3", "endpoint": ep,
                             "eastWestGatewayAddress": ew} for n, net, r, ep, ew in CLUSTERS},
            "kubeconfigs": {n: f.kubeconfig() for n, f in fakes.items()},
            # The caExpiry output's shape (components/certificate_authority.py): a year-long intermediate.
            "caExpiry": {n: {"notAfter": (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).isoformat(),
                             "earlyRenewalHours": 720} for n in fakes},
            "rootCertPem": root_pem()}, list(fakes), stack)
    install(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_HOME": str(tmp_path / "home"),
           "FAKE_PULUMI_UP_SECONDS": "0.2"}
    env.pop("MAKEFLAGS", None)
    return project, fakes, env


def _for_stack(config: dict, stack: str) -> dict:
    """A prod stack's serving clusters keep deletion protection and Pulumi protect (the config's rule)."""
    config = copy_module.deepcopy(config)
    if stack == "prod":
        for cluster in config["clusters"]:
            cluster["deletionProtection"] = cluster["protect"] = True
    return config


@pytest.fixture
def copy(tmp_path: Path) -> Iterator[tuple[Path, dict[str, FakeCluster], dict[str, str]]]:
    project, fakes, env = project_copy(tmp_path)
    try:
        yield project, fakes, env
    finally:
        for f in fakes.values():
            f.stop()


def make(project: Path, env: dict[str, str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "make"
    return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_make_verify_and_before_flip_as_the_readme_writes_them(copy) -> None:
    project, _, env = copy
    for argv in (readme_command(r"make verify"), readme_command(r"make verify ARGS=--before-flip")):
        done = make(project, env, argv)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "cannot read the stack file" not in done.stderr
    assert "before flip: helloworld.sample endpoints" in done.stdout


def test_make_flip_as_the_readme_writes_it_then_ctrl_c_in_the_first_hold(copy) -> None:
    project, fakes, env = copy
    plan_line = r'make flip STACK=dev ARGS="--to green --steps 10,50,100 --hold 5m --plan"'
    plan = make(project, env, readme_command(plan_line))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "step 1 ( 10%): blue=90,green=10" in plan.stdout
    argv = readme_command(r'make flip STACK=dev ARGS="--to green --steps 10,50,100 --hold 5m"')
    flip = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "applied; every primary serves blue=90,green=10" not in _served_note(fakes):
            assert time.monotonic() < deadline and flip.poll() is None, flip.stdout.read() if flip.stdout else ""
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(flip.pid, signal.SIGINT)  # Ctrl-C: the terminal signals make and the flip together
        out, _ = flip.communicate(timeout=90)
    finally:
        if flip.poll() is None:
            flip.kill()
    assert "rolled back: every primary serves blue=100,green=0" in out, out
    assert "final weights: blue=100,green=0 (rolled back)" in out
    assert _served(fakes) == {"blue": START, "green": START}
    assert "blue: 100" in (project / "Pulumi.dev.yaml").read_text().replace("'", "")


def _served(fakes: dict[str, FakeCluster]) -> dict[str, dict[str, int]]:
    out = {}
    for name, fake in fakes.items():
        vs = fake.get("/apis/networking.istio.io/v1/namespaces/sample/virtualservices/helloworld-clusters") or {}
        routes = ((vs.get("spec") or {}).get("http") or [{}])[0].get("route") or []
        out[name] = {r["destination"]["subset"]: r["weight"] for r in routes}
    return out


def _served_note(fakes: dict[str, FakeCluster]) -> str:
    served = _served(fakes)
    if all(s == {"blue": 90, "green": 10} for s in served.values()):
        return "applied; every primary serves blue=90,green=10"
    return ""
