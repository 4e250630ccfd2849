"""The end-to-end run's code (tools.e2e) and how its records become the bench's figures (tools.e2e.measured).

The workflow's shape is checked in test_workflows.py; here: the ephemeral stack file the run
writes is one the program accepts, the per-run cost is tools.cost's estimate scaled by hours,
the guards refuse what they should, the phase record and report, and measured samples replacing
estimates in the duration table. Tests never import `bench` (tests/test_layout.py): the overlay
in bench/durations.py is checked by running it, as `make bench` does.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.names import HELM_RELEASE
from offline import ROOT
from offline.engine import PROJECT, run_program
from tools.cost.estimate import estimate
from tools.e2e import cli, measured

E2E_DOC = ROOT / "docs" / "e2e.md"


def _project_config(doc: dict) -> dict:
    return {k[len(PROJECT) + 1:]: v for k, v in doc["config"].items() if k.startswith(f"{PROJECT}:")}


# ------------------------------------------------------------------ the stack


def test_the_stack_file_is_the_template_with_the_sandbox_and_the_runner_and_the_program_accepts_it(
        tmp_path: Path) -> None:
    path = cli.write_stack_file("e2e-4242-1", "my-sandbox-01", "198.51.100.7/32", root=tmp_path)
    assert path.name == "Pulumi.e2e-4242-1.yaml"
    doc = yaml.safe_load(path.read_text())
    assert doc["config"]["gcp:project"] == "my-sandbox-01"
    config = _project_config(doc)
    assert config["authorizedNetworks"] == [{"name": "e2e-runner", "cidr": "198.51.100.7/32"}]
    program = run_program(config, stack="e2e-4242-1", gcp_project="my-sandbox-01")
    assert program.exports["edge"] is not None, "the run exercises the edge"
    # What the workflow relies on: flip --to green from blue, load on helloworld.sample, the edge's host.
    assert config["traffic"]["weights"] == {"blue": 100, "green": 0}
    assert {"host": "helloworld", "namespace": "sample"}.items() <= config["traffic"]["services"][0].items()
    assert all(not c["deletionProtection"] and not c["protect"] for c in config["clusters"]), \
        "an ephemeral stack must be destroyable"


@pytest.mark.parametrize(("args", "message"), [
    (["--stack", "dev", "--project", "my-sandbox-01", "--runner-cidr", "198.51.100.7/32"], "--stack 'dev'"),
    (["--stack", "e2e-1", "--project", "My_Sandbox", "--runner-cidr", "198.51.100.7/32"], "--project 'My_Sandbox'"),
    (["--stack", "e2e-1", "--project", "my-sandbox-01", "--runner-cidr", "0.0.0.0/0"], "--runner-cidr '0.0.0.0/0'"),
])
def test_a_bad_stack_file_argument_is_refused_naming_it(
        args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["stack-file", *args]) == 2
    assert message in capsys.readouterr().err
    assert not list(ROOT.glob("Pulumi.e2e-*.yaml")), "nothing may be written"


def test_an_existing_stack_file_is_never_overwritten(tmp_path: Path) -> None:
    cli.write_stack_file("e2e-7", "my-sandbox-01", "198.51.100.7/32", root=tmp_path)
    with pytest.raises(cli.E2EError, match="already exists"):
        cli.write_stack_file("e2e-7", "my-sandbox-01", "198.51.100.8/32", root=tmp_path)


# ------------------------------------------------------------------ cost and guards


@pytest.fixture(scope="module")
def one_hour() -> cli.RunCost:
    return cli.run_cost(1)


def test_a_run_costs_the_stacks_monthly_estimate_times_its_hours_over_the_month(one_hour: cli.RunCost) -> None:
    config = _project_config(cli.template())
    config["authorizedNetworks"] = [{"name": "x", "cidr": "198.51.100.1/32"}]
    month = estimate(run_program(config, stack="e2e-0"))
    assert (one_hour.month_low, one_hour.month_high) == (month.low, month.high)
    assert one_hour.low == pytest.approx(month.low / month.prices.hours)
    assert one_hour.high == pytest.approx(month.high / month.prices.hours)
    assert 0 < one_hour.low < one_hour.high


def test_the_budget_guard_refuses_a_run_whose_ceiling_is_above_the_budget(
        one_hour: cli.RunCost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = cli.run_cost

    def scaled(hours: float) -> cli.RunCost:  # the priced program is the same every time: scale one hour
        if not 0 < hours <= 24:
            return real(hours)
        return cli.RunCost(hours, one_hour.low * hours, one_hour.high * hours, one_hour.month_low,
                           one_hour.month_high, one_hour.hours_per_month, one_hour.read)

    monkeypatch.setattr(cli, "run_cost", scaled)
    assert cli.main(["cost", "--hours", "3", "--max-usd", f"{3 * one_hour.high - 0.01:.2f}"]) == cli.EXIT_OVER_BUDGET
    assert "refused" in capsys.readouterr().err
    assert cli.main(["cost", "--hours", "3", "--max-usd", f"{3 * one_hour.high + 0.01:.2f}"]) == 0
    assert cli.main(["cost", "--hours", "0"]) == 2
    assert "--hours 0" in capsys.readouterr().err


def _doc_command_and_output(command_prefix: str) -> tuple[str, str]:
    text = E2E_DOC.read_text()
    match = re.search(r"```bash\n\s*(" + re.escape(command_prefix) + r"[^\n]*)\n\s*```\n\n\s*```text\n\s*([^\n]+)\n",
                      text)
    assert match, f"docs/e2e.md shows no `{command_prefix}` with its output"
    return match.group(1), match.group(2)


def test_the_docs_cost_figures_are_the_tools_output_for_the_commands_as_written() -> None:
    command, shown = _doc_command_and_output("venv/bin/python -m tools.e2e cost --hours 1")
    done = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == shown.strip(), f"docs/e2e.md is stale: run `{command}` and paste its output"
    # The guard's command, in-process (the same argv after `-m tools.e2e`): under budget, so exit 0.
    command, shown = _doc_command_and_output("venv/bin/python -m tools.e2e cost --hours 3 --max-usd")
    out = io.StringIO()
    assert cli.main(shlex.split(command)[3:], out=out) == 0
    assert out.getvalue().strip() == shown.strip(), f"docs/e2e.md is stale: run `{command}` and paste its output"


def test_earlier_e2e_stacks_are_named_and_refused(capsys: pytest.CaptureFixture[str]) -> None:
    stacks = [{"name": "dev"}, {"name": "e2e-5-1"}, {"name": "e2e-9-1"}, {"name": "e2e-notes"}, {"name": "e2e-12"}]
    assert cli.leftovers(stacks, current="e2e-9-1") == ["e2e-12", "e2e-5-1"]
    assert cli.main(["leftovers", "--stack", "e2e-9-1"], stdin=io.StringIO(json.dumps(stacks))) == 1
    assert "e2e-12, e2e-5-1" in capsys.readouterr().err
    assert cli.main(["leftovers", "--stack", "e2e-9-1"], stdin=io.StringIO('[{"name": "e2e-9-1"}]')) == 0
    assert cli.main(["leftovers", "--stack", "e2e-9-1"], stdin=io.StringIO("error: no backend")) == 2


# ------------------------------------------------------------------ record and report


def test_each_phase_records_its_duration_and_exit_code_and_passes_the_exit_code_on(tmp_path: Path) -> None:
    record = tmp_path / "e2e" / "record.json"
    ticks = iter([100.0, 130.5, 200.0, 202.0])
    assert cli.run_phase("up", [sys.executable, "-c", "pass"], record, stack="e2e-1", clock=lambda: next(ticks)) == 0
    assert cli.run_phase("verify", [sys.executable, "-c", "raise SystemExit(3)"], record,
                         clock=lambda: next(ticks)) == 3
    data = json.loads(record.read_text())
    assert data["stack"] == "e2e-1"
    assert [(p["name"], p["seconds"], p["exit"]) for p in data["phases"]] == [("up", 30.5, 0), ("verify", 2.0, 3)]
    text = cli.report(data)
    assert "| up | 30.5 s | ok |" in text and "| verify | 2.0 s | exit 3 |" in text
    assert cli.run_phase("missing", ["no-such-command-anywhere"], record) == 127


def test_a_record_that_is_not_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "record.json"
    bad.write_text('{"phases": "no"}')
    assert cli.main(["report", "--record", str(bad)]) == 2
    assert "not an e2e record" in capsys.readouterr().err


# ------------------------------------------------------------------ measured figures


def _event(ts: int, kind: str, op: str, urn: str, type_: str, inputs: dict | None = None,
           planning: bool = False) -> dict:
    """One line of `pulumi up --event-log` (pulumi/pulumi sdk/go/common/apitype/events.go: EngineEvent)."""
    body = {"metadata": {"op": op, "urn": urn, "type": type_, "old": None,
                         "new": {"type": type_, "urn": urn, "inputs": inputs or {}}}}
    if planning:
        body["planning"] = True
    return {"sequence": ts, "timestamp": ts, kind: body}


CLUSTER = "gcp:container/cluster:Cluster"


def _sample_run(directory: Path, cluster_seconds: int, stack: str) -> None:
    directory.mkdir(parents=True)
    urn = "urn:pulumi:e2e::gke-istio-mesh::gke-istio-mesh:index:GkeCluster$gcp:container/cluster:Cluster::blue"
    helm = "urn:pulumi:e2e::gke-istio-mesh::kubernetes:helm.sh/v3:Release::blue-istiod"
    events = [
        _event(1, "resourcePreEvent", "create", urn, CLUSTER, planning=True),   # the preview: ignored
        _event(2, "resOutputsEvent", "create", urn, CLUSTER, planning=True),
        _event(10, "resourcePreEvent", "create", urn, CLUSTER),
        _event(12, "resourcePreEvent", "create", helm, HELM_RELEASE, {"chart": "istiod"}),
        _event(12 + 70, "resOutputsEvent", "create", helm, HELM_RELEASE, {"chart": "istiod"}),
        _event(10 + cluster_seconds, "resOutputsEvent", "create", urn, CLUSTER),
        _event(20, "resourcePreEvent", "same", urn, CLUSTER),                    # no step: ignored
    ]
    (directory / "up.events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    (directory / "record.json").write_text(json.dumps({"schema": 1, "stack": stack, "phases": [
        {"name": "up", "seconds": 1500.0, "exit": 0, "started": 0}, {"name": "flip", "seconds": 9.0, "exit": 1,
                                                                     "started": 0}]}))
    (directory / "destroy-record.json").write_text(json.dumps({"schema": 1, "stack": stack, "phases": [
        {"name": "destroy", "seconds": 700.0, "exit": 0, "started": 0}]}))


def test_event_logs_and_records_become_measured_samples_per_row_and_phase(tmp_path: Path) -> None:
    _sample_run(tmp_path / "a", 480, "e2e-1-1")
    _sample_run(tmp_path / "b", 600, "e2e-2-1")
    merged = measured.merge([measured.read_run(tmp_path / "a"), measured.read_run(tmp_path / "b")])
    assert merged["runs"] == ["e2e-1-1", "e2e-2-1"]
    assert merged["rows"][CLUSTER] == {"create": [480.0, 600.0]}
    assert merged["rows"]["helm:istiod"] == {"create": [70.0, 70.0]}
    assert merged["phases"] == {"up": [1500.0, 1500.0], "destroy": [700.0, 700.0]}, "a failed phase is no figure"


OVERLAY = """
import json, sys
from bench import durations
table = durations.overlay(durations.ESTIMATES, json.loads(sys.stdin.read()))
row, est = table[sys.argv[1]], durations.ESTIMATES[sys.argv[1]]
print(json.dumps({"estimate": est.create, "create": row.create, "delete": row.delete, "est_delete": est.delete,
                  "published": row.published, "source": row.source,
                  "keys": sorted(table) == sorted(durations.ESTIMATES), "file": str(durations.MEASURED_FILE)}))
"""


def _overlay(measured_json: dict, key: str = CLUSTER) -> dict:
    """bench/durations.py's overlay, run in its own interpreter (tests do not import bench)."""
    done = subprocess.run([str(ROOT / "venv" / "bin" / "python"), "-c", OVERLAY, key], cwd=ROOT,
                          input=json.dumps(measured_json), capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def test_measured_figures_replace_the_estimates_step_by_step() -> None:
    few = _overlay({"runs": ["a", "b"], "rows": {CLUSTER: {"create": [480.0, 1000.0]}, "no-such-row": {"create": [1]}}})
    low, _, high = few["estimate"]
    # Two samples: the typical is their median, the estimated range widened to take them in.
    assert few["create"] == [min(low, 480.0), 740.0, max(high, 1000.0)] and few["delete"] == few["est_delete"]
    assert few["published"] and few["source"].startswith("measured: create ×2 in 2 e2e runs")
    assert few["keys"], "a measured row the table does not have is ignored"
    assert few["file"] == str(ROOT / "bench" / "measured.json"), "the file the docs' command writes"
    many = _overlay({"runs": list("abc"), "rows": {CLUSTER: {"create": [420.0, 500.0, 610.0]}}})
    assert many["create"] == [420.0, 500.0, 610.0], "three samples: their own spread"
    none = _overlay({})
    assert none["create"] == none["estimate"] and not none["source"].startswith("measured")


def test_the_docs_measured_command_writes_the_file_the_durations_table_reads(tmp_path: Path) -> None:
    text = E2E_DOC.read_text()
    command = next(line for line in text.splitlines() if line.startswith("venv/bin/python -m tools.e2e measured"))
    assert command.endswith("--out bench/measured.json")
    _sample_run(tmp_path / "runs" / "1234", 500, "e2e-1234-1")
    (tmp_path / "bench").mkdir()
    (tmp_path / "venv").symlink_to(ROOT / "venv")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "bench" / "measured.json").read_text())
    assert written["rows"][CLUSTER] == {"create": [500.0]}
    assert _overlay(written)["create"][1] == 500.0
