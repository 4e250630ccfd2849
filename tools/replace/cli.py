"""The `replace` command: `python -m tools.replace --stack dev --replace blue --with blue2 --plan`.

`--plan` prints every phase of the replacement (add, parity, flip, soak and drain, retire), each
config edit as a diff of the stack file, the offline preview of the add and the extra monthly cost
of running both clusters, and touches nothing. Without it the phases run (tools/replace/runner.py):
`--until PHASE` stops after one, `--resume`/`--abort` continue or undo from the journal, and the
retire runs only with `--confirm-retire`. `--check-parity` runs phase b's gate on its own (reads only).
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from components import config
from components.config.model import DEFAULT_REPLACE_SOAK_SECONDS
from components.config.rules import duration_seconds
from offline.engine import ROOT, ProgramError, run_program
from tools.cost.estimate import PriceError, estimate, money
from tools.flip.cli import main as flip_main
from tools.flip.lease import LeaseError, holder, open_store
from tools.flip.plan import format_weights
from tools.flip.plan import plan as flip_steps
from tools.flip.prometheus import PrometheusClient, adc_token, cloud_monitoring_url, queries
from tools.replace import runner as phases
from tools.replace import stackfile
from tools.replace.plan import Changes, ReplaceError, ReplacePlan, parseable, plan
from tools.replace.preview import AddPreview, check_add
from tools.verify.cli import Runner, UsageError, read_outputs
from tools.verify.kube import ClientFactory, connect, default_client_factory
from tools.verify.parity import compare, read_parity, wait_for_parity
from tools.verify.parity import render as render_parity


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.replace",
                                description="Replace a cluster by a successor: add, parity, flip, soak, retire.")
    p.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
    p.add_argument("--stack-file", type=Path, help="the stack file (default: Pulumi.<stack>.yaml in the project)")
    p.add_argument("--replace", metavar="OLD", help="the cluster to retire")
    p.add_argument("--with", dest="new", metavar="NEW", help="the successor's name")
    p.add_argument("--gke-version", help="the successor's clusters[].minMasterVersion (e.g. 1.34)")
    p.add_argument("--istio-version", help="the successor's clusters[].istioVersion (e.g. 1.31.0)")
    p.add_argument("--region", help="the successor's region (default: OLD's)")
    p.add_argument("--machine-type", help="the successor's node machine type (default: OLD's)")
    p.add_argument("--soak", default=str(DEFAULT_REPLACE_SOAK_SECONDS),
                   help=f"how long OLD stays at weight 0 and must see no requests, e.g. 30m, 24h "
                   f"(default {DEFAULT_REPLACE_SOAK_SECONDS}s)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="print every phase, config edit and the cost; touch nothing")
    mode.add_argument("--resume", action="store_true", help="continue the replacement the journal records")
    mode.add_argument("--abort", action="store_true",
                      help="undo the recorded replacement: traffic back to the start split, the successor removed")
    mode.add_argument("--check-parity", action="store_true",
                      help="phase b alone: compare NEW's workloads with OLD's in the deployed clusters (reads only)")
    p.add_argument("--outputs", type=Path, metavar="FILE",
                   help="with --check-parity: `pulumi stack output --json --show-secrets` saved to FILE "
                   "(default: ask the Pulumi CLI)")
    p.add_argument("--wait", default="0", help="parity: keep checking up to this long, e.g. 10m")
    p.add_argument("--until", choices=phases.PHASES, help="stop after this phase (resume later with --resume)")
    p.add_argument("--confirm-retire", action="store_true",
                   help="allow phase e: remove OLD from the stack file and `pulumi up` (the point of no return)")
    p.add_argument("--prometheus-url", metavar="URL",
                   help="the soak's Prometheus API (default: Cloud Monitoring's for gcp:project)")
    return p.parse_args(argv)


def check_parity(args: argparse.Namespace, text: str, factory: ClientFactory, runner: Runner) -> int:
    """Read OLD and NEW from the deployed clusters and compare them; 0 parity, 1 differences, 2 unusable."""
    wait = duration_seconds(args.wait) if args.wait != "0" else 0
    if wait is None:
        print(f"replace: --wait {args.wait!r} must be a duration such as 10m", file=sys.stderr)
        return 2
    try:
        cfg = config.parse(parseable(stackfile.project_config(text)), project=stackfile.gcp_project(text) or "")
        outputs = read_outputs(args.stack, args.outputs, runner)
    except (config.ConfigError, UsageError) as error:
        print(f"replace: {error}", file=sys.stderr)
        return 2
    missing = [n for n in (args.replace, args.new) if n not in outputs.names]
    if missing:
        print(f"replace: {', '.join(missing)} not in the stack outputs (clusters: {', '.join(outputs.names)}); "
              "phase a (add) must be deployed first", file=sys.stderr)
        return 2
    picked = dataclasses.replace(outputs, clusters=tuple(
        c for c in outputs.clusters if c.name in (args.replace, args.new)))
    clients, errors = connect(picked, factory)
    if errors:
        print("\n".join(f"replace: {e.name}: {e.message} ({e.fix})" for e in errors), file=sys.stderr)
        return 2
    services = [(s.host, s.namespace) for s in cfg.traffic.services]
    address = next(c.eastwest_address for c in outputs.clusters if c.name == args.new)

    def once():  # noqa: ANN202
        old = read_parity(clients[args.replace], args.replace, cfg.mesh_namespaces, services)
        new = read_parity(clients[args.new], args.new, cfg.mesh_namespaces, services)
        return compare(old, new, services, address)

    result = wait_for_parity(once, timeout=float(wait))
    print(render_parity(result))
    return 0 if result.passed else 1


def _indent(text: str, prefix: str = "    ") -> str:
    return "".join(prefix + line if line.strip() else line for line in text.splitlines(keepends=True))


def render(stack: str, name: str, text: str, rp: ReplacePlan, soak: int, cfg: config.StackConfig,
           preview_lines: list[str], cost_line: str) -> str:
    old, new = rp.old, rp.new
    added_text = stackfile.rewrite(text, rp.added)
    flipped_text = stackfile.rewrite(added_text, rp.flipped)
    out = [f"replace {old} with {new} in stack '{stack}' ({name}); plan only, nothing is touched", ""]
    out += [f"a. add      write {new} into {name} at weight 0 and `pulumi up` (stops if the preview below is "
            "REFUSED):", _indent(stackfile.diff(text, added_text, name, f"add {new}"))]
    if rp.pinned:
        pinned = ", ".join(f"clusters[{i}]" for i, _ in rp.pinned)
        out.append(f"   {pinned}: the default maintenance window written out (same hours) so that removing "
                   f"{old} later moves no window")
    out += preview_lines
    steps = flip_steps(dict(rp.added["traffic"]["weights"]), rp.final_weights, cfg.flip.steps)
    out += ["", f"b. parity   {new} must run what {old} runs in {', '.join(cfg.mesh_namespaces)}: "
            "the same Deployments and StatefulSets and images, ready, every routed service with ready endpoints "
            "and the east-west gateway reachable (tools/verify/parity.py; docs/replace.md#b-parity)",
            "", f"c. flip     tools.flip, as make flip STACK={stack} ARGS=\"--weights "
            f"{','.join(f'{k}={v}' for k, v in rp.final_weights.items() if v)} --steps "
            f"{','.join(map(str, cfg.flip.steps))} --hold {cfg.flip.hold_seconds}s\""]
    out += [f"    step {s.index} ({s.percent}%): {format_weights(s.weights)}" for s in steps]
    hosts = [s.fqdn for s in cfg.traffic.services]
    out += ["", f"d. soak     {old} stays at weight 0 for {soak}s and must see no requests of the routed services "
            "in that time:", f"    {queries(hosts, soak)['requests']}  ->  no series for destination_cluster=\"{old}\""
            " (or 0)"]
    out += ["", f"e. retire   the point of no return: needs your explicit confirmation (a reviewed pull request); "
            f"the retirement gate refuses while {old} has weight"]
    retire_from = flipped_text
    if rp.unprotected is not None:
        unprotected_text = stackfile.rewrite(flipped_text, rp.unprotected)
        out += [f"   first its own `pulumi up` that lifts {old}'s protection:",
                _indent(stackfile.diff(flipped_text, unprotected_text, name, f"unprotect {old}"))]
        retire_from = unprotected_text
    out += [f"   then remove {old} and `pulumi up`:",
            _indent(stackfile.diff(retire_from, stackfile.rewrite(retire_from, rp.retired), name, f"retire {old}"))]
    out += ["", cost_line, "", f"run it: make replace STACK={stack} ARGS=\"--replace {old} --with {new}\" (the same "
            "change options; --until PHASE stops after a phase, --resume goes on, --abort undoes; the retire runs "
            "only with --confirm-retire)"]
    return "\n".join(out)


# (arguments, stack file, gcp:project) -> what the phases talk to.
MakePorts = Callable[[argparse.Namespace, Path, str], phases.Ports]


def production_ports(args: argparse.Namespace, path: Path, project: str) -> phases.Ports:
    """The real thing: `pulumi up` with the policy pack, the stack's outputs, the flip, Cloud Monitoring."""
    stack_dir = path.parent

    def deploy() -> None:
        done = subprocess.run(["pulumi", "up", "--yes", "--diff", "--stack", args.stack,
                               "--policy-pack", str(ROOT / "policy")], cwd=stack_dir, check=False)
        if done.returncode != 0:
            raise phases.PhaseFailed(f"`pulumi up` exited {done.returncode}; fix what it reported, then --resume")

    prometheus = ["--prometheus-url", args.prometheus_url] if args.prometheus_url else []

    def flip(argv: Sequence[str]) -> int:
        return flip_main(["--stack", args.stack, *argv, *prometheus], stack_dir=stack_dir)

    def add_preview(before: Mapping[str, Any], added: Mapping[str, Any], new: str, network: str) -> AddPreview:
        return check_add(run_program(parseable(before), gcp_project=project),
                         run_program(parseable(added), gcp_project=project), new, network)

    wait = duration_seconds(args.wait) if args.wait != "0" else 0
    metrics = (PrometheusClient(args.prometheus_url) if args.prometheus_url
               else PrometheusClient(cloud_monitoring_url(project), adc_token))
    return phases.Ports(
        store=open_store(stack_dir), stack_file=path, project=project, deploy=deploy,
        outputs=lambda: read_outputs(args.stack, None, subprocess.run), client_factory=default_client_factory,
        flip=flip, metrics=metrics, clock=time.time, sleep=time.sleep, check_add=add_preview,
        parity_wait=float(wait or 0), out=sys.stdout)


def run_phases(args: argparse.Namespace, path: Path, text: str, soak: int, make_ports: MakePorts) -> int:
    """Start, resume or abort the replacement the journal beside the state records."""
    project = stackfile.gcp_project(text) or ""
    try:
        ports = make_ports(args, path, project)
        j = phases.read(ports.store, args.stack)
    except LeaseError as error:
        print(f"replace: --stack {args.stack}: {error}", file=sys.stderr)
        return phases.EXIT_USAGE
    if args.resume or args.abort:
        flag = "--resume" if args.resume else "--abort"
        if j is None or j.status in (phases.DONE, phases.ABORTED):
            print(f"replace: {flag}: no replacement of stack {args.stack} is in progress (journal: "
                  f"{'none' if j is None else j.status})", file=sys.stderr)
            return phases.EXIT_USAGE
        named = [f"{flag_} {given!r}" for flag_, given, recorded in (("--replace", args.replace, j.old),
                                                                   ("--with", args.new, j.new))
                 if given is not None and given != recorded]
        if named:
            print(f"replace: {flag}: {', '.join(named)} is not the recorded replacement of {j.old} by {j.new}",
                  file=sys.stderr)
            return phases.EXIT_USAGE
        r = phases.Runner(j, ports)
        return r.abort() if args.abort else r.run(until=args.until, confirm_retire=args.confirm_retire, resumed=True)
    if args.replace is None or args.new is None:
        print("replace: name the cluster to replace and its successor: --replace OLD --with NEW (or --resume, "
              "--abort, --plan)", file=sys.stderr)
        return phases.EXIT_USAGE
    if j is not None and j.status in (phases.RUNNING, phases.PAUSED):
        print(f"replace: stack {args.stack}: the replacement of {j.old} by {j.new} started by {j.holder} at "
              f"{j.started} is in progress (done: {', '.join(j.done) or 'nothing'}); run --resume or --abort",
              file=sys.stderr)
        return phases.EXIT_HELD
    changes = Changes(gke_version=args.gke_version, istio_version=args.istio_version, region=args.region,
                      machine_type=args.machine_type)
    try:
        rp = plan(stackfile.project_config(text), old=args.replace, new=args.new, changes=changes, project=project)
    except ReplaceError as error:
        print("replace: cannot plan:\n" + "\n".join(f"  - {p}" for p in error.problems), file=sys.stderr)
        return phases.EXIT_USAGE
    j = phases.Journal.begin(args.stack, rp, soak, holder())
    phases.write(ports.store, j)
    return phases.Runner(j, ports).run(until=args.until, confirm_retire=args.confirm_retire, resumed=False)


def main(argv: Sequence[str] | None = None, *, client_factory: ClientFactory = default_client_factory,
         runner: Runner = subprocess.run, make_ports: MakePorts | None = None) -> int:
    args = parse_args(argv)
    path = args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml"
    if not path.is_file():
        print(f"replace: --stack {args.stack}: there is no {path}", file=sys.stderr)
        return 2
    soak = duration_seconds(args.soak)
    if soak is None:
        print(f"replace: --soak {args.soak!r} must be a duration such as 30m, 1h or 86400", file=sys.stderr)
        return 2
    text = path.read_text()
    if args.check_parity:
        return check_parity(args, text, client_factory, runner)
    if not args.plan:
        return run_phases(args, path, text, soak, make_ports or production_ports)
    if args.replace is None or args.new is None:
        print("replace: --plan needs --replace OLD and --with NEW", file=sys.stderr)
        return 2
    raw, project = stackfile.project_config(text), stackfile.gcp_project(text) or ""
    changes = Changes(gke_version=args.gke_version, istio_version=args.istio_version, region=args.region,
                      machine_type=args.machine_type)
    try:
        rp = plan(raw, old=args.replace, new=args.new, changes=changes, project=project)
        before = run_program(parseable(rp.before), gcp_project=project)
        after = run_program(parseable(rp.added), gcp_project=project)
    except ReplaceError as error:
        print("replace: cannot plan:\n" + "\n".join(f"  - {p}" for p in error.problems), file=sys.stderr)
        return 2
    except ProgramError as error:
        print(f"replace: the program stopped on the planned config:\n{error}", file=sys.stderr)
        return 2
    cfg = config.parse(parseable(rp.added), project=project)
    check = check_add(before, after, rp.new, rp.entry["network"])
    preview = [f"   offline preview: {len(check.added)} resources created (all {rp.new}'s), "
               f"{len(check.changed)} changed, none deleted"]
    preview += [f"     ~ {name}: {why}" for name, why in check.changed]
    preview += [f"   REFUSED: {p}" for p in check.problems]
    try:
        now, both = estimate(before), estimate(after)
        cost = (f"cost of running both clusters until {rp.old} is retired: {money(both.low - now.low)} – "
                f"{money(both.high - now.high)} a month more ({money(both.low)} – {money(both.high)} in all; "
                f"list prices read {both.read}, from tools.cost)")
    except PriceError as error:
        cost = f"cost: not estimated: {error}"
    print(render(args.stack, path.name, text, rp, soak, cfg, preview, cost))
    return 1 if check.problems else 0


if __name__ == "__main__":
    sys.exit(main())
