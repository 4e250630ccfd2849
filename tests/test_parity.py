"""The parity gate: the successor must run the old cluster's workloads, images and endpoints before any traffic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.fakes import fake_kube
from tests.fakes.fake_kube import FakeCluster
from tools.verify.checks import ClusterOutputs
from tools.verify.kube import default_client_factory
from tools.verify.parity import (
    compare,
    compare_workload,
    digest_of,
    read_parity,
    render,
    to_workload,
    wait_for_parity,
)

HELLO_REPO = "docker.io/istio/examples-helloworld-v1"
HELLO = f"{HELLO_REPO}:1.0"
REDIS = "docker.io/library/redis:7.4"
DIGEST_A, DIGEST_B = f"sha256:{'a' * 64}", f"sha256:{'b' * 64}"
SERVICES = [("helloworld", "sample")]
EASTWEST = {"blue": "34.71.20.1", "blue2": "34.71.20.9"}


def stage(f: FakeCluster, *, hello_digest: str = DIGEST_A, hello_ready: int = 2, with_cache: bool = True,
          endpoints: int = 2, gateway_pods: int = 2) -> None:
    f.put(fake_kube.namespace("istio-system"))
    f.put(fake_kube.namespace("sample", {"istio-injection": "enabled"}))
    f.put(fake_kube.eastwest_service(EASTWEST[f.name]))
    f.put(fake_kube.endpoint_slice("istio-eastwestgateway", "istio-system", ready=gateway_pods))
    hello = fake_kube.workload("Deployment", "helloworld-v1", "sample", {"helloworld": HELLO}, replicas=2,
                               ready=hello_ready)
    f.put(hello)
    for i in range(hello_ready):
        f.put(fake_kube.workload_pod(hello, i, {"helloworld": f"{HELLO_REPO}@{hello_digest}"}))
    if with_cache:
        cache = fake_kube.workload("StatefulSet", "cache", "sample", {"redis": REDIS}, replicas=1)
        f.put(cache)
        f.put(fake_kube.workload_pod(cache, 0, {"redis": f"docker.io/library/redis@sha256:{'c' * 64}"}))
    f.put(fake_kube.endpoint_slice("helloworld", "sample", ready=endpoints))


@pytest.fixture
def clusters() -> Iterator[dict[str, k8s.ApiClient]]:
    fakes = {n: FakeCluster(n).start() for n in ("blue", "blue2")}
    try:
        yield fakes
    finally:
        for f in fakes.values():
            f.stop()


def client(f: FakeCluster) -> k8s.ApiClient:
    return default_client_factory(ClusterOutputs(f.name, "us-west1", "network", f.url, EASTWEST[f.name],
                                                 f.kubeconfig()))


def gate(fakes: dict[str, FakeCluster]):
    old = read_parity(client(fakes["blue"]), "blue", ["sample"], SERVICES)
    new = read_parity(client(fakes["blue2"]), "blue2", ["sample"], SERVICES)
    return compare(old, new, SERVICES, EASTWEST["blue2"])


def test_a_successor_that_runs_the_same_workloads_passes(clusters) -> None:
    stage(clusters["blue"])
    stage(clusters["blue2"])
    result = gate(clusters)
    assert result.passed, render(result)
    assert render(result) == "parity: blue2 runs what blue runs (workloads, images, readiness, endpoints, gateway)"


def test_every_difference_is_listed_per_namespace_and_workload_with_its_fix(clusters) -> None:
    stage(clusters["blue"])
    # blue2: another build behind the same tag, one replica not ready, no cache, no endpoints, no gateway pods.
    stage(clusters["blue2"], hello_digest=DIGEST_B, hello_ready=1, with_cache=False, endpoints=0, gateway_pods=0)
    result = gate(clusters)
    assert not result.passed
    by_workload = {d.workload: d for d in result.differences}
    assert by_workload["StatefulSet/cache"].problem == "runs in blue but not in blue2"
    assert "workloads.enabled" in by_workload["StatefulSet/cache"].fix
    image = [d for d in result.differences if d.workload == "Deployment/helloworld-v1" and "container" in d.problem]
    assert image[0].problem == (f"container helloworld: blue runs {DIGEST_A}, blue2 runs {DIGEST_B} (tag {HELLO})")
    assert image[0].fix == f"deploy the image blue runs, pinned by digest: {HELLO_REPO}@{DIGEST_A}"
    ready = [d for d in result.differences if d.workload == "Deployment/helloworld-v1" and "replicas" in d.problem]
    assert ready[0].problem == "1/2 replicas ready in blue2 (2/2 in blue)"
    assert by_workload["Service/helloworld"].problem.startswith("0/0 endpoints ready in blue2")
    assert by_workload["Service/istio-eastwestgateway"].namespace == "istio-system"
    text = render(result)
    assert text.index("namespace sample:") < text.index("StatefulSet/cache") < text.index("namespace istio-system:")


def test_the_injected_sidecar_may_differ_and_without_digests_images_are_compared_by_reference() -> None:
    old_obj = fake_kube.workload("Deployment", "api", "sample", {"api": "ghcr.io/acme/api:2.1"}, replicas=1)
    new_obj = fake_kube.workload("Deployment", "api", "sample", {"api": "ghcr.io/acme/api:2.1"}, replicas=1)
    sidecar_old = fake_kube.workload_pod(old_obj, 0, {"api": f"ghcr.io/acme/api@{DIGEST_A}"})
    # The successor runs another Istio: its injected proxy is another image; the app's digest is the same.
    sidecar_new = fake_kube.workload_pod(new_obj, 0, {"api": f"ghcr.io/acme/api@{DIGEST_A}",
                                                      "istio-proxy": f"docker.io/istio/proxyv2@{DIGEST_B}"})
    old, new = to_workload("Deployment", old_obj, [sidecar_old]), to_workload("Deployment", new_obj, [sidecar_new])
    assert set(old.images) == {"api"} and compare_workload(old, new, "blue2", "blue") == []
    # No digest reported (e.g. pods not yet started): the template's references decide.
    unreported = to_workload("Deployment", old_obj, [])
    moved = to_workload("Deployment", fake_kube.workload("Deployment", "api", "sample", {"api": "ghcr.io/acme/api:2.2"},
                                                          replicas=1), [])
    (diff,) = compare_workload(unreported, moved, "blue2", "blue")
    assert diff.problem == "container api: blue runs ghcr.io/acme/api:2.1, blue2 runs ghcr.io/acme/api:2.2"
    assert digest_of("docker.io/x:1.0") is None and digest_of("") is None


def test_the_gate_waits_bounded_and_returns_the_last_differences(clusters) -> None:
    stage(clusters["blue"])
    stage(clusters["blue2"], with_cache=False)
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    result = wait_for_parity(lambda: gate(clusters), timeout=30, interval=10, sleep=sleep, clock=lambda: now[0])
    assert not result.passed and sleeps == [10, 10, 10]
    # The team's delivery catches up: the next check passes and the wait ends at once.
    cache = fake_kube.workload("StatefulSet", "cache", "sample", {"redis": REDIS}, replicas=1)
    clusters["blue2"].put(cache)
    clusters["blue2"].put(fake_kube.workload_pod(cache, 0, {"redis": f"docker.io/library/redis@sha256:{'c' * 64}"}))
    assert wait_for_parity(lambda: gate(clusters), timeout=30, sleep=sleep, clock=lambda: now[0]).passed
