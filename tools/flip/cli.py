"""Progressive flip: `python -m tools.flip --stack prod --to green --steps 10,25,50,100 --hold 5m`.

Composition only: read the request (request.py), take the stack's lease (lease.py) and start the
journal (journal.py), run the readiness gate (`tools.verify.gate.before_flip`), run the rollout
(rollout.py), report (report.py) and, whatever the outcome, write the recording and its chart
(recorder.py). `--resume` and `--abort` run a flip from the journal here too; the workflows'
`--deploy-check` and `--record` are journal_commands.py. Exit codes: rollout.py and docs/flip.md.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from components.config import StackConfig
from tools.flip import journal as journals
from tools.flip import journal_commands as commands
from tools.flip.lease import Lease, LeaseError, LeaseHeld, Store, acquire, holder, open_store, read_lease
from tools.flip.plan import format_weights, plan
from tools.flip.prometheus import PrometheusClient, adc_token, cloud_monitoring_url
from tools.flip.recorder import Recorder, default_dir
from tools.flip.report import format_plan
from tools.flip.request import FlipRequest, UsageError, build_parser, read_request, read_stack
from tools.flip.rollout import (
    EXIT_DEPLOY_REFUSED,
    EXIT_GATE,
    EXIT_INTERRUPTED,
    EXIT_LEASE_HELD,
    EXIT_OK,
    EXIT_ROLLBACK_FAILED,
    EXIT_ROLLED_BACK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Flip,
    Metrics,
    exit_for,
    outcome_for,
)
from tools.flip.snooze import SUCCESS_POLICY, FlipSnooze, SnoozeClient
from tools.flip.stack import ROOT, AutomationStack, FlipStack, StackError
from tools.flip.stop import Stopper
from tools.verify.checks import OutputsError, StackOutputs, parse_outputs
from tools.verify.gate import GateReport, before_flip
from tools.verify.kube import ClientFactory, default_client_factory

__all__ = ["EXIT_DEPLOY_REFUSED", "EXIT_GATE", "EXIT_INTERRUPTED", "EXIT_LEASE_HELD", "EXIT_OK",
           "EXIT_ROLLBACK_FAILED", "EXIT_ROLLED_BACK", "EXIT_TERMINATED", "EXIT_USAGE", "main"]

# gate(config, outputs, weights, client factory) -> GateReport: may every cluster that will receive weight take it?
Gate = Callable[[StackConfig, StackOutputs, Mapping[str, int], ClientFactory], GateReport]


def main(
    argv: Sequence[str] | None = None,
    *,
    open_stack: Callable[[str], FlipStack] | None = None,
    gate: Gate = before_flip,
    metrics: Metrics | None = None,
    client_factory: ClientFactory = default_client_factory,
    store: Store | None = None,
    stopper: Stopper | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    stack_dir: Path = ROOT,
    out: TextIO | None = None,
    err: TextIO | None = None,
    snoozes: SnoozeClient | None = None,
    chart: bool = True,
) -> int:
    out = out or sys.stdout
    snoozes = snoozes or SnoozeClient()
    err = err or sys.stderr
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    stopper = stopper or Stopper()
    opener = open_stack or (lambda name: AutomationStack(name, stack_dir, stopper=stopper, sleep=sleep))
    try:
        if args.deploy_check or args.record or args.resume or args.abort:
            _, _, cfg = read_stack(args, stack_dir)
            store = store or open_store(stack_dir)
            if args.deploy_check:
                return commands.deploy_check(args.stack, dict(cfg.traffic.weights), store, out)
            if args.record:
                return commands.record(args.stack, store, opener, out, err)
            return _with_stopper(stopper, lambda: resume_or_abort(
                args, stack_dir, store, opener, stopper, metrics, client_factory, clock, sleep, out, err,
                _reports(args.report_dir, stack_dir, chart), snoozes))
        request = read_request(args, stack_dir)
        if args.plan:
            out.write(format_plan(request) + "\n")
            return EXIT_OK
        if request.final == request.start:
            out.write(f"flip: the stack already routes {format_weights(request.start)}; nothing to do\n")
            return EXIT_OK
        store = store or open_store(stack_dir)
    except UsageError as error:
        err.write(f"flip: {error}\n")
        return EXIT_USAGE
    except (LeaseError, ValueError) as error:
        err.write(f"flip: --stack {args.stack!r}: {error}\n")
        return EXIT_USAGE
    reports = _reports(args.report_dir, stack_dir, chart)
    return _with_stopper(stopper, lambda: flip(request, store, opener, gate, stopper, metrics, client_factory,
                                                clock, sleep, out, err, reports, snoozes))


@dataclass(frozen=True)
class Reports:
    """Where a flip's recording and report go (--report-dir, else build/flip/<stack>-<UTC time>/), and
    whether the chart is drawn (always, but for the tests that do not look at it)."""

    report_dir: str | None
    root: Path
    chart: bool = True

    def folder(self, stack: str, at: float) -> Path:
        return Path(self.report_dir) if self.report_dir else default_dir(self.root, stack, at)


def _reports(report_dir: str | None, stack_dir: Path, chart: bool = True) -> Reports:
    return Reports(report_dir, stack_dir, chart)


def _recorder(request: FlipRequest, clock: Callable[[], float]) -> Recorder:
    return Recorder(stack=request.stack, services=[s.fqdn for s in request.moved_services], start=request.start,
                    target=request.final, rules=request.cfg.flip, clock=clock)


def _write_report(recorder: Recorder, reports: Reports, outcome: str, stopper: Stopper, out: TextIO,
                  reason: str = "") -> None:
    """After the flip (and its rollback) ended: shielded, and a failure is printed, never raised."""
    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    with stopper.shield():
        try:
            folder = reports.folder(recorder.stack, recorder.t0)
        except Exception as error:
            say(f"WARNING: no folder for the flip's report: {error}")
            return
        recorder.write(folder, outcome, say, reason, chart=reports.chart)


def _snooze(request: FlipRequest, raw_outputs: object, client: SnoozeClient | None, clock: Callable[[], float],
            out: TextIO) -> FlipSnooze | None:
    """The snooze of the stack's success-rate alert policy (output `alertPolicies.success`); the rollout begins it."""
    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    policies = raw_outputs.get("alertPolicies") if isinstance(raw_outputs, Mapping) else None
    policy = policies.get(SUCCESS_POLICY) if isinstance(policies, Mapping) else None
    if client is None or not isinstance(policy, str) or not policy:
        say("no alertPolicies.success stack output: no alert policy to snooze during the flip")
        return None
    return FlipSnooze(client, policy, request.stack, clock, say)


def _with_stopper(stopper: Stopper, run: Callable[[], int]) -> int:
    with stopper.installed():
        try:
            return run()
        except KeyboardInterrupt as stop:  # before the lease: nothing was written
            return exit_for(stop)


def _metrics(request: FlipRequest, metrics: Metrics | None) -> Metrics:
    if metrics is not None:
        return metrics
    if request.prometheus_url:
        return PrometheusClient(request.prometheus_url)
    return PrometheusClient(cloud_monitoring_url(request.gcp_project), adc_token)


def _open(request: FlipRequest, opener: Callable[[str], FlipStack], err: TextIO) -> FlipStack | None:
    try:
        return opener(request.stack)
    except StackError as error:
        err.write(f"flip: --stack {request.stack!r}: {error}\n")
        return None


def _take(store: Store, stack: str, out: TextIO, *, take_over: bool = False) -> Lease | None:
    try:
        return acquire(store, stack, take_over=take_over)
    except LeaseHeld as held:
        out.write(f"flip: stack {stack} is held by another flip: {held.holder}, since {held.since}.\n"
                  f"  Wait for it to end. If that flip was killed (its runner is gone), run "
                  f"`python -m tools.flip --stack {stack} --resume` or `--abort`.\n")
        return None


def flip(request: FlipRequest, store: Store, opener: Callable[[str], FlipStack], gate: Gate, stopper: Stopper,
         metrics: Metrics | None, client_factory: ClientFactory, clock: Callable[[], float],
         sleep: Callable[[float], None], out: TextIO, err: TextIO, reports: Reports | None = None,
         snoozes: SnoozeClient | None = None) -> int:
    previous = journals.read(store, request.stack)
    if previous is not None and previous.phase == journals.RUNNING and read_lease(store, request.stack) is None:
        out.write(f"flip: the flip started by {previous.holder} at {previous.started} did not finish (its journal "
                  f"says running); run `python -m tools.flip --stack {request.stack} --resume` or `--abort` first\n")
        return EXIT_LEASE_HELD
    stack = _open(request, opener, err)
    if stack is None:
        return EXIT_USAGE
    lease = _take(store, request.stack, out)
    if lease is None:
        return EXIT_LEASE_HELD
    recorder = _recorder(request, clock)
    code: int | None = None
    try:
        code = _gated_flip(request, stack, store, lease, gate, stopper, metrics, client_factory, clock, sleep, out,
                           recorder, snoozes)
        return code
    except KeyboardInterrupt as stop:
        code = exit_for(stop)
        raise
    finally:
        _write_report(recorder, reports or _reports(None, ROOT), outcome_for(code), stopper, out)
        lease.release()


def _gated_flip(request: FlipRequest, stack: FlipStack, store: Store, lease: Lease, gate: Gate, stopper: Stopper,
                metrics: Metrics | None, client_factory: ClientFactory, clock: Callable[[], float],
                sleep: Callable[[float], None], out: TextIO, recorder: Recorder,
                snoozes: SnoozeClient | None = None) -> int:
    """The readiness gate, the journal, the snooze, the rollout: the flip's exit code."""
    try:
        raw_outputs = stack.outputs()
        outputs = parse_outputs(raw_outputs)
    except (OutputsError, StackError) as error:
        detail = "; ".join(error.problems) if isinstance(error, OutputsError) else str(error)
        recorder.gate("outputs", False, f"the stack outputs cannot be read: {detail}")
        out.write(f"flip stopped before it started: the stack outputs cannot be read: {detail}\n")
        return EXIT_GATE
    result = gate(request.cfg, outputs, request.final, client_factory)
    recorder.gate("readiness", result.ok, "every cluster that will receive weight can take it" if result.ok else
                  "; ".join(f"{row.cluster}: {row.check}: {row.detail}" for row in result.failures))
    if not result.ok:
        out.write(f"flip stopped before it started: the readiness gate refused {format_weights(request.final)}\n")
        for row in result.failures:
            out.write(f"  {row.cluster}: {row.check}: {row.detail}\n")
            if row.cause:
                out.write(f"    cause: {row.cause}\n")
            if row.fix:
                out.write(f"    fix:   {row.fix}\n")
        return EXIT_GATE
    try:
        journal = journals.Writer.begin(store, request.stack, lease.holder, request.start, request.final,
                                        [s.weights for s in request.steps], request.percents)
    except LeaseError as error:
        out.write(f"flip stopped before it started: {error}\n")
        return EXIT_GATE
    out.write(f"flip {request.stack}: {format_weights(request.start)} -> {format_weights(request.final)} "
              f"in {len(request.steps)} steps, hold {request.hold}s (lease {store.where})\n")
    snooze = _snooze(request, raw_outputs, snoozes, clock, out)
    try:
        code = Flip(request=request, stack=stack, metrics=_metrics(request, metrics), client_factory=client_factory,
                    out=out, clock=clock, sleep=sleep, stopper=stopper, journal=journal, recorder=recorder,
                    snooze=snooze).run()
    finally:
        if snooze is not None:
            with stopper.shield():
                snooze.finish()
    journal.end(code)
    return code


def resume_or_abort(args: object, stack_dir: Path, store: Store, opener: Callable[[str], FlipStack],
                    stopper: Stopper, metrics: Metrics | None, client_factory: ClientFactory,
                    clock: Callable[[], float], sleep: Callable[[float], None], out: TextIO, err: TextIO,
                    reports: Reports | None = None, snoozes: SnoozeClient | None = None) -> int:
    name = args.stack  # type: ignore[attr-defined]
    flag = "--resume" if args.resume else "--abort"  # type: ignore[attr-defined]
    j = journals.read(store, name)
    if j is None or j.phase != journals.RUNNING:
        err.write(f"flip: {flag}: no unfinished flip of stack {name} (journal: "
                  f"{'none' if j is None else j.phase})\n")
        return EXIT_USAGE
    held = read_lease(store, name)
    if held is not None:
        out.write(f"flip: {flag}: taking over the lease of {held.get('holder')} (since {held.get('since')}); its "
                  "flip must be gone (its runner stopped or cancelled)\n")
    percents = tuple(j.percents) if j.percents else (100,)
    remaining_from = next((i + 1 for i, w in enumerate(j.steps) if w == j.last_good), 0)
    request = read_request(args, stack_dir, start=j.last_good, final=j.final,  # type: ignore[arg-type]
                           percents=percents)
    stack = _open(request, opener, err)
    if stack is None:
        return EXIT_USAGE
    lease = acquire(store, name, take_over=True)
    recorder = _recorder(request, clock)
    code: int | None = None
    outcome, reason = "", ""
    snooze: FlipSnooze | None = None
    try:
        writer = journals.Writer(store, j)
        writer.journal.holder = lease.holder
        writer.save(f"{flag} by {holder()}")
        back = Flip(request=request, stack=stack, metrics=_metrics(request, metrics), client_factory=client_factory,
                    out=out, clock=clock, sleep=sleep, stopper=stopper, journal=writer, recorder=recorder)
        back.last_good = dict(j.last_good)
        back.routing_urns = set(j.routing_urns)
        if not back.roll_back():
            writer.end(EXIT_ROLLBACK_FAILED)
            code = EXIT_ROLLBACK_FAILED
            return code
        if args.abort or remaining_from >= len(j.steps):  # type: ignore[attr-defined]
            writer.end(EXIT_ROLLED_BACK if j.last_good != j.final else EXIT_OK)
            out.write(f"flip {name}: ended at the last good weights {format_weights(j.last_good)}\n")
            code = EXIT_OK
            outcome = "completed" if j.last_good == j.final else "rolled back"
            reason = f"{flag}: ended at the last good weights {format_weights(j.last_good)}"
            return code
        steps = plan(j.start, j.final, percents)[remaining_from:]
        request = FlipRequest(**{**request.__dict__, "start": dict(j.last_good), "steps": tuple(steps)})
        out.write(f"flip {name}: resuming from {format_weights(j.last_good)} with steps "
                  f"{', '.join(str(s.percent) + '%' for s in steps)}\n")
        try:
            raw_outputs: object = stack.outputs()
        except StackError:
            raw_outputs = None  # the rollout reads them again and stops on them
        snooze = _snooze(request, raw_outputs, snoozes, clock, out)
        run = Flip(request=request, stack=stack, metrics=_metrics(request, metrics), client_factory=client_factory,
                   out=out, clock=clock, sleep=sleep, stopper=stopper, journal=writer, recorder=recorder,
                   snooze=snooze)
        run.routing_urns = set(j.routing_urns)
        code = run.run()
        writer.end(code)
        return code
    except KeyboardInterrupt as stop:
        code = exit_for(stop)
        raise
    finally:
        if snooze is not None:
            with stopper.shield():
                snooze.finish()
        _write_report(recorder, reports or _reports(None, ROOT), outcome or outcome_for(code), stopper, out, reason)
        lease.release()
