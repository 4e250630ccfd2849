"""Generic rules the declared checks use: DNS labels, CIDRs, host names, durations, "did you mean".

Each rule adds a line that names the key and the rule to a `Problems` collector, so one
run reports every independent problem; none raises.
"""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import re
from collections.abc import Sequence
from typing import Any

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
REGION_PATTERN = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
ZONE_PATTERN = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+-[a-z]$")
MACHINE_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
ISTIO_VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-(alpha|beta|rc)\.\d+)?$")
HOST_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Resource Manager: a project ID is 6 to 30 lowercase letters, digits or hyphens, starts with a
# letter and does not end with a hyphen (cloud.google.com/resource-manager/docs/creating-managing-projects).
PROJECT_ID_PATTERN = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")

# Ranges Google Cloud refuses in any subnet's primary or secondary range (VPC docs, "Subnets" >
# "Prohibited IPv4 subnet ranges"). Checked by overlap: a range that merely touches one is refused.
GCP_PROHIBITED_RANGES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(cidr), what) for cidr, what in (
        ("0.0.0.0/8", "'this' network"), ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"), ("255.255.255.255/32", "limited broadcast"),
        ("199.36.153.4/30", "restricted.googleapis.com"), ("199.36.153.8/30", "private.googleapis.com"),
    ))
RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
WHOLE_INTERNET = ipaddress.IPv4Network("0.0.0.0/0")


class Problems:
    """Collects problems so a single run reports every one of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def did_you_mean(value: str, candidates: Sequence[str]) -> str:
    """'; did you mean X?' for the closest candidate (case-insensitively), or '' when none is close."""
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(value.lower(), list(lowered), n=1)
    return f"; did you mean {lowered[match[0]]}?" if match else ""


def unknown_key_message(key: str, allowed: Sequence[str]) -> str:
    """`key` is not a known key, with the closest known one and the full list."""
    return f"{key} is not a known key{did_you_mean(key.rsplit('.', 1)[-1], allowed)} (known: {', '.join(allowed)})"


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


def prohibited_overlap(net: ipaddress.IPv4Network, key: str, p: Problems) -> None:
    """Google Cloud refuses a subnet range that overlaps any of its prohibited ranges."""
    for reserved, what in GCP_PROHIBITED_RANGES:
        if net.overlaps(reserved):
            p.add(f"{key} {net} overlaps {reserved} ({what}), which Google Cloud does not allow in a subnet")
            return


def is_rfc1918(net: ipaddress.IPv4Network) -> bool:
    return any(net.subnet_of(block) for block in RFC1918)


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


DURATION = re.compile(r"^([1-9][0-9]*)(s|m|h)?$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, None: 1}


def duration_seconds(value: Any) -> int | None:
    """'90', '90s', '5m' or '1h' as seconds; None if it is none of those."""
    if is_int(value) and value > 0:
        return int(value)
    if not isinstance(value, str):
        return None
    m = DURATION.match(value.strip())
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)] if m else None


def increasing_percentages(value: Any) -> tuple[int, ...] | None:
    """A strictly increasing list of integers from 1 to 100 that ends at 100; None otherwise."""
    if not isinstance(value, (list, tuple)) or not value:
        return None
    if not all(is_int(v) and 1 <= v <= 100 for v in value):
        return None
    if any(b <= a for a, b in itertools.pairwise(value)) or value[-1] != 100:
        return None
    return tuple(int(v) for v in value)
