"""Measured figures from real runs: the end-to-end workflow's records become the bench's durations.

`python -m bench.measured RUN_DIR... [--out bench/measured.json]` reads what each e2e run
uploaded (its `e2e-record` and `e2e-destroy-record` artifacts, unpacked into one directory:
`record.json` and `destroy-record.json` with the phase durations, and `up.events.jsonl` /
`destroy.events.jsonl`, Pulumi's `--event-log` of `up` and `destroy`) and
writes bench/measured.json: per duration-table row and step, every measured sample; per phase,
every run's seconds. bench/durations.py overlays that file on its estimates (`overlay`), so
`python -m bench` weighs the critical paths with what a real project took wherever a run
measured it, and with the estimate elsewhere.

One step's duration is the time from the engine's `resourcePreEvent` to its `resOutputsEvent`
for that URN and op (not the preview's `planning` events). Pulumi stamps events in whole seconds
(`apitype.EngineEvent.Timestamp`, pulumi/pulumi sdk/go/common/apitype/events.go), so a step
that takes under a second measures 0 or 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.durations import MEASURED_FILE, TABLE
from components.names import HELM_RELEASE
from offline.graph import CREATE, DELETE, UPDATE

# Engine ops (apitype.OpType) counted as one of the table's steps.
_OPS = {"create": CREATE, "create-replacement": CREATE, "update": UPDATE, "delete": DELETE,
        "delete-replaced": DELETE}


class MeasuredError(ValueError):
    """A run directory or event log that cannot be read."""


def row_key(resource_type: str, inputs: Mapping[str, Any] | None) -> str | None:
    """The duration-table row a resource's step is measured for (bench.durations.rows_for's keys), or None."""
    if resource_type.startswith("tls:"):
        return "tls"
    if resource_type == HELM_RELEASE:
        key = f"helm:{(inputs or {}).get('chart')}"
        return key if key in TABLE else None
    if resource_type.startswith("kubernetes:"):
        return "kubernetes"
    return resource_type if resource_type in TABLE else None


def step_samples(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """{row key: {step: [seconds, ...]}} from one operation's engine events."""
    started: dict[tuple[str, str], tuple[float, str | None]] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    for event in events:
        for kind in ("resourcePreEvent", "resOutputsEvent"):
            body = event.get(kind)
            if not body or body.get("planning"):
                continue
            meta = body["metadata"]
            step = _OPS.get(meta.get("op"))
            if step is None:
                continue
            key = (meta["urn"], meta["op"])
            if kind == "resourcePreEvent":
                state = meta.get("new") or meta.get("old") or {}
                started[key] = (float(event["timestamp"]), row_key(meta["type"], state.get("inputs")))
            elif key in started:
                at, row = started.pop(key)
                if row is not None:
                    samples.setdefault(row, {}).setdefault(step, []).append(float(event["timestamp"]) - at)
    return samples


def read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise MeasuredError(f"{path}:{n}: not a JSON engine event ({error})") from None
    return events


def read_run(directory: Path) -> dict[str, Any]:
    """One run's phases and step samples from its unpacked artifact."""
    records = [json.loads(p.read_text()) for p in (directory / "record.json", directory / "destroy-record.json")
               if p.is_file()]
    if not records:
        raise MeasuredError(f"{directory}: no record.json or destroy-record.json "
                            "(unpack the run's e2e-record and e2e-destroy-record artifacts here)")
    samples: dict[str, dict[str, list[float]]] = {}
    for name in ("up.events.jsonl", "destroy.events.jsonl"):
        if (directory / name).is_file():
            for row, steps in step_samples(read_events(directory / name)).items():
                for step, values in steps.items():
                    samples.setdefault(row, {}).setdefault(step, []).extend(values)
    return {"stack": next((r.get("stack") for r in records if r.get("stack")), None),
            "phases": {p["name"]: p["seconds"] for r in records for p in r["phases"] if p["exit"] == 0},
            "samples": samples}


def merge(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """bench/measured.json: every run's samples per row and step, and every phase's seconds."""
    rows: dict[str, dict[str, list[float]]] = {}
    phases: dict[str, list[float]] = {}
    for run in runs:
        for row, steps in run["samples"].items():
            for step, values in steps.items():
                rows.setdefault(row, {}).setdefault(step, []).extend(values)
        for name, seconds in run["phases"].items():
            phases.setdefault(name, []).append(seconds)
    return {"runs": [r["stack"] for r in runs],
            "rows": {k: {s: sorted(v) for s, v in sorted(steps.items())} for k, steps in sorted(rows.items())},
            "phases": {k: sorted(v) for k, v in sorted(phases.items())}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.measured", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="unpacked e2e-record artifacts, one directory per run")
    parser.add_argument("--out", type=Path, default=MEASURED_FILE,
                        help="where to write (default: bench/measured.json, which bench/durations.py reads)")
    args = parser.parse_args(argv)
    try:
        merged = merge([read_run(d) for d in args.runs])
    except (MeasuredError, OSError, KeyError, json.JSONDecodeError) as error:
        print(f"bench.measured: {error}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"bench.measured: {len(merged['rows'])} rows and {len(merged['phases'])} phases from "
          f"{len(args.runs)} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
