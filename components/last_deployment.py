"""What the last deployment left decides which edits are safe: the stack reads its own outputs.

Some edits are fine on paper and break the running mesh: removing a cluster that still
carries weight (components/retirement.py), or a signing root no cluster trusts yet
(components/root_transition.py). Both need what is deployed, not what is configured.

The stack reads its own last outputs through a StackReference to itself
(`<org>/<project>/<stack>`): the engine's builtin provider answers it from the stack's last
checkpoint (pkg/backend: backendClient.GetStackOutputs reads the stack's snapshot and its
root Stack resource's outputs), in `pulumi preview` as in `pulumi up`, on Pulumi Cloud and
on DIY backends (gs://, file://) alike, since the same backend client serves both. A
brand-new stack has no snapshot: GetRootStackResource returns none and the outputs are
empty, so there is nothing to refuse. Every top-level component waits for the gate
(`depends_on` accepts an Output), so a refused edit registers nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pulumi

Check = Callable[[Mapping[str, Any]], list[str]]


def self_reference_name() -> str:
    """This stack's fully qualified name, as a StackReference spells it.

    The engine tells the program its organization (Pulumi Cloud: the stack's org; DIY backends:
    `organization`); without one, a bare stack name resolves within the current project.
    """
    org = pulumi.get_organization()
    return f"{org}/{pulumi.get_project()}/{pulumi.get_stack()}" if org else pulumi.get_stack()


def last_deployment_gate(checks: Sequence[Check]) -> pulumi.Output[list[pulumi.Resource]]:
    """An empty dependency list once every check passes; fails the whole program otherwise."""
    last = pulumi.StackReference(self_reference_name()).outputs

    def check(outputs: Mapping[str, Any]) -> list[pulumi.Resource]:
        problems = [p for c in checks for p in c(outputs or {})]
        if problems:
            raise pulumi.RunError("refused before any change:\n" + "\n".join(f"  - {p}" for p in problems))
        return []

    return last.apply(check)
