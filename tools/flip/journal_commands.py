"""The workflows' journal commands: `--deploy-check` and `--record` (cli.py runs `--resume`/`--abort`).

Each reads the stack's lease and journal (lease.py, journal.py) first and refuses, naming the holder
or the flip, whenever acting would write weights that are not the flip's own: a held lease is
another flip at work (exit 5), a `running` journal is a flip killed midway (exit 6 for the
workflows' commands; the flip's `--resume`/`--abort` exist to finish it). docs/flip.md "The weights stay in Git".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TextIO

from tools.flip import journal as journals
from tools.flip.lease import Store, read_lease
from tools.flip.plan import format_weights
from tools.flip.request import FlipRequest
from tools.flip.rollout import (
    EXIT_DEPLOY_REFUSED,
    EXIT_LEASE_HELD,
    EXIT_OK,
    EXIT_ROLLBACK_FAILED,
    EXIT_USAGE,
    Flip,
)
from tools.flip.stack import FlipStack, StackError


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
    """Write the weights the last flip left deployed into the stack file: only a flip that has ended, whose
    weights git does not carry yet (`recorded`), and never while another flip holds the stack."""
    held = read_lease(store, stack_name)
    if held is not None:
        out.write(f"record {stack_name}: REFUSED: a flip holds the stack ({held.get('holder')}, since "
                  f"{held.get('since')}); its weights are not judged yet, nothing is written\n")
        return EXIT_LEASE_HELD
    j = journals.read(store, stack_name)
    if j is None:
        out.write(f"record {stack_name}: no flip journal; nothing to record\n")
        return EXIT_OK
    flip_name = f"the flip started by {j.holder} at {j.started}"
    if j.phase == journals.RECORDED:
        out.write(f"record {stack_name}: {flip_name} is already recorded (a deployed stack file carries its "
                  f"{format_weights(j.deployed or {})}); nothing to record\n")
        return EXIT_OK
    if j.phase != journals.ENDED:
        out.write(f"record {stack_name}: REFUSED: {flip_name} did not finish (journal: {j.phase}); run "
                  f"`python -m tools.flip --stack {stack_name} --resume` or `--abort` first\n")
        return EXIT_DEPLOY_REFUSED
    if j.deployed is None:
        out.write(f"record {stack_name}: the flip left no confirmed split (an update to "
                  f"{format_weights(j.applying or {})} was interrupted); run --abort first\n")
        return EXIT_ROLLBACK_FAILED
    try:
        opener(stack_name).set_weights(j.deployed)
    except StackError as error:
        err.write(f"record {stack_name}: {error}\n")
        return EXIT_USAGE
    out.write(f"record {stack_name}: Pulumi.{stack_name}.yaml now says {format_weights(j.deployed)} (applied by "
              f"{flip_name}, exit {j.exit})\n")
    return EXIT_OK


# (request, stack, writer) -> the Flip that drives `request` on `stack`, journaling to `writer`.
MakeFlip = Callable[[FlipRequest, FlipStack, journals.Writer], Flip]
# (start, final, percents) -> the request re-read from the arguments and the stack file.
ReadRequest = Callable[[dict[str, int], dict[str, int], tuple[int, ...]], FlipRequest]
