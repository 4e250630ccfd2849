"""The flip's recording: every read the judge made and every gate, written with its report at the flip's end.

`Recorder` collects, on the flip's own clock, each conclusive read of every step (the hold's
`on_read`, so a step cut short by a signal still leaves its reads) with the weights applied then,
and each gate (readiness, preview, every step's verdict, the rollback). `write` turns them into a
`report_chart.FlipRecording` (JSON, `recording.json`) and renders the report beside it
(`flip-report.png`, `flip-report.json`, `flip-report.md`). Writing never raises: a flip's outcome,
and above all its rollback, never depends on a report (docs/flip.md "The report").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from components.config import FlipSpec
from tools.flip.judge import Read
from tools.flip.report_chart import ClusterSample, FlipRecording, Gate, Sample, to_json, write_report

RECORDING_FILE = "recording.json"


def default_dir(root: Path, stack: str, at: float) -> Path:
    """`build/flip/<stack>-<UTC time>/` under the project: one folder per flip, never overwritten (`-2`, ...)."""
    base = root / "build" / "flip" / f"{stack}-{datetime.fromtimestamp(at, UTC):%Y%m%dT%H%M%SZ}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


@dataclass
class Recorder:
    stack: str
    services: Sequence[str]
    start: Mapping[str, int]
    target: Mapping[str, int]
    rules: FlipSpec
    clock: Callable[[], float]
    t0: float = field(init=False)
    samples: list[Sample] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    inconclusive: int = 0

    def __post_init__(self) -> None:
        self.t0 = self.clock()

    def read(self, read: Read, weights: Mapping[str, int]) -> None:
        """One read of the judge. An inconclusive read has nothing to draw: it is counted, not sampled."""
        if not read.conclusive:
            self.inconclusive += 1
            return
        self.samples.append(Sample(
            at=read.at - self.t0, weights=dict(weights),
            clusters={c: ClusterSample(m.requests, m.errors, m.p99_ms) for c, m in sorted(read.measured.items())},
            window_seconds=float(read.window_seconds), phase=read.phase))

    def gate(self, name: str, passed: bool, detail: str = "") -> None:
        self.gates.append(Gate(at=self.clock() - self.t0, name=name, passed=passed, detail=detail))

    def recording(self, outcome: str, reason: str = "") -> FlipRecording:
        if not reason:
            failed = next((g for g in reversed(self.gates) if not g.passed), None)
            reason = f"{failed.name}: {failed.detail}" if failed is not None else ""
        if self.inconclusive:
            reason = (reason + "; " if reason else "") + f"{self.inconclusive} inconclusive metric read(s) not drawn"
        return FlipRecording(
            stack=self.stack, started=datetime.fromtimestamp(self.t0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            services=list(self.services), start_weights=dict(self.start), target_weights=dict(self.target),
            min_success_rate=self.rules.min_success_rate, max_p99_ms=self.rules.max_p99_ms,
            min_requests=self.rules.min_requests, samples=sorted(self.samples, key=lambda s: s.at),
            gates=list(self.gates), outcome=outcome, reason=reason)

    def write(self, folder: Path, outcome: str, say: Callable[[str], None], reason: str = "",
              chart: bool = True) -> list[Path]:
        """The recording and its report in `folder`; a failure is said, never raised. The paths written."""
        written: list[Path] = []
        try:
            recording = self.recording(outcome, reason)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / RECORDING_FILE
            path.write_text(json.dumps(to_json(recording), indent=1) + "\n")
            written.append(path)
            written += write_report(recording, folder, chart=chart)
        except Exception as error:  # a full disk, a broken matplotlib: the flip's outcome stands
            say(f"WARNING: the flip's report could not be written to {folder}: {type(error).__name__}: {error}"
                + (f" (written: {', '.join(str(p) for p in written)})" if written else ""))
            return written
        say(f"report ({recording.outcome}) in {folder}/: {', '.join(p.name for p in written[1:])} and the recording "
            f"{written[0].name}")
        return written
