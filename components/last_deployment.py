"""What the last deployment left decides which edits are safe: the stack reads its own outputs.

Some edits are fine on paper and break the running mesh: removing a cluster that still
carries weight (components/retirement.py), or a signing root no cluster trusts yet
(components/root_transition.py). Both need what is deployed, not what is configured.

The stack reads its own last outputs through a StackReference to itself (its name depends on
the backend: `self_reference_name`): the engine's builtin provider answers it from the stack's last
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


# What a DIY backend (gs://, s3://, file://, `pulumi login --local`) reports as every stack's
# organization: pulumi pkg/backend/diy/state.go (`Organization: "organization"`) and backend.go.
DIY_ORGANIZATION = "organization"


def self_reference_name(organization: str | None, project: str, stack: str) -> str:
    """This stack's name as a StackReference on its own backend must spell it.

    Pulumi Cloud: `<org>/<project>/<stack>` (a bare name would resolve in the user's default
    organization, not necessarily the stack's). DIY backends report `organization` for every
    stack; a DIY store still in the pre-3.61 layout (no project directories) parses the whole
    reference as a stack name and rejects `/` (tokens.ParseStackName), while the project layout
    resolves a bare name in the current project (pkg/backend/diy/store.go). So on DIY, and
    when the engine reports no organization, the bare stack name: it works in both layouts.
    """
    if not organization or organization == DIY_ORGANIZATION:
        return stack
    return f"{organization}/{project}/{stack}"


def last_deployment_gate(checks: Sequence[Check]) -> pulumi.Output[list[pulumi.Resource]]:
    """An empty dependency list once every check passes; fails the whole program otherwise."""
    last = pulumi.StackReference(self_reference_name(
        pulumi.get_organization(), pulumi.get_project(), pulumi.get_stack())).outputs

    def check(outputs: Mapping[str, Any]) -> list[pulumi.Resource]:
        problems = [p for c in checks for p in c(outputs or {})]
        if problems:
            raise pulumi.RunError("refused before any change:\n" + "\n".join(f"  - {p}" for p in problems))
        return []

    return last.apply(check)
