"""A copy of the project to run its documented commands in, exactly as written, and the docs' shell blocks.

The copy (`project_copy`) has the tests' config as its stack files (never the user's), this venv,
fake Kubernetes API servers for its clusters (fake_kube.py), the stand-in `pulumi` first on PATH and
a `file://` backend seeded with each stack's outputs (stand_in.py): the seams the real commands read.
"""

from __future__ import annotations

import copy as copy_module
import datetime as dt
import os
import re
import shutil
import textwrap
from pathlib import Path

from components import config as stack_config
from components.traffic import virtual_service
from offline.configs import base, write_stack_file
from tests.fakes import fake_kube
from tests.fakes.fake_kube import FakeCluster
from tests.fakes.stand_in import install, root_pem, seed

FENCE_SHELL = ("", "bash", "sh", "console")
REPO = Path(__file__).resolve().parents[2]
# The README and the runbooks: the documents whose commands a user copies.
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
# A fence inside a list item is indented (README "First deploy"): its lines are read without the indent.
INDENTED_FENCE = re.compile(r"^([ \t]*)```(\w*)\n(.*?)^\1```$", re.S | re.M)


def shell_blocks(text: str) -> list[str]:
    """The contents of a document's shell code blocks (fences without a language, or bash/sh/console),
    indented ones (in a list item) included, dedented."""
    return [textwrap.dedent(body) for _, lang, body in INDENTED_FENCE.findall(text) if lang in FENCE_SHELL]


CLUSTERS = [("blue", "network1", "us-west1", "34.82.10.1", "34.83.20.1"),
            ("green", "network2", "us-central1", "34.70.10.2", "34.71.20.2")]

START = {"blue": 100, "green": 0}


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
    for inherited in ("MAKEFLAGS", "MAKELEVEL"):  # under `make test`: the copy's make is a top-level one
        env.pop(inherited, None)
    return project, fakes, env


def _for_stack(config: dict, stack: str) -> dict:
    """A prod stack's serving clusters keep deletion protection and Pulumi protect (the config's rule)."""
    config = copy_module.deepcopy(config)
    if stack == "prod":
        for cluster in config["clusters"]:
            cluster["deletionProtection"] = cluster["protect"] = True
    return config


def served(fakes: dict[str, FakeCluster]) -> dict[str, dict[str, int]]:
    out = {}
    for name, fake in fakes.items():
        vs = fake.get("/apis/networking.istio.io/v1/namespaces/sample/virtualservices/helloworld-clusters") or {}
        routes = ((vs.get("spec") or {}).get("http") or [{}])[0].get("route") or []
        out[name] = {r["destination"]["subset"]: r["weight"] for r in routes}
    return out
