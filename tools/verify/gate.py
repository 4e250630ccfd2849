"""`verify --before-flip`: may the new weights move traffic? Checked before `pulumi up` applies them.

Shifting weight to a cluster that has no ready endpoints for a service answers 503 for
that share, and so does a cluster whose east-west gateway cannot be reached: the other
clusters' sidecars reach it only through that gateway. The gate reads, in every cluster the
stack file's (new) weights send traffic to, the service's EndpointSlices and the east-west
gateway's Service and EndpointSlices, and says per routed service what is missing and
how to fix it. Pure rules here; `read_gate` does the reads; `before_flip` is the typed entry point
that `tools.flip` calls (and `verify --before-flip` prints).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from components.config import StackConfig
from components.names import EASTWEST_RELEASE, ISTIO_NAMESPACE
from tools.verify.checks import MESH, CheckResult, ClusterError, StackOutputs, load_balancer_address
from tools.verify.kube import REQUEST_TIMEOUT, ClientFactory, _read, connect, describe_failure

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class GateTarget:
    """One routed service and one cluster that the new weights give traffic to."""

    host: str
    namespace: str
    cluster: str
    weight: int

    @property
    def key(self) -> str:
        return f"{self.host}.{self.namespace}"


@dataclass(frozen=True)
class GateSnapshot:
    """What the gate reads in one target cluster, as Kubernetes JSON."""

    name: str
    # (host, namespace) -> the service's EndpointSlices in this cluster
    service_slices: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]]
    eastwest_service: Mapping[str, Any] | None
    eastwest_slices: Sequence[Mapping[str, Any]]


def targets(cfg: StackConfig) -> list[GateTarget]:
    """Every (routed service, cluster) pair with weight > 0 in the stack file's weights."""
    return [GateTarget(s.host, s.namespace, cluster, weight)
            for s in cfg.traffic.services for cluster, weight in cfg.traffic.weights_for(s).items() if weight > 0]


def ready_endpoints(slices: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(ready, total) endpoints; an unset `ready` condition counts as ready, as the API says."""
    ready = total = 0
    for s in slices:
        for e in s.get("endpoints") or []:
            total += 1
            if (e.get("conditions") or {}).get("ready") is not False:
                ready += 1
    return ready, total


def check_service(t: GateTarget, slices: Sequence[Mapping[str, Any]]) -> CheckResult:
    name = f"before flip: {t.key} endpoints"
    ready, total = ready_endpoints(slices)
    detail = f"{ready}/{total} endpoints ready (new weight {t.weight}%)"
    if ready:
        return CheckResult(t.cluster, name, True, detail)
    cause = (f"the service is not deployed in {t.cluster} (no EndpointSlice for Service {t.namespace}/{t.host})"
             if not slices else "its pods exist but none is ready (crash-looping, failing readiness, or pending)")
    return CheckResult(
        t.cluster, name, False, detail,
        cause + f": moving {t.weight}% of {t.key}'s traffic here answers 503 for that share",
        f"deploy {t.host} to {t.namespace} in {t.cluster} and wait until "
        f"`kubectl -n {t.namespace} get endpointslices -l {SERVICE_NAME_LABEL}={t.host}` shows ready endpoints; "
        "keep the old weights until then")


def check_gateway(cluster: str, snapshot: GateSnapshot, expected_address: str, weight_of: str) -> CheckResult:
    name = "before flip: east-west gateway reachable"
    address = load_balancer_address(snapshot.eastwest_service) if snapshot.eastwest_service else None
    ready, total = ready_endpoints(snapshot.eastwest_slices)
    fix = (f"`kubectl -n {ISTIO_NAMESPACE} get pods -l istio=eastwestgateway` and "
           f"`kubectl -n {ISTIO_NAMESPACE} describe svc {EASTWEST_RELEASE}`; then `pulumi up`")
    problems = []
    if snapshot.eastwest_service is None:
        problems.append(f"Service {ISTIO_NAMESPACE}/{EASTWEST_RELEASE} not found")
    elif address != expected_address:
        problems.append(f"gateway address is {address or 'none'}, the stack output says {expected_address}")
    if not ready:
        problems.append(f"{ready}/{total} gateway pods ready")
    if problems:
        return CheckResult(cluster, name, False, "; ".join(problems),
                           f"the other clusters reach {cluster} only through this gateway: their share of "
                           f"{weight_of} would fail (503 / connection reset)", fix)
    return CheckResult(cluster, name, True, f"{address}, {ready}/{total} gateway pods ready")


def evaluate_gate(cfg: StackConfig, outputs: StackOutputs, snapshots: Sequence[GateSnapshot],
                  errors: Sequence[ClusterError]) -> list[CheckResult]:
    """Rows per target cluster: its gateway once, then each service the new weights send there."""
    by_name = {s.name: s for s in snapshots}
    failed = {e.name: e for e in errors}
    addresses = {c.name: c.eastwest_address for c in outputs.clusters}
    all_targets = targets(cfg)
    results: list[CheckResult] = []
    for cluster in dict.fromkeys(t.cluster for t in all_targets):
        mine = [t for t in all_targets if t.cluster == cluster]
        if cluster in failed or cluster not in by_name:
            e = failed.get(cluster)
            results.append(CheckResult(
                cluster if e else MESH, f"before flip: {cluster} readable", False,
                e.message if e else "not in the stack outputs",
                (e.cause if e else "the stack file names a cluster the deployment does not have")
                + f"; the new weights send it traffic ({', '.join(f'{t.key} {t.weight}%' for t in mine)})",
                e.fix if e else "run `pulumi up` for the cluster first, then flip"))
            continue
        snap = by_name[cluster]
        results.append(check_gateway(cluster, snap, addresses.get(cluster, ""), ", ".join(t.key for t in mine)))
        results.extend(check_service(t, snap.service_slices.get((t.host, t.namespace), ())) for t in mine)
    return results


def read_gate(api: k8s.ApiClient, cluster: str, services: Sequence[tuple[str, str]]) -> GateSnapshot:
    """The EndpointSlices of each service and of the east-west gateway, and the gateway's Service."""
    discovery, core = k8s.DiscoveryV1Api(api), k8s.CoreV1Api(api)

    def slices(host: str, namespace: str) -> list[dict[str, Any]]:
        found = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"{SERVICE_NAME_LABEL}={host}", _request_timeout=REQUEST_TIMEOUT)
        return [api.sanitize_for_serialization(s) for s in found.items]

    return GateSnapshot(
        name=cluster,
        service_slices={(h, ns): slices(h, ns) for h, ns in services},
        eastwest_service=_read(api, core.read_namespaced_service, EASTWEST_RELEASE, ISTIO_NAMESPACE),
        eastwest_slices=slices(EASTWEST_RELEASE, ISTIO_NAMESPACE),
    )


@dataclass(frozen=True)
class GateReport:
    """The readiness gate's verdict: every row it checked, structured (tools.flip prints the failing ones)."""

    weights: Mapping[str, int]
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)


def with_weights(cfg: StackConfig, weights: Mapping[str, int]) -> StackConfig:
    """The stack config with these mesh-wide weights (every cluster of the stack, unnamed ones 0)."""
    split = tuple((c.name, int(weights.get(c.name, 0))) for c in cfg.clusters)
    return dataclasses.replace(cfg, traffic=dataclasses.replace(cfg.traffic, weights=split))


def gate_rows(cfg: StackConfig, outputs: StackOutputs, clients: Mapping[str, Any],
              errors: Sequence[ClusterError]) -> list[CheckResult]:
    """Read every target cluster (in parallel) and judge cfg's weights against what runs there."""
    wanted = targets(cfg)
    services = list(dict.fromkeys((t.host, t.namespace) for t in wanted))
    by_name = {c.name: c for c in outputs.clusters}
    todo = [n for n in dict.fromkeys(t.cluster for t in wanted) if n in clients]

    def one(name: str) -> GateSnapshot | ClusterError:
        try:
            return read_gate(clients[name], name, services)
        except Exception as error:
            f = describe_failure(by_name[name], error)
            return ClusterError(name, f.message, f.cause, f.fix)

    with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
        done = list(pool.map(one, todo))
    snapshots = [d for d in done if isinstance(d, GateSnapshot)]
    return evaluate_gate(cfg, outputs, snapshots, [*errors, *(d for d in done if isinstance(d, ClusterError))])


def before_flip(cfg: StackConfig, outputs: StackOutputs, weights: Mapping[str, int],
                client_factory: ClientFactory) -> GateReport:
    """May `weights` move traffic? Every cluster they give weight to must answer for each routed service."""
    target = with_weights(cfg, weights)
    clients, errors = connect(outputs, client_factory)
    return GateReport(dict(target.traffic.weights), tuple(gate_rows(target, outputs, clients, errors)))
