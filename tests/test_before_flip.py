"""`verify --before-flip` against fake API servers: weight moves only where the service can answer.

Each cluster is a real HTTP server (tests/fakes/fake_kube.py) reached through the tool's own
client factory; the stack file carries the NEW weights, as in the flip pull request.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from offline import self_signed_pem
from offline.configs import base, flipped, write_stack_file
from tests.fakes import fake_kube
from tests.fakes.fake_kube import FakeCluster
from tools.verify import cli as verify

CLUSTERS = [("blue", "network1", "us-west1", "34.82.10.1", "34.83.20.1"),
            ("green", "network2", "us-central1", "34.70.10.2", "34.71.20.2")]


@functools.cache
def root() -> str:
    return self_signed_pem(ec.generate_private_key(ec.SECP256R1()), "Root CA", organization="Istio", path_length=1)


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeCluster]]:
    started = {n: FakeCluster(n).start() for n, *_ in CLUSTERS}
    try:
        for name, network, _, _, eastwest in CLUSTERS:
            f = started[name]
            f.put(fake_kube.namespace("istio-system", {"topology.istio.io/network": network}))
            f.put(fake_kube.namespace("sample", {"istio-injection": "enabled"}))
            f.put(fake_kube.istiod_deployment())
            f.put(fake_kube.eastwest_service(eastwest))
            f.put(fake_kube.endpoint_slice("istio-eastwestgateway", "istio-system", ready=2))
            f.put(fake_kube.secret("cacerts", {"root-cert.pem": root()}))
            f.put(fake_kube.configmap("istio-ca-root-cert", {"root-cert.pem": root()}))
            for other, _, _, endpoint, _ in CLUSTERS:
                if other != name:
                    f.put(fake_kube.remote_secret(other, endpoint))
        yield started
    finally:
        for f in started.values():
            f.stop()


def run(fakes: dict[str, FakeCluster], tmp: Path, config: dict[str, Any], *flags: str) -> tuple[int, str]:
    outputs = {
        "clusters": {n: {"name": n, "region": r, "network": net, "istioVersion": "1.30.3", "endpoint": ep,
                         "eastWestGatewayAddress": ew} for n, net, r, ep, ew in CLUSTERS},
        "kubeconfigs": {n: f.kubeconfig() for n, f in fakes.items()},
        "rootCertPem": root(),
    }
    (tmp / "outputs.json").write_text(json.dumps(outputs))
    out, err = io.StringIO(), io.StringIO()
    code = verify.main(["--stack", "dev", "--outputs", str(tmp / "outputs.json"),
                        "--config", str(write_stack_file(tmp / "Pulumi.flip.yaml", config)), *flags],
                       out=out, err=err, poll_interval=0.01)
    return code, out.getvalue() + err.getvalue()


def row(text: str, cluster: str, check: str) -> str:
    """The report line of one check in one cluster's table, with runs of spaces collapsed."""
    block = text[text.index(f"== {cluster} "):]
    block = block[:block.index("\n\n")]
    (line,) = [" ".join(line.split()) for line in block.splitlines() if check in line]
    return line


def test_flip_to_a_cluster_with_ready_endpoints_passes(fakes, tmp_path) -> None:
    for f in fakes.values():
        f.put(fake_kube.endpoint_slice("helloworld", "sample", ready=2))
    code, text = run(fakes, tmp_path, flipped(base()), "--before-flip")
    assert code == 0, text
    assert row(text, "green", "helloworld.sample endpoints") == (
        "PASS before flip: helloworld.sample endpoints 2/2 endpoints ready (new weight 90%)")
    assert row(text, "green", "gateway reachable") == (
        "PASS before flip: east-west gateway reachable 34.71.20.2, 2/2 gateway pods ready")
    assert row(text, "blue", "helloworld.sample endpoints").endswith("(new weight 10%)")


def test_flip_to_a_cluster_without_the_service_is_refused_with_cause_and_fix(fakes, tmp_path) -> None:
    fakes["blue"].put(fake_kube.endpoint_slice("helloworld", "sample", ready=2))
    code, text = run(fakes, tmp_path, flipped(base()), "--before-flip")
    assert code == 1
    green = text[text.index("== green"):]
    assert row(text, "green", "helloworld.sample endpoints") == (
        "FAIL before flip: helloworld.sample endpoints 0/0 endpoints ready (new weight 90%)")
    assert "cause: the service is not deployed in green (no EndpointSlice for Service sample/helloworld)" in green
    assert "answers 503 for that share" in green
    assert "fix:   deploy helloworld to sample in green" in green


def test_unready_pods_and_a_dead_gateway_are_named(fakes, tmp_path) -> None:
    fakes["blue"].put(fake_kube.endpoint_slice("helloworld", "sample", ready=1))
    fakes["green"].put(fake_kube.endpoint_slice("helloworld", "sample", ready=0, not_ready=2))
    fakes["green"].put(fake_kube.endpoint_slice("istio-eastwestgateway", "istio-system", ready=0, not_ready=2))
    code, text = run(fakes, tmp_path, flipped(base()), "--before-flip")
    assert code == 1
    assert "0/2 endpoints ready (new weight 90%)" in text
    assert "its pods exist but none is ready" in text
    assert row(text, "green", "gateway reachable") == (
        "FAIL before flip: east-west gateway reachable 0/2 gateway pods ready")
    assert "the other clusters reach green only through this gateway" in text


def test_zero_weight_clusters_are_not_gated(fakes, tmp_path) -> None:
    """Blue 100 / green 0 needs nothing of green: the gate reads green not at all."""
    fakes["blue"].put(fake_kube.endpoint_slice("helloworld", "sample", ready=1))
    code, text = run(fakes, tmp_path, base(), "--before-flip")
    assert code == 0, text
    assert not [p for _, p in fakes["green"].requests if "endpointslices" in p]


def test_a_cluster_the_deployment_lacks_is_named(fakes, tmp_path) -> None:
    from offline.configs import three_clusters

    config = three_clusters(base())
    config["traffic"]["weights"] = {"blue": 50, "teal": 50}
    for f in fakes.values():
        f.put(fake_kube.endpoint_slice("helloworld", "sample", ready=1))
    code, text = run(fakes, tmp_path, config, "--before-flip")
    assert code == 1
    assert row(text, "mesh-wide", "teal readable") == "FAIL before flip: teal readable not in the stack outputs"
    assert "run `pulumi up` for the cluster first, then flip" in text


def test_without_the_flag_no_gate_runs(fakes, tmp_path) -> None:
    code, text = run(fakes, tmp_path, flipped(base()))
    assert "before flip" not in text
    assert code == 0, text


def test_weights_given_on_the_command_line_are_gated_instead_of_the_stack_files(fakes, tmp_path) -> None:
    """tools.flip gates its target this way: the stack file still has the old weights (blue 100)."""
    fakes["blue"].put(fake_kube.endpoint_slice("helloworld", "sample", ready=2))
    code, text = run(fakes, tmp_path, base(), "--before-flip", "--weights", "blue=0,green=100")
    assert code == 1
    assert row(text, "green", "helloworld.sample endpoints") == (
        "FAIL before flip: helloworld.sample endpoints 0/0 endpoints ready (new weight 100%)")
    assert "helloworld.sample endpoints" not in text[text.index("== blue "):text.index("== green ")]
    code, _ = run(fakes, tmp_path, base(), "--before-flip")
    assert code == 0, "the stack file's own weights send nothing to green"


@pytest.mark.parametrize(("flags", "message"), [
    (("--before-flip", "--weights", "blue=50,green=40"), "sums to 90; the weights must sum to 100"),
    (("--before-flip", "--weights", "blue=100,teal=0"),
     "'teal' is not a cluster of this stack (clusters: blue, green)"),
    (("--before-flip", "--weights", "blue"), "--weights 'blue': 'blue' must be CLUSTER=WEIGHT"),
    (("--weights", "blue=100"), "--weights goes with --before-flip"),
])
def test_bad_weights_are_refused_naming_the_argument(fakes, tmp_path, flags, message) -> None:
    code, text = run(fakes, tmp_path, base(), *flags)
    assert code == 2 and message in text


def test_the_gate_is_a_typed_function_returning_structured_rows(fakes, tmp_path) -> None:
    """tools.flip calls this, not verify's command line: rows it can print, no exit code or text to parse."""
    from components import config as stack_config
    from tools.verify.checks import parse_outputs
    from tools.verify.gate import before_flip
    from tools.verify.kube import default_client_factory

    fakes["blue"].put(fake_kube.endpoint_slice("helloworld", "sample", ready=2))
    outputs = parse_outputs({
        "clusters": {n: {"name": n, "region": r, "network": net, "istioVersion": "1.30.3", "endpoint": ep,
                         "eastWestGatewayAddress": ew} for n, net, r, ep, ew in CLUSTERS},
        "kubeconfigs": {n: f.kubeconfig() for n, f in fakes.items()}, "rootCertPem": root()})
    cfg = stack_config.parse(base(), project="mesh-test-project")
    report = before_flip(cfg, outputs, {"green": 100}, default_client_factory)
    assert not report.ok and dict(report.weights) == {"blue": 0, "green": 100}
    (failure,) = report.failures
    assert (failure.cluster, failure.check, failure.detail) == (
        "green", "before flip: helloworld.sample endpoints", "0/0 endpoints ready (new weight 100%)")
    assert failure.fix.startswith("deploy helloworld to sample in green")
    assert before_flip(cfg, outputs, {"blue": 100}, default_client_factory).ok
