"""Progressive flip: `python -m tools.flip --stack prod --to green --steps 10,25,50,100 --hold 5m`.

Each step writes its weights into the stack file (as `pulumi config set --path` would),
previews (only the routing objects may change), applies with the Automation API, reads
the VirtualServices back from every primary, holds while watching Istio's metrics in
Managed Service for Prometheus, and judges: go on, or roll back to the last good weights.
Before anything moves: the readiness gate (`tools.verify --before-flip`), the preview
gate and the policy pack. Ctrl-C or any failure leaves the last good weights written AND
applied.

Exit codes: 0 flipped; 1 rolled back to the last good weights (a step failed, or an error);
2 bad arguments or config, nothing written; 3 a gate stopped the flip before anything moved;
4 the rollback itself failed (the message says what to run); 130 interrupted, rolled back.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from components import config as stack_config
from components.config import stack_file
from components.config.rules import duration_seconds
from components.names import NETWORKING_API
from components.traffic import resource_name
from offline import changed_resources, run_with_weights
from tools.flip import hold
from tools.flip.hold import HoldSpec, Metrics
from tools.flip.judge import ClusterMeasurement, StepVerdict
from tools.flip.plan import PlanError, Step, format_weights, parse_steps, parse_weights, plan, target
from tools.flip.prometheus import PrometheusClient, adc_token, cloud_monitoring_url
from tools.flip.stack import ROOT, AutomationStack, Change, FlipStack, StackError, urn_key
from tools.verify.checks import OutputsError, parse_outputs
from tools.verify.kube import REQUEST_TIMEOUT, ClientFactory, default_client_factory, describe_failure

# `increase`/`rate` need two samples in the window: at least two scrape intervals (components/config).
MIN_WINDOW_SECONDS = stack_config.MIN_WINDOW_SECONDS
EXIT_OK, EXIT_ROLLED_BACK, EXIT_USAGE, EXIT_GATE, EXIT_ROLLBACK_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


@dataclass(frozen=True)
class GateResult:
    ok: bool
    lines: tuple[str, ...] = ()


# gate(stack, weights) -> GateResult: may every cluster that will receive weight take it?
Gate = Callable[[str, Mapping[str, int]], GateResult]


def verify_gate(stack: str, weights: Mapping[str, int]) -> GateResult:
    """The readiness gate of "Safe flips": `python -m tools.verify --stack S --before-flip --weights …`, 0 = pass."""
    from tools.verify import cli as verify_cli

    buffer = io.StringIO()
    code = verify_cli.main(["--stack", stack, "--before-flip", "--weights", format_weights(weights)],
                           out=buffer, err=buffer)
    return GateResult(code == 0, tuple(line for line in buffer.getvalue().splitlines() if line.strip()))


class UsageError(Exception):
    """A bad argument or config: exit 2, nothing written."""


class Interrupted(Exception):
    """Ctrl-C: roll back, exit 130."""


class StepFailed(Exception):
    """This step cannot stand: roll back."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.flip",
        description="Move a stack's traffic between clusters step by step, judging every step by Istio's metrics.",
        epilog="exit codes: 0 flipped, 1 rolled back, 2 bad arguments, 3 a gate refused, 4 rollback failed, "
               "130 interrupted (rolled back)",
    )
    p.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
    final = p.add_mutually_exclusive_group(required=True)
    final.add_argument("--to", metavar="CLUSTER", help="send all traffic to this cluster")
    final.add_argument("--weights", metavar="C=W,…", help="final split, e.g. green=50,teal=50 (sums to 100)")
    p.add_argument("--steps", help="percent of the way at each step, increasing, ending at 100 "
                                   "(default: the stack's flip.steps)")
    p.add_argument("--hold", help="time each step is held and watched, e.g. 5m (default: flip.hold)")
    p.add_argument("--interval", help="how often metrics are read during a hold (default: flip.interval)")
    p.add_argument("--plan", action="store_true", help="print the steps and their weights; touch nothing")
    p.add_argument("--prometheus-url", metavar="URL",
                   help="Prometheus HTTP API base (default: Cloud Monitoring's for gcp:project, with ADC)")
    return p


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class FlipRequest:
    stack: str
    raw: dict[str, Any]  # the stack file's project keys
    gcp_project: str
    cfg: stack_config.StackConfig
    start: dict[str, int]
    final: dict[str, int]
    steps: tuple[Step, ...]
    hold: int
    interval: int
    prometheus_url: str | None

    @property
    def moved_services(self) -> list[stack_config.RoutedService]:
        """The services that follow the mesh-wide split (a service with its own weights keeps them)."""
        return [s for s in self.cfg.traffic.services if s.weights is None]

    def expected_split(self, weights: Mapping[str, int]) -> dict[str, dict[str, int]]:
        return {f"{s.host}.{s.namespace}": (dict(weights) if s.weights is None else dict(s.weights))
                for s in self.cfg.traffic.services}


def read_request(args: argparse.Namespace, stack_dir: Path) -> FlipRequest:
    path = stack_file.path_for(args.stack, stack_dir)
    if not path.is_file():
        known = stack_file.stacks(stack_dir)
        raise UsageError(f"--stack {args.stack!r}: there is no {path.name} (stacks: {', '.join(known) or 'none'})")
    try:
        found = stack_file.read(path)
    except stack_file.StackFileError as error:
        raise UsageError(f"--stack {args.stack!r}: {error}") from None
    raw = found.project
    gcp_project = found.gcp_project or ""
    try:
        cfg = stack_config.parse(found.readable(), project=gcp_project or None)
    except stack_config.ConfigError as error:
        raise UsageError(f"--stack {args.stack!r}: {path.name} is invalid:\n"
                         + "\n".join(f"  - {p}" for p in error.problems)) from None
    names = [c.name for c in cfg.clusters]
    if not cfg.traffic.services:
        raise UsageError(f"--stack {args.stack!r}: traffic.services is empty; there is nothing to flip")
    try:
        final = target(args.to, names) if args.to is not None else parse_weights(args.weights, names)
        steps = parse_steps(args.steps) if args.steps is not None else cfg.flip.steps
    except PlanError as error:
        raise UsageError(str(error)) from None
    hold = _duration(args.hold, "--hold", cfg.flip.hold_seconds)
    interval = _duration(args.interval, "--interval", cfg.flip.interval_seconds)
    if interval > hold:
        raise UsageError(f"--interval {interval}s is longer than --hold {hold}s")
    start = dict(cfg.traffic.weights)
    return FlipRequest(stack=args.stack, raw=raw, gcp_project=gcp_project, cfg=cfg, start=start, final=final,
                       steps=tuple(plan(start, final, steps)), hold=hold, interval=interval,
                       prometheus_url=args.prometheus_url)


def _duration(text: str | None, flag: str, default: int) -> int:
    if text is None:
        return default
    seconds = duration_seconds(text)
    if seconds is None:
        raise UsageError(f"{flag} {text!r} must be a duration such as 90, 90s, 5m or 1h")
    return seconds


# --------------------------------------------------------------------------- the run


@dataclass
class StepRecord:
    step: Step
    result: str = "not run"
    verdict: StepVerdict | None = None
    measured: dict[str, ClusterMeasurement] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Flip:
    request: FlipRequest
    stack: FlipStack
    metrics: Metrics
    client_factory: ClientFactory
    out: TextIO
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    records: list[StepRecord] = field(default_factory=list)
    last_good: dict[str, int] = field(default_factory=dict)
    expected: frozenset[str] = frozenset()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # -- gates

    def expected_changes(self) -> frozenset[str]:
        """`Type::name` of every resource the program changes between the start and the final split."""
        r = self.request
        cfg = {k: v for k, v in r.raw.items() if k != "ca"}
        cfg["ca"] = {"algorithm": "ECDSA"}  # the routing objects do not depend on the CA; ECDSA is fast offline
        before = run_with_weights(cfg, r.start, stack=r.stack, gcp_project=r.gcp_project or None)
        after = run_with_weights(cfg, r.final, stack=r.stack, gcp_project=r.gcp_project or None)
        return frozenset(urn_key(u) for u in changed_resources(before, after).touched)

    def unexpected(self, changes: Sequence[Change]) -> list[Change]:
        # The stack resource itself only carries the outputs (trafficSplit changes with every step).
        return [c for c in changes if urn_key(c.urn) not in self.expected
                and not urn_key(c.urn).startswith("pulumi:pulumi:Stack::")]

    # -- one step

    def apply(self, weights: Mapping[str, int], *, check_preview: bool = True) -> None:
        """Write, preview, up, read back. Raises StepFailed/StackError."""
        self.stack.set_weights(weights)
        if check_preview:
            extra = self.unexpected(self.stack.preview())
            if extra:
                raise StepFailed("the preview changes more than the routing objects:\n" +
                                 "\n".join(f"    {c.op} {c.urn}" for c in extra))
        self.stack.up()
        self.read_back(weights)

    def read_back(self, weights: Mapping[str, int]) -> None:
        """Every primary serves the split: each VirtualService's route weights, read from each cluster."""
        try:
            outputs = parse_outputs(self.stack.outputs())
        except OutputsError as error:
            raise StepFailed("the stack outputs cannot be used to read the clusters: " + "; ".join(error.problems))\
                from None
        expected = self.request.expected_split(weights)
        problems: list[str] = []
        from kubernetes import client as k8s
        for cluster in outputs.clusters:
            try:
                api = k8s.CustomObjectsApi(self.client_factory(cluster))
                group, version = NETWORKING_API.split("/")
                for service in self.request.cfg.traffic.services:
                    key = f"{service.host}.{service.namespace}"
                    vs = api.get_namespaced_custom_object(group, version, service.namespace, "virtualservices",
                                                          resource_name(service), _request_timeout=REQUEST_TIMEOUT)
                    served = _route_weights(vs)
                    if served != expected[key]:
                        problems.append(f"{cluster.name}: {key} serves {format_weights(served) or 'nothing'}, "
                                        f"expected {format_weights(expected[key])}")
            except Exception as error:
                failure = describe_failure(cluster, error)
                problems.append(f"{cluster.name}: {failure.message} ({failure.cause})")
        if problems:
            raise StepFailed("not every primary serves the new split:\n" + "\n".join(f"    {p}" for p in problems))

    def hold_and_judge(self, record: StepRecord) -> StepVerdict:
        """Converge, hold and judge the applied step (tools/flip/hold.py)."""
        r = self.request
        spec = HoldSpec(weights=record.step.weights, services=[s.fqdn for s in r.moved_services], flip=r.cfg.flip,
                        hold_seconds=r.hold, interval_seconds=r.interval,
                        label=f"step {record.step.index}/{len(r.steps)} {format_weights(record.step.weights)}")
        verdict = hold.hold_and_judge(spec, self.metrics, clock=self.clock, sleep=self.sleep, say=self.say)
        record.measured = dict(verdict.measured)
        return verdict

    def run(self) -> int:
        r = self.request
        self.last_good = dict(r.start)
        self.records = [StepRecord(s) for s in r.steps]
        try:
            self.expected = self.expected_changes()
            # Gate: the first step's preview may change only the routing objects (and the policy pack must pass).
            self.stack.set_weights(r.steps[0].weights)
            try:
                extra = self.unexpected(self.stack.preview())
            except StackError as error:
                extra, failure = [], f"the preview failed (policy pack or program): {error}"
            else:
                failure = ""
            if extra or failure:
                self.stack.set_weights(self.last_good)
                self.say("flip stopped before it started: " + (failure or "the preview changes more than the "
                         "routing objects:\n" + "\n".join(f"    {c.op} {c.urn}" for c in extra)))
                self.say(f"stack file restored to {format_weights(self.last_good)}; nothing was applied")
                return EXIT_GATE
        except KeyboardInterrupt:
            self.stack.set_weights(self.last_good)
            self.say(f"interrupted before anything was applied; stack file at {format_weights(self.last_good)}")
            return EXIT_INTERRUPTED
        except StackError as error:
            self.say(f"flip stopped before it started: the Pulumi CLI failed: {error}")
            try:
                self.stack.set_weights(self.last_good)
            except StackError:
                self.say(f"  check Pulumi.{r.stack}.yaml: traffic.weights must read {format_weights(self.last_good)}")
            return EXIT_GATE
        code = EXIT_OK
        try:
            for i, record in enumerate(self.records):
                step = record.step
                self.say(f"step {step.index}/{len(r.steps)} ({step.percent}%): {format_weights(step.weights)}")
                try:
                    # The first step's weights are written and previewed by the gate already.
                    if i == 0:
                        self.stack.up()
                        self.read_back(step.weights)
                    else:
                        self.apply(step.weights)
                except (StepFailed, StackError) as error:
                    record.result = "apply failed"
                    record.notes.append(str(error))
                    self.say(f"  {error}")
                    code = EXIT_ROLLED_BACK
                    break
                self.say(f"  applied; every primary serves {format_weights(step.weights)}")
                verdict = self.hold_and_judge(record)
                record.verdict = verdict
                if not verdict.passed:
                    record.result = verdict.verdict.value
                    record.notes.extend(verdict.reasons)
                    for reason in verdict.reasons:
                        self.say(f"  {reason}")
                    code = EXIT_ROLLED_BACK
                    break
                record.result = "pass"
                self.last_good = dict(step.weights)
        except KeyboardInterrupt:
            current = next((rec for rec in self.records if rec.result == "not run"), None)
            if current is not None:
                current.result = "interrupted"
            self.say("\ninterrupted")
            code = EXIT_INTERRUPTED
        if code != EXIT_OK:
            if not self.roll_back():
                code = EXIT_ROLLBACK_FAILED
        self.say("\n" + report(self.records, r))
        outcome = {EXIT_OK: "flip complete", EXIT_ROLLBACK_FAILED: "written, NOT confirmed applied"}
        self.say(f"final weights: {format_weights(self.last_good)} ({outcome.get(code, 'rolled back')})")
        return code

    def roll_back(self) -> bool:
        weights = self.last_good
        self.say(f"rolling back to the last good weights {format_weights(weights)}")
        with _ignore_interrupts():
            try:
                # No preview gate: the way back is the same routing objects, and it must not be refused.
                self.apply(weights, check_preview=False)
            except (StepFailed, StackError) as error:
                self.say(f"ROLLBACK FAILED: {error}\n  the stack file says {format_weights(weights)}; run "
                         f"`pulumi up --stack {self.request.stack}` and `python -m tools.verify --stack "
                         f"{self.request.stack}` until it succeeds")
                return False
        self.say(f"rolled back: every primary serves {format_weights(weights)}")
        return True


@contextlib.contextmanager
def _ignore_interrupts() -> Iterator[None]:
    """A second Ctrl-C must not stop the rollback midway (the Pulumi CLI child inherits the ignore)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _route_weights(vs: Mapping[str, Any]) -> dict[str, int]:
    http = (vs.get("spec") or {}).get("http") or []
    routes = (http[0].get("route") if http else None) or []
    return {r["destination"]["subset"]: int(r.get("weight", 0)) for r in routes}


def report(records: Sequence[StepRecord], request: FlipRequest) -> str:
    """The closing table: one row per step and receiving cluster."""
    header = ("step", "weights", "cluster", "requests", "success", "p99", "result")
    rows: list[tuple[str, ...]] = []
    for rec in records:
        clusters = [c for c, w in rec.step.weights.items() if w > 0]
        for j, c in enumerate(clusters):
            m = rec.measured.get(c)
            rows.append((
                f"{rec.step.index} ({rec.step.percent}%)" if j == 0 else "",
                format_weights(rec.step.weights) if j == 0 else "",
                c,
                "-" if m is None else f"{m.requests:.0f}",
                "-" if m is None or m.success_rate is None else f"{m.success_rate:.2f}%",
                "-" if m is None or m.p99_ms is None else f"{m.p99_ms:.0f} ms",
                rec.result if j == 0 else "",
            ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    t = request.cfg.flip
    lines.append(f"thresholds: success >= {t.min_success_rate:g}%, p99 <= {t.max_p99_ms:g} ms, "
                 f">= {t.min_requests} requests per receiving cluster; hold {request.hold}s")
    return "\n".join(lines)


def format_plan(request: FlipRequest) -> str:
    lines = [f"flip plan for stack {request.stack}: {format_weights(request.start)} -> "
             f"{format_weights(request.final)}, hold {request.hold}s per step",
             f"  services: {', '.join(s.fqdn for s in request.moved_services)}"]
    lines += [f"  step {s.index} ({s.percent:>3}%): {format_weights(s.weights)}" for s in request.steps]
    lines.append("nothing was written or applied (--plan)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(
    argv: Sequence[str] | None = None,
    *,
    open_stack: Callable[[str], FlipStack] = AutomationStack,
    gate: Gate = verify_gate,
    metrics: Metrics | None = None,
    client_factory: ClientFactory = default_client_factory,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    stack_dir: Path = ROOT,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        request = read_request(args, stack_dir)
    except UsageError as error:
        err.write(f"flip: {error}\n")
        return EXIT_USAGE
    if args.plan:
        out.write(format_plan(request) + "\n")
        return EXIT_OK
    if request.final == request.start:
        out.write(f"flip: the stack already routes {format_weights(request.start)}; nothing to do\n")
        return EXIT_OK

    result = gate(request.stack, request.final)
    if not result.ok:
        out.write(f"flip stopped before it started: the readiness gate refused {format_weights(request.final)}\n")
        out.writelines(f"  {line}\n" for line in result.lines)
        return EXIT_GATE
    if metrics is None:
        if request.prometheus_url:
            metrics = PrometheusClient(request.prometheus_url)
        else:
            metrics = PrometheusClient(cloud_monitoring_url(request.gcp_project), adc_token)
    try:
        stack = open_stack(request.stack)
    except StackError as error:
        err.write(f"flip: --stack {request.stack!r}: {error}\n")
        return EXIT_USAGE
    out.write(f"flip {request.stack}: {format_weights(request.start)} -> {format_weights(request.final)} "
              f"in {len(request.steps)} steps, hold {request.hold}s\n")
    return Flip(request=request, stack=stack, metrics=metrics, client_factory=client_factory, out=out,
                clock=clock, sleep=sleep).run()


if __name__ == "__main__":
    sys.exit(main())
