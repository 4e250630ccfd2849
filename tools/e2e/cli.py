"""`python -m tools.e2e`: the pieces of the end-to-end run that are code, not workflow YAML.

    stack-file  write Pulumi.<stack>.yaml for the run's ephemeral stack from tools/e2e/stack.yaml
    cost        what one run costs, from tools.cost's monthly estimate of that stack; with
                --max-usd, refuse (exit 3) when the run's ceiling is above the budget
    leftovers   read `pulumi stack ls --json` on stdin; exit 1 naming any other e2e stack still alive
    phase       run one phase's command and append its duration and exit code to the record
    report      the record as a Markdown table (the job summary)
    measured    runs' records and event logs -> bench/measured.json, the bench's measured figures

The records and event logs (uploaded as the run's artifacts) are what `measured` turns into the
bench's measured figures (tools/e2e/measured.py, docs/e2e.md).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from offline.engine import PROJECT, ROOT, ProgramError, run_program
from tools.cost.estimate import PriceError, estimate, money
from tools.e2e import measured

TEMPLATE = Path(__file__).with_name("stack.yaml")
# e2e-<run id>[-<attempt>]: unique per run, and never the name of a user's stack.
STACK_NAME = re.compile(r"^e2e-[0-9]+(-[0-9]+)?$")
PHASE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
RECORD_SCHEMA = 1
EXIT_OVER_BUDGET = 3


class E2EError(Exception):
    """A bad argument or input: exit 2 with this message."""


# --------------------------------------------------------------------------- the stack


def template() -> dict[str, Any]:
    return yaml.safe_load(TEMPLATE.read_text())


def stack_document(project: str, runner_cidr: str) -> dict[str, Any]:
    """The ephemeral stack's file: the template with the sandbox project and the runner's address."""
    if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", project):
        raise E2EError(f"--project {project!r}: not a GCP project id (6-30 lowercase letters, digits, hyphens)")
    if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}/32", runner_cidr):
        raise E2EError(f"--runner-cidr {runner_cidr!r}: the runner's egress address as a /32, e.g. 198.51.100.10/32")
    doc = template()
    doc["config"]["gcp:project"] = project
    doc["config"][f"{PROJECT}:authorizedNetworks"] = [{"name": "e2e-runner", "cidr": runner_cidr}]
    return doc


def write_stack_file(stack: str, project: str, runner_cidr: str, root: Path = ROOT) -> Path:
    if not STACK_NAME.fullmatch(stack):
        raise E2EError(f"--stack {stack!r}: must be e2e-<run id>[-<attempt>] (a unique, ephemeral name)")
    path = root / f"Pulumi.{stack}.yaml"
    if path.exists():
        raise E2EError(f"--stack {stack}: {path.name} already exists; an ephemeral stack is written once")
    path.write_text(yaml.safe_dump(stack_document(project, runner_cidr), sort_keys=False))
    return path


# --------------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class RunCost:
    hours: float
    low: float  # nodes at the pools' minimum
    high: float  # nodes at the pools' maximum
    month_low: float
    month_high: float
    hours_per_month: float
    read: str


def run_cost(hours: float) -> RunCost:
    """List price of the e2e stack for `hours`: tools.cost's monthly estimate * hours / hours per month."""
    if not 0 < hours <= 24:
        raise E2EError(f"--hours {hours:g}: must be more than 0 and at most 24")
    config = {k[len(PROJECT) + 1:]: v for k, v in template()["config"].items() if k.startswith(f"{PROJECT}:")}
    config["authorizedNetworks"] = [{"name": "e2e-runner", "cidr": "198.51.100.10/32"}]
    est = estimate(run_program(config, stack="e2e-0"))
    per_month = est.prices.hours
    return RunCost(hours, est.low * hours / per_month, est.high * hours / per_month, est.low, est.high,
                   per_month, est.read)


def cost_text(c: RunCost) -> str:
    return (f"e2e stack for {c.hours:g} h: {money(c.low)} – {money(c.high)} (nodes at min – max; "
            f"tools.cost's {money(c.month_low)} – {money(c.month_high)} a month × {c.hours:g} / "
            f"{c.hours_per_month:g} h; list prices read {c.read}; traffic not included)")


# --------------------------------------------------------------------------- leftovers


def leftovers(stacks: Sequence[Mapping[str, Any]], current: str) -> list[str]:
    """Names of e2e stacks other than this run's (from `pulumi stack ls --json`)."""
    return sorted(s["name"] for s in stacks
                  if STACK_NAME.fullmatch(str(s.get("name", ""))) and s["name"] != current)


# --------------------------------------------------------------------------- the record


def load_record(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"schema": RECORD_SCHEMA, "stack": None, "phases": []}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise E2EError(f"--record {path}: not JSON ({error})") from None
    if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA or not isinstance(
            record.get("phases"), list):
        raise E2EError(f"--record {path}: not an e2e record of schema {RECORD_SCHEMA}")
    return record


def run_phase(name: str, command: Sequence[str], record_path: Path, stack: str | None = None,
              clock: Any = time.time) -> int:
    """Run `command`, append {name, seconds, exit, started} to the record, return its exit code."""
    if not PHASE_NAME.fullmatch(name):
        raise E2EError(f"phase name {name!r}: lowercase letters, digits and hyphens")
    if not command:
        raise E2EError(f"phase {name}: no command after --")
    record = load_record(record_path)
    if stack:
        record["stack"] = stack
    started = clock()
    try:
        code = subprocess.call(list(command))
    except FileNotFoundError:
        code = 127
    finished = clock()
    record["phases"].append({"name": name, "seconds": round(finished - started, 1), "exit": code,
                             "started": round(started, 1)})
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return code


def report(record: Mapping[str, Any]) -> str:
    rows = record["phases"]
    lines = [f"### End-to-end run: stack `{record.get('stack') or '?'}`", "",
             "| phase | duration | result |", "| --- | ---: | --- |"]
    for p in rows:
        result = "ok" if p["exit"] == 0 else f"exit {p['exit']}"
        lines.append(f"| {p['name']} | {_minutes(p['seconds'])} | {result} |")
    total = sum(p["seconds"] for p in rows)
    lines += ["", f"Total: {_minutes(total)} over {len(rows)} phases. The JSON record is the run's "
              "`e2e-record` artifact; `python -m tools.e2e measured` turns it into the bench's measured figures."]
    return "\n".join(lines) + "\n"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s" if seconds >= 60 else f"{seconds:.1f} s"


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.e2e", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stack-file", help="write Pulumi.<stack>.yaml for the run's ephemeral stack")
    s.add_argument("--stack", required=True, help="e2e-<run id>[-<attempt>]")
    s.add_argument("--project", required=True, help="the sandbox GCP project id")
    s.add_argument("--runner-cidr", required=True, help="the runner's egress address as a /32")
    c = sub.add_parser("cost", help="what one run costs; --max-usd refuses a run above the budget")
    c.add_argument("--hours", type=float, required=True, help="how long the stack lives (the budget: the timeouts)")
    c.add_argument("--max-usd", type=float, help="exit 3 when the run's high figure is above this")
    sub.add_parser("leftovers", help="stdin: `pulumi stack ls --json`; exit 1 naming other live e2e stacks") \
        .add_argument("--stack", required=True, help="this run's stack, which may exist")
    ph = sub.add_parser("phase", help="run a phase's command (after --) and record its duration")
    ph.add_argument("name")
    ph.add_argument("--record", type=Path, required=True)
    ph.add_argument("--stack")
    ph.add_argument("cmd", nargs=argparse.REMAINDER)
    r = sub.add_parser("report", help="the record as Markdown")
    r.add_argument("--record", type=Path, required=True)
    m = sub.add_parser("measured", help="unpacked run artifacts -> the bench's measured figures")
    m.add_argument("runs", nargs="+", type=Path, help="one directory per run, both artifacts unpacked in it")
    m.add_argument("--out", type=Path, required=True, help="bench/measured.json (bench/durations.py reads it)")
    return p


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.command == "stack-file":
            print(f"wrote {write_stack_file(args.stack, args.project, args.runner_cidr).name}", file=out)
        elif args.command == "cost":
            cost = run_cost(args.hours)
            print(cost_text(cost), file=out)
            if args.max_usd is not None and cost.high > args.max_usd:
                print(f"e2e: refused: a run of up to {args.hours:g} h can cost {money(cost.high)}, above "
                      f"--max-usd {money(args.max_usd)} (raise E2E_MAX_USD or shrink tools/e2e/stack.yaml)",
                      file=sys.stderr)
                return EXIT_OVER_BUDGET
        elif args.command == "leftovers":
            try:
                stacks = json.load(stdin or sys.stdin)
            except json.JSONDecodeError as error:
                raise E2EError(f"leftovers: stdin is not `pulumi stack ls --json` output ({error})") from None
            alive = leftovers(stacks, args.stack)
            if alive:
                print(f"e2e: refused: earlier e2e stacks still exist and cost money: {', '.join(alive)}. "
                      "Destroy each (docs/e2e.md \"Always destroyed, and what can still leave a stack behind\") "
                      "and run again.", file=sys.stderr)
                return 1
            print("no earlier e2e stack is alive", file=out)
        elif args.command == "phase":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            return run_phase(args.name, cmd, args.record, args.stack)
        elif args.command == "report":
            print(report(load_record(args.record)), file=out, end="")
        elif args.command == "measured":
            try:
                merged = measured.merge([measured.read_run(d) for d in args.runs])
            except (measured.MeasuredError, OSError, KeyError, json.JSONDecodeError) as error:
                raise E2EError(f"measured: {error}") from None
            args.out.write_text(json.dumps(merged, indent=2) + "\n")
            print(f"{len(merged['rows'])} duration rows and {len(merged['phases'])} phases from "
                  f"{len(args.runs)} runs -> {args.out}", file=out)
    except E2EError as error:
        print(f"e2e: {error}", file=sys.stderr)
        return 2
    except (ProgramError, PriceError) as error:
        print(f"e2e: tools/e2e/stack.yaml: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
