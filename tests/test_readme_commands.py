"""`make verify`, `make verify ARGS=--before-flip` and `make flip ...` exactly as README.md writes them.

They run in a copy of the project (so the user's Pulumi.dev.yaml is neither read nor written) whose
venv is this one, with the stand-in `pulumi` (tests/fakes/pulumi_cli.py) first on PATH and a
`file://` backend (PULUMI_BACKEND_URL, the variable the Pulumi CLI itself reads). The clusters are
fake Kubernetes API servers named by the stack outputs' kubeconfigs - the seam the real tools read -
so nothing is injected: no --config, no --outputs, no replaced gate. The flip is interrupted with
Ctrl-C (SIGINT to make's whole process group) during its first hold, as a user would.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.fake_kube import FakeCluster
from tests.fakes.project import START, project_copy, served

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def readme_command(pattern: str) -> list[str]:
    """The README's command line that matches `pattern`, without its trailing comment, as argv for make."""
    (line,) = {line.strip() for line in README.splitlines() if re.fullmatch(pattern, line.split("#")[0].strip())}

    return shlex.split(line.split("#")[0].strip())  # what a shell passes to make


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
    assert served(fakes) == {"blue": START, "green": START}
    assert "blue: 100" in (project / "Pulumi.dev.yaml").read_text().replace("'", "")




def _served_note(fakes: dict[str, FakeCluster]) -> str:
    if all(s == {"blue": 90, "green": 10} for s in served(fakes).values()):
        return "applied; every primary serves blue=90,green=10"
    return ""
