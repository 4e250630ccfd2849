"""Long offline commands say what they are doing: `make bench`, `make render` (progress on stderr)."""

from __future__ import annotations

import re
from pathlib import Path

import bench.__main__ as bench_main
from bench import measure, report
from offline import configs
from offline.configs import write_stack_file
from tools.render.cli import main as render_main

STEP = re.compile(r"^\[ *\d+\.\ds\] (\w[\w -]*): (.+)$")


def steps(err: str, command: str) -> list[str]:
    found = [STEP.match(ln) for ln in err.splitlines()]
    return [m.group(2) for m in found if m and m.group(1) == command]


def test_bench_reports_each_stage_before_it_runs(monkeypatch, capsys, tmp_path: Path) -> None:
    seen: list[str] = []

    def stage(name: str, value: object = ()):
        def run(*args, **kwargs):
            # The line naming a stage is on stderr before the stage starts.
            seen.append(steps(capsys.readouterr().err, "bench")[-1])
            if "say" in kwargs:
                kwargs["say"]("evaluating the program at 2 clusters …")
            return value
        return run

    monkeypatch.setattr(measure, "operations", stage("operations"))
    monkeypatch.setattr(measure, "critical_path", stage("path"))
    monkeypatch.setattr(measure, "evaluations", stage("evals"))
    monkeypatch.setattr(report, "render", lambda *a, **k: "# report\n")
    assert bench_main.main(["--output", str(tmp_path / "perf.md"), "--repeats", "1"]) == 0
    assert [s.split(" ")[0] for s in seen] == ["1/4", "2/4", "3/4"]
    rest = capsys.readouterr()
    assert rest.out == "# report\n\n"
    assert steps(rest.err, "bench") == ["    evaluating the program at 2 clusters …",
                                        f"done: wrote {tmp_path / 'perf.md'}"]


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
