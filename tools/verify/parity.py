"""The parity gate: does the successor run what the cluster it replaces runs, before it gets traffic?

In every mesh namespace, each Deployment and StatefulSet of the old cluster must exist in the new
one with the same container images - by digest where the old pods report one in
`status.containerStatuses[].imageID`, else by the image reference of the pod template - and all its
replicas ready; every routed service must have ready endpoints there, and the new cluster's
east-west gateway must be reachable (the others reach it only through that gateway). Each
difference names the namespace and workload and says how to fix it. The rules are pure
(`compare`); `read_parity` reads the objects with the official client; `wait_for_parity` polls,
bounded.

The sidecar Istio injects (`istio-proxy`, `istio-init`) is not in the pod template and differs by
design when the successor runs another Istio: only the template's containers are compared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from components.names import EASTWEST_RELEASE, ISTIO_NAMESPACE
from tools.verify.gate import GateSnapshot, check_gateway, read_gate, ready_endpoints
from tools.verify.kube import REQUEST_TIMEOUT

KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True)
class Workload:
    namespace: str
    kind: str
    name: str
    images: Mapping[str, str]  # template container -> image reference
    digests: Mapping[str, frozenset[str]]  # template container -> digests its pods report (sha256:…)
    desired: int
    ready: int

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.kind, self.name)


@dataclass(frozen=True)
class ParitySnapshot:
    cluster: str
    workloads: Mapping[tuple[str, str, str], Workload]
    gate: GateSnapshot  # routed services' and the east-west gateway's EndpointSlices, the gateway Service


@dataclass(frozen=True)
class Difference:
    namespace: str
    workload: str  # "Deployment/helloworld-v1", "Service/helloworld" or the gateway
    problem: str
    fix: str


@dataclass(frozen=True)
class ParityResult:
    old: str
    new: str
    differences: tuple[Difference, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.differences


def digest_of(image_id: str) -> str | None:
    """The `sha256:…` digest of a container status' imageID (`docker.io/x@sha256:…`), if it reports one."""
    _, sep, digest = image_id.rpartition("@")
    return digest if sep and digest.startswith("sha256:") else None


def _deliver(new: str) -> str:
    return (f"deploy it to {new} with your delivery (or turn on `workloads.enabled` so Config Sync puts it there) "
            "and run the gate again")


def compare_workload(old: Workload, mine: Workload | None, new_cluster: str, old_cluster: str) -> list[Difference]:
    label = f"{old.kind}/{old.name}"
    if mine is None:
        return [Difference(old.namespace, label, f"runs in {old_cluster} but not in {new_cluster}",
                           _deliver(new_cluster))]
    out = []
    for container, image in sorted(old.images.items()):
        if container not in mine.images:
            out.append(Difference(old.namespace, label, f"container {container} ({image}) is missing in {new_cluster}",
                                  f"deploy the same pod template to {new_cluster}"))
            continue
        old_digests, new_digests = old.digests.get(container, frozenset()), mine.digests.get(container, frozenset())
        if len(old_digests) == 1 and new_digests and new_digests != old_digests:
            out.append(Difference(
                old.namespace, label,
                f"container {container}: {old_cluster} runs {next(iter(old_digests))}, {new_cluster} runs "
                f"{', '.join(sorted(new_digests))} (tag {mine.images[container]})",
                f"deploy the image {old_cluster} runs, pinned by digest: {image.split('@')[0].rsplit(':', 1)[0]}"
                f"@{next(iter(old_digests))}"))
        elif len(old_digests) != 1 and mine.images[container] != image:
            # No single digest to compare (none reported, or a rollout in progress): the references must match.
            out.append(Difference(old.namespace, label,
                                  f"container {container}: {old_cluster} runs {image}, {new_cluster} runs "
                                  f"{mine.images[container]}", f"deploy {image} to {new_cluster}"))
    if old.desired > 0 and (mine.desired == 0 or mine.ready < mine.desired):
        out.append(Difference(old.namespace, label, f"{mine.ready}/{mine.desired} replicas ready in {new_cluster} "
                              f"({old.ready}/{old.desired} in {old_cluster})",
                              f"`kubectl -n {old.namespace} describe {old.kind.lower()} {old.name}` in {new_cluster}: "
                              "image pull, sidecar injection, scheduling or readiness; wait until every replica is "
                              "ready"))
    return out


def compare(old: ParitySnapshot, new: ParitySnapshot, services: Sequence[tuple[str, str]],
            new_eastwest_address: str) -> ParityResult:
    """Every difference that keeps `new` from taking `old`'s traffic, per namespace and workload."""
    diffs: list[Difference] = []
    for key in sorted(old.workloads):
        diffs += compare_workload(old.workloads[key], new.workloads.get(key), new.cluster, old.cluster)
    for host, namespace in services:
        ready, total = ready_endpoints(new.gate.service_slices.get((host, namespace), ()))
        if not ready:
            diffs.append(Difference(namespace, f"Service/{host}", f"{ready}/{total} endpoints ready in {new.cluster}: "
                                    "a share moved there would answer 503",
                                    f"deploy {host}'s pods and Service to {namespace} in {new.cluster}; wait for ready "
                                    "endpoints"))
    gateway = check_gateway(new.cluster, new.gate, new_eastwest_address, "every routed service")
    if not gateway.passed:
        diffs.append(Difference(ISTIO_NAMESPACE, f"Service/{EASTWEST_RELEASE}", gateway.detail, gateway.fix))
    return ParityResult(old.cluster, new.cluster, tuple(diffs))


def render(result: ParityResult) -> str:
    if result.passed:
        return f"parity: {result.new} runs what {result.old} runs (workloads, images, readiness, endpoints, gateway)"
    lines = [f"parity: {result.new} does not yet run what {result.old} runs ({len(result.differences)} differences)"]
    for ns in dict.fromkeys(d.namespace for d in result.differences):
        lines.append(f"  namespace {ns}:")
        for d in (d for d in result.differences if d.namespace == ns):
            lines += [f"    {d.workload}: {d.problem}", f"      fix: {d.fix}"]
    return "\n".join(lines)


# ------------------------------------------------------------------ reading a cluster


def _selector(workload: Mapping[str, Any]) -> str:
    labels = (((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def to_workload(kind: str, obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Workload:
    """A Deployment or StatefulSet (Kubernetes JSON) and its pods as a Workload."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    images = {c["name"]: c.get("image", "") for c in containers}
    digests: dict[str, set[str]] = {name: set() for name in images}
    for pod in pods:
        for s in (pod.get("status") or {}).get("containerStatuses") or []:
            digest = digest_of(s.get("imageID") or "")
            if s.get("name") in digests and digest:
                digests[s["name"]].add(digest)
    desired = spec.get("replicas")
    return Workload(namespace=meta["namespace"], kind=kind, name=meta["name"], images=images,
                    digests={k: frozenset(v) for k, v in digests.items()},
                    desired=1 if desired is None else int(desired), ready=int(status.get("readyReplicas") or 0))


def read_parity(api: k8s.ApiClient, cluster: str, namespaces: Sequence[str],
                services: Sequence[tuple[str, str]]) -> ParitySnapshot:
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    listers = {"Deployment": apps.list_namespaced_deployment, "StatefulSet": apps.list_namespaced_stateful_set}
    workloads: dict[tuple[str, str, str], Workload] = {}
    for ns in namespaces:
        for kind, lister in listers.items():
            for item in lister(ns, _request_timeout=REQUEST_TIMEOUT).items:
                obj = api.sanitize_for_serialization(item)
                selector = _selector(obj)
                pods = [api.sanitize_for_serialization(p) for p in core.list_namespaced_pod(
                    ns, label_selector=selector, _request_timeout=REQUEST_TIMEOUT).items] if selector else []
                w = to_workload(kind, obj, pods)
                workloads[w.key] = w
    return ParitySnapshot(cluster, workloads, read_gate(api, cluster, services))


def wait_for_parity(check: Callable[[], ParityResult], timeout: float, interval: float = 15.0,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> ParityResult:
    """Check until parity holds or `timeout` seconds have passed; the last result either way."""
    deadline = clock() + timeout
    while True:
        result = check()
        if result.passed or clock() >= deadline:
            return result
        sleep(interval)
