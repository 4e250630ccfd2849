"""Every command the README and the runbooks show runs here exactly as written, or says why it cannot.

The commands are the `make ...` and `venv/bin/python -m tools...` / `bench` lines of the shell
blocks of README.md and docs/*.md (read with tests/test_docs.py's `shell_blocks`). Each one is
either run by a test below (RUN_HERE: in a copy of the project with the stand-in `pulumi` and fake
Kubernetes API servers, see tests/test_readme_commands.py `project_copy`), run by the test named in
RUN_ELSEWHERE, run by a test that reads its doc's lines by pattern (RUN_FROM_DOC), or listed in
NOT_OFFLINE with the reason it is not run here. A command a doc gains
that is in none of them fails `test_every_documented_command_is_run_or_excused`.

A runbook's placeholder (`<stack>`) is the one substitution made: it is run as a named stack.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from offline import ROOT
from offline.configs import base, write_stack_file
from tests.fakes.project import DOCS, START, project_copy, served, shell_blocks

COMMAND = re.compile(r"^(?:\$ )?((?:make|venv/bin/python -m (?:tools|bench)\b[\w.]*)(?:\s.*)?)$")


def documented_commands() -> dict[str, list[str]]:
    """Each make/tools command line of the docs' shell blocks (a `$ ` prompt and a trailing `# comment`
    dropped) -> the docs that show it."""
    found: dict[str, list[str]] = {}
    for doc in DOCS:
        for block in shell_blocks(doc.read_text()):
            for line in block.splitlines():
                match = COMMAND.match(line.strip())
                if match:
                    command = re.sub(r"\s+#.*$", "", match.group(1)).strip()
                    found.setdefault(command, []).append(str(doc.relative_to(ROOT)))
    return found


DOCUMENTED = documented_commands()

# Commands that cannot run in this suite, and why.
NOT_OFFLINE = {
    "make test": "it is this suite (CI runs it as .ci/run); running it from inside itself would recurse",
    "make policy": "builds policy/venv with pip from PyPI (pulumi, pulumi-policy, cryptography): network and "
                   "minutes; the pack's rules are tests/test_policy.py",
    "make bench": "minutes of offline runs that rewrite docs/performance.md; its flip footprint is "
                  "tests/test_bench.py",
    "make verify ARGS=--probe": "the probe as written settles 10 s and waits up to 300 s for echo and curl pods "
                                "to run; the stand-in clusters run no pods (tests/test_verify.py drives the same "
                                "probe against staged results with --settle 0)",
    "make verify STACK=dev ARGS=--probe": "as `make verify ARGS=--probe`",
    "venv/bin/python -m tools.e2e measured runs/*/ --out bench/measured.json":
        "reads the records (runs/*/) that real-cloud e2e runs upload; tests/test_e2e.py runs it on recorded ones",
    'make flip STACK=dev ARGS="--weights blue2=100 --steps 10,25,50,100 --hold 120s"':
        "docs/replace.md shows the flip its flip phase runs; it needs blue2 in the stack, which only the add "
        "phase puts there (tests/test_replace_run.py runs that phase's flip through tools.flip)",
}

# Read from their doc by a test of their own, which runs every line matching the pattern as written
# (the flags exactly as make passes them) against the doubles: pattern -> the tests.
RUN_FROM_DOC = {
    r'^make replace STACK=\w+ ARGS="': (
        "tests/test_replace.py::test_the_documented_command_runs_as_written_on_the_shipped_dev_stack",
        "tests/test_replace_run.py::test_the_runbooks_phase_commands_run_as_written"),
    r'^make verify STACK=\w+ ARGS="--probe --duration ': (
        "tests/test_verify.py::test_the_documented_load_commands_send_what_they_say",),
}

# Run exactly as written by another test: the test's source holds the line.
RUN_ELSEWHERE = {
    "make verify": "tests/test_readme_commands.py::test_make_verify_and_before_flip_as_the_readme_writes_them",
    "make verify ARGS=--before-flip":
        "tests/test_readme_commands.py::test_make_verify_and_before_flip_as_the_readme_writes_them",
    'make flip STACK=dev ARGS="--to green --steps 10,50,100 --hold 5m --plan"':
        "tests/test_readme_commands.py::test_make_flip_as_the_readme_writes_it_then_ctrl_c_in_the_first_hold",
    'make flip STACK=dev ARGS="--to green --steps 10,50,100 --hold 5m"':
        "tests/test_readme_commands.py::test_make_flip_as_the_readme_writes_it_then_ctrl_c_in_the_first_hold",
    "make diff": "tests/test_render_diff.py::make_diff",
}

# Run by the tests below (each calls `doc_argv` with the line, which must be in DOCUMENTED).
RUN_HERE = {
    # test_offline_commands_in_one_copy
    "make render", "venv/bin/python -m tools.render --stack dev --out build/render",
    "make cost STACK=dev", "venv/bin/python -m tools.e2e cost --hours 1",
    "venv/bin/python -m tools.e2e cost --hours 3 --max-usd 10",
    "venv/bin/python -m tools.flip.report_chart tests/data/flip-recording.json --out build",
    "venv/bin/python -m tools.render.pictures --out docs/img",
    "venv/bin/python -m tools.verify.expiry --file ca-expiry.json --warn-days 30",
    # test_make_diff_against_main_and_as_a_gate
    "make diff ARGS=--exit-code", "make diff REF=main STACK=prod",
    # test_make_verify_against_the_fake_clusters
    "make verify STACK=dev", "make verify STACK=dev ARGS=--before-flip", "make verify STACK=<stack>",
    # test_prod_flip_plan_killed_resume_abort_deploy_check
    'make flip STACK=prod ARGS="--to green --plan"',
    'make flip STACK=prod ARGS="--weights blue=50,green=50 --plan"',
    'make flip STACK=prod ARGS="--to green --steps 10,25,50,100 --hold 5m"',
    "make flip STACK=prod ARGS=--resume", "make flip STACK=prod ARGS=--abort",
    "venv/bin/python -m tools.flip --stack <stack> --deploy-check",
}


def test_every_documented_command_is_run_or_excused() -> None:
    from_doc = {c for c in DOCUMENTED if any(re.match(p, c) for p in RUN_FROM_DOC)}
    unaccounted = set(DOCUMENTED) - set(NOT_OFFLINE) - set(RUN_ELSEWHERE) - RUN_HERE - from_doc
    assert unaccounted == set(), {c: DOCUMENTED[c] for c in unaccounted}
    assert all(any(re.match(p, c) for c in DOCUMENTED) for p in RUN_FROM_DOC), "a pattern that matches nothing"
    # No entry outlives its command, and none is in two places.
    stale = (set(NOT_OFFLINE) | set(RUN_ELSEWHERE) | RUN_HERE) - set(DOCUMENTED)
    assert stale == set()
    assert not (set(NOT_OFFLINE) & set(RUN_ELSEWHERE) or set(NOT_OFFLINE) & RUN_HERE or set(RUN_ELSEWHERE) & RUN_HERE)


def test_the_tests_that_read_their_doc_exist() -> None:
    for where in (w for tests in RUN_FROM_DOC.values() for w in tests):
        path, name = where.split("::")
        source = (ROOT / path).read_text()
        assert name in {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}, where


def test_the_tests_named_elsewhere_exist_and_run_the_line_as_written() -> None:
    for command, where in RUN_ELSEWHERE.items():
        path, name = where.split("::")
        source = (ROOT / path).read_text()
        assert name in {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}, where
        # The test (or the README line it looks up by pattern) is that command.
        assert command in source or re.escape(command) in source or \
            f'"{command.removeprefix("make ")}"' in source or f'r"{command}"' in source, (command, where)


def test_the_collector_reads_indented_blocks_prompts_and_comments() -> None:
    text = ("1. Step:\n\n   ```bash\n   make render   # comment\n   pulumi up\n   ```\n\n"
            "```text\nmake not-a-command\n```\n\n```console\n$ venv/bin/python -m tools.cost --stack dev\n```\n")
    commands = [COMMAND.match(line.strip()) for block in shell_blocks(text) for line in block.splitlines()]
    assert [re.sub(r"\s+#.*$", "", m.group(1)) for m in commands if m] == \
        ["make render", "venv/bin/python -m tools.cost --stack dev"]


# ---------------------------------------------------------------------------------------------- running


def doc_argv(command: str, **placeholders: str) -> list[str]:
    """The argv a shell makes of a documented command line (placeholders such as `<stack>` filled in)."""
    assert command in DOCUMENTED and command in RUN_HERE, command
    for name, value in placeholders.items():
        command = command.replace(f"<{name}>", value)
    return shlex.split(command)


def run(project: Path, env: dict[str, str], command: str, **placeholders: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(doc_argv(command, **placeholders), cwd=project, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def documented_output(doc: str, command: str) -> list[str]:
    """The output `doc` shows for `command`: the lines after `$ command` in a ```text transcript, else
    the ```text block that follows the command."""
    text = (ROOT / doc).read_text()
    for transcript in re.findall(r"```text\n(.*?)\n\s*```", text, re.S):
        if f"$ {command}\n" in transcript:
            return [line.strip() for line in transcript.split(f"$ {command}\n", 1)[1].splitlines()]
    after = text[text.index(command):]
    block = re.search(r"```text\n(.*?)\n\s*```", after, re.S)
    assert block, (doc, command)
    return [line.strip() for line in block.group(1).splitlines()]


@pytest.fixture
def offline_copy(tmp_path: Path):
    project, fakes, env = project_copy(tmp_path, extra=("docs", "tests"))
    for f in fakes.values():
        f.stop()  # these commands read no cluster
    return project, env


def test_offline_commands_in_one_copy(offline_copy) -> None:
    project, env = offline_copy
    for command in ("make render", "venv/bin/python -m tools.render --stack dev --out build/render"):
        done = run(project, env, command)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "rendered stack 'dev' offline into build/render" in done.stdout
        assert (project / "build" / "render" / "graph.md").is_file()

    # docs/render.md's transcript (a text block): a bad config prints every problem, writes nothing, exits 2.
    bad = base()
    bad["clusters"] = []
    bad["traffic"].pop("weights", None)
    write_stack_file(project / "bad.yaml", bad)
    command = "venv/bin/python -m tools.render --config bad.yaml --out build/x"
    assert f"$ {command}" in (ROOT / "docs" / "render.md").read_text()
    done = subprocess.run(shlex.split(command), cwd=project, env=env, capture_output=True, text=True, timeout=180,
                          check=False)
    assert done.returncode == 2
    shown = documented_output("docs/render.md", command)
    printed = [line.strip() for line in done.stderr.splitlines() if not line.startswith("[")]  # not progress
    assert shown and printed == shown, done.stdout + done.stderr
    assert not (project / "build" / "x").exists()

    done = run(project, env, "make cost STACK=dev")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"a month", done.stdout), done.stdout

    # docs/e2e.md shows both outputs verbatim: they must be what the command prints today. The copy's
    # e2e stack gets an ECDSA mesh CA: the CA's key type prices nothing, and generating the default
    # RSA-4096 keys costs seconds per run.
    e2e_stack = project / "tools" / "e2e" / "stack.yaml"
    e2e_stack.write_text(e2e_stack.read_text() + "  gke-istio-mesh:ca:\n    algorithm: ECDSA\n")
    for command in ("venv/bin/python -m tools.e2e cost --hours 1",
                    "venv/bin/python -m tools.e2e cost --hours 3 --max-usd 10"):
        done = run(project, env, command)
        assert done.returncode == 0, done.stdout + done.stderr
        assert documented_output("docs/e2e.md", command)[0] in done.stdout.splitlines()

    done = run(project, env, "venv/bin/python -m tools.flip.report_chart tests/data/flip-recording.json --out build")
    assert done.returncode == 0, done.stdout + done.stderr
    assert list((project / "build").glob("*.png")) and list((project / "build").glob("*.json"))

    for picture in (project / "docs" / "img").iterdir():
        picture.unlink()
    done = run(project, env, "venv/bin/python -m tools.render.pictures --out docs/img")
    assert done.returncode == 0, done.stdout + done.stderr
    drawn = {p.name for p in (project / "docs" / "img").iterdir()}
    assert drawn and drawn <= {p.name for p in (ROOT / "docs" / "img").iterdir()}, drawn

    # docs/verify.md: exit 1 when an intermediate is due, 0 when none is.
    command = "venv/bin/python -m tools.verify.expiry --file ca-expiry.json --warn-days 30"
    now = dt.datetime.now(dt.UTC)
    for days, code in ((10, 1), (300, 0)):
        (project / "ca-expiry.json").write_text(json.dumps({
            c: {"notAfter": (now + dt.timedelta(days=d)).isoformat(), "earlyRenewalHours": 720}
            for c, d in (("blue", days), ("green", 365))}))
        done = run(project, env, command)
        assert done.returncode == code, done.stdout + done.stderr
        assert ("FAIL  blue:" in done.stdout) == (code == 1), done.stdout


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


def test_make_diff_against_main_and_as_a_gate(tmp_path: Path) -> None:
    """docs/render.md: `make diff ARGS=--exit-code` exits 1 when the working tree changes something and
    `make diff REF=main STACK=prod` compares prod with the branch main (a copy with git history)."""
    project, fakes, env = project_copy(tmp_path, stacks=("dev", "prod"))
    for f in fakes.values():
        f.stop()
    (project / ".gitignore").write_text("venv\nbuild/\n__pycache__/\n")
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", ".")
    _git(project, "commit", "-qm", "program")
    for stack in ("dev", "prod"):  # a flip by hand, in the working tree
        path = project / f"Pulumi.{stack}.yaml"
        path.write_text(path.read_text().replace("blue: 100", "blue: 90").replace("green: 0", "green: 10"))
    gate = run(project, env, "make diff ARGS=--exit-code")
    # The tool exits 1 (a change); make says so and exits 2 itself (docs/render.md).
    assert gate.returncode == 2 and re.search(r"\[Makefile:\d+: diff\] Error 1$", gate.stderr.strip()), gate.stderr
    assert "clusters/blue" in gate.stdout and "VirtualService" in gate.stdout, gate.stdout
    prod = run(project, env, "make diff REF=main STACK=prod")
    assert prod.returncode == 0, prod.stdout + prod.stderr
    assert "render --diff main (stack prod): 3 changes" in prod.stdout, prod.stdout
    assert "clusters/green" in prod.stdout and "VirtualService" in prod.stdout, prod.stdout


def test_make_verify_against_the_fake_clusters(tmp_path: Path) -> None:
    """docs/verify.md, troubleshooting.md, rotate-intermediate-ca.md (`<stack>` as dev) and blue-green.md,
    against the stand-in's outputs and the fake API servers."""
    project, fakes, env = project_copy(tmp_path)
    try:
        for command in ("make verify STACK=dev", "make verify STACK=<stack>"):
            done = run(project, env, command, stack="dev")
            assert done.returncode == 0, done.stdout + done.stderr
            assert re.search(r"intermediate CA expiry.*PASS|PASS.*intermediate CA expiry", done.stdout), done.stdout
        done = run(project, env, "make verify STACK=dev ARGS=--before-flip")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "before flip: helloworld.sample endpoints" in done.stdout
    finally:
        for f in fakes.values():
            f.stop()


def _start(project: Path, env: dict[str, str], command: str, log: Path) -> subprocess.Popen[bytes]:
    """A documented flip started as a terminal would: make and the flip in their own process group."""
    with log.open("wb") as out:
        return subprocess.Popen(doc_argv(command), cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _kill_when(flip: subprocess.Popen[bytes], log: Path, line: str, times: int = 1) -> str:
    """SIGKILL the flip's process group once `line` is in its output `times` times (in its first hold):
    the flip killed outright, leaving its lease and a running journal."""
    deadline = time.monotonic() + 120
    try:
        while log.read_text().count(line) < times:
            assert time.monotonic() < deadline and flip.poll() is None, log.read_text()
            time.sleep(0.2)
        time.sleep(0.5)
        os.killpg(flip.pid, signal.SIGKILL)
        flip.wait(timeout=30)
    finally:
        if flip.poll() is None:
            os.killpg(flip.pid, signal.SIGKILL)
    return log.read_text()


def test_prod_flip_plan_killed_resume_abort_deploy_check(tmp_path: Path) -> None:
    """docs/flip.md on a prod copy: both plans; the stepped flip killed in its first hold; `--resume`
    (back to the last good weights, then the steps again) killed likewise; `--abort` ends it on the
    last good weights; then deploy.yml's `--deploy-check` lets a deploy go."""
    project, fakes, env = project_copy(tmp_path, stacks=("prod",))
    try:
        plan = run(project, env, 'make flip STACK=prod ARGS="--to green --plan"')
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "blue=100,green=0 -> blue=0,green=100" in plan.stdout, plan.stdout
        plan = run(project, env, 'make flip STACK=prod ARGS="--weights blue=50,green=50 --plan"')
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "blue=100,green=0 -> blue=50,green=50" in plan.stdout, plan.stdout
        assert served(fakes) == {"blue": START, "green": START}

        step1 = "applied; every primary serves blue=90,green=10"
        log = tmp_path / "flip.log"
        out = _kill_when(_start(project, env, 'make flip STACK=prod ARGS="--to green --steps 10,25,50,100 --hold 5m"',
                                log), log, step1)
        assert "step 1/4 (10%): blue=90,green=10" in out
        assert served(fakes) == {"blue": {"blue": 90, "green": 10}, "green": {"blue": 90, "green": 10}}

        log = tmp_path / "resume.log"
        out = _kill_when(_start(project, env, "make flip STACK=prod ARGS=--resume", log), log, step1)
        assert "blue=100,green=0" in out, out

        abort = run(project, env, "make flip STACK=prod ARGS=--abort")
        assert abort.returncode == 0, abort.stdout + abort.stderr
        assert "every primary serves blue=100,green=0" in abort.stdout, abort.stdout
        assert served(fakes) == {"blue": START, "green": START}

        check = run(project, env, "venv/bin/python -m tools.flip --stack <stack> --deploy-check", stack="prod")
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        for f in fakes.values():
            f.stop()
