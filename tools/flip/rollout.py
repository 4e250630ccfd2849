"""Running the rollout: gate preview, then per step write, preview, apply exactly the previewed routing
resources, read back, hold and judge; on any way out, roll back to the last good weights.

Every exit path goes through `Flip.run`'s single `finish`: a failed step, a metrics error, an
unexpected exception, SIGINT or SIGTERM (tools/flip/stop.py) all end in `roll_back`, which runs
shielded from further signals, previews the way back limited to the routing resources, applies
exactly those (`--target`), waits for a locked stack (stack.py) and reads the split back from every
primary. The journal (journal.py) is rewritten at each transition so a flip killed outright still
says what is live. docs/flip.md "Guarantees" and "Exit codes".
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from components.names import NETWORKING_API
from components.traffic import resource_name
from offline import changed_resources, run_with_weights
from tools.flip import hold
from tools.flip.hold import HoldSpec, Metrics
from tools.flip.journal import Writer
from tools.flip.judge import StepVerdict
from tools.flip.plan import format_weights
from tools.flip.prometheus import PrometheusError
from tools.flip.report import StepRecord, report
from tools.flip.request import FlipRequest
from tools.flip.stack import Change, FlipStack, StackError, urn_key
from tools.flip.stop import Stopped, Stopper
from tools.verify.checks import OutputsError, parse_outputs
from tools.verify.kube import REQUEST_TIMEOUT, ClientFactory, describe_failure

EXIT_OK, EXIT_ROLLED_BACK, EXIT_USAGE, EXIT_GATE, EXIT_ROLLBACK_FAILED = 0, 1, 2, 3, 4
EXIT_LEASE_HELD, EXIT_DEPLOY_REFUSED = 5, 6
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class StepFailed(Exception):
    """This step cannot stand: roll back."""


def exit_for(stop: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if getattr(stop, "signum", signal.SIGINT) == signal.SIGTERM else EXIT_INTERRUPTED


def changes_text(changes: Sequence[Change]) -> str:
    return "\n".join(f"    {c.op} {c.urn}" for c in changes)


@dataclass
class Flip:
    request: FlipRequest
    stack: FlipStack
    metrics: Metrics
    client_factory: ClientFactory
    out: TextIO
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    stopper: Stopper = field(default_factory=Stopper)
    journal: Writer | None = None
    records: list[StepRecord] = field(default_factory=list)
    last_good: dict[str, int] = field(default_factory=dict)
    expected: frozenset[str] = frozenset()
    # Full URNs of the routing resources the previews showed changing: the rollback's --target.
    routing_urns: set[str] = field(default_factory=set)

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


    def targets(self, changes: Sequence[Change]) -> list[str]:
        """The URNs an update may touch: the previewed routing resources (the Stack resource carries outputs only)."""
        urns = [c.urn for c in changes if not urn_key(c.urn).startswith("pulumi:pulumi:Stack::")]
        self.routing_urns.update(urns)
        return urns

    # -- one step

    def preview_checked(self, weights: Mapping[str, int], targets: Sequence[str] | None = None) -> list[str]:
        """Write the split, preview it; anything beyond the routing objects is refused. The URNs to apply."""
        self.stack.set_weights(weights)
        changes = self.stack.preview(targets)
        extra = self.unexpected(changes)
        if extra:
            raise StepFailed("the preview changes more than the routing objects:\n" + changes_text(extra))
        return self.targets(changes)

    def apply(self, weights: Mapping[str, int], targets: Sequence[str]) -> None:
        """Apply exactly `targets` (the checked preview's routing resources), then read the split back."""
        if targets:
            if self.journal:
                self.journal.applying(weights, targets)
            self.stack.up(targets)
        self.read_back(weights)
        if self.journal:
            self.journal.deployed(weights)

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


    # -- the run

    def run(self) -> int:
        r = self.request
        self.last_good = dict(r.start)
        self.records = [StepRecord(s) for s in r.steps]
        first_targets: list[str] | None = None
        try:
            self.expected = self.expected or self.expected_changes()
            # Gate: the first step's preview may change only the routing objects (and the policy pack must pass).
            try:
                first_targets = self.preview_checked(r.steps[0].weights)
                failure = ""
            except StepFailed as error:
                failure = str(error)
            except StackError as error:
                failure = f"the preview failed (policy pack or program): {error}"
            if failure:
                self.restore_file()
                self.say(f"flip stopped before it started: {failure}")
                self.say(f"stack file restored to {format_weights(self.last_good)}; nothing was applied")
                return EXIT_GATE
        except KeyboardInterrupt as stop:
            self.restore_file()
            self.say(f"interrupted ({stop}) before anything was applied; stack file at "
                     f"{format_weights(self.last_good)}")
            return exit_for(stop)
        except Exception as error:  # a missing CLI, a broken engine: nothing was applied yet
            self.say(f"flip stopped before it started: {_describe(error)}")
            self.restore_file()
            return EXIT_GATE
        code = EXIT_OK
        try:
            for i, record in enumerate(self.records):
                step = record.step
                self.say(f"step {step.index}/{len(r.steps)} ({step.percent}%): {format_weights(step.weights)}")
                try:
                    targets = first_targets if i == 0 and first_targets is not None \
                        else self.preview_checked(step.weights)
                    self.apply(step.weights, targets)
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
                if self.journal:
                    self.journal.judged_good(step.weights)
        except KeyboardInterrupt as stop:
            self.mark("interrupted")
            self.say(f"\ninterrupted ({stop})")
            code = exit_for(stop)
        except Exception as error:
            self.mark("error")
            self.say(f"  unexpected error: {_describe(error)}")
            code = EXIT_ROLLED_BACK
        if code != EXIT_OK and not self.roll_back():
            code = EXIT_ROLLBACK_FAILED
        if code in (EXIT_OK, EXIT_ROLLED_BACK) and self.stopper.stopped:
            code = exit_for(Stopped(self.stopper.signum or signal.SIGINT))
        if self.journal and self.journal.error:
            self.say(f"WARNING: {self.journal.error}; the journal may not show the end of this flip")
        self.say("\n" + report(self.records, r))
        outcome = {EXIT_OK: "flip complete", EXIT_ROLLBACK_FAILED: "written, NOT confirmed applied"}
        self.say(f"final weights: {format_weights(self.last_good)} ({outcome.get(code, 'rolled back')})")
        return code

    def mark(self, result: str) -> None:
        current = next((rec for rec in self.records if rec.result == "not run"), None)
        if current is not None:
            current.result = result

    def restore_file(self) -> None:
        with self.stopper.shield():
            try:
                self.stack.set_weights(self.last_good)
            except Exception:
                self.say(f"  check Pulumi.{self.request.stack}.yaml: traffic.weights must read "
                         f"{format_weights(self.last_good)}")

    def roll_back(self) -> bool:
        """Back to the last good weights: shielded, previewed, only the routing resources, read back."""
        weights = self.last_good
        self.say(f"rolling back to the last good weights {format_weights(weights)}")
        with self.stopper.shield():
            try:
                if not self.expected:
                    self.expected = self.expected_changes()
                targets = self.preview_checked(weights, sorted(self.routing_urns) or None)
                self.apply(weights, targets)
            except Exception as error:
                self.say(f"ROLLBACK FAILED: {_describe(error)}\n{self.what_is_live()}")
                return False
        self.say(f"rolled back: every primary serves {format_weights(weights)}")
        return True

    def what_is_live(self) -> str:
        """Exactly what the deployment may serve now, and what to run."""
        s = self.request.stack
        j = self.journal.journal if self.journal else None
        if j is not None and j.deployed is not None:
            live = f"  every primary was last confirmed to serve {format_weights(j.deployed)}"
        elif j is not None and j.applying is not None:
            before = format_weights(j.previous) if j.previous else "the split before it"
            live = (f"  an update to {format_weights(j.applying)} did not complete: each routing resource serves "
                    f"either that or {before}")
        else:
            live = "  the deployment was not confirmed after the last update"
        return (f"{live}\n  the stack file says {format_weights(self.last_good)} (the last good weights); run "
                f"`python -m tools.flip --stack {s} --abort` (or `pulumi up --stack {s}`) and "
                f"`python -m tools.verify --stack {s}` until it succeeds")


def _describe(error: BaseException) -> str:
    if isinstance(error, (StepFailed, StackError, PrometheusError)):
        return str(error)
    frame = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" at {frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno}" if frame else ""
    return f"{type(error).__name__}: {error}{where}"


def _route_weights(vs: Mapping[str, Any]) -> dict[str, int]:
    http = (vs.get("spec") or {}).get("http") or []
    routes = (http[0].get("route") if http else None) or []
    return {r["destination"]["subset"]: int(r.get("weight", 0)) for r in routes}
