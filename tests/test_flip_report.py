"""The flip's report, rendered offline from a recorded run (tests/data/flip-recording.json)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from offline import ROOT
from tools.flip import report_chart
from tools.flip.report_chart import RecordingError, parse, summary

RECORDING = ROOT / "tests" / "data" / "flip-recording.json"


@pytest.fixture
def raw() -> dict:
    return json.loads(RECORDING.read_text())


def test_the_recording_round_trips(raw: dict) -> None:
    recording = parse(raw)
    assert report_chart.to_json(recording) == raw
    assert recording.clusters == ["blue", "green"]


def test_the_report_has_each_split_what_each_cluster_got_and_the_verdict(raw: dict) -> None:
    report = summary(parse(raw))
    assert report["outcome"] == "rolled back" and "green: success rate 97.00 % < 99 %" in report["reason"]
    assert [s["weights"] for s in report["steps"]] == [
        {"blue": 100, "green": 0}, {"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"blue": 100, "green": 0}]
    ten, fifty = report["steps"][1]["clusters"], report["steps"][2]["clusters"]
    assert 9 < ten["green"]["share_pct"] < 11 and ten["green"]["success_rate_pct"] > 99
    assert fifty["green"]["success_rate_pct"] == pytest.approx(97.0, abs=0.01)
    assert fifty["blue"]["success_rate_pct"] > 99
    assert [(g["name"], g["passed"]) for g in report["gates"]] == [
        ("readiness", True), ("preview", True), ("step 10%", True), ("step 50%", False), ("rollback", True)]
    assert report["thresholds"] == {"min_success_rate": 99.0, "max_p99_ms": 500.0, "min_requests": 50}


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(format=2), "format must be 1, got 2"),
    (lambda r: r.update(outcome="won"), "recording.outcome must be one of completed, rolled back, stopped"),
    (lambda r: r["samples"][3]["clusters"]["blue"].pop("errors"), "samples[3].clusters.blue.errors is missing"),
    (lambda r: r["samples"][0].update(weights={"blue": "100"}), "samples[0].weights must map cluster names"),
    (lambda r: r["samples"].reverse(), "samples must be in time order"),
])
def test_a_bad_recording_is_refused_naming_the_field(raw: dict, edit, message: str) -> None:
    bad = copy.deepcopy(raw)
    edit(bad)
    with pytest.raises(RecordingError, match=None) as raised:
        parse(bad)
    assert message in str(raised.value)


def test_the_command_writes_the_chart_and_the_json(tmp_path: Path) -> None:
    """`venv/bin/python -m tools.flip.report_chart RECORDING --out DIR`, as docs/observability.md writes it."""
    done = subprocess.run([str(ROOT / "venv" / "bin" / "python"), "-m", "tools.flip.report_chart", str(RECORDING),
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rolled back: wrote ")
    png = (tmp_path / "flip-report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and 30_000 < len(png) < 300_000
    assert json.loads((tmp_path / "flip-report.json").read_text())["outcome"] == "rolled back"
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": 1}')
    done = subprocess.run([str(ROOT / "venv" / "bin" / "python"), "-m", "tools.flip.report_chart", str(broken),
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2 and "recording.samples is missing" in done.stderr
