"""Pure planning of a cluster replacement: the successor's entry and every config state on the way.

From the stack's project config (keys without the namespace), `--replace OLD --with NEW` and what
changes, `plan` computes:

- the successor's `clusters[]` entry: OLD's settings with the changes, a free network name,
  CIDRs (same sizes as OLD's) that overlap no range of any cluster, and a weekly maintenance slot
  disjoint from every other window;
- the config after each phase (add, flip, unprotect, retire), each validated by the program's own
  `components.config.parse` so that no plan proposes a config the program would refuse.

Candidate ranges are screened with the config's own rules (`rules.prohibited_overlap`,
`rules.is_rfc1918`) and windows with `MaintenanceWindow.hours()`; nothing here restates them.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components import config
from components.config.model import HOURS_PER_WEEK, MIN_WINDOW_HOURS, WEEKDAYS, MaintenanceWindow
from components.config.rules import RFC1918, Problems, is_rfc1918, prohibited_overlap

CIDR_KEYS = ("podCidr", "serviceCidr", "nodeCidr", "masterCidr")  # largest first: they are placed in this order
# Where ranges are looked for, in order: the node, pod and service ranges in RFC 1918 space
# (10/8 first, as the shipped stacks), the control plane's /28 in 172.16/12 first (as they do).
RANGE_POOLS = {
    "podCidr": RFC1918, "serviceCidr": RFC1918, "nodeCidr": RFC1918,
    "masterCidr": (RFC1918[1], RFC1918[0], RFC1918[2]),
}


class ReplaceError(ValueError):
    """The replacement cannot be planned; one line per problem, each naming the argument or key."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Changes:
    """What the successor changes relative to OLD (None: as OLD)."""

    gke_version: str | None = None
    istio_version: str | None = None
    region: str | None = None
    machine_type: str | None = None

    def apply(self, entry: dict[str, Any]) -> None:
        for key, value in (("minMasterVersion", self.gke_version), ("istioVersion", self.istio_version),
                           ("region", self.region), ("machineType", self.machine_type)):
            if value is not None:
                entry[key] = value


@dataclass(frozen=True)
class ReplacePlan:
    old: str
    new: str
    entry: dict[str, Any]  # the successor's clusters[] entry as written into the stack file
    pinned: tuple[tuple[int, dict[str, Any]], ...]  # (index, maintenance) pinned so removing OLD moves no window
    before: dict[str, Any]  # the project config now
    added: dict[str, Any]  # after phase a (add): NEW at weight 0
    flipped: dict[str, Any]  # after phase c (flip): OLD's share moved to NEW
    unprotected: dict[str, Any] | None  # OLD's protect/deletionProtection off (None: already off)
    retired: dict[str, Any]  # after phase e (retire): OLD gone
    final_weights: dict[str, int] = field(default_factory=dict)  # the mesh-wide split the flip moves to


# ------------------------------------------------------------------ search


def _used_ranges(raw_clusters: Sequence[Mapping[str, Any]]) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(c[k]) for c in raw_clusters for k in CIDR_KEYS if isinstance(c.get(k), str)]


def _candidates(pools: Sequence[ipaddress.IPv4Network], prefix: int) -> Iterator[ipaddress.IPv4Network]:
    for pool in pools:
        if prefix >= pool.prefixlen:
            yield from pool.subnets(new_prefix=prefix)


def free_range(key: str, prefix: int, used: Sequence[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first range of `prefix` in `key`'s pools that overlaps nothing used and passes the config's rules."""
    for net in _candidates(RANGE_POOLS[key], prefix):
        if any(net.overlaps(u) for u in used):
            continue
        p = Problems()
        prohibited_overlap(net, key, p)
        if p.items or (key == "masterCidr" and not is_rfc1918(net)):
            continue
        return net
    raise ReplaceError([f"{key}: no free /{prefix} is left in {', '.join(map(str, RANGE_POOLS[key]))} beside the "
                        "ranges of the existing clusters; free one or give the successor smaller ranges"])


def free_network(raw_clusters: Sequence[Mapping[str, Any]]) -> str:
    taken = {c.get("network") for c in raw_clusters}
    return next(f"network{k}" for k in range(1, len(raw_clusters) + 2) if f"network{k}" not in taken)


def free_window(windows: Sequence[MaintenanceWindow], hours: int = MIN_WINDOW_HOURS) -> MaintenanceWindow:
    """The first weekly window of `hours` disjoint from every window given (aligned slots first)."""
    busy = set().union(*(w.hours() for w in windows)) if windows else set()
    starts = [*range(0, HOURS_PER_WEEK, hours), *range(HOURS_PER_WEEK)]
    for start in starts:
        w = MaintenanceWindow(day=WEEKDAYS[start // 24], start_hour=start % 24, duration_hours=hours)
        if not w.hours() & busy:
            return w
    raise ReplaceError([f"clusters[].maintenance: no {hours}-hour weekly window is free beside the other clusters' "
                        "windows; shorten one (at least 12 h) or retire a cluster first"])


def window_config(w: MaintenanceWindow) -> dict[str, Any]:
    return {"day": w.day, "startHour": w.start_hour, "durationHours": w.duration_hours}


# ------------------------------------------------------------------ the plan


def _secret(value: Any) -> bool:
    """A value Pulumi keeps encrypted in the stack file (`{secure: v1:…}`), at any depth."""
    if isinstance(value, Mapping):
        return set(value) == {"secure"} or any(_secret(v) for v in value.values())
    return isinstance(value, list) and any(_secret(v) for v in value)


def parseable(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The config without a `ca` section that holds encrypted values (this tool cannot read them, and a
    replacement changes nothing in them); the stack file keeps them as they are."""
    return {k: v for k, v in raw.items() if not (k == "ca" and _secret(v))}


def _parse(raw: Mapping[str, Any], project: str, phase: str) -> config.StackConfig:
    try:
        return config.parse(parseable(raw), project=project)
    except config.ConfigError as error:
        raise ReplaceError([f"{phase}: {line}" for line in error.problems]) from None


def _move_share(weights: Mapping[str, int], old: str, new: str) -> dict[str, int]:
    out = dict(weights)
    out[new] = out.get(new, 0) + out.get(old, 0)
    out[old] = 0
    return out


def plan(raw: Mapping[str, Any], *, old: str, new: str, changes: Changes = Changes(),
         project: str) -> ReplacePlan:
    """Plan the replacement of `old` by `new`; raises ReplaceError naming each problem."""
    before = copy.deepcopy(dict(raw))
    current = _parse(before, project, "the stack's config as it is")
    names = [c.name for c in current.clusters]
    problems = []
    if old not in names:
        problems.append(f"--replace {old!r} is not a cluster of this stack (clusters: {', '.join(names)})")
    if new in names:
        problems.append(f"--with {new!r} is already a cluster of this stack; the successor needs a new name")
    if problems:
        raise ReplaceError(problems)

    raw_clusters: list[dict[str, Any]] = before["clusters"]
    index = names.index(old)
    entry = {k: v for k, v in copy.deepcopy(raw_clusters[index]).items() if k != "maintenance"}
    entry["name"] = new
    entry["network"] = free_network(raw_clusters)
    changes.apply(entry)
    used = _used_ranges(raw_clusters)
    for key in CIDR_KEYS:
        net = free_range(key, ipaddress.IPv4Network(entry[key]).prefixlen, used)
        entry[key] = str(net)
        used.append(net)
    entry["maintenance"] = window_config(free_window([c.maintenance for c in current.clusters]))

    added = copy.deepcopy(before)
    # Clusters after OLD that use the default window (derived from their position) get it written out:
    # removing OLD later would otherwise move them into another slot.
    pinned = tuple((i, window_config(current.clusters[i].maintenance)) for i in range(index + 1, len(names))
                   if not raw_clusters[i].get("maintenance"))
    for i, window in pinned:
        added["clusters"][i]["maintenance"] = window
    added["clusters"].append(entry)
    traffic = added.setdefault("traffic", {})
    if isinstance(traffic.get("weights"), dict):
        traffic["weights"][new] = 0
    else:
        # The default (everything on the first cluster) is written out so that removing OLD later
        # cannot silently move traffic to whichever cluster becomes first.
        traffic["weights"] = {n: w for n, w in current.traffic.weights} | {new: 0}
    _parse(added, project, f"adding {new}")

    flipped = copy.deepcopy(added)
    final = _move_share(flipped["traffic"]["weights"], old, new)
    flipped["traffic"]["weights"] = final
    for service in flipped["traffic"].get("services") or []:
        if isinstance(service.get("weights"), dict):
            service["weights"] = _move_share(service["weights"], old, new)
    _parse(flipped, project, f"moving {old}'s traffic to {new}")

    unprotected = None
    spec = current.cluster(old)
    if spec.protect or spec.deletion_protection:
        unprotected = copy.deepcopy(flipped)
        unprotected["clusters"][index].update(protect=False, deletionProtection=False)
        _parse(unprotected, project, f"unprotecting {old}")

    retired = copy.deepcopy(unprotected or flipped)
    del retired["clusters"][index]
    retired["traffic"]["weights"].pop(old, None)
    for service in retired["traffic"].get("services") or []:
        if isinstance(service.get("weights"), dict):
            service["weights"].pop(old, None)
    ca = retired.get("ca") or {}
    for key in ("intermediateGenerations", "intermediates"):
        if isinstance(ca.get(key), dict):
            ca[key].pop(old, None)
    _parse(retired, project, f"retiring {old}")
    return ReplacePlan(old=old, new=new, entry=entry, pinned=pinned, before=before, added=added, flipped=flipped,
                       unprotected=unprotected, retired=retired, final_weights=final)
