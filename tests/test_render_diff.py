"""`render --diff REF`: the working tree against a git ref, offline, per cluster and object, exit 1 on change."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from offline import ROOT, Program, configs
from offline.configs import write_stack_file
from offline.manifests import render
from tools.render import cli, diff

PROGRAM_FILES = ("__main__.py", "Pulumi.yaml", "components", "offline")


def _config() -> dict:
    """The tests' config with an ECDSA mesh CA: each side of a diff runs in a fresh interpreter, where
    generating the default RSA-4096 keys would cost seconds that say nothing about the diff."""
    config = configs.base()
    config["ca"] = {"algorithm": "ECDSA"}
    return config


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the program and a stack file from the tests' config."""
    for name in PROGRAM_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, tmp_path / name)
    write_stack_file(tmp_path / "Pulumi.dev.yaml", _config())
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "program")
    return tmp_path


def make_diff(repo: Path) -> subprocess.CompletedProcess[str]:
    """`make diff` exactly as the README and docs/render.md write it, in `repo` (a copy of this one)."""
    for name in ("Makefile", "tools", "requirements.txt", "requirements-test.txt"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, repo / name)  # keeps the mtime: make sees venv/.installed as up to date
    (repo / "venv").symlink_to(ROOT / "venv")
    return subprocess.run(["make", "--no-print-directory", "diff"], cwd=repo, capture_output=True, text=True,
                          check=False, env={**os.environ, "MAKEFLAGS": ""}, timeout=300)


def test_a_flip_and_a_bigger_machine_show_per_cluster_and_object_and_exit_0(repo: Path) -> None:
    """By hand, `make diff` reports the changes and exits 0 (no make error); progress goes to stderr."""
    config = configs.flipped(_config())
    config["clusters"][0]["machineType"] = "e2-standard-8"
    write_stack_file(repo / "Pulumi.dev.yaml", config)
    done = make_diff(repo)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Error" not in done.stderr
    steps = [ln.split("] render --diff: ", 1)[1] for ln in done.stderr.splitlines() if "] render --diff: " in ln]
    assert [s.split(" ")[0] for s in steps] == ["running", "running", "comparing"]
    text = done.stdout[done.stdout.index("render --diff HEAD"):]
    assert re.match(r"render --diff HEAD \(stack dev\): \d+ changes \(", text), text[:300]
    blue, green = (c["name"] for c in config["clusters"])
    lines = text.splitlines()
    # One VirtualService per cluster and routed service, with the weights as field changes.
    for cluster in (blue, green):
        at = lines.index(f"clusters/{cluster}:")
        assert lines[at + 1].startswith("  ~ objects/") and "VirtualService-" in lines[at + 1]
        fields = lines[at + 2:at + 4]
        assert all(".weight: " in ln for ln in fields)
        assert sorted(int(ln.rsplit("→ ", 1)[1]) for ln in fields) == sorted(config["traffic"]["weights"].values())
    # The node pool's machine type, in the GCP file of its component, and its cost.
    assert "nodeConfig.machineType: e2-standard-4 → e2-standard-8" in text
    assert f"  nodes of {blue}-pool (e2-standard-4" not in text.split("cost:")[0]
    cost = text.split("cost: ", 1)[1]
    assert cost.startswith("$") and f"nodes of {blue}-pool" in cost and "+$" in cost.splitlines()[0]


def test_nothing_changed_is_exit_0_and_says_so(base_stack: Program) -> None:
    files = render(base_stack, "dev").files()
    assert diff.compare(files, files) == []
    assert diff.report([], "HEAD", "dev").endswith("nothing changes")


def test_an_added_and_a_removed_object_are_named() -> None:
    before = {PurePosixPath("clusters/blue/objects/a/Namespace-a.yaml"): "kind: Namespace\n"}
    after = {PurePosixPath("clusters/blue/objects/b/Namespace-b.yaml"): "kind: Namespace\n"}
    kinds = {(c.kind, c.path) for c in diff.compare(before, after)}
    assert kinds == {("-", "objects/a/Namespace-a.yaml"), ("+", "objects/b/Namespace-b.yaml")}


def test_an_unknown_ref_is_an_error_with_exit_2(capsys) -> None:
    assert cli.main(["--diff", "no-such-ref-xyz"]) == 2
    assert "--diff no-such-ref-xyz" in capsys.readouterr().err


def test_changes_exit_0_by_hand_and_1_with_exit_code(monkeypatch, capsys) -> None:
    """A changed tree is not an error: `make diff` by hand exits 0; CI asks for 1 with --exit-code."""
    monkeypatch.setattr(diff, "run", lambda ref, stack, progress=None: ("… (stack dev): 2 changes", True))
    assert cli.main(["--diff", "HEAD"]) == 0
    assert cli.main(["--diff", "HEAD", "--exit-code"]) == 1
    monkeypatch.setattr(diff, "run", lambda ref, stack, progress=None: ("… 0 changes: nothing changes", False))
    assert cli.main(["--diff", "HEAD", "--exit-code"]) == 0
    with pytest.raises(SystemExit) as usage:
        cli.main(["--exit-code"])
    assert usage.value.code == 2 and "--exit-code goes with --diff REF" in capsys.readouterr().err


def test_the_report_counts_changes() -> None:
    after = {PurePosixPath("clusters/blue/objects/b/Namespace-b.yaml"): "kind: Namespace\n",
             PurePosixPath("gcp/X.yaml"): "a: 2\n"}
    before = {PurePosixPath("gcp/X.yaml"): "a: 1\n"}
    first = diff.report(diff.compare(before, after), "main", "dev").splitlines()[0]
    assert first == "render --diff main (stack dev): 2 changes (1 changed, 1 added, 0 removed)"
