"""Pure: from the current split, the final split and the step percentages to the weights of every step.

A step of s % is s % of the way from where the flip started to where it ends, for any
number of clusters: weight = start + (final - start) * s / 100, rounded to integers that
still sum to 100 (largest remainder, ties to the earlier cluster). The last step is the
final split exactly, so a flip never ends a point off.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

Weights = dict[str, int]


class PlanError(ValueError):
    """An argument that cannot make a plan; the message names the argument."""


@dataclass(frozen=True)
class Step:
    index: int  # 1-based
    percent: int
    weights: Weights


def parse_steps(text: str) -> tuple[int, ...]:
    """`--steps 10,25,50,100`: strictly increasing integers from 1 to 100, ending at 100."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PlanError(f"--steps {text!r} must be comma-separated integers, e.g. 10,25,50,100") from None
    if not values:
        raise PlanError("--steps is empty; give e.g. 10,25,50,100")
    bad = [v for v in values if not 1 <= v <= 100]
    if bad:
        raise PlanError(f"--steps {text!r}: {bad[0]} is outside 1..100 (percent of the way to the final weights)")
    for a, b in itertools.pairwise(values):
        if b <= a:
            raise PlanError(f"--steps {text!r} must be strictly increasing ({b} follows {a})")
    if values[-1] != 100:
        raise PlanError(f"--steps {text!r} must end at 100 (the final weights)")
    return tuple(values)


def parse_weights(text: str, clusters: Sequence[str], flag: str = "--weights") -> Weights:
    """`--weights green=50,teal=50`: known clusters, integers 0..100 summing to 100; unnamed clusters get 0."""
    named: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise PlanError(f"{flag} {text!r}: {part!r} must be CLUSTER=WEIGHT")
        name = name.strip()
        if name not in clusters:
            raise PlanError(f"{flag} {text!r}: {name!r} is not a cluster of this stack (clusters: "
                            f"{', '.join(clusters)})")
        if name in named:
            raise PlanError(f"{flag} {text!r}: {name!r} is given twice")
        try:
            weight = int(value)
        except ValueError:
            raise PlanError(f"{flag} {text!r}: {name}={value!r} must be an integer from 0 to 100") from None
        if not 0 <= weight <= 100:
            raise PlanError(f"{flag} {text!r}: {name}={weight} must be from 0 to 100")
        named[name] = weight
    total = sum(named.values())
    if total != 100:
        raise PlanError(f"{flag} {text!r} sums to {total}; the weights must sum to 100")
    return {c: named.get(c, 0) for c in clusters}


def target(to: str, clusters: Sequence[str]) -> Weights:
    """`--to green`: everything to one cluster."""
    if to not in clusters:
        raise PlanError(f"--to {to!r} is not a cluster of this stack (clusters: {', '.join(clusters)})")
    return {c: 100 if c == to else 0 for c in clusters}


def interpolate(start: Mapping[str, int], final: Mapping[str, int], percent: int) -> Weights:
    """The split `percent` % of the way from `start` to `final`, as integers summing to 100."""
    names = list(final)
    exact = {c: Fraction(start.get(c, 0)) + (Fraction(final[c]) - start.get(c, 0)) * Fraction(percent, 100)
             for c in names}
    floors = {c: int(exact[c]) for c in names}
    left = 100 - sum(floors.values())
    by_remainder = sorted(names, key=lambda c: (-(exact[c] - floors[c]), names.index(c)))
    for c in by_remainder[:left]:
        floors[c] += 1
    return floors


def plan(start: Mapping[str, int], final: Mapping[str, int], steps: Sequence[int]) -> list[Step]:
    """Every step's weights; the last one is `final`."""
    return [Step(i + 1, s, interpolate(start, final, s)) for i, s in enumerate(steps)]


def format_weights(weights: Mapping[str, int]) -> str:
    return ",".join(f"{c}={w}" for c, w in weights.items())
