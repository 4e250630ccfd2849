"""The stack as the flip sees it: write weights, preview, apply, read outputs.

`AutomationStack` drives the Pulumi CLI through the Automation API on the project
directory, so the stack file is the one in git: weights are written with
`set_all_config(..., path=True)` - one `pulumi config set-all --path` call, exactly what
`pulumi config set --path traffic.weights.green 90` writes, all clusters at once so the
file never holds a half-written split. Previews and updates enforce the policy pack.
Tests use `tests.fakes.fake_automation.FakeStack`, which keeps the same contract without a CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from components.names import PROJECT

ROOT = Path(__file__).resolve().parent.parent.parent
POLICY_PACK = ROOT / "policy"
# Ops of a preview step that change nothing.
UNCHANGED_OPS = frozenset({"same", "read", "refresh", "discard"})


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

    def preview(self) -> list[Change]:
        """What `pulumi up` would do now, with the policy pack enforced."""

    def up(self) -> None:
        """Apply the stack file to the deployment, with the policy pack enforced."""

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


class AutomationStack:
    """The real stack, through `pulumi.automation` on the project directory."""

    def __init__(self, name: str, work_dir: Path = ROOT) -> None:
        from pulumi import automation as auto

        self.name = name
        self._auto = auto
        try:
            self._stack = auto.select_stack(stack_name=name, work_dir=str(work_dir))
        except auto.errors.CommandError as error:
            raise StackError(_last_line(error)) from None
        except (FileNotFoundError, auto.errors.InvalidVersionError) as error:
            raise StackError(f"the Pulumi CLI cannot be used ({error}); install it: "
                             "https://www.pulumi.com/docs/install/") from None
        self._policy = [str(POLICY_PACK)] if POLICY_PACK.is_dir() else None

    def set_weights(self, weights: Mapping[str, int]) -> None:
        values = {k: self._auto.ConfigValue(value=v) for k, v in weights_config(weights).items()}
        self._run(lambda: self._stack.set_all_config(values, path=True))

    def preview(self) -> list[Change]:
        changes: list[Change] = []

        def on_event(event: Any) -> None:
            pre = getattr(event, "resource_pre_event", None)
            if pre is not None and pre.metadata is not None:
                op = getattr(pre.metadata.op, "value", pre.metadata.op)
                if op not in UNCHANGED_OPS:
                    changes.append(Change(str(op), pre.metadata.urn))

        self._run(lambda: self._stack.preview(policy_packs=self._policy, on_event=on_event, diff=True))
        return changes

    def up(self) -> None:
        self._run(lambda: self._stack.up(policy_packs=self._policy, diff=True))

    def outputs(self) -> dict[str, Any]:
        return self._run(lambda: {k: v.value for k, v in self._stack.outputs().items()})

    def _run(self, call: Any) -> Any:
        try:
            return call()
        except self._auto.errors.CommandError as error:
            raise StackError(_last_line(error)) from None


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "error" in line.lower()] or lines
    return useful[-1][:400] if useful else type(error).__name__
