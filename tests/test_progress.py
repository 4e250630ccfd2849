"""Long offline commands say what they are doing: `make bench`, `make render` (progress on stderr)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from offline import ROOT, configs
from offline.configs import write_stack_file
from tools.render.cli import main as render_main

STEP = re.compile(r"^\[ *\d+\.\ds\] (\w[\w -]*): (.+)$")


def steps(err: str, command: str) -> list[str]:
    found = [STEP.match(ln) for ln in err.splitlines()]
    return [m.group(2).strip() for m in found if m and m.group(1) == command]


# Runs the real `bench.__main__.main` with its three stages stubbed (the real ones take a minute): each stub
# records the last progress line on stderr when it starts, so the line naming a stage comes before the stage.
BENCH_STUBBED = """
import sys
from bench import measure, report
import bench.__main__ as bench_main
def stage(name):
    def run(*args, **kwargs):
        sys.stderr.write("<stage " + name + ">\\n")
        if "say" in kwargs:
            kwargs["say"]("evaluating the program at 2 clusters …")
        return ()
    return run
measure.operations, measure.critical_path, measure.evaluations = stage("ops"), stage("path"), stage("evals")
report.render = lambda *a, **k: "# report\\n"
sys.exit(bench_main.main(sys.argv[1:]))
"""


def test_bench_reports_each_stage_before_it_runs(tmp_path: Path) -> None:
    out = tmp_path / "perf.md"
    done = subprocess.run([sys.executable, "-c", BENCH_STUBBED, "--output", str(out), "--repeats", "1"],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "# report\n\n" and out.read_text() == "# report\n"
    lines = done.stderr.splitlines()
    order = [ln if ln.startswith("<stage") else steps(ln, "bench")[0].split(" ")[0] for ln in lines]
    assert order == ["1/4", "<stage ops>", "2/4", "<stage path>", "3/4", "<stage evals>", "evaluating",
                     "done:"], lines
    assert steps(done.stderr, "bench")[-1] == f"done: wrote {out}"


def test_render_says_what_it_runs_and_writes(capsys, tmp_path: Path) -> None:
    out = tmp_path / "render"
    stack = write_stack_file(tmp_path / "Pulumi.test.yaml", {**configs.base(), "ca": {"algorithm": "ECDSA"}})
    assert render_main(["--config", str(stack), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    said = steps(captured.err, "render")
    assert said[0] == f"running the program offline with {stack} …"
    assert re.fullmatch(rf"rendering \d+ resources into {re.escape(str(out))} …", said[1])
    assert said[2] == "done; pricing them …"
    assert captured.out.startswith(f"rendered stack 'dev' offline into {out}")
