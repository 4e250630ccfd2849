"""Check a deployed mesh after `pulumi up`: `python -m tools.verify --stack dev [--probe]`.

Following Istio's multi-network guide and still seeing no cross-network traffic is
the most common complaint; its usual causes are all visible from the API servers: an
east-west gateway without its address, istio-system without its network label,
remote secrets whose names disagree, clusters trusting different roots, an istiod
that started before its CA. This command reads each cluster, reports every one of
those with its likely cause and fix, and with `--probe` sends real traffic through
the mesh and compares who answered with the configured weights. With `--before-flip` it
also checks, before the stack file's new weights are applied, that every cluster they send
traffic to has ready endpoints for each routed service and a reachable east-west gateway.

Exit codes: 0 all good, 1 a check or the probe failed, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import secrets
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from components import config as stack_config
from components.config import stack_file
from tools.flip.plan import PlanError, parse_weights
from tools.verify.checks import CheckResult, OutputsError, StackOutputs, evaluate, parse_outputs
from tools.verify.expiry import DEFAULT_WARN_DAYS, ExpiryError, check_ca_expiry, parse_ca_expiry
from tools.verify.gate import gate_rows
from tools.verify.kube import (
    ClientFactory,
    ProbeRunner,
    collect,
    connect,
    default_client_factory,
    edge_get,
    edge_status,
)
from tools.verify.probe import (
    DEFAULT_CURL_IMAGE,
    DEFAULT_ECHO_IMAGE,
    NAMESPACE_PREFIX,
    ProbeSpec,
    evaluate_split,
    format_load,
    load_hosts,
    split_passed,
)
from tools.verify.report import Progress, format_checks, format_split

# Pulumi runs in the project root, where the stack files are (tools/verify/ is two levels below it).
ROOT = stack_file.ROOT
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PULUMI_TIMEOUT_SECONDS = 120
MAX_REQUESTS = 10_000

Runner = Callable[..., subprocess.CompletedProcess[str]]


class UsageError(Exception):
    """Bad flags, files or config: exit 2 with this message."""


def _int_in(low: int, high: int, flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {text!r} must be an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag} {value} must be from {low} to {high}")
        return value
    return parse


def with_weights(cfg: stack_config.StackConfig, text: str) -> stack_config.StackConfig:
    """The stack config with the mesh-wide weights `--weights` names (flip's own parser and rules)."""
    names = [c.name for c in cfg.clusters]
    try:
        weights = parse_weights(text, names)
    except PlanError as error:
        raise UsageError(str(error)) from None
    traffic = dataclasses.replace(cfg.traffic, weights=tuple(weights.items()))
    return dataclasses.replace(cfg, traffic=traffic)


def _float_in(low: float, high: float, flag: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {text!r} must be a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag} {value:g} must be from {low:g} to {high:g}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.verify",
        description="Check a deployed gke-istio-mesh stack (and, with --probe, its cross-cluster traffic).",
        epilog="exit codes: 0 all good, 1 a check or the probe failed, 2 usage or config error",
    )
    p.add_argument("--stack", default="dev", help="stack name (default: dev)")
    p.add_argument("--outputs", type=Path, metavar="FILE",
                   help="JSON of `pulumi stack output --json --show-secrets` instead of running the Pulumi CLI")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="stack file for --probe's subset label and weights (default: Pulumi.<stack>.yaml)")
    p.add_argument("--probe", action="store_true",
                   help="deploy an echo service and a client in every cluster and measure the traffic split")
    p.add_argument("--before-flip", action="store_true",
                   help="gate a flip: every cluster the stack file's weights send traffic to must have ready "
                        "endpoints for each routed service and a reachable east-west gateway")
    p.add_argument("--weights", metavar="C=W,...",
                   help="with --before-flip: judge these mesh-wide weights (e.g. blue=10,green=90) instead of "
                        "the stack file's traffic.weights (tools.flip passes each flip's target)")
    p.add_argument("--requests", type=_int_in(1, MAX_REQUESTS, "--requests"), default=200,
                   help="requests each cluster's client sends (default: 200)")
    p.add_argument("--tolerance", type=_float_in(0, 100, "--tolerance"), default=10.0,
                   help="allowed deviation from the weights, in percentage points (default: 10)")
    p.add_argument("--wait-timeout", type=_float_in(1, 3600, "--wait-timeout"), default=300.0,
                   help="seconds each probe wait may take (echo ready, clients finished; default: 300)")
    p.add_argument("--settle", type=_float_in(0, 600, "--settle"), default=10.0,
                   help="seconds to let new endpoints reach every sidecar before the clients start (default: 10)")
    p.add_argument("--echo-image", default=DEFAULT_ECHO_IMAGE,
                   help=f"echo server image (default: {DEFAULT_ECHO_IMAGE})")
    p.add_argument("--ca-warn-days", type=_int_in(0, 3650, "--ca-warn-days"), default=DEFAULT_WARN_DAYS,
                   help="fail an intermediate CA this many days before it expires, at the latest inside its "
                   f"renewal window (default: {DEFAULT_WARN_DAYS})")
    p.add_argument("--curl-image", default=DEFAULT_CURL_IMAGE, help=f"client image (default: {DEFAULT_CURL_IMAGE})")
    return p


# --------------------------------------------------------------------------- inputs


def read_outputs(stack: str, outputs_file: Path | None, runner: Runner) -> StackOutputs:
    """The stack's outputs, from a file or from the Pulumi CLI; any problem is a UsageError."""
    if outputs_file is not None:
        source = f"--outputs {outputs_file}"
        try:
            text = outputs_file.read_text()
        except OSError as error:
            raise UsageError(f"{source}: cannot read the file ({error.strerror or error})") from None
    else:
        source = f"`pulumi stack output --stack {stack}`"
        command = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack]
        try:
            done = runner(command, cwd=ROOT, capture_output=True, text=True, timeout=PULUMI_TIMEOUT_SECONDS,
                          check=False)
        except FileNotFoundError:
            raise UsageError("the pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/) or "
                             "pass --outputs FILE written by `pulumi stack output --json --show-secrets`") from None
        except subprocess.TimeoutExpired:
            raise UsageError(f"{source} did not answer within {PULUMI_TIMEOUT_SECONDS}s "
                             "(is the state backend reachable? `pulumi whoami -v`)") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout or "").strip().splitlines()
            raise UsageError(f"{source} failed (exit {done.returncode}): {detail[-1] if detail else 'no output'}")
        text = done.stdout
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{source} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
                         "write it with `pulumi stack output --json --show-secrets > FILE`") from None
    try:
        return parse_outputs(raw)
    except OutputsError as error:
        raise UsageError(f"{source} cannot be used:\n" + "\n".join(f"  - {p}" for p in error.problems)) from None


def read_stack_config(stack: str, path: Path | None) -> stack_config.StackConfig:
    """The stack file through the program's own parser, so the probe uses exactly the deployed rules."""
    path = path or stack_file.path_for(stack)
    try:
        found = stack_file.read(path)
    except stack_file.StackFileError as error:
        raise UsageError(f"--config {error}") from None
    try:
        # The GCP project is not needed to verify; any non-empty value satisfies the parser.
        return stack_config.parse(found.readable(), project=found.gcp_project or "not-needed-for-verify")
    except stack_config.ConfigError as error:
        raise UsageError(f"--config {path} is invalid:\n" + "\n".join(f"  - {p}" for p in error.problems)) from None


def probe_spec(cfg: stack_config.StackConfig, outputs: StackOutputs, args: argparse.Namespace) -> ProbeSpec:
    """The probe's plan; the stack file and the outputs must describe the same clusters."""
    configured = [(c.name, c.network) for c in cfg.clusters]
    deployed = [(c.name, c.network) for c in outputs.clusters]
    if configured != deployed:
        raise UsageError(f"the stack file lists clusters {configured} but the outputs show {deployed}: run "
                         "`pulumi up` or pass the matching --config/--outputs")
    # Kubernetes stops the client when the tool stops waiting for it: nothing runs on unobserved.
    deadline = math.ceil(args.wait_timeout)
    return ProbeSpec(
        namespace=NAMESPACE_PREFIX + secrets.token_hex(3),
        clusters=cfg.clusters, subset_label=cfg.traffic.subset_label, weights=dict(cfg.traffic.weights),
        requests=args.requests, deadline_seconds=deadline,
        echo_image=args.echo_image, curl_image=args.curl_image, edge_url=outputs.edge_url,
        load_hosts=load_hosts(cfg.traffic.services) if outputs.edge_url else (),
    )


# --------------------------------------------------------------------------- main


def main(
    argv: Sequence[str] | None = None,
    *,
    client_factory: ClientFactory = default_client_factory,
    runner: Runner = subprocess.run,
    out: TextIO | None = None,
    err: TextIO | None = None,
    poll_interval: float = 2.0,
    edge_request: Callable[[str, str], str | None] = edge_get,
    edge_load: Callable[[str, str], int | None] = edge_status,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            args = parser.parse_args(argv)
    except SystemExit as exit_:
        # argparse exits 2 on a bad flag (after printing usage and the rule) and 0 for --help.
        return int(exit_.code or 0)
    try:
        outputs = read_outputs(args.stack, args.outputs, runner)
        cfg = read_stack_config(args.stack, args.config) if args.probe or args.before_flip else None
        if args.weights is not None:
            if not args.before_flip:
                raise UsageError("--weights goes with --before-flip")
            assert cfg is not None
            cfg = with_weights(cfg, args.weights)
        spec = probe_spec(cfg, outputs, args) if cfg is not None and args.probe else None
    except UsageError as error:
        err.write(f"verify: {error}\n")
        return EXIT_USAGE

    clients, errors = connect(outputs, client_factory)
    snapshots, read_errors = collect(outputs, clients)
    errors += read_errors
    results = evaluate(outputs, snapshots, errors) + _expiry_rows(outputs, args.ca_warn_days)
    if args.before_flip and cfg is not None:
        results += gate_rows(cfg, outputs, clients, errors)
    out.write(format_checks(results, outputs) + "\n")
    ok = all(r.passed for r in results)

    if spec is not None:
        out.write("\n")
        if errors:
            out.write(f"probe skipped: {', '.join(e.name for e in errors)} cannot be used (see above)\n")
            return EXIT_FAILED
        ok = _probe(spec, clients, args, out, poll_interval, edge_request, edge_load) and ok
    return EXIT_OK if ok else EXIT_FAILED


def _expiry_rows(outputs: StackOutputs, warn_days: int) -> list[Any]:
    """The intermediates' expiry from `caExpiry` (stacks deployed before it existed have none)."""
    if not outputs.ca_expiry:
        return []
    import datetime as dt
    try:
        return check_ca_expiry(parse_ca_expiry(outputs.ca_expiry), dt.datetime.now(dt.UTC), warn_days)
    except ExpiryError as error:
        return [CheckResult("mesh", "intermediate CA expiry", False, str(error), "outputs are from an older program",
                            "`pulumi up`, then verify again")]


def _probe(spec: ProbeSpec, clients: dict[str, Any], args: argparse.Namespace, out: TextIO,
           poll_interval: float, edge_request: Callable[[str, str], str | None],
           edge_load: Callable[[str, str], int | None]) -> bool:
    progress = Progress([c.name for c in spec.clusters], out)
    progress.start(f"probe: namespace {spec.namespace} in {len(spec.clusters)} clusters "
                   f"(subsets by {spec.subset_label}, weights {dict(spec.weights)})")
    runner = ProbeRunner(spec=spec, clients=clients, report=progress.update, wait_timeout=args.wait_timeout,
                         settle_seconds=args.settle, poll_interval=poll_interval, edge_request=edge_request,
                         edge_load=edge_load)
    outcome = runner.run()
    out.write("\n")
    passed = outcome.error is None and not outcome.cleanup_errors
    if outcome.counts:
        rows = [row for counts in outcome.counts for row in evaluate_split(counts, spec.weights, args.tolerance)]
        out.write(format_split(rows, target=spec.service.fqdn, requests=spec.requests, tolerance=args.tolerance) + "\n")
        if spec.edge_url:
            out.write(f"edge: {spec.requests} requests to {spec.edge_url} with Host {spec.edge_host} "
                      "(rows FROM edge: the URL map's split; each ingress answers from its own cluster)\n")
            out.writelines(line + "\n" for line in format_load(outcome.load, spec.edge_url))
        passed = passed and split_passed(rows)
    if outcome.error:
        out.write(f"probe FAILED: {outcome.error}\n")
    for problem in outcome.cleanup_errors:
        out.write(f"cleanup FAILED: {problem}\n")
    if not outcome.cleanup_errors:
        out.write(f"probe objects removed (namespace {spec.namespace} deleted in every cluster it was created in)\n")
    out.write(f"probe: {'PASS' if passed else 'FAIL'}\n")
    return passed


if __name__ == "__main__":
    sys.exit(main())
