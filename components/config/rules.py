"""Generic rules every key is checked with: types, DNS labels, CIDRs, host names, known keys.

Each rule adds a line that names the key and the rule to a `Problems` collector, so one
run reports every independent problem; none raises.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
REGION_PATTERN = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
ZONE_PATTERN = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+-[a-z]$")
MACHINE_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
ISTIO_VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-(alpha|beta|rc)\.\d+)?$")
HOST_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Problems:
    """Collects problems so a single run reports every one of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def known_keys(raw: Mapping[str, Any], key: str, allowed: Sequence[str], p: Problems) -> None:
    for k in raw:
        if k not in allowed:
            p.add(f"{key}.{k} is not a known key (known: {', '.join(allowed)})")


def as_mapping(value: Any, key: str, p: Problems) -> Mapping[str, Any] | None:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        p.add(f"{key} must be an object, got {type(value).__name__}")
        return None
    return value


def as_list(value: Any, key: str, p: Problems) -> list[Any] | None:
    if value is None:
        return []
    if not isinstance(value, list):
        p.add(f"{key} must be a list, got {type(value).__name__}")
        return None
    return value


def string_at(raw: Mapping[str, Any], k: str, key: str, p: Problems, *, default: str | None = None) -> str | None:
    value = raw.get(k, default)
    if value is None:
        if default is None:
            p.add(f"{key} is required")
        return None
    if not isinstance(value, str) or not value:
        p.add(f"{key} must be a non-empty string, got {value!r}")
        return None
    return value


def dns_label(value: str | None, key: str, p: Problems, *, max_len: int = 63,
               pattern: re.Pattern[str] = DNS1123_LABEL, what: str = "a DNS-1123 label",
               length_reason: str = "") -> None:
    if value is None:
        return
    if not pattern.match(value):
        p.add(f"{key} {value!r} must be {what} (lowercase letters, digits and '-', "
              f"starting with a {'letter' if pattern is DNS1035_LABEL else 'letter or digit'}, "
              "ending with a letter or digit)")
    if len(value) > max_len:
        p.add(f"{key} {value!r} is {len(value)} characters; at most {max_len} are allowed{length_reason}")


def ipv4_cidr(value: str | None, key: str, p: Problems) -> ipaddress.IPv4Network | None:
    if value is None:
        return None
    if "/" not in value:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            pass
        else:
            p.add(f"{key} {value!r} needs a prefix length (e.g. {value}/32)")
            return None
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        p.add(f"{key} {value!r} is not a valid IPv4 CIDR (e.g. 10.0.0.0/20)")
        return None
    if not isinstance(net, ipaddress.IPv4Network):
        p.add(f"{key} {value} must be an IPv4 CIDR")
        return None
    if str(net) != value:
        p.add(f"{key} {value} has host bits set; the network is {net}")
        return None
    return net


def valid_host(host: str) -> bool:
    if host == "*":
        return True
    labels = host.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    return bool(labels) and len(host) <= 253 and all(HOST_LABEL.match(label) and len(label) <= 63 for label in labels)


def dns_name(host: str) -> bool:
    """A fully qualified public host name: two or more DNS labels, no wildcard, not an IP address."""
    labels = host.split(".")
    return (len(labels) >= 2 and len(host) <= 253 and not labels[-1].isdigit()
            and all(HOST_LABEL.match(label) and len(label) <= 63 for label in labels))


def host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


