"""Reading a flip request: the arguments and the stack file -> a checked `FlipRequest`, or a UsageError.

Nothing here touches the cloud or writes anything; a bad argument exits 2 naming it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import config as stack_config
from components.config import stack_file
from components.config.rules import duration_seconds
from tools.flip.plan import PlanError, Step, parse_steps, parse_weights, plan, target


class UsageError(Exception):
    """A bad argument or config: exit 2, nothing written."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.flip",
        description="Move a stack's traffic between clusters step by step, judging every step by Istio's metrics.",
        epilog="exit codes: 0 flipped (or the check passed), 1 rolled back, 2 bad arguments, 3 a gate refused, "
               "4 rollback failed (what is live is printed), 5 another flip holds the stack, "
               "6 the deploy would revert a flip, 130 SIGINT / 143 SIGTERM (rolled back); docs/flip.md",
    )
    p.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
    final = p.add_mutually_exclusive_group(required=True)
    final.add_argument("--to", metavar="CLUSTER", help="send all traffic to this cluster")
    final.add_argument("--weights", metavar="C=W,…", help="final split, e.g. green=50,teal=50 (sums to 100)")
    final.add_argument("--resume", action="store_true",
                       help="a killed flip: roll back to its last good weights, then run its remaining steps")
    final.add_argument("--abort", action="store_true",
                       help="a killed flip: apply its last good weights and end it")
    final.add_argument("--deploy-check", action="store_true",
                       help="for deploy.yml: refuse (exit 5/6) while a flip runs or its applied weights are not "
                            "in this stack file; touches nothing else")
    final.add_argument("--record", action="store_true",
                       help="for flip.yml: write the weights the last flip left deployed (its journal) into "
                            "the stack file")
    p.add_argument("--steps", help="percent of the way at each step, increasing, ending at 100 "
                                   "(default: the stack's flip.steps)")
    p.add_argument("--hold", help="time each step is held and watched, e.g. 5m (default: flip.hold)")
    p.add_argument("--interval", help="how often metrics are read during a hold (default: flip.interval)")
    p.add_argument("--plan", action="store_true", help="print the steps and their weights; touch nothing")
    p.add_argument("--prometheus-url", metavar="URL",
                   help="Prometheus HTTP API base (default: Cloud Monitoring's for gcp:project, with ADC)")
    return p


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
    percents: tuple[int, ...] = ()

    @property
    def moved_services(self) -> list[stack_config.RoutedService]:
        """The services that follow the mesh-wide split (a service with its own weights keeps them)."""
        return [s for s in self.cfg.traffic.services if s.weights is None]

    def expected_split(self, weights: Mapping[str, int]) -> dict[str, dict[str, int]]:
        return {f"{s.host}.{s.namespace}": (dict(weights) if s.weights is None else dict(s.weights))
                for s in self.cfg.traffic.services}


def read_stack(args: argparse.Namespace, stack_dir: Path) -> tuple[dict[str, Any], str, stack_config.StackConfig]:
    """The stack file's project keys, its gcp:project and its parsed config; UsageError naming the file."""
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
    return raw, gcp_project, cfg


def read_request(args: argparse.Namespace, stack_dir: Path, *, start: Mapping[str, int] | None = None,
                 final: Mapping[str, int] | None = None, percents: tuple[int, ...] | None = None) -> FlipRequest:
    """The flip the arguments ask for; `start`/`final`/`percents` come from the journal for --resume."""
    raw, gcp_project, cfg = read_stack(args, stack_dir)
    names = [c.name for c in cfg.clusters]
    if not cfg.traffic.services:
        raise UsageError(f"--stack {args.stack!r}: traffic.services is empty; there is nothing to flip")
    try:
        if final is None:
            final = target(args.to, names) if args.to is not None else parse_weights(args.weights, names)
        if percents is None:
            percents = parse_steps(args.steps) if args.steps is not None else tuple(cfg.flip.steps)
    except PlanError as error:
        raise UsageError(str(error)) from None
    hold = _duration(args.hold, "--hold", cfg.flip.hold_seconds)
    if hold < stack_config.MIN_WINDOW_SECONDS:
        raise UsageError(f"--hold {hold}s is shorter than one judgement needs: the query window must span two "
                         f"scrape intervals ({stack_config.MIN_WINDOW_SECONDS}s)")
    interval = _duration(args.interval, "--interval", cfg.flip.interval_seconds)
    if interval > hold:
        raise UsageError(f"--interval {interval}s is longer than --hold {hold}s")
    begin = dict(start) if start is not None else dict(cfg.traffic.weights)
    return FlipRequest(stack=args.stack, raw=raw, gcp_project=gcp_project, cfg=cfg, start=begin, final=dict(final),
                       steps=tuple(plan(begin, final, percents)), hold=hold, interval=interval,
                       prometheus_url=args.prometheus_url, percents=tuple(percents))


def _duration(text: str | None, flag: str, default: int) -> int:
    if text is None:
        return default
    seconds = duration_seconds(text)
    if seconds is None:
        raise UsageError(f"{flag} {text!r} must be a duration such as 90, 90s, 5m or 1h")
    return seconds

