"""The replacement's phases, run in order and resumable: add -> parity -> flip -> soak -> retire.

One journal beside the flip's (`<backend>/.pulumi-flip/<project>/<stack>/replace.json`, the flip's
lease store) holds the plan (every config state the stack file goes through, computed once at the
start, so a resume never re-plans from a half-edited file), the phases done, the phase running and
when the soak started. It is rewritten at every transition: a replacement killed at any point is
continued by `--resume` (the phase that was running runs again; each is idempotent: a stack-file
rewrite to a target config, a `pulumi up`, a read, or the flip's own `--resume`) or undone by
`--abort` (traffic back to the start split through the flip, the successor removed).

The stack's lease (tools/flip/lease.py) is held per phase, not for the whole run: the add, the
retire and the abort hold it around their stack-file edit and `up`; the flip phase is `tools.flip`
itself, which takes the same lease; parity and soak only read. A lease held across a pause
(`--until`, or the retire confirmation a reviewer gives hours later) would block every other flip
of the stack for that long; the journal (status `running`/`paused`) is what keeps a second
replacement from starting meanwhile.

Parity is `tools.verify.parity`; the flip is `tools.flip` (its gates, judge, lease and journal);
the soak reads the flip's metrics (`tools.flip.prometheus`) with the flip's inconclusive budget
(`flip.inconclusiveLimit` consecutive unusable reads).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from components import config
from tools.flip import journal as flip_journals
from tools.flip.lease import LeaseHeld, Store, acquire, key, now, read_lease
from tools.flip.plan import format_weights
from tools.flip.prometheus import PrometheusError
from tools.replace import stackfile
from tools.replace.plan import ReplacePlan, parseable
from tools.replace.preview import AddPreview
from tools.verify.checks import StackOutputs
from tools.verify.kube import ClientFactory, connect
from tools.verify.parity import compare, read_parity, wait_for_parity
from tools.verify.parity import render as render_parity

PHASES = ("add", "parity", "flip", "soak", "retire")
RUNNING, PAUSED, DONE, ABORTED = "running", "paused", "done", "aborted"

EXIT_OK = 0  # every phase asked for is done (or --until stopped after one)
EXIT_STOPPED = 1  # a phase's check failed (add preview, parity, flip, soak): the journal keeps the place
EXIT_USAGE = 2
EXIT_CONFIRM = 3  # the retire needs --confirm-retire: nothing was removed
EXIT_HELD = 4  # another replacement or flip holds the stack


def journal_key(stack: str) -> str:
    return key(stack, "replace.json")


@dataclass
class Journal:
    stack: str
    old: str
    new: str
    soak_seconds: int
    holder: str
    started: str
    before: dict[str, Any]
    added: dict[str, Any]
    flipped: dict[str, Any]
    unprotected: dict[str, Any] | None
    retired: dict[str, Any]
    final_weights: dict[str, int]
    status: str = RUNNING
    done: list[str] = field(default_factory=list)
    current: str | None = None
    soak_started: float | None = None
    note: str = ""
    lease_holder: str | None = None  # who took the stack's lease for the last add/retire/abort

    @classmethod
    def begin(cls, stack: str, rp: ReplacePlan, soak: int, holder: str) -> Journal:
        return cls(stack=stack, old=rp.old, new=rp.new, soak_seconds=soak, holder=holder, started=now(),
                   before=rp.before, added=rp.added, flipped=rp.flipped, unprotected=rp.unprotected,
                   retired=rp.retired, final_weights=dict(rp.final_weights))

    @property
    def start_weights(self) -> dict[str, int]:
        return {k: int(v) for k, v in (self.added.get("traffic") or {}).get("weights", {}).items()}

    def next_phase(self) -> str | None:
        return next((p for p in PHASES if p not in self.done), None)


def read(store: Store, stack: str) -> Journal | None:
    raw = store.read(journal_key(stack))
    return None if raw is None else Journal(**json.loads(raw))


def write(store: Store, j: Journal) -> None:
    store.write(journal_key(j.stack), json.dumps(asdict(j), indent=1).encode())


class PhaseFailed(Exception):
    """A phase's check said no; the message says what and how to go on."""


@dataclass
class Ports:
    """What the phases talk to; production wiring in tools/replace/cli.py, doubles in tests/test_replace_run.py."""

    store: Store
    stack_file: Path
    project: str
    # `pulumi up` of the whole stack from the stack file (policy pack enforced); raises on failure.
    deploy: Callable[[], None]
    # The stack's outputs after the last `up`.
    outputs: Callable[[], StackOutputs]
    client_factory: ClientFactory
    # `tools.flip`'s main with these arguments (after `--stack`); its exit code.
    flip: Callable[[Sequence[str]], int]
    # The flip's metrics reader (tools.flip.prometheus.PrometheusClient).
    metrics: Any
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    check_add: Callable[[Mapping[str, Any], Mapping[str, Any], str, str], AddPreview]
    parity_wait: float = 0.0
    out: TextIO | None = None


@dataclass
class Runner:
    j: Journal
    ports: Ports

    def say(self, text: str) -> None:
        if self.ports.out is not None:
            self.ports.out.write(text + "\n")
            self.ports.out.flush()

    # -- the stack file and the lease

    def write_file(self, target: Mapping[str, Any]) -> None:
        path = self.ports.stack_file
        path.write_text(stackfile.rewrite(path.read_text(), target))

    def expect(self, phase: str, *states: Mapping[str, Any] | None, weights_may_differ: bool = False) -> None:
        """The stack file must be in a state this replacement wrote (or the flip's weights of one): a rewrite to
        the next state would otherwise undo an edit made since the plan."""
        current = _read_file(self.ports.stack_file)
        if any(s is not None and _comparable(current, weights_may_differ) == _comparable(s, weights_may_differ)
               for s in states):
            return
        nearest = next(s for s in states if s is not None)
        keys = sorted(k for k in set(current) | set(nearest) if current.get(k) != nearest.get(k))
        raise PhaseFailed(f"{phase}: {self.ports.stack_file.name} was edited since the replacement planned it "
                          f"({', '.join(keys)} differ); the phase would undo that. Undo the edit, or --abort "
                          "and plan again")

    def leased(self, what: Callable[[], None], *, take_over: bool) -> None:
        """Run `what` under the stack's lease; with `take_over`, a lease this replacement's killed run left is
        taken over (never another holder's: a flip that started since keeps it)."""
        held = read_lease(self.ports.store, self.j.stack)
        ours = take_over and held is not None and held.get("holder") == self.j.lease_holder
        try:
            lease = acquire(self.ports.store, self.j.stack, take_over=ours)
        except LeaseHeld as held_by:
            raise Held(f"stack {self.j.stack} is held by {held_by.holder} since {held_by.since}; wait for it, "
                       "then --resume") from None
        self.j.lease_holder = lease.holder
        write(self.ports.store, self.j)
        try:
            what()
        finally:
            lease.release()

    def cfg(self, raw: Mapping[str, Any]) -> config.StackConfig:
        return config.parse(parseable(raw), project=self.ports.project)

    def record_flip(self) -> None:
        """The stack file now deployed carries the flip's weights, less a removed cluster at 0: record the flip.

        Otherwise the deploy workflow's `tools.flip --deploy-check` would refuse every later deploy, because
        the file no longer names the removed cluster the flip's journal still lists.
        """
        fj = flip_journals.read(self.ports.store, self.j.stack)
        if fj is None or fj.phase != flip_journals.ENDED or fj.deployed is None:
            return
        weights = dict(self.cfg(_read_file(self.ports.stack_file)).traffic.weights)
        gone = {k: v for k, v in fj.deployed.items() if k not in weights}
        if all(fj.deployed.get(k, 0) == v for k, v in weights.items()) and not any(gone.values()):
            writer = flip_journals.Writer(self.ports.store, fj)
            writer.journal.phase = flip_journals.RECORDED
            writer.save(f"replace: the stack file deployed without {', '.join(gone) or 'change'} carries the "
                        "flip's weights")

    # -- the phases

    def add(self, resumed: bool) -> None:
        check = self.ports.check_add(self.j.before, self.j.added, self.j.new,
                                     next(c["network"] for c in self.j.added["clusters"] if c["name"] == self.j.new))
        if check.problems:
            raise PhaseFailed("the add's preview changes more than the successor and its peers' links:\n"
                              + "\n".join(f"  REFUSED: {p}" for p in check.problems))

        self.expect("add", self.j.before, self.j.added)

        def apply() -> None:
            self.write_file(self.j.added)
            self.say(f"add: {self.j.new} written into {self.ports.stack_file.name} at weight 0; pulumi up")
            self.ports.deploy()

        self.leased(apply, take_over=resumed)

    def parity(self, resumed: bool) -> None:
        outputs = self.ports.outputs()
        missing = [n for n in (self.j.old, self.j.new) if n not in outputs.names]
        if missing:
            raise PhaseFailed(f"{', '.join(missing)} not in the stack outputs: the add is not deployed")
        picked = dataclasses.replace(outputs, clusters=tuple(
            c for c in outputs.clusters if c.name in (self.j.old, self.j.new)))
        clients, errors = connect(picked, self.ports.client_factory)
        if errors:
            raise PhaseFailed("; ".join(f"{e.name}: {e.message} ({e.fix})" for e in errors))
        cfg = self.cfg(self.j.added)
        services = [(s.host, s.namespace) for s in cfg.traffic.services]
        address = next(c.eastwest_address for c in outputs.clusters if c.name == self.j.new)

        def once():  # noqa: ANN202
            old = read_parity(clients[self.j.old], self.j.old, cfg.mesh_namespaces, services)
            new = read_parity(clients[self.j.new], self.j.new, cfg.mesh_namespaces, services)
            return compare(old, new, services, address or "")

        result = wait_for_parity(once, timeout=self.ports.parity_wait, sleep=self.ports.sleep,
                                 clock=self.ports.clock)
        self.say(render_parity(result))
        if not result.passed:
            raise PhaseFailed(f"parity: {self.j.new} does not run what {self.j.old} runs; deliver the differences "
                              "above, then --resume")

    def flip(self, resumed: bool) -> None:
        self.expect("flip", self.j.added, weights_may_differ=True)
        flip_j = flip_journals.read(self.ports.store, self.j.stack)
        if resumed and flip_j is not None and flip_j.phase == flip_journals.RUNNING:
            self.say("flip: the flip was interrupted; resuming it (tools.flip --resume)")
            code = self.ports.flip(["--resume"])
            if code != 0:
                raise PhaseFailed(f"flip --resume ended with exit {code} (docs/flip.md); then --resume this")
        final = ",".join(f"{k}={v}" for k, v in self.j.final_weights.items() if v)
        self.say(f"flip: {format_weights(self.j.start_weights)} -> {format_weights(self.j.final_weights)}")
        code = self.ports.flip(["--weights", final])
        if code != 0:
            raise PhaseFailed(f"the flip ended with exit {code} and left the last good weights (docs/flip.md); "
                              "fix what it reported, then --resume")

    def soak(self, resumed: bool) -> None:
        cfg = self.cfg(self.j.flipped)
        weights = dict(self.cfg(_read_file(self.ports.stack_file)).traffic.weights)
        if weights.get(self.j.old, 0) != 0:
            raise PhaseFailed(f"{self.j.old} has weight {weights[self.j.old]} in the stack file; the soak needs it "
                              "at 0 (the flip phase moves it)")
        if self.j.soak_started is None:
            self.j.soak_started = self.ports.clock()
            write(self.ports.store, self.j)
        end = self.j.soak_started + self.j.soak_seconds
        self.say(f"soak: {self.j.old} at weight 0 for {self.j.soak_seconds}s; it must see no request of the routed "
                 "services")
        hosts = [s.fqdn for s in cfg.traffic.services]
        budget = cfg.flip.inconclusive_limit
        unusable: list[str] = []
        while True:
            remaining = end - self.ports.clock()
            if remaining > 0:
                self.ports.sleep(remaining)
                continue
            try:
                measured = self.ports.metrics.measure(hosts, self.j.soak_seconds, self.ports.clock())
            except PrometheusError as error:
                unusable.append(str(error))
                if len(unusable) > budget:
                    raise PhaseFailed(f"soak: {len(unusable)} consecutive metric reads were inconclusive "
                                      f"(flip.inconclusiveLimit {budget}); last: {unusable[-1]}") from None
                self.ports.sleep(cfg.flip.interval_seconds)
                continue
            seen = measured.get(self.j.old)
            if seen is not None and seen.requests > 0:
                raise PhaseFailed(f"soak: {self.j.old} received {seen.requests:.0f} requests of the routed services "
                                  f"in the last {self.j.soak_seconds}s at weight 0: something still sends it "
                                  "traffic (a client outside the mesh, a per-service weight); find it, then --resume "
                                  "(the soak starts again)")
            self.say(f"soak: no request reached {self.j.old} in {self.j.soak_seconds}s")
            return

    def retire(self, resumed: bool) -> None:
        self.expect("retire", self.j.flipped, self.j.unprotected, self.j.retired)

        def apply() -> None:
            if self.j.unprotected is not None:
                self.write_file(self.j.unprotected)
                self.say(f"retire: {self.j.old}'s protection lifted; pulumi up")
                self.ports.deploy()
            self.write_file(self.j.retired)
            self.say(f"retire: {self.j.old} removed from {self.ports.stack_file.name}; pulumi up")
            self.ports.deploy()
            self.record_flip()

        self.leased(apply, take_over=resumed)

    # -- the run

    def run(self, *, until: str | None, confirm_retire: bool, resumed: bool) -> int:
        if until is not None and until in self.j.done:
            self.say(f"replace: --until {until}: that phase is already done (done: {', '.join(self.j.done)})")
            return EXIT_USAGE
        while (phase := self.j.next_phase()) is not None:
            if phase == "retire" and not confirm_retire:
                self.j.status, self.j.current = PAUSED, None
                write(self.ports.store, self.j)
                self.say(f"retire: the point of no return ({self.j.old} and its VPC are deleted); run again with "
                         "--resume --confirm-retire once it is approved")
                return EXIT_CONFIRM
            again = resumed and self.j.current == phase
            self.j.status, self.j.current = RUNNING, phase
            write(self.ports.store, self.j)
            try:
                getattr(self, phase)(again)
            except (PhaseFailed, Held) as error:
                self.j.status, self.j.note = PAUSED, str(error)
                if phase == "soak":
                    self.j.soak_started = None
                write(self.ports.store, self.j)
                self.say(f"replace stopped in phase {phase}: {error}")
                return EXIT_HELD if isinstance(error, Held) else EXIT_STOPPED
            self.j.done.append(phase)
            self.j.current, resumed = None, False
            write(self.ports.store, self.j)
            self.say(f"phase {phase}: done")
            if until == phase and self.j.next_phase() is not None:
                self.j.status = PAUSED
                write(self.ports.store, self.j)
                self.say(f"stopped after {phase} (--until); continue with --resume")
                return EXIT_OK
        self.j.status = DONE
        write(self.ports.store, self.j)
        self.say(f"replace: {self.j.new} has replaced {self.j.old}")
        return EXIT_OK

    def abort(self) -> int:
        """Undo: traffic back to the start split (through the flip), then the successor removed."""
        if "retire" in self.j.done or self.j.current == "retire":
            self.say(f"abort: {self.j.old} is (being) retired; there is nothing left to go back to")
            return EXIT_USAGE
        flip_j = flip_journals.read(self.ports.store, self.j.stack)
        if flip_j is not None and flip_j.phase == flip_journals.RUNNING:
            code = self.ports.flip(["--abort"])
            if code != 0:
                self.say(f"abort stopped: the interrupted flip's --abort ended with exit {code} (docs/flip.md)")
                return EXIT_STOPPED
        try:
            self.expect("abort", self.j.added, self.j.before, weights_may_differ=True)
        except PhaseFailed as error:
            self.say(f"abort stopped: {error}")
            return EXIT_STOPPED
        weights = dict(self.cfg(_read_file(self.ports.stack_file)).traffic.weights)
        if any(weights.get(k, 0) != v for k, v in self.j.start_weights.items()):
            start = ",".join(f"{k}={v}" for k, v in self.j.start_weights.items() if v)
            self.say(f"abort: moving the traffic back to {format_weights(self.j.start_weights)}")
            code = self.ports.flip(["--weights", start])
            if code != 0:
                self.say(f"abort stopped: the flip back ended with exit {code}; run --abort again")
                return EXIT_STOPPED
        if "add" in self.j.done or self.j.current == "add":
            def apply() -> None:
                self.write_file(self.j.before)
                self.say(f"abort: {self.j.new} removed from {self.ports.stack_file.name}; pulumi up")
                self.ports.deploy()
                self.record_flip()

            try:
                self.leased(apply, take_over=True)
            except Held as error:
                self.say(f"abort stopped: {error}")
                return EXIT_HELD
        self.j.status, self.j.current = ABORTED, None
        write(self.ports.store, self.j)
        self.say(f"replace aborted: {self.j.old} serves {format_weights(self.j.start_weights)} as before")
        return EXIT_OK


class Held(Exception):
    """The stack's lease is held by someone else."""


def _comparable(raw: Mapping[str, Any], without_weights: bool) -> str:
    doc = json.loads(json.dumps(raw, sort_keys=True, default=str))
    if without_weights and isinstance(doc.get("traffic"), dict):
        doc["traffic"].pop("weights", None)
    return json.dumps(doc, sort_keys=True)


def _read_file(path: Path) -> dict[str, Any]:
    return stackfile.project_config(path.read_text())
