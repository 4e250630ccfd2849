"""A flip's report, from its recording: a chart (PNG) and a JSON summary. Pure and offline.

    venv/bin/python -m tools.flip.report_chart RECORDING.json --out DIR

The recording is what the flip loop writes as it runs (`FlipRecording`, format 1, below): the
thresholds, every measurement it judged by (per destination cluster: requests, 5xx, p99) with the
weights applied at the time, every gate and step verdict, and the outcome. The chart stacks, over
the flip's minutes: the configured weights (dashed) and the observed share (solid) per cluster;
success rate per cluster against `flip.minSuccessRate`; p99 per cluster against `flip.maxP99Ms`;
each gate as a vertical line (green passed, red failed) and the verdict in the title.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
OUTCOMES = ("completed", "rolled back", "stopped")


class RecordingError(ValueError):
    """The recording is not a flip recording this renderer reads; the message names the field."""


@dataclass(frozen=True)
class ClusterSample:
    requests: float  # requests the cluster received in the sample's window
    errors: float  # of which 5xx
    p99_ms: float | None  # None: no latency samples


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the flip started
    weights: dict[str, int]  # the split applied at that moment
    clusters: dict[str, ClusterSample]


@dataclass(frozen=True)
class Gate:
    at: float
    name: str  # "readiness", "preview", "step 10%", "rollback", ...
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class FlipRecording:
    """What the flip loop emits (JSON, `format: 1`), one object per run."""

    stack: str
    started: str  # RFC 3339
    services: list[str]  # the routed services' FQDNs judged
    start_weights: dict[str, int]
    target_weights: dict[str, int]
    min_success_rate: float
    max_p99_ms: float
    min_requests: int
    samples: list[Sample]
    gates: list[Gate]
    outcome: str  # one of OUTCOMES
    reason: str = ""
    format: int = FORMAT

    @property
    def clusters(self) -> list[str]:
        return sorted(set(self.start_weights) | set(self.target_weights)
                      | {c for s in self.samples for c in s.clusters})


def _need(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in raw:
        raise RecordingError(f"{where}.{key} is missing")
    value = raw[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise RecordingError(f"{where}.{key} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _weights(raw: Any, where: str) -> dict[str, int]:
    if not isinstance(raw, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw.values()):
        raise RecordingError(f"{where} must map cluster names to integer weights, got {raw!r}")
    return {str(k): int(v) for k, v in raw.items()}


def parse(raw: Any) -> FlipRecording:
    """A recording from its JSON value; RecordingError names the first bad field."""
    if not isinstance(raw, dict):
        raise RecordingError("a recording is a JSON object")
    if raw.get("format") != FORMAT:
        raise RecordingError(f"format must be {FORMAT}, got {raw.get('format')!r}")
    number = (int, float)
    samples = []
    for i, s in enumerate(_need(raw, "samples", list, "recording")):
        where = f"samples[{i}]"
        clusters = {}
        for c, m in _need(s, "clusters", dict, where).items():
            p99 = m.get("p99_ms")
            if p99 is not None and not isinstance(p99, number):
                raise RecordingError(f"{where}.clusters.{c}.p99_ms must be a number or null, got {p99!r}")
            clusters[c] = ClusterSample(float(_need(m, "requests", number, f"{where}.clusters.{c}")),
                                        float(_need(m, "errors", number, f"{where}.clusters.{c}")),
                                        None if p99 is None else float(p99))
        samples.append(Sample(float(_need(s, "at", number, where)), _weights(s.get("weights"), f"{where}.weights"),
                              clusters))
    gates = [Gate(float(_need(g, "at", number, f"gates[{i}]")), _need(g, "name", str, f"gates[{i}]"),
                  _need(g, "passed", bool, f"gates[{i}]"), str(g.get("detail", "")))
             for i, g in enumerate(_need(raw, "gates", list, "recording"))]
    outcome = _need(raw, "outcome", str, "recording")
    if outcome not in OUTCOMES:
        raise RecordingError(f"recording.outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    if [s.at for s in samples] != sorted(s.at for s in samples):
        raise RecordingError("samples must be in time order (`at` ascending)")
    return FlipRecording(
        stack=_need(raw, "stack", str, "recording"), started=_need(raw, "started", str, "recording"),
        services=list(_need(raw, "services", list, "recording")),
        start_weights=_weights(raw.get("start_weights"), "start_weights"),
        target_weights=_weights(raw.get("target_weights"), "target_weights"),
        min_success_rate=float(_need(raw, "min_success_rate", number, "recording")),
        max_p99_ms=float(_need(raw, "max_p99_ms", number, "recording")),
        min_requests=int(_need(raw, "min_requests", int, "recording")),
        samples=samples, gates=gates, outcome=outcome, reason=str(raw.get("reason", "")))


def to_json(recording: FlipRecording) -> dict[str, Any]:
    """The recording as the flip loop writes it."""
    return asdict(recording)


def _share(sample: Sample, cluster: str) -> float | None:
    total = sum(m.requests for m in sample.clusters.values())
    return None if total <= 0 else 100.0 * sample.clusters.get(cluster, ClusterSample(0, 0, None)).requests / total


def _rate(m: ClusterSample | None) -> float | None:
    return None if m is None or m.requests <= 0 else 100.0 * (m.requests - m.errors) / m.requests


def summary(recording: FlipRecording) -> dict[str, Any]:
    """The JSON report: per applied split, what each cluster received and how it answered; the gates; the verdict."""
    steps: list[dict[str, Any]] = []
    for s in recording.samples:
        if not steps or steps[-1]["weights"] != s.weights:
            steps.append({"weights": s.weights, "from": s.at, "to": s.at, "clusters": {}})
        step = steps[-1]
        step["to"] = s.at
        for c, m in s.clusters.items():
            acc = step["clusters"].setdefault(c, {"requests": 0.0, "errors": 0.0, "worst_p99_ms": None})
            acc["requests"] += m.requests
            acc["errors"] += m.errors
            if m.p99_ms is not None:
                acc["worst_p99_ms"] = max(acc["worst_p99_ms"] or 0.0, m.p99_ms)
    for step in steps:
        total = sum(a["requests"] for a in step["clusters"].values())
        for acc in step["clusters"].values():
            acc["share_pct"] = round(100.0 * acc["requests"] / total, 2) if total else None
            acc["success_rate_pct"] = (round(100.0 * (acc["requests"] - acc["errors"]) / acc["requests"], 3)
                                       if acc["requests"] else None)
    end = max([s.at for s in recording.samples] + [g.at for g in recording.gates] + [0.0])
    return {
        "stack": recording.stack, "started": recording.started, "services": recording.services,
        "outcome": recording.outcome, "reason": recording.reason, "duration_seconds": end,
        "from": recording.start_weights, "to": recording.target_weights,
        "thresholds": {"min_success_rate": recording.min_success_rate, "max_p99_ms": recording.max_p99_ms,
                       "min_requests": recording.min_requests},
        "steps": steps,
        "gates": [asdict(g) for g in recording.gates],
    }


def draw(recording: FlipRecording, path: Path) -> None:
    """The chart: weights and share, success rate, p99 per cluster over the flip; gates; the verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.at / 60 for s in recording.samples]
    fig, (share, rate, p99) = plt.subplots(3, 1, sharex=True, figsize=(11, 8.5), height_ratios=(1.2, 1, 1))
    for i, c in enumerate(recording.clusters):
        color = f"C{i}"
        share.step(minutes, [s.weights.get(c, 0) for s in recording.samples], where="post", ls="--", color=color,
                   label=f"{c} weight")
        share.plot(minutes, [_share(s, c) for s in recording.samples], "-", color=color, label=f"{c} observed share")
        rate.plot(minutes, [_rate(s.clusters.get(c)) for s in recording.samples], "-o", ms=3, color=color, label=c)
        p99.plot(minutes, [(s.clusters[c].p99_ms if c in s.clusters else None) for s in recording.samples], "-o",
                 ms=3, color=color, label=c)
    rate.axhline(recording.min_success_rate, ls=":", color="#d93025", label="flip.minSuccessRate")
    p99.axhline(recording.max_p99_ms, ls=":", color="#d93025", label="flip.maxP99Ms")
    share.set_ylabel("% of requests")
    share.set_ylim(-5, 105)
    rate.set_ylabel("success rate %")
    p99.set_ylabel("p99 ms")
    p99.set_xlabel("minutes since the flip started")
    for ax in (share, rate, p99):
        for g in recording.gates:
            ax.axvline(g.at / 60, color="#188038" if g.passed else "#d93025", lw=0.8, alpha=0.7)
        ax.grid(alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    for g in recording.gates:
        share.annotate(f"{g.name} {'✓' if g.passed else '✗'}", (g.at / 60, 104), rotation=90, fontsize=7,
                       va="top", ha="right", color="#188038" if g.passed else "#d93025")
    arrow = " → ".join("/".join(str(w) for w in ws.values()) for ws in (recording.start_weights,
                                                                       recording.target_weights))
    fig.suptitle(f"flip of {recording.stack} ({arrow}): {recording.outcome}"
                 + (f" — {recording.reason}" if recording.reason else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.flip.report_chart", description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path, help="the flip's recording (JSON, format 1)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for flip-report.png and .json")
    args = parser.parse_args(argv)
    try:
        recording = parse(json.loads(args.recording.read_text()))
    except (OSError, json.JSONDecodeError, RecordingError) as error:
        print(f"report_chart: {args.recording}: {error}", file=sys.stderr)
        return 2
    if not args.out.is_dir():
        parser.error(f"--out {args.out}: no such folder")
    draw(recording, args.out / "flip-report.png")
    (args.out / "flip-report.json").write_text(json.dumps(summary(recording), indent=2) + "\n")
    print(f"{recording.outcome}: wrote {args.out / 'flip-report.png'} and {args.out / 'flip-report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
