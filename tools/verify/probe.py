"""Pure parts of the traffic probe: the objects it deploys, reading the client's log, the split statistics.

The probe proves the data path end to end: the same `echo` Service in every cluster
(namespace sameness), each replica answering with its cluster's name, the stack's own
DestinationRule/VirtualService shapes (`components.traffic`) with the configured
weights, and in every cluster a client Job that calls the service a bounded number of
times. Counting who answered shows both whether cross-network traffic flows and whether
the split matches the weights.

The echo service is neither routed by the stack nor judged by a flip. The flip's judge counts
the requests of the routed services as the ingress gateways report them (`reporter="source"`,
tools/flip/prometheus.py), so with an edge the probe also sends its requests to the public
host of every service a flip moves: that is load a flip's judge sees (`load_hosts`).
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.config import ClusterSpec, RoutedService, SubsetLabel
from components.ingress import edge_gateway, edge_virtual_service
from components.istio_primary import mesh_namespace_labels
from components.traffic import destination_rule, virtual_service

ECHO = "echo"
ECHO_PORT = 5678  # hashicorp/http-echo's default `-listen` port
SERVICE_PORT = 80
CLIENT_JOB = "probe-client"
CLIENT_CONTAINER = "client"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gke-istio-mesh-verify"}
NAMESPACE_PREFIX = "mesh-verify-"
DEFAULT_ECHO_IMAGE = "hashicorp/http-echo:1.0"
DEFAULT_CURL_IMAGE = "curlimages/curl:8.14.1"
# Every client log line that reports one request starts with this marker.
RESPONSE_MARKER = "probe-response: "
ERRORS = "(errors)"
# pilot-agent's status port; POST /quitquitquit stops the sidecar so a classic-sidecar Job can finish.
QUIT_URL = "http://localhost:15020/quitquitquit"
PER_REQUEST_TIMEOUT_SECONDS = 5
# Requests through the stack's public entry are counted as coming from this "client".
EDGE = "edge"
EDGE_GATEWAY_NAME = "echo-edge"
# RFC 2606 reserves .invalid: the probe's public host can never be somebody's real name.
EDGE_HOST_SUFFIX = "probe.invalid"


def load_hosts(services: Sequence[RoutedService]) -> tuple[str, ...]:
    """One public host of each routed service that follows the mesh-wide split: the services a flip moves."""
    return tuple(s.hosts[0] for s in services if s.weights is None and s.hosts)


@dataclass(frozen=True)
class ProbeSpec:
    """What one probe run deploys, identical in every cluster except the echo text."""

    namespace: str
    clusters: tuple[ClusterSpec, ...]
    subset_label: SubsetLabel
    weights: Mapping[str, int]
    requests: int
    deadline_seconds: int
    echo_image: str = DEFAULT_ECHO_IMAGE
    curl_image: str = DEFAULT_CURL_IMAGE
    # The stack's `edge.url` output: also measure the split through the public entry.
    edge_url: str | None = None
    # With edge_url: public hosts of routed services sent `requests` requests each (load_hosts).
    load_hosts: tuple[str, ...] = ()

    @property
    def service(self) -> RoutedService:
        return RoutedService(host=ECHO, namespace=self.namespace)

    @property
    def edge_host(self) -> str:
        """The Host the probe's edge requests carry; unclaimed by any service, so the URL map's
        default route (the mesh-wide `traffic.weights`) picks the cluster."""
        return f"{ECHO}.{self.namespace}.{EDGE_HOST_SUFFIX}"

    @property
    def edge_service(self) -> RoutedService:
        return RoutedService(host=ECHO, namespace=self.namespace, hosts=(self.edge_host,))

    @property
    def target_url(self) -> str:
        return f"http://{self.service.fqdn}:{SERVICE_PORT}/"


def namespace_manifest(spec: ProbeSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": spec.namespace, "labels": {**mesh_namespace_labels(), **MANAGED_BY}},
    }


def echo_deployment(spec: ProbeSpec, cluster: str) -> dict[str, Any]:
    """One echo replica per cluster that answers every request with the cluster's name."""
    labels = {"app": ECHO}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": ECHO, "namespace": spec.namespace, "labels": {**labels, **MANAGED_BY}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": ECHO,
                    "image": spec.echo_image,
                    "args": [f"-text={cluster}", f"-listen=:{ECHO_PORT}"],
                    "ports": [{"name": "http", "containerPort": ECHO_PORT}],
                    "readinessProbe": {"tcpSocket": {"port": ECHO_PORT}, "periodSeconds": 2},
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }]},
            },
        },
    }


def echo_service(spec: ProbeSpec) -> dict[str, Any]:
    """Same name and namespace everywhere, so the mesh merges the clusters' endpoints."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": ECHO, "namespace": spec.namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "selector": {"app": ECHO},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": ECHO_PORT, "protocol": "TCP"}],
        },
    }


def probe_destination_rule(spec: ProbeSpec, cluster: str) -> dict[str, Any]:
    """The stack's rule as `cluster`'s istiod reads it (the other subsets are remote networks)."""
    return destination_rule(spec.service, spec.clusters, spec.subset_label, cluster)


def probe_virtual_service(spec: ProbeSpec) -> dict[str, Any]:
    return virtual_service(spec.service, {c.name: int(spec.weights.get(c.name, 0)) for c in spec.clusters})


def probe_edge_gateway(spec: ProbeSpec) -> dict[str, Any]:
    """The stack's edge Gateway shape for the probe's host, in the probe's namespace (Istio merges
    HTTP servers of several Gateways on one port), so it goes with the namespace."""
    gateway = edge_gateway([spec.edge_service])
    gateway["metadata"] = {"name": EDGE_GATEWAY_NAME, "namespace": spec.namespace}
    return gateway


def probe_edge_virtual_service(spec: ProbeSpec, cluster: str) -> dict[str, Any]:
    """The stack's edge route shape: the ingress of `cluster` answers from `cluster` only."""
    vs = edge_virtual_service(spec.edge_service, cluster)
    vs["spec"]["gateways"] = [f"{spec.namespace}/{EDGE_GATEWAY_NAME}"]
    return vs


def edge_counts(bodies: Sequence[str | None], clusters: Sequence[str]) -> ProbeCounts:
    """Who answered the requests sent through the public entry (None: the request failed)."""
    log = "\n".join(RESPONSE_MARKER + (b.strip() if b is not None else "error: no response") for b in bodies)
    return parse_client_log(EDGE, log, clusters)


def client_script(spec: ProbeSpec) -> str:
    """POSIX sh (busybox in the curl image): N calls, one marked line each, then stop the sidecar."""
    return "\n".join([
        "i=0",
        'while [ "$i" -lt "$REQUESTS" ]; do',
        f'  out=$(curl -sS -f --max-time {PER_REQUEST_TIMEOUT_SECONDS} "$TARGET" 2>&1) || out="error $out"',
        f'  echo "{RESPONSE_MARKER}$out" | head -n 1',
        "  i=$((i+1))",
        "done",
        f"curl -s -X POST {shlex.quote(QUIT_URL)} >/dev/null 2>&1 || true",
    ])


def client_job(spec: ProbeSpec) -> dict[str, Any]:
    """A meshed Job that ends: native sidecar (Istio >= 1.24) and, for classic sidecars, a quit call."""
    labels = {"app": CLIENT_JOB}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": CLIENT_JOB, "namespace": spec.namespace, "labels": {**labels, **MANAGED_BY}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.deadline_seconds,
            "template": {
                "metadata": {
                    "labels": {**labels, "sidecar.istio.io/inject": "true"},
                    "annotations": {
                        "sidecar.istio.io/nativeSidecar": "true",
                        "proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}',
                    },
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": CLIENT_CONTAINER,
                        "image": spec.curl_image,
                        "command": ["sh", "-c", client_script(spec)],
                        "env": [
                            {"name": "REQUESTS", "value": str(spec.requests)},
                            {"name": "TARGET", "value": spec.target_url},
                        ],
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }],
                },
            },
        },
    }


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ProbeCounts:
    """Who answered one client's requests."""

    client: str
    counts: Mapping[str, int]
    errors: int
    error_samples: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.errors


def parse_client_log(client: str, log: str, clusters: Sequence[str]) -> ProbeCounts:
    """Count marked lines by answering cluster; anything else that answered is an error."""
    counts: Counter[str] = Counter({c: 0 for c in clusters})
    errors: Counter[str] = Counter()
    for line in log.splitlines():
        if not line.startswith(RESPONSE_MARKER):
            continue
        value = line[len(RESPONSE_MARKER):].strip()
        if value in counts:
            counts[value] += 1
        else:
            errors[value or "empty response"] += 1
    samples = tuple(f"{n}x {text}" for text, n in errors.most_common(3))
    return ProbeCounts(client=client, counts=dict(counts), errors=sum(errors.values()), error_samples=samples)


@dataclass(frozen=True)
class SplitRow:
    client: str
    target: str
    weight: int
    responses: int
    share: float
    deviation: float
    passed: bool
    note: str = ""


def evaluate_split(counts: ProbeCounts, weights: Mapping[str, int], tolerance: float) -> list[SplitRow]:
    """Compare one client's observed shares with the weights (percentage points).

    A target with weight > 0 that answered nothing fails regardless of tolerance: that is
    the "no cross-cluster traffic" case the probe exists for. Errors are expected at 0 %.
    """
    total = counts.total
    rows: list[SplitRow] = []
    for target, weight in weights.items():
        n = int(counts.counts.get(target, 0))
        share = 100.0 * n / total if total else 0.0
        deviation = share - weight
        if total == 0:
            rows.append(SplitRow(counts.client, target, weight, n, share, deviation, False,
                                 "the client reported no request at all"))
            continue
        if weight > 0 and n == 0:
            where = ("local subset" if target == counts.client else f"edge traffic to {target}"
                     if counts.client == EDGE else f"cross-cluster traffic {counts.client} -> {target}")
            rows.append(SplitRow(counts.client, target, weight, n, share, deviation, False,
                                 f"{where} received nothing"))
            continue
        ok = abs(deviation) <= tolerance
        rows.append(SplitRow(counts.client, target, weight, n, share, deviation, ok,
                             "" if ok else f"off by {deviation:+.1f} pp (tolerance {tolerance:g})"))
    share = 100.0 * counts.errors / total if total else 0.0
    ok = total > 0 and share <= tolerance
    note = "; ".join(counts.error_samples) if counts.errors else ""
    rows.append(SplitRow(counts.client, ERRORS, 0, counts.errors, share, share, ok, note))
    return rows


def split_passed(rows: Sequence[SplitRow]) -> bool:
    return bool(rows) and all(r.passed for r in rows)


@dataclass(frozen=True)
class LoadCount:
    """How one routed service's public host answered the probe's load (any answer below 500 is load the
    flip's judge counts as a success; 5xx and no answer count against the cluster that gave them)."""

    host: str
    answered: int
    failed: int


def load_count(host: str, statuses: Sequence[int | None]) -> LoadCount:
    failed = sum(1 for s in statuses if s is None or s >= 500)
    return LoadCount(host, len(statuses) - failed, failed)


def format_load(counts: Sequence[LoadCount], edge_url: str) -> list[str]:
    return [f"load: {c.answered + c.failed} requests to {edge_url} with Host {c.host}: {c.answered} answered, "
            f"{c.failed} failed or 5xx (counted by a flip's judge: the ingress gateways report them)"
            for c in counts]
