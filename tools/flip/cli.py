"""Progressive flip: `python -m tools.flip --stack prod --to green --steps 10,25,50,100 --hold 5m`.

Composition only: read the request (request.py), take the stack's lease (lease.py) and start the
journal (journal.py), run the readiness gate (`tools.verify.gate.before_flip`), run the rollout
(rollout.py), report (report.py). Also the journal's commands: `--resume`, `--abort`, and for the
workflows `--deploy-check` and `--record`. Exit codes: rollout.py and docs/flip.md.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from components.config import StackConfig
from tools.flip import journal as journals
from tools.flip.lease import Lease, LeaseError, LeaseHeld, Store, acquire, holder, open_store, read_lease
from tools.flip.plan import format_weights, plan
from tools.flip.prometheus import PrometheusClient, adc_token, cloud_monitoring_url
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
)
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
) -> int:
    out = out or sys.stdout
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
                return deploy_check(args.stack, dict(cfg.traffic.weights), store, out)
            if args.record:
                return record(args.stack, store, opener, out, err)
            return _with_stopper(stopper, lambda: resume_or_abort(
                args, stack_dir, store, opener, stopper, metrics, client_factory, clock, sleep, out, err))
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
    return _with_stopper(stopper, lambda: flip(request, store, opener, gate, stopper, metrics, client_factory,
                                                clock, sleep, out, err))


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
         sleep: Callable[[float], None], out: TextIO, err: TextIO) -> int:
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
    try:
        try:
            outputs = parse_outputs(stack.outputs())
        except (OutputsError, StackError) as error:
            detail = "; ".join(error.problems) if isinstance(error, OutputsError) else str(error)
            out.write(f"flip stopped before it started: the stack outputs cannot be read: {detail}\n")
            return EXIT_GATE
        result = gate(request.cfg, outputs, request.final, client_factory)
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
        code = Flip(request=request, stack=stack, metrics=_metrics(request, metrics), client_factory=client_factory,
                    out=out, clock=clock, sleep=sleep, stopper=stopper, journal=journal).run()
        journal.end(code)
        return code
    finally:
        lease.release()


def resume_or_abort(args: object, stack_dir: Path, store: Store, opener: Callable[[str], FlipStack],
                    stopper: Stopper, metrics: Metrics | None, client_factory: ClientFactory,
                    clock: Callable[[], float], sleep: Callable[[float], None], out: TextIO, err: TextIO) -> int:
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
    try:
        writer = journals.Writer(store, j)
        writer.journal.holder = lease.holder
        writer.save(f"{flag} by {holder()}")
        back = Flip(request=request, stack=stack, metrics=_metrics(request, metrics), client_factory=client_factory,
                    out=out, clock=clock, sleep=sleep, stopper=stopper, journal=writer)
        back.last_good = dict(j.last_good)
        back.routing_urns = set(j.routing_urns)
        if not back.roll_back():
            writer.end(EXIT_ROLLBACK_FAILED)
            return EXIT_ROLLBACK_FAILED
        if args.abort or remaining_from >= len(j.steps):  # type: ignore[attr-defined]
            writer.end(EXIT_ROLLED_BACK if j.last_good != j.final else EXIT_OK)
            out.write(f"flip {name}: ended at the last good weights {format_weights(j.last_good)}\n")
            return EXIT_OK
        steps = plan(j.start, j.final, percents)[remaining_from:]
        request = FlipRequest(**{**request.__dict__, "start": dict(j.last_good), "steps": tuple(steps)})
        out.write(f"flip {name}: resuming from {format_weights(j.last_good)} with steps "
                  f"{', '.join(str(s.percent) + '%' for s in steps)}\n")
        run = Flip(request=request, stack=stack, metrics=_metrics(request, metrics), client_factory=client_factory,
                   out=out, clock=clock, sleep=sleep, stopper=stopper, journal=writer)
        run.routing_urns = set(j.routing_urns)
        code = run.run()
        writer.end(code)
        return code
    finally:
        lease.release()


def deploy_check(stack: str, file_weights: Mapping[str, int], store: Store, out: TextIO) -> int:
    """May a deploy of this stack file go ahead? Not while a flip runs or its applied weights are not in it."""
    held = read_lease(store, stack)
    if held is not None:
        out.write(f"deploy-check {stack}: REFUSED: a flip holds the stack ({held.get('holder')}, since "
                  f"{held.get('since')}); deploying now would overwrite the weights it is judging\n")
        return EXIT_LEASE_HELD
    j = journals.read(store, stack)
    if j is None or j.phase == journals.RECORDED:
        out.write(f"deploy-check {stack}: ok (no flip to record)\n")
        return EXIT_OK
    flip_name = f"the flip started by {j.holder} at {j.started}"
    if j.phase == journals.RUNNING:
        out.write(f"deploy-check {stack}: REFUSED: {flip_name} did not finish (killed?); run `python -m tools.flip "
                  f"--stack {stack} --resume` or `--abort`, then merge its weights\n")
        return EXIT_DEPLOY_REFUSED
    if j.deployed is None:
        out.write(f"deploy-check {stack}: REFUSED: {flip_name} ended (exit {j.exit}) without a confirmed split; run "
                  f"`python -m tools.flip --stack {stack} --abort`\n")
        return EXIT_DEPLOY_REFUSED
    if dict(file_weights) != dict(j.deployed):
        out.write(f"deploy-check {stack}: REFUSED: {flip_name} left {format_weights(j.deployed)} applied, but this "
                  f"Pulumi.{stack}.yaml says {format_weights(file_weights)}: the deploy would revert the flip. "
                  f"Merge the flip's pull request (branch flip/{stack}-<run>) first; change weights after it by "
                  "pull request as usual\n")
        return EXIT_DEPLOY_REFUSED
    writer = journals.Writer(store, j)
    writer.journal.phase = journals.RECORDED
    writer.save("deploy-check: the stack file carries the applied weights")
    out.write(f"deploy-check {stack}: ok ({flip_name} left {format_weights(j.deployed)}, which this stack file "
              "carries; the flip is recorded)\n")
    return EXIT_OK


def record(stack_name: str, store: Store, opener: Callable[[str], FlipStack], out: TextIO, err: TextIO) -> int:
    """Write the weights the last flip left deployed (from its journal) into the stack file."""
    j = journals.read(store, stack_name)
    if j is None:
        out.write(f"record {stack_name}: no flip journal; nothing to record\n")
        return EXIT_OK
    if j.deployed is None:
        out.write(f"record {stack_name}: the flip left no confirmed split (an update to "
                  f"{format_weights(j.applying or {})} was interrupted); run --abort first\n")
        return EXIT_ROLLBACK_FAILED
    try:
        opener(stack_name).set_weights(j.deployed)
    except StackError as error:
        err.write(f"record {stack_name}: {error}\n")
        return EXIT_USAGE
    out.write(f"record {stack_name}: Pulumi.{stack_name}.yaml now says {format_weights(j.deployed)} (applied by the "
              f"flip of {j.holder}, journal phase {j.phase})\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
