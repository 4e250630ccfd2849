"""The rules of single keys that are more than a type and bounds: names, CIDRs, versions, hosts, weights.

Each is a `declare.Check` that `model` attaches to its key: it returns the typed value or
raises RuleError with the value and the rule (a line starting with `.` names a sub-key).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from components.config.declare import Check, RuleError
from components.config.rules import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    ISTIO_VERSION_PATTERN,
    MACHINE_TYPE_PATTERN,
    REGION_PATTERN,
    ZONE_PATTERN,
    Problems,
    did_you_mean,
    dns_label,
    dns_name,
    duration_seconds,
    increasing_percentages,
    ipv4_cidr,
    is_int,
    is_rfc1918,
    prohibited_overlap,
    valid_host,
)

_DNS_LABEL_SCHEMA = {"type": "string", "pattern": DNS1123_LABEL.pattern, "maxLength": 63}


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise RuleError(f"must be a non-empty string, got {value!r}")
    return value


def _relay(run: Callable[[Problems], None]) -> None:
    """Run a rules.py rule that reports into Problems (lines `<key> <value> <rule>`) and raise what it found."""
    p = Problems()
    run(p)
    if p.items:
        raise RuleError(*(line.removeprefix("@ ") for line in p.items))


def label(*, max_len: int = 63, dns1035: bool = False, what: str | None = None, length_reason: str = "",
          text: str = "DNS label") -> Check:
    pattern = DNS1035_LABEL if dns1035 else DNS1123_LABEL
    what = what or ("a DNS label" if dns1035 else "a DNS-1123 label")

    def check(value: Any, context: Any) -> str:
        value = _string(value)
        _relay(lambda p: dns_label(value, "@", p, max_len=max_len, pattern=pattern, what=what,
                                   length_reason=length_reason))
        return value

    return Check(check, text, {"type": "string", "pattern": pattern.pattern, "maxLength": max_len})


def text(pattern: str, rule: str, doc: str) -> Check:
    compiled = re.compile(pattern)

    def check(value: Any, context: Any) -> str:
        value = _string(value)
        if not compiled.match(value):
            raise RuleError(f"{value!r} {rule}")
        return value

    return Check(check, doc, {"type": "string", "pattern": pattern})


def istio_version(minimum: tuple[int, int, int], example: str) -> Check:
    def check(value: Any, context: Any) -> str:
        value = _string(value)
        m = ISTIO_VERSION_PATTERN.match(value)
        if not m:
            raise RuleError(f"{value!r} is not an Istio release version (MAJOR.MINOR.PATCH, e.g. {example}, "
                            "optionally -alpha.N, -beta.N or -rc.N)")
        version = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if version[0] != minimum[0] or version < minimum:
            raise RuleError(f"{value} is not supported: Istio {'.'.join(map(str, minimum))} or newer 1.x is required "
                            "(older gateway charts fail Helm's JSON-schema validation, istio/istio#57354)")
        return value

    low = ".".join(map(str, minimum))
    return Check(check, f"`1.MINOR.PATCH[-rc.N]`, ≥ {low} (older gateway charts fail Helm's schema check, "
                 "istio#57354)", {"type": "string", "pattern": ISTIO_VERSION_PATTERN.pattern})


def region(known: frozenset[str], read_on: str) -> Check:
    def check(value: Any, context: Any) -> str:
        value = _string(value)
        if ZONE_PATTERN.match(value):
            raise RuleError(f"{value!r} is a zone; clusters are regional: use {value.rsplit('-', 1)[0]}")
        if not REGION_PATTERN.match(value):
            raise RuleError(f"{value!r} is not a GCP region (e.g. us-west1)")
        if value not in known:
            raise RuleError(f"{value!r} is not a GCP region{did_you_mean(value, sorted(known))} (the program's list "
                            f"of regions, read {read_on}: components/config/gcp.py)")
        return value

    return Check(check, f"GCP region (format and the list in components/config/gcp.py, read {read_on})",
                 {"type": "string", "enum": sorted(known)})


def machine_type(families: frozenset[str], kinds: frozenset[str], read_on: str) -> Check:
    def check(value: Any, context: Any) -> str:
        value = _string(value)
        if not MACHINE_TYPE_PATTERN.match(value):
            raise RuleError(f"{value!r} is not a Compute Engine machine type (e.g. e2-standard-4)")
        family, kind = value.split("-")[:2]
        if family not in families:
            raise RuleError(f"{value!r} is not a Compute Engine machine type: no machine family {family!r}"
                            f"{did_you_mean(family, sorted(families))} (families read {read_on}: "
                            "components/config/gcp.py)")
        if kind not in kinds:
            raise RuleError(f"{value!r} is not a Compute Engine machine type: no type {kind!r}"
                            f"{did_you_mean(kind, sorted(kinds))} (<family>-<type>-<vCPUs>; types read {read_on}: "
                            "components/config/gcp.py)")
        return value

    return Check(check, "machine type `<family>-<type>-<vCPUs>` of a known family and type "
                 f"(components/config/gcp.py, read {read_on})",
                 {"type": "string", "pattern": MACHINE_TYPE_PATTERN.pattern})


def cidr(*, prefix: tuple[int, int] | None = None, prefix_why: str = "", min_subnet: bool = False,
         prohibited: bool = True, master: bool = False, doc: str) -> Check:
    """An IPv4 network; the prefix-length window, GCP's prohibited ranges, and a control-plane /28."""

    def check(value: Any, context: Any) -> str:
        value = _string(value)
        net: ipaddress.IPv4Network | None = None

        def run(p: Problems) -> None:
            nonlocal net
            net = ipv4_cidr(value, "@", p)
            if net is None:
                return
            if master:
                if net.prefixlen != 28:
                    p.add(f"@ {net} must be a /28 (GKE's control-plane range)")
                elif not is_rfc1918(net):
                    p.add(f"@ {net} must be a private (RFC 1918) range")
            if prohibited:
                prohibited_overlap(net, "@", p)
            if min_subnet and net.prefixlen > 29:
                p.add(f"@ {net} is too small; a subnet is at least a /29")
            if prefix and not prefix[0] <= net.prefixlen <= prefix[1]:
                p.add(f"@ {net} must be between /{prefix[0]} and /{prefix[1]}{prefix_why}")

        _relay(run)
        return value

    return Check(check, doc, {"type": "string", "pattern": r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$"})


def duration(example: str, *, low: int = 1, high: int | None = None, rule: str = "") -> Check:
    """A duration in seconds; outside `low`..`high` the value is refused with `rule` (`{s}` is the seconds)."""

    def check(value: Any, context: Any) -> int:
        seconds = duration_seconds(value)
        if seconds is None:
            raise RuleError(f"{value!r} must be a duration such as {example}")
        if seconds < low or (high is not None and seconds > high):
            raise RuleError(rule.format(s=seconds))
        return seconds

    bounds = {"minimum": low} | ({"maximum": high} if high is not None else {})
    text = "duration: seconds, or `Ns`/`Nm`/`Nh`" + (f", {low}–{high} s" if high is not None else
                                                      f", ≥ {low} s" if low > 1 else "")
    return Check(check, text, {"oneOf": [{"type": "integer"} | bounds,
                                         {"type": "string", "pattern": r"^[1-9][0-9]*(s|m|h)?$"}]})


def steps() -> Check:
    def check(value: Any, context: Any) -> tuple[int, ...]:
        result = increasing_percentages(list(value) if isinstance(value, tuple) else value)
        if result is None:
            raise RuleError(f"{value!r} must be a strictly increasing list of integers from 1 to 100 ending at 100 "
                            "(percent of the way from the current to the final weights)")
        return result

    return Check(check, "ints 1–100, strictly increasing, ending at 100",
                 {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 100}, "minItems": 1})


def weights() -> Check:
    """A split over the clusters. With the declared cluster names in the context, a weight must name one
    and every cluster gets a subset (unnamed: 0); context `clusters` None means some cluster has no usable
    name, so a weight naming it is not reported again as an unknown cluster (the missing name already is)."""

    def check(value: Any, context: Mapping[str, Any] | None) -> tuple[tuple[str, int], ...]:
        mapping = dict(value) if isinstance(value, tuple) else value
        if not isinstance(mapping, Mapping):
            raise RuleError(f"must be an object, got {type(value).__name__}")
        names = context.get("clusters", ...)
        if names is ...:  # a section validated without the cluster list: a split as given
            return tuple((str(n), int(w)) for n, w in mapping.items())
        lines: list[str] = []
        for name, weight in mapping.items():
            if names is not None and name not in names:
                lines.append(f"@.{name} names an unknown cluster{did_you_mean(str(name), names)} "
                             f"(clusters: {', '.join(names)})")
            if not is_int(weight) or not 0 <= weight <= 100:
                lines.append(f"@.{name} {weight!r} must be an integer from 0 to 100")
        # The sum is its own problem: reported whenever every weight is a number, whatever else is wrong.
        if all(is_int(w) for w in mapping.values()) and sum(mapping.values()) != 100:
            lines.append(f"sum to {sum(mapping.values())}; the weights must sum to 100")
        if lines:
            raise RuleError(*lines)
        return tuple((n, int(mapping.get(n, 0))) for n in names or ())

    return Check(check, "map cluster → int 0–100, sum 100",
                 {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}})


def per_cluster(value_check: Callable[[Any, str], Any], doc: str, schema: Mapping[str, Any]) -> Check:
    """A map cluster -> value; each cluster must be one of the context's `clusters`."""

    def check(value: Any, context: Mapping[str, Any] | None) -> tuple[tuple[Any, ...], ...]:
        if isinstance(value, tuple):
            return value
        if not isinstance(value, Mapping):
            raise RuleError(f"must be an object, got {type(value).__name__}")
        names = (context or {}).get("all_clusters")
        lines: list[str] = []
        out: list[tuple[Any, ...]] = []
        for cluster, v in value.items():
            if names is not None and cluster not in names:
                lines.append(f"@.{cluster} names an unknown cluster (clusters: {', '.join(names)})")
                continue
            try:
                checked = value_check(v, cluster)
                out.append((cluster, *checked) if isinstance(checked, tuple) else (cluster, checked))
            except RuleError as error:
                lines.extend(f"@.{cluster}{line[1:] if line.startswith('@') else ' ' + line}" for line in error.lines)
        if lines:
            raise RuleError(*lines)
        return tuple(out)

    return Check(check, doc, {"type": "object", "additionalProperties": dict(schema)})


def strings(item: Callable[[Any], str] | None, doc: str, schema: Mapping[str, Any]) -> Check:
    """A list of strings, each checked by `item` (which raises RuleError), none listed twice."""

    def check(value: Any, context: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise RuleError(f"must be a list, got {type(value).__name__}")
        lines: list[str] = []
        out: list[str] = []
        for i, v in enumerate(value):
            try:
                v = item(v) if item is not None else _string(v)
            except RuleError as error:
                lines.extend(f"@[{i}]{line[1:] if line.startswith('@') else ' ' + line}" for line in error.lines)
                continue
            if v in out:
                lines.append(f"@[{i}] {v!r} is listed twice")
            else:
                out.append(v)
        if lines:
            raise RuleError(*lines)
        return tuple(out)

    return Check(check, doc, {"type": "array", "items": dict(schema)})


def public_host(value: Any) -> str:
    if not isinstance(value, str) or not dns_name(value):
        raise RuleError(f"{value!r} must be a DNS host name (two or more lowercase labels of letters, digits and "
                        "'-', at most 253 characters, e.g. shop.example.com; no wildcard, no IP address)")
    return value


def mesh_host(value: Any) -> str:
    if not isinstance(value, str) or not valid_host(value):
        raise RuleError(f"{value!r} must be a host name, a '*.' wildcard such as '*.cache.svc.cluster.local', "
                        "or '*' for every service")
    return value


def opaque(doc: str, schema: Mapping[str, Any] | None = None) -> Check:
    """A value checked as a whole by an explicit cross-key rule (the CA chain): kept as written."""
    return Check(lambda value, context: value, doc, schema or {})


def optional(rule: Check) -> Check:
    """The rule, or null (the key's default applies)."""

    def check(value: Any, context: Any) -> Any:
        return None if value is None else rule.check(value, context)

    return Check(check, rule.text, rule.schema())


def power_of_two(bounds: tuple[int, int]) -> Check:
    low, high = bounds

    def check(value: Any, context: Any) -> int:
        if not is_int(value) or not low <= value <= high or value & (value - 1):
            raise RuleError(f"{value!r} must be a power of two from {low} to {high} (Cloud NAT dynamic port "
                            "allocation)")
        return int(value)

    return Check(check, f"power of two {low}–{high}", {"type": "integer", "minimum": low, "maximum": high})


def intermediate_pair(value: Any, cluster: str) -> tuple[Any, Any]:
    """ca.intermediates.<cluster>: {certPem, keyPem}; the PEMs themselves are checked with the CA chain."""
    if not isinstance(value, Mapping):
        raise RuleError(f"must be an object, got {type(value).__name__}")
    from components.config.rules import unknown_key_message

    unknown = [k for k in value if k not in ("certPem", "keyPem")]
    if unknown:
        raise RuleError(*(f"@.{unknown_key_message(str(k), ('certPem', 'keyPem'))}" for k in unknown))
    return value.get("certPem"), value.get("keyPem")


# A Cloud Monitoring notification channel's full resource name (project ids: 6-30 characters).
NOTIFICATION_CHANNEL = re.compile(r"projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/notificationChannels/[0-9]+")


def notification_channel(value: Any) -> str:
    if not isinstance(value, str) or not NOTIFICATION_CHANNEL.fullmatch(value):
        raise RuleError(f"{value!r} must be a channel's full name, projects/<project-id>/notificationChannels/<number> "
                        "(`gcloud beta monitoring channels list`)")
    return value


def mesh_namespace(value: Any) -> str:
    from components.config.model import RESERVED_NAMESPACES

    value = _string(value)
    _relay(lambda p: dns_label(value, "@", p))
    if value in RESERVED_NAMESPACES:
        raise RuleError(f"{value!r} is a system namespace; mesh namespaces are for workloads")
    if value == "default":
        raise RuleError("'default' is Kubernetes' own namespace, in every cluster: the program would claim it and "
                        "try to delete it on destroy; put the workloads in a namespace of their own")
    return value


# Istio MeshConfig serviceSettings.hosts are service host names as a DestinationRule matches them:
# fully qualified (`<svc>.<ns>.svc.cluster.local`), a `*.` wildcard of such names, or `*`.
CLUSTER_LOCAL_HOST = re.compile(r"^(\*|(\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?\.){0,2}svc\.cluster\.local)$")


def cluster_local_host(value: Any) -> str:
    if not isinstance(value, str) or not valid_host(value):
        raise RuleError(f"{value!r} must be a host name, a '*.' wildcard such as '*.cache.svc.cluster.local', "
                        "or '*' for every service")
    if not CLUSTER_LOCAL_HOST.match(value) or value == "svc.cluster.local":
        raise RuleError(f"{value!r} is not a fully qualified service host, so Istio's serviceSettings would match "
                        "nothing: write '<service>.<namespace>.svc.cluster.local', "
                        "'*.<namespace>.svc.cluster.local' or '*'")
    return value
