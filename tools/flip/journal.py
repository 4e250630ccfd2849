"""The flip's journal: what it set out to do, what is judged good, and what is deployed, beside the lease.

`<backend>/.pulumi-flip/<project>/<stack>/journal.json`, rewritten at every transition, so a
flip killed at any point (SIGKILL, a lost runner) leaves a record that says exactly what is live:

- `deployed`: the weights every primary was last confirmed to serve, or null while an update
  runs or after one failed (then `applying` says which weights it was writing, `previous` what
  was confirmed before it: each routing resource serves one or the other);
- `lastGood`: the last judged split (the start split until a step passes);
- `phase`: `running` (a flip owns the stack; if its lease is gone or its holder is dead, run
  `--resume` or `--abort`), `ended` (the flip exited: `exit`, and `deployed` is what it left),
  `recorded` (`--deploy-check` saw the stack file on main carry `deployed`: git has the weights).

`--deploy-check` refuses a deploy while the journal is `running`, or `ended` with weights that the
stack file being deployed does not carry (docs/flip.md "The weights stay in Git").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tools.flip.lease import LeaseError, Store, key, now

RUNNING, ENDED, RECORDED = "running", "ended", "recorded"


@dataclass
class Journal:
    stack: str
    holder: str
    started: str
    start: dict[str, int]
    final: dict[str, int]
    steps: list[dict[str, int]]
    last_good: dict[str, int]
    deployed: dict[str, int] | None
    applying: dict[str, int] | None = None
    previous: dict[str, int] | None = None  # what was confirmed before `applying` started
    phase: str = RUNNING
    exit: int | None = None
    routing_urns: list[str] = field(default_factory=list)
    percents: list[int] = field(default_factory=list)
    updated: str = ""
    events: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        body = asdict(self)
        body["lastGood"] = body.pop("last_good")
        body["routingUrns"] = body.pop("routing_urns")
        return json.dumps(body, indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Journal:
        body: dict[str, Any] = json.loads(raw)
        body["last_good"] = body.pop("lastGood")
        body["routing_urns"] = body.pop("routingUrns", [])
        return cls(**body)


def read(store: Store, stack: str) -> Journal | None:
    raw = store.read(key(stack, "journal.json"))
    if raw is None:
        return None
    try:
        return Journal.from_json(raw)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{store.where}/{key(stack, 'journal.json')} cannot be read: {error}") from None


class Writer:
    """Keeps the journal object in step with the flip; every change is written at once."""

    def __init__(self, store: Store, journal: Journal) -> None:
        self.store = store
        self.journal = journal
        self.error: str | None = None  # the last write that failed; a rollback never stops for the journal

    @classmethod
    def begin(cls, store: Store, stack: str, holder: str, start: Mapping[str, int], final: Mapping[str, int],
              steps: Sequence[Mapping[str, int]], percents: Sequence[int]) -> Writer:
        j = Journal(stack=stack, holder=holder, started=now(), start=dict(start), final=dict(final),
                    steps=[dict(s) for s in steps], last_good=dict(start), deployed=dict(start),
                    percents=list(percents))
        writer = cls(store, j)
        writer.save("flip started")
        if writer.error:  # before anything is written: a flip without its journal does not start
            raise LeaseError(writer.error)
        return writer

    def save(self, event: str) -> None:
        self.journal.updated = now()
        self.journal.events.append(f"{self.journal.updated} {event}")
        try:
            self.store.write(key(self.journal.stack, "journal.json"), self.journal.to_json())
        except Exception as error:
            self.error = f"{self.store.where}: the journal could not be written ({error}) at: {event}"

    def applying(self, weights: Mapping[str, int], urns: Sequence[str] = ()) -> None:
        if self.journal.deployed is not None:
            self.journal.previous = self.journal.deployed
        self.journal.applying = dict(weights)
        self.journal.deployed = None
        self.journal.routing_urns = sorted(set(self.journal.routing_urns) | set(urns))
        self.save(f"applying {_fmt(weights)}")

    def deployed(self, weights: Mapping[str, int]) -> None:
        self.journal.applying = None
        self.journal.deployed = dict(weights)
        self.save(f"every primary serves {_fmt(weights)}")

    def judged_good(self, weights: Mapping[str, int]) -> None:
        self.journal.last_good = dict(weights)
        self.save(f"judged good {_fmt(weights)}")

    def end(self, code: int) -> None:
        self.journal.phase = ENDED
        self.journal.exit = code
        self.save(f"flip exited {code}")


def _fmt(weights: Mapping[str, int]) -> str:
    return ",".join(f"{c}={w}" for c, w in weights.items())
