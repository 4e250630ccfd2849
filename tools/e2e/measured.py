"""Measured figures from real runs: the end-to-end workflow's records become the bench's durations.

`python -m tools.e2e measured RUN_DIR... --out bench/measured.json` reads what each e2e run
uploaded (its `e2e-record` and `e2e-destroy-record` artifacts, unpacked into one directory:
`record.json` and `destroy-record.json` with the phase durations, and `up.events.jsonl` /
`destroy.events.jsonl`, Pulumi's `--event-log` of `up` and `destroy`) and
writes bench/measured.json: per duration-table row (bench/durations.py's keys) and step, every
measured sample; per phase, every run's seconds. bench/durations.py overlays that file on its
estimates (`overlay`; rows it does not have are ignored there), so
`python -m bench` weighs the critical paths with what a real project took wherever a run
measured it, and with the estimate elsewhere.

One step's duration is the time from the engine's `resourcePreEvent` to its `resOutputsEvent`
for that URN and op (not the preview's `planning` events). Pulumi stamps events in whole seconds
(`apitype.EngineEvent.Timestamp`, pulumi/pulumi sdk/go/common/apitype/events.go), so a step
that takes under a second measures 0 or 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from components.names import HELM_RELEASE
from offline.graph import CREATE, DELETE, UPDATE

# Engine ops (apitype.OpType) counted as one of the table's steps.
_OPS = {"create": CREATE, "create-replacement": CREATE, "update": UPDATE, "delete": DELETE,
        "delete-replaced": DELETE}


class MeasuredError(ValueError):
    """A run directory or event log that cannot be read."""


def row_key(resource_type: str, inputs: Mapping[str, Any] | None) -> str | None:
    """The duration-table row a step is measured for, keyed as bench.durations.rows_for keys it; None: no row."""
    if resource_type.startswith("tls:"):
        return "tls"
    if resource_type == HELM_RELEASE:
        return f"helm:{(inputs or {}).get('chart')}"
    if resource_type.startswith("kubernetes:"):
        return "kubernetes"
    if resource_type.startswith("pulumi:") or resource_type.count(":") < 2:
        return None
    return resource_type


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
