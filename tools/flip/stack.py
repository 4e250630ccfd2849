"""The stack as the flip sees it: write weights, preview, apply, read outputs.

`AutomationStack` drives the Pulumi CLI through the Automation API on the project
directory, so the stack file is the one in git: weights are written with
`set_all_config(..., path=True)` - one `pulumi config set-all --path` call, exactly what
`pulumi config set --path traffic.weights.green 90` writes, all clusters at once so the
file never holds a half-written split. Previews and updates enforce the policy pack.

The CLI runs through `pulumi_runner`, the SDK's own `PulumiCommand` with one change: the child
gets its own session (process group), and an interrupt is forwarded to it once and waited for
(bounded) instead of abandoning it (tools/flip/stop.py). An update refused because the stack is
locked (a cancelled update still releasing its lock) is retried until `lock_wait` runs out.
Updates apply only the URNs they are given (`--target`): the routing resources the preview just
showed, nothing else (docs/flip.md "What is applied is what was reviewed").
Tests use `tests.fakes.fake_automation.FakeStack` for the contract and tests/fakes/pulumi_cli.py, a
stand-in `pulumi` binary, for the real Automation API path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from components.config import stack_file
from components.names import PROJECT
from tools.flip.stop import Stopper

ROOT = stack_file.ROOT  # the project directory, where Pulumi runs and the stack files are
POLICY_PACK = ROOT / "policy"
# Ops of a preview step that change nothing.
UNCHANGED_OPS = frozenset({"same", "read", "refresh", "discard"})
# pkg/backend/diy/lock.go (pulumi/pulumi): the DIY backend's answer while another update holds the stack.
LOCKED_TEXT = "the stack is currently locked by"
# How long a cancelled CLI gets to finish cancelling (and release the lock) before a second SIGINT
# ("terminate immediately", pkg/backend/cancellation_scope.go), and then SIGKILL.
CANCEL_WAIT_SECONDS = 120.0
TERMINATE_WAIT_SECONDS = 10.0
LOCK_WAIT_SECONDS = 300.0
LOCK_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class Change:
    """One step of a preview: the operation and the resource's URN."""

    op: str
    urn: str


class StackError(Exception):
    """The Pulumi CLI (or its fake) failed; the message is its last useful line."""


class FlipStack(Protocol):
    name: str

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Write `traffic.weights` (every cluster) into the stack file, as `pulumi config set --path` does."""

    def preview(self, targets: Sequence[str] | None = None) -> list[Change]:
        """What `pulumi up` would do now (only `targets`, when given), with the policy pack enforced."""

    def up(self, targets: Sequence[str]) -> None:
        """Apply the stack file to exactly the `targets` URNs, with the policy pack enforced."""

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs (secrets shown), as `pulumi stack output --json --show-secrets`."""


def weights_config(weights: Mapping[str, int]) -> dict[str, str]:
    """The path-keyed config values of a split; `--path` stores "90" as the integer 90."""
    return {f"{PROJECT}:traffic.weights.{cluster}": str(int(weight)) for cluster, weight in weights.items()}


def urn_key(urn: str) -> str:
    """`Type::name` of a URN: the same for the real engine and the offline mocks (which prefix the stack type)."""
    parts = urn.split("::", 3)
    if len(parts) < 4:
        return urn
    return f"{parts[2].split('$')[-1]}::{parts[3]}"


def pulumi_runner(stopper: Stopper, *, cancel_wait: float = CANCEL_WAIT_SECONDS,
                  terminate_wait: float = TERMINATE_WAIT_SECONDS) -> Any:
    """A `PulumiCommand` whose `run` keeps the child: own session, one forwarded SIGINT, bounded waits.

    Plugged in through `LocalWorkspaceOptions(pulumi_command=...)`. The body is the SDK's
    `PulumiCommand.run` (pulumi/automation/_cmd.py, pulumi 3.272) with `start_new_session=True` and
    a wait loop instead of `with Popen(...)`, whose `__exit__` on KeyboardInterrupt waits 0.25 s and
    abandons the child with its pipes closed.
    """
    from pulumi.automation import PulumiCommand
    from pulumi.automation._cmd import CommandResult
    from pulumi.automation.errors import create_command_error

    class Runner(PulumiCommand):
        def run(self, args: list[str], cwd: str, additional_env: Mapping[str, str],
                on_output: Callable[[str], Any] | None = None,
                on_error: Callable[[str], Any] | None = None) -> Any:
            sep = args.index("--") if "--" in args else len(args)
            if "--non-interactive" not in args[:sep]:
                args.insert(0, "--non-interactive")
            env = {**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"}
            out: list[str] = []
            err: list[str] = []

            def consume(stream: Any, callback: Callable[[str], Any] | None, chunks: list[str]) -> None:
                for line in iter(stream.readline, ""):
                    if callback:
                        callback(line.rstrip())
                    chunks.append(line.rstrip())
                stream.close()

            with stopper.child():
                process = subprocess.Popen([self.command, *args], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, cwd=cwd, env=env, encoding="utf-8",
                                           start_new_session=True)
                stopper.child_pid = process.pid
                stopper.forward()  # a signal that came while it started
                readers = [threading.Thread(target=consume, args=(process.stdout, on_output, out), daemon=True),
                           threading.Thread(target=consume, args=(process.stderr, on_error, err), daemon=True)]
                for reader in readers:
                    reader.start()
                code = _wait(process, stopper, cancel_wait, terminate_wait, err)
                for reader in readers:
                    reader.join()
            result = CommandResult(stdout="\n".join(out), stderr="\n".join(err), code=code)
            stopper.raise_if_stopped()
            if code != 0:
                raise create_command_error(result)
            return result

    return Runner()


def _wait(process: subprocess.Popen[str], stopper: Stopper, cancel_wait: float, terminate_wait: float,
          err: list[str]) -> int:
    """Wait for the child; once it was interrupted, give it `cancel_wait`, then a 2nd SIGINT, then SIGKILL."""
    escalation = [(cancel_wait, signal.SIGINT, "did not finish cancelling; sent a second SIGINT (terminate)"),
                  (terminate_wait, signal.SIGKILL, "did not terminate; killed it (the stack may keep a lock "
                                                   "and pending operations: `pulumi cancel`, `pulumi refresh`)")]
    since: float | None = None
    while True:
        try:
            return process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
        if not stopper.child_signalled:
            continue
        now = time.monotonic()
        since = since if since is not None else now
        if escalation and now - since >= escalation[0][0]:
            _, signum, note = escalation.pop(0)
            err.append(f"flip: the Pulumi CLI {note}")
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                pass
            since = now


class AutomationStack:
    """The real stack, through `pulumi.automation` on the project directory, with `pulumi_runner`."""

    def __init__(self, name: str, work_dir: Path = ROOT, *, stopper: Stopper | None = None,
                 lock_wait: float = LOCK_WAIT_SECONDS, sleep: Callable[[float], None] = time.sleep) -> None:
        from pulumi import automation as auto

        self.name = name
        self._auto = auto
        self.stopper = stopper or Stopper()
        self.lock_wait = lock_wait
        self.sleep = sleep
        try:
            runner = pulumi_runner(self.stopper)
            opts = auto.LocalWorkspaceOptions(pulumi_command=runner)
            self._stack = auto.select_stack(stack_name=name, work_dir=str(work_dir), opts=opts)
        except auto.errors.CommandError as error:
            raise StackError(_last_line(error)) from None
        except (FileNotFoundError, auto.errors.InvalidVersionError, subprocess.CalledProcessError) as error:
            raise StackError(f"the Pulumi CLI cannot be used ({error}); install it: "
                             "https://www.pulumi.com/docs/install/") from None
        self._policy = [str(POLICY_PACK)] if POLICY_PACK.is_dir() else None

    def set_weights(self, weights: Mapping[str, int]) -> None:
        values = {k: self._auto.ConfigValue(value=v) for k, v in weights_config(weights).items()}
        self._run(lambda: self._stack.set_all_config(values, path=True))

    def preview(self, targets: Sequence[str] | None = None) -> list[Change]:
        changes: list[Change] = []

        def on_event(event: Any) -> None:
            pre = getattr(event, "resource_pre_event", None)
            if pre is not None and pre.metadata is not None:
                op = getattr(pre.metadata.op, "value", pre.metadata.op)
                if op not in UNCHANGED_OPS:
                    changes.append(Change(str(op), pre.metadata.urn))

        self._run(lambda: self._stack.preview(policy_packs=self._policy, on_event=on_event, diff=True,
                                              target=list(targets) if targets else None))
        return changes

    def up(self, targets: Sequence[str]) -> None:
        if not targets:
            raise StackError("refusing an update without targets: a flip applies only the previewed routing "
                             "resources")
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                self._run(lambda: self._stack.up(policy_packs=self._policy, diff=True, target=list(targets)))
                return
            except StackError as error:
                if LOCKED_TEXT not in str(error) or time.monotonic() >= deadline:
                    raise
            self.sleep(LOCK_RETRY_SECONDS)

    def outputs(self) -> dict[str, Any]:
        return self._run(lambda: {k: v.value for k, v in self._stack.outputs().items()})

    def _run(self, call: Any) -> Any:
        try:
            return call()
        except self._auto.errors.CommandError as error:
            raise StackError(_full(error)) from None


def _full(error: Exception) -> str:
    """The CLI's error lines (a lock message carries its holder on the lines after it)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "error" in line.lower() or LOCKED_TEXT in line or "created by" in line]
    return "\n".join(useful[-6:])[:1200] if useful else _last_line(error)


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "error" in line.lower()] or lines
    return useful[-1][:400] if useful else type(error).__name__
