"""`python -m tools.verify`: checks and probe against fake API servers on 127.0.0.1, plus the pure parts.

Every cluster is a real HTTP server answering the REST paths the official `kubernetes`
client calls, reached through a plain kubeconfig via the tool's own default client
factory, so URL building, auth, deserialisation and error mapping all run for real.
"""

from __future__ import annotations

import functools
import io
import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from components.cluster import gke_kubeconfig
from components.config import ClusterSpec, RoutedService
from components.traffic import destination_rule, virtual_service
from offline import self_signed_pem
from offline.configs import base, with_edge, write_stack_file
from tests.fakes import fake_kube
from tests.fakes.fake_kube import FakeCluster, staged_mesh
from tools.verify import cli as verify
from tools.verify import kube as verify_kube
from tools.verify.checks import CheckResult, OutputsError, StackOutputs, parse_outputs
from tools.verify.probe import (
    ERRORS,
    LoadCount,
    ProbeCounts,
    ProbeSpec,
    client_job,
    evaluate_split,
    load_count,
    load_hosts,
    parse_client_log,
)
from tools.verify.report import Progress, format_checks

# name, network, region, API endpoint, east-west address - as in offline.configs.base()
CLUSTERS = [
    ("blue", "network1", "us-west1", "34.82.10.1", "34.83.20.1"),
    ("green", "network2", "us-central1", "34.70.10.2", "34.71.20.2"),
]


@functools.cache
def root_pem(label: str) -> str:
    """A self-signed CA (ECDSA, cheap) standing in for a mesh root."""
    return self_signed_pem(ec.generate_private_key(ec.SECP256R1()), f"Root CA {label}", organization="Istio",
                           path_length=1)


@dataclass
class Mesh:
    fakes: dict[str, FakeCluster]
    tmp: Path
    root: str

    def outputs(self) -> dict[str, Any]:
        return {
            "clusters": {n: {"name": n, "region": r, "network": net, "istioVersion": "1.30.3",
                             "gkeName": f"{n}-1a2b3c4",
                             "endpoint": ep, "natEgressAddresses": ["34.1.1.1"], "eastWestGatewayAddress": ew}
                         for n, net, r, ep, ew in CLUSTERS},
            "kubeconfigs": {n: self.fakes[n].kubeconfig() for n in self.fakes},
            "rootCertPem": self.root,
            "trafficSplit": {"helloworld.sample": {"blue": 100, "green": 0}},
        }

    def write(self, outputs: dict[str, Any] | None = None) -> Path:
        path = self.tmp / "outputs.json"
        path.write_text(json.dumps(outputs or self.outputs()))
        return path

    def run(self, *args: str, outputs: dict[str, Any] | None = None, **kwargs: Any) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        if "--config" not in args:  # the tests' own stack file, never the user's Pulumi.dev.yaml
            args = (*args, "--config", str(write_stack_file(self.tmp / "Pulumi.base.yaml", base())))
        code = verify.main(["--stack", "dev", "--outputs", str(self.write(outputs)), *args],
                           out=out, err=err, poll_interval=0.01, **kwargs)
        return code, out.getvalue(), err.getvalue()

    def probe_args(self, *extra: str) -> list[str]:
        return ["--probe", "--settle", "0", "--wait-timeout", "2", *extra]


def healthy(fake: FakeCluster, network: str, eastwest: str, root: str) -> None:
    """What `pulumi up` leaves in a primary: the objects every check reads."""
    fake.put(fake_kube.namespace("istio-system", {"topology.istio.io/network": network}))
    fake.put(fake_kube.istiod_deployment())
    fake.put(fake_kube.eastwest_service(eastwest))
    fake.put(fake_kube.secret("cacerts", {"ca-cert.pem": "intermediate", "ca-key.pem": "key",
                                          "cert-chain.pem": "chain", "root-cert.pem": root}))
    fake.put(fake_kube.configmap("istio-ca-root-cert", {"root-cert.pem": root}))
    for other, _, _, endpoint, _ in CLUSTERS:
        if other != fake.name:
            fake.put(fake_kube.remote_secret(other, endpoint))


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    fakes = {name: FakeCluster(name).start() for name, *_ in CLUSTERS}
    try:
        for name, network, _, _, eastwest in CLUSTERS:
            healthy(fakes[name], network, eastwest, root_pem("mesh"))
        yield Mesh(fakes, tmp_path, root_pem("mesh"))
    finally:
        for f in fakes.values():
            f.stop()


def fail_rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip().startswith("FAIL")]


def traffic_stack_file(tmp: Path, **traffic: Any) -> Path:
    """The tests' config with other traffic settings (the probe reads subset label and weights)."""
    config = base()
    config["traffic"].update(traffic)
    return write_stack_file(tmp / "Pulumi.probe.yaml", config)


# --------------------------------------------------------------------------- checks


def test_fixture_mirrors_the_base_config() -> None:
    """The probe tests read the tests' base config: the fake clusters must be its clusters."""
    assert [(c["name"], c["network"], c["region"]) for c in base()["clusters"]] == [
        (n, net, r) for n, net, r, *_ in CLUSTERS]


def test_all_good_passes_every_check_and_exits_0(mesh) -> None:
    code, out, err = mesh.run()
    assert (code, err) == (0, "")
    assert fail_rows(out) == []
    # 5 rules + 1 remote secret per cluster, plus the mesh-wide root check.
    assert "checks: 13 passed, 0 failed" in out
    assert "== blue (network network1, us-west1) ==" in out
    assert "PASS    east-west gateway address   34.83.20.1" in out
    assert "PASS    remote secret for green" in out
    # The checks only read: nothing was created or deleted in any cluster.
    assert all(m == "GET" for f in mesh.fakes.values() for m, _ in f.requests)


def _set(cluster: str, obj: Callable[[], dict[str, Any]]) -> Callable[[Mesh], None]:
    return lambda m: m.fakes[cluster].put(obj())


def _drop(cluster: str, path: str) -> Callable[[Mesh], None]:
    return lambda m: m.fakes[cluster].remove(path)


def _edit(cluster: str, path: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Mesh], None]:
    def apply(m: Mesh) -> None:
        obj = m.fakes[cluster].get(path)
        change(obj)
    return apply


SECRETS = "/api/v1/namespaces/istio-system/secrets"
REMOTE_GREEN_IN_BLUE = f"{SECRETS}/istio-remote-secret-green"

FAILURES = {
    "istiod not ready": (
        _set("blue", lambda: fake_kube.istiod_deployment(available=0, replicas=1)),
        ["FAIL    istiod ready", "0/1 replicas available"], "crash-looping"),
    "istiod missing": (
        _drop("green", "/apis/apps/v1/namespaces/istio-system/deployments/istiod"),
        ["FAIL    istiod ready", "Deployment istio-system/istiod not found"], "helm -n istio-system list"),
    "gateway without address": (
        _set("green", lambda: fake_kube.eastwest_service(None, load_balancer_ip="34.71.20.2")),
        ["FAIL    east-west gateway address", "east-west gateway has no external address"],
        "the LoadBalancer is still provisioning or the reserved address is in another region"),
    "gateway address mismatch": (
        _set("blue", lambda: fake_kube.eastwest_service("35.199.9.9")),
        ["FAIL    east-west gateway address", "Service has 35.199.9.9, the stack output says 34.83.20.1"],
        "ephemeral address"),
    "missing network label": (
        _set("green", lambda: fake_kube.namespace("istio-system")),
        ["FAIL    istio-system network label", "istio-system has no topology.istio.io/network label"],
        "kubectl label namespace istio-system topology.istio.io/network=network2 --overwrite"),
    "wrong network label": (
        _set("green", lambda: fake_kube.namespace("istio-system", {"topology.istio.io/network": "network1"})),
        ["FAIL    istio-system network label",
         "istio-system is labelled topology.istio.io/network=network1, expected network2"], "wrong network"),
    "missing remote secret": (
        _drop("blue", REMOTE_GREEN_IN_BLUE),
        ["FAIL    remote secret for green", "Secret istio-system/istio-remote-secret-green not found"],
        "istiod in blue does not watch green's API server"),
    "remote secret with wrong annotation": (
        _edit("blue", REMOTE_GREEN_IN_BLUE,
              lambda s: s["metadata"]["annotations"].update({"networking.istio.io/cluster": "green-1a2b3c4"})),
        ["FAIL    remote secret for green",
         "annotation networking.istio.io/cluster is 'green-1a2b3c4', expected 'green'"],
        "subsets by topology.istio.io/cluster select nothing"),
    "remote secret with wrong data key": (
        _edit("blue", REMOTE_GREEN_IN_BLUE,
              lambda s: s.update({"data": {"green-1a2b3c4": s["data"]["green"]}})),
        ["FAIL    remote secret for green", "data keys are ['green-1a2b3c4'], expected 'green'"],
        "another key means another cluster name"),
    "remote secret without the multicluster label": (
        _edit("green", f"{SECRETS}/istio-remote-secret-blue", lambda s: s["metadata"].update({"labels": {}})),
        ["FAIL    remote secret for blue", 'label istio/multiCluster is not "true"'],
        "istiod only reads secrets carrying this label"),
    "remote secret with a stale endpoint": (
        _set("green", lambda: fake_kube.remote_secret("blue", "34.99.0.1")),
        ["FAIL    remote secret for blue", "kubeconfig points at https://34.99.0.1, blue's endpoint is "
         "https://34.82.10.1"], "re-created"),
    "istiod started before cacerts": (
        _set("blue", lambda: fake_kube.configmap("istio-ca-root-cert", {"root-cert.pem": root_pem("self-signed")})),
        ["FAIL    istiod uses the stack root", "not the stack root"], "istiod started before cacerts existed"),
}


@pytest.mark.parametrize("case", FAILURES, ids=list(FAILURES))
def test_each_failure_mode_is_reported_with_cause_and_fix(mesh, case: str) -> None:
    break_it, expected, hint = FAILURES[case]
    break_it(mesh)
    code, out, _ = mesh.run()
    assert code == 1
    (row,) = fail_rows(out)  # exactly the one broken thing fails
    for text in expected:
        assert text in out, out
    block = out[out.index(row):]
    assert block.splitlines()[1].strip().startswith("cause: ")
    assert block.splitlines()[2].strip().startswith("fix: ")
    assert hint in out


def test_differing_roots_fail_the_cluster_and_the_mesh(mesh) -> None:
    other = root_pem("other")
    mesh.fakes["green"].put(fake_kube.secret("cacerts", {"root-cert.pem": other}))
    mesh.fakes["green"].put(fake_kube.configmap("istio-ca-root-cert", {"root-cert.pem": other}))
    code, out, _ = mesh.run()
    assert code == 1
    green = out[out.index("== green"):out.index("== mesh-wide")]
    assert "FAIL    cacerts root = stack root" in green
    assert "its workloads reject the other clusters' certificates" in green
    mesh_part = out[out.index("== mesh-wide"):]
    assert "FAIL    same root in every cluster" in mesh_part
    assert "blue: sha256:" in mesh_part and "green: sha256:" in mesh_part
    assert "cross-cluster mTLS fails" in mesh_part
    assert "FAIL" not in out[out.index("== blue"):out.index("== green")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_cluster_gives_one_message_and_the_others_are_still_checked(mesh) -> None:
    outputs = mesh.outputs()
    outputs["kubeconfigs"]["green"] = outputs["kubeconfigs"]["green"].replace(
        mesh.fakes["green"].url, f"http://127.0.0.1:{_closed_port()}")
    code, out, err = mesh.run(outputs=outputs)
    assert code == 1
    assert "Traceback" not in out + err
    green = out[out.index("== green"):out.index("== mesh-wide")]
    assert fail_rows(green) == ["  FAIL    API server reachable  cannot connect to https://34.70.10.2: "
                                "[Errno 111] Connection refused"]
    assert "the cluster is gone or its endpoint changed" in green
    assert len([line for line in green.splitlines() if line.startswith("  PASS") or line.startswith("  FAIL")]) == 1
    assert "FAIL" not in out[out.index("== blue"):out.index("== green")]


def test_connect_timeout_points_at_the_authorized_networks() -> None:
    import urllib3

    from tools.verify.checks import ClusterOutputs
    from tools.verify.kube import describe_failure

    cluster = ClusterOutputs("blue", "us-west1", "network1", "34.82.10.1", "34.83.20.1", kubeconfig="")
    timeout = urllib3.exceptions.MaxRetryError(None, "/api/v1/namespaces/istio-system",
                                               urllib3.exceptions.ConnectTimeoutError(None, "timed out"))
    failure = describe_failure(cluster, timeout)
    assert failure.message == "timed out connecting to https://34.82.10.1"
    assert "not in authorizedNetworks" in failure.cause
    assert "ifconfig.me" in failure.fix


def test_auth_failure_is_one_clear_message(mesh) -> None:
    outputs = mesh.outputs()
    outputs["kubeconfigs"]["blue"] = mesh.fakes["blue"].kubeconfig(token="expired")
    code, out, err = mesh.run(outputs=outputs)
    assert code == 1
    blue = out[out.index("== blue"):out.index("== green")]
    assert "FAIL    API server reachable  authentication failed (401 Unauthorized)" in blue
    assert "gcloud auth login" in blue
    assert "Traceback" not in out + err


def test_missing_auth_plugin_is_named_with_the_install_command(mesh, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no gke-gcloud-auth-plugin anywhere
    outputs = mesh.outputs()
    outputs["kubeconfigs"]["green"] = gke_kubeconfig("green", "34.70.10.2", "Y2E=")
    code, out, _ = mesh.run(outputs=outputs)
    assert code == 1
    assert "FAIL    API server reachable  gke-gcloud-auth-plugin is not on PATH" in out
    assert "gcloud components install gke-gcloud-auth-plugin" in out


def test_client_construction_is_injectable(mesh) -> None:
    """A caller (or a test) can build clients its own way, e.g. from a Configuration."""
    from kubernetes import client as k8s

    seen: list[str] = []

    def factory(cluster):
        seen.append(cluster.name)
        cfg = k8s.Configuration(host=mesh.fakes[cluster.name].url,
                                api_key={"authorization": "test-token"}, api_key_prefix={"authorization": "Bearer"})
        return k8s.ApiClient(cfg)

    code, out, _ = mesh.run(client_factory=factory)
    assert code == 0, out
    assert seen == ["blue", "green"]


# --------------------------------------------------------------------------- inputs and usage


def test_missing_outputs_file_is_a_usage_error(tmp_path) -> None:
    err = io.StringIO()
    code = verify.main(["--outputs", str(tmp_path / "nope.json")], out=io.StringIO(), err=err)
    assert code == 2
    assert err.getvalue().startswith(f"verify: --outputs {tmp_path / 'nope.json'}: cannot read the file")


def test_garbled_outputs_file_is_a_usage_error(tmp_path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text('{"clusters": {"blue": ')
    err = io.StringIO()
    code = verify.main(["--outputs", str(path)], out=io.StringIO(), err=err)
    assert code == 2
    assert "is not valid JSON (line 1" in err.getvalue()
    assert "pulumi stack output --json --show-secrets > FILE" in err.getvalue()


def test_outputs_without_secrets_or_keys_name_each_problem(mesh) -> None:
    outputs = mesh.outputs()
    outputs["kubeconfigs"] = "[secret]"
    del outputs["rootCertPem"]
    del outputs["clusters"]["green"]["eastWestGatewayAddress"]
    code, out, err = mesh.run(outputs=outputs)
    assert (code, out) == (2, "")
    assert "outputs.kubeconfigs is '[secret]': export the outputs with --show-secrets" in err
    assert "outputs.rootCertPem is missing" in err
    assert "outputs.clusters.green.eastWestGatewayAddress must be a non-empty string" in err


def test_outputs_come_from_the_pulumi_cli_by_default(mesh) -> None:
    calls: list[list[str]] = []

    def runner(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps(mesh.outputs()), stderr="")

    out = io.StringIO()
    code = verify.main(["--stack", "prod"], runner=runner, out=out, err=io.StringIO())
    assert code == 0, out.getvalue()
    assert calls == [["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", "prod"]]


def test_missing_pulumi_cli_is_a_clear_usage_error() -> None:
    def runner(command, **kwargs):
        raise FileNotFoundError("pulumi")

    err = io.StringIO()
    assert verify.main([], runner=runner, out=io.StringIO(), err=err) == 2
    assert "the pulumi CLI is not on PATH" in err.getvalue()
    assert "--outputs FILE" in err.getvalue()


def test_failing_pulumi_cli_shows_its_last_line() -> None:
    def runner(command, **kwargs):
        return subprocess.CompletedProcess(command, 255, stdout="", stderr="error: no stack named 'dev' found\n")

    err = io.StringIO()
    assert verify.main(["--stack", "dev"], runner=runner, out=io.StringIO(), err=err) == 2
    assert "failed (exit 255): error: no stack named 'dev' found" in err.getvalue()


@pytest.mark.parametrize("flags, message", [
    (["--requests", "0"], "--requests 0 must be from 1 to 10000"),
    (["--tolerance", "abc"], "--tolerance 'abc' must be a number"),
])
def test_bad_flags_exit_2_naming_the_flag(flags, message) -> None:
    err = io.StringIO()
    assert verify.main(flags, out=io.StringIO(), err=err) == 2
    assert message in err.getvalue()


def test_probe_refuses_a_stack_file_that_does_not_match_the_outputs(mesh) -> None:
    config = base()
    config["clusters"][1]["network"] = "network9"
    path = write_stack_file(mesh.tmp / "Pulumi.other.yaml", config)
    code, out, err = mesh.run("--probe", "--config", str(path))
    assert (code, out) == (2, "")
    assert "the stack file lists clusters [('blue', 'network1'), ('green', 'network9')]" in err


# --------------------------------------------------------------------------- probe


def _namespaces_left(mesh: Mesh) -> list[str]:
    return [p for f in mesh.fakes.values() for p in f.objects if "/namespaces/mesh-verify-" in p]


def test_probe_within_tolerance_passes_prints_the_table_and_cleans_up(mesh) -> None:
    config = traffic_stack_file(mesh.tmp, weights={"blue": 90, "green": 10})
    answers = {"blue": {"blue": 88, "green": 12}, "green": {"blue": 91, "green": 9}}
    for f in mesh.fakes.values():
        f.job_hook = staged_mesh(answers)
    code, out, _ = mesh.run(*mesh.probe_args("--requests", "100", "--config", str(config)))
    assert code == 0, out
    assert "probe [blue] echo ready" in out  # plain progress lines: stdout is not a terminal
    assert "  FROM   TO        WEIGHT  RESPONSES  SHARE  DEVIATION  RESULT" in out
    assert "  blue   green        10%         12  12.0%    +2.0 pp  PASS" in out
    assert "  green  blue         90%         91  91.0%    +1.0 pp  PASS" in out
    assert "  green  (errors)      0%          0   0.0%    +0.0 pp  PASS" in out
    assert "probe: PASS" in out
    assert _namespaces_left(mesh) == []

    # What was deployed: the stack's own routing shapes, in every cluster, for the probe's service.
    ns = next(p for p in mesh.fakes["blue"].deleted).rsplit("/", 1)[1]
    clusters = [ClusterSpec(name=n, network=net, region=r, node_cidr="", pod_cidr="", service_cidr="",
                            master_cidr="") for n, net, r, *_ in CLUSTERS]
    service = RoutedService(host="echo", namespace=ns)
    for name, f in mesh.fakes.items():
        routing = {o["kind"]: o for o in f.posted if o["apiVersion"] == "networking.istio.io/v1"}
        assert routing == {"DestinationRule": destination_rule(service, clusters, "network", name),
                           "VirtualService": virtual_service(service, {"blue": 90, "green": 10})}
        assert f"/api/v1/namespaces/{ns}" in f.deleted


def test_probe_uses_the_cluster_subset_label_when_configured(mesh) -> None:
    config = traffic_stack_file(mesh.tmp, subsetLabel="cluster", weights={"blue": 50, "green": 50})
    created: dict[str, Any] = {}

    def hook(client, job):
        ns = job["metadata"]["namespace"]
        f = mesh.fakes[client]
        created[client] = (f.get(f"/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules/echo-clusters"),
                           f.get(f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/echo-clusters"),
                           f.get(f"/apis/apps/v1/namespaces/{ns}/deployments/echo"),
                           f.get(f"/api/v1/namespaces/{ns}"))
        return staged_mesh({client: {"blue": 50, "green": 50}})(client, job)

    for f in mesh.fakes.values():
        f.job_hook = hook
    code, out, _ = mesh.run(*mesh.probe_args("--config", str(config)))
    assert code == 0, out
    for client, (dr, vs, echo, ns) in created.items():
        assert dr["apiVersion"] == vs["apiVersion"] == "networking.istio.io/v1"
        assert [{k: s[k] for k in ("name", "labels")} for s in dr["spec"]["subsets"]] == [
            {"name": "blue", "labels": {"topology.istio.io/cluster": "blue"}},
            {"name": "green", "labels": {"topology.istio.io/cluster": "green"}}]
        assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [50, 50]
        assert echo["spec"]["template"]["spec"]["containers"][0]["args"] == [f"-text={client}", "-listen=:5678"]
        assert ns["metadata"]["labels"]["istio-injection"] == "enabled"


def test_probe_outside_tolerance_fails(mesh) -> None:
    config = traffic_stack_file(mesh.tmp, weights={"blue": 50, "green": 50})
    for f in mesh.fakes.values():
        f.job_hook = staged_mesh({"blue": {"blue": 75, "green": 25}, "green": {"blue": 50, "green": 50}})
    code, out, _ = mesh.run(*mesh.probe_args("--config", str(config), "--tolerance", "10"))
    assert code == 1
    assert "  blue   blue         50%        150  75.0%   +25.0 pp  FAIL" in out
    assert "off by +25.0 pp (tolerance 10)" in out
    assert "probe: FAIL" in out
    assert _namespaces_left(mesh) == []


def test_probe_fails_when_a_weighted_cluster_receives_nothing(mesh) -> None:
    config = traffic_stack_file(mesh.tmp, weights={"blue": 95, "green": 5})
    # Within a 10-point tolerance, but green never answers blue's client: cross-network is broken.
    for f in mesh.fakes.values():
        f.job_hook = staged_mesh({"blue": {"blue": 100}, "green": {"blue": 95, "green": 5}})
    code, out, _ = mesh.run(*mesh.probe_args("--config", str(config)))
    assert code == 1
    assert "cross-cluster traffic blue -> green received nothing" in out
    assert "probe: FAIL" in out


def test_probe_counts_errors_against_the_split(mesh) -> None:
    config = traffic_stack_file(mesh.tmp, weights={"blue": 50, "green": 50})
    for f in mesh.fakes.values():
        f.job_hook = staged_mesh({"blue": {"blue": 40, "green": 40}, "green": {"blue": 50, "green": 50}},
                                 errors={"blue": 40})
    code, out, _ = mesh.run(*mesh.probe_args("--config", str(config)))
    assert code == 1
    assert "40x error curl: (22) The requested URL returned error: 503" in out


def test_cleanup_runs_when_the_probe_times_out(mesh) -> None:
    config = traffic_stack_file(mesh.tmp, weights={"blue": 50, "green": 50})
    mesh.fakes["green"].echo_becomes_ready = False
    code, out, _ = mesh.run("--probe", "--settle", "0", "--wait-timeout", "1", "--config", str(config))
    assert code == 1
    assert "probe FAILED: timed out after 1s waiting for 'echo ready' in green" in out
    assert _namespaces_left(mesh) == []
    assert all(any(p.startswith("/api/v1/namespaces/mesh-verify-") for p in f.deleted) for f in mesh.fakes.values())


def test_cleanup_runs_when_a_create_is_refused_half_way(mesh) -> None:
    config = traffic_stack_file(mesh.tmp, weights={"blue": 50, "green": 50})
    mesh.fakes["green"].reject_create["/apis/networking.istio.io/v1"] = (500, "InternalError")
    code, out, _ = mesh.run(*mesh.probe_args("--config", str(config)))
    assert code == 1
    assert "the API server refused a probe object: 500" in out
    assert _namespaces_left(mesh) == []
    # green's namespace existed before the refusal; it is gone too.
    assert any(p.startswith("/api/v1/namespaces/mesh-verify-") for p in mesh.fakes["green"].deleted)


def test_probe_is_skipped_when_a_cluster_is_unreachable(mesh) -> None:
    outputs = mesh.outputs()
    outputs["kubeconfigs"]["green"] = mesh.fakes["green"].kubeconfig(token="expired")
    code, out, _ = mesh.run(*mesh.probe_args(), outputs=outputs)
    assert code == 1
    assert "probe skipped: green cannot be used (see above)" in out
    assert not any(m == "POST" for m, _ in mesh.fakes["blue"].requests)


# --------------------------------------------------------------------------- pure parts


def test_split_statistics() -> None:
    counts = ProbeCounts("blue", {"blue": 170, "green": 20}, errors=10, error_samples=("10x error timeout",))
    rows = {r.target: r for r in evaluate_split(counts, {"blue": 90, "green": 10}, tolerance=5)}
    assert (rows["blue"].share, rows["blue"].deviation, rows["blue"].passed) == (85.0, -5.0, True)
    assert (rows["green"].share, rows["green"].deviation, rows["green"].passed) == (10.0, 0.0, True)
    assert (rows[ERRORS].share, rows[ERRORS].passed, rows[ERRORS].note) == (5.0, True, "10x error timeout")
    tighter = {r.target: r for r in evaluate_split(counts, {"blue": 90, "green": 10}, tolerance=4.9)}
    assert not tighter["blue"].passed and not tighter[ERRORS].passed


def test_zero_weight_cluster_may_answer_nothing_but_an_empty_client_fails() -> None:
    quiet = ProbeCounts("green", {"blue": 100, "green": 0}, errors=0)
    assert all(r.passed for r in evaluate_split(quiet, {"blue": 100, "green": 0}, tolerance=0))
    empty = ProbeCounts("green", {"blue": 0, "green": 0}, errors=0)
    assert not any(r.passed for r in evaluate_split(empty, {"blue": 100, "green": 0}, tolerance=10))


def test_client_log_parsing_ignores_noise_and_groups_errors() -> None:
    log = "\n".join(["curl starting", "probe-response: blue", "probe-response: green", "probe-response: blue",
                     "probe-response: error curl: (28) timeout", "probe-response: no healthy upstream",
                     "probe-response: error curl: (28) timeout"])
    counts = parse_client_log("blue", log, ["blue", "green"])
    assert counts.counts == {"blue": 2, "green": 1}
    assert counts.errors == 3
    assert counts.error_samples == ("2x error curl: (28) timeout", "1x no healthy upstream")


def test_client_job_sends_the_bounded_requests_and_lets_the_sidecar_exit() -> None:
    spec = ProbeSpec(namespace="mesh-verify-abc123", clusters=(), subset_label="network", weights={},
                     requests=37, deadline_seconds=245)
    job = client_job(spec)
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "REQUESTS": "37", "TARGET": "http://echo.mesh-verify-abc123.svc.cluster.local:80/"}
    assert pod["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    assert "holdApplicationUntilProxyStarts" in pod["metadata"]["annotations"]["proxy.istio.io/config"]
    assert "http://localhost:15020/quitquitquit" in container["command"][2]
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 245)
    assert pod["spec"]["restartPolicy"] == "Never"


def test_client_script_counts_real_responses() -> None:
    """Run the client's shell loop with a stand-in curl: one marked line per request, errors marked."""
    import os
    import tempfile

    spec = ProbeSpec(namespace="ns", clusters=(), subset_label="network", weights={}, requests=4, deadline_seconds=60)
    script = client_job(spec)["spec"]["template"]["spec"]["containers"][0]["command"][2]
    with tempfile.TemporaryDirectory() as bin_dir:
        fake_curl = Path(bin_dir) / "curl"
        # Alternate answers; the 3rd call fails like curl -f on a 503; the quit call succeeds quietly.
        fake_curl.write_text('#!/bin/sh\ncase "$*" in *quitquitquit*) exit 0;; esac\n'
                             'n=$(cat "$0.n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$0.n"\n'
                             'if [ $n -eq 3 ]; then echo "curl: (22) error: 503" >&2; exit 22; fi\n'
                             'if [ $((n % 2)) -eq 0 ]; then echo green; else echo blue; fi\n')
        fake_curl.chmod(0o755)
        done = subprocess.run(["sh", "-c", script], env={"PATH": f"{bin_dir}:{os.environ['PATH']}",
                                                          "REQUESTS": "4", "TARGET": "http://echo"},
                              capture_output=True, text=True, timeout=10, check=True)
    counts = parse_client_log("blue", done.stdout, ["blue", "green"])
    assert counts.counts == {"blue": 1, "green": 2}
    assert counts.error_samples == ("1x error curl: (22) error: 503",)


def test_progress_redraws_in_place_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(["blue", "green"], stream, tty=True)
    progress.start("probe")
    progress.update("green", "echo ready")
    text = stream.getvalue()
    assert text.count("\x1b[2F") == 1  # moved up over the two lines once, to redraw
    assert text.endswith("\x1b[2K  blue   waiting\n\x1b[2K  green  echo ready\n")


def test_report_groups_rows_by_cluster_with_cause_and_fix() -> None:
    outputs: StackOutputs = parse_outputs({
        "clusters": {"blue": {"name": "blue", "region": "us-west1", "network": "network1", "endpoint": "1.2.3.4",
                              "eastWestGatewayAddress": "5.6.7.8"}},
        "kubeconfigs": {"blue": "apiVersion: v1"}, "rootCertPem": root_pem("mesh"),
    })
    text = format_checks([CheckResult("blue", "istiod ready", False, "0/1", "pods pending", "kubectl get pods"),
                          CheckResult("mesh", "same root", True, "sha256:ab")], outputs)
    assert text.splitlines() == [
        "== blue (network network1, us-west1) ==",
        "  RESULT  CHECK         DETAIL",
        "  FAIL    istiod ready  0/1",
        "          cause: pods pending",
        "          fix:   kubectl get pods",
        "",
        "== mesh-wide ==",
        "  RESULT  CHECK      DETAIL",
        "  PASS    same root  sha256:ab",
        "",
        "checks: 1 passed, 1 failed",
    ]


# --------------------------------------------------------------------------- probe through the edge


def edge_outputs(mesh: Mesh, url: str = "http://34.120.0.9") -> dict[str, Any]:
    return {**mesh.outputs(), "edge": {"address": url.split("//")[1], "url": url, "hosts": ["hello.example.com"]}}


def staged_edge(shares: dict[str, int], seen: list[tuple[str, str]]):
    """Stands in for the global load balancer: answers the k-th request by the given shares."""
    order = [c for c, pct in shares.items() for _ in range(pct)]

    def request(url: str, host: str) -> str | None:
        seen.append((url, host))
        return order[(len(seen) - 1) % len(order)] if order else None

    return request


def test_probe_measures_the_split_through_the_public_entry_per_cluster(mesh) -> None:
    config = traffic_stack_file(mesh.tmp, weights={"blue": 70, "green": 30})
    for f in mesh.fakes.values():
        f.job_hook = staged_mesh({"blue": {"blue": 70, "green": 30}, "green": {"blue": 70, "green": 30}})
    seen: list[tuple[str, str]] = []
    code, out, _ = mesh.run(*mesh.probe_args("--requests", "100", "--config", str(config)),
                            outputs=edge_outputs(mesh), edge_request=staged_edge({"blue": 70, "green": 30}, seen))
    assert code == 0, out
    assert "  edge   blue         70%         70  70.0%    +0.0 pp  PASS" in out
    assert "  edge   green        30%         30  30.0%    +0.0 pp  PASS" in out
    assert len(seen) == 100 and {u for u, _ in seen} == {"http://34.120.0.9"}
    (host,) = {h for _, h in seen}
    assert host.endswith(".probe.invalid")
    # Each cluster's ingress got the stack's edge shapes for the probe host, answering from itself only.
    for name, f in mesh.fakes.items():
        posted = [o for o in f.posted if o["apiVersion"] == "networking.istio.io/v1"]
        (gateway,) = [o for o in posted if o["kind"] == "Gateway"]
        assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
        assert gateway["spec"]["servers"][0]["hosts"] == [f"{gateway['metadata']['namespace']}/{host}"]
        (edge_vs,) = [o for o in posted if o["kind"] == "VirtualService" and o["spec"].get("gateways")]
        assert edge_vs["spec"]["hosts"] == [host]
        assert edge_vs["spec"]["http"][0]["route"][0]["destination"]["subset"] == name
    assert _namespaces_left(mesh) == []


def test_probe_fails_when_the_edge_sends_a_weighted_cluster_nothing(mesh) -> None:
    config = traffic_stack_file(mesh.tmp, weights={"blue": 50, "green": 50})
    for f in mesh.fakes.values():
        f.job_hook = staged_mesh({"blue": {"blue": 50, "green": 50}, "green": {"blue": 50, "green": 50}})
    code, out, _ = mesh.run(*mesh.probe_args("--requests", "40", "--config", str(config)),
                            outputs=edge_outputs(mesh), edge_request=staged_edge({"blue": 100}, []))
    assert code == 1
    assert "  edge   green        50%          0    0.0%   -50.0 pp  FAIL" in out, out
    assert "! edge traffic to green received nothing" in out


def test_through_the_edge_the_probe_also_loads_every_routed_service_the_flips_judge_counts(mesh) -> None:
    """The echo service is neither routed nor judged; the routed services' public hosts are: requests to them
    through the global load balancer are reported by the ingress gateways (reporter="source")."""
    config = write_stack_file(mesh.tmp / "Pulumi.edge.yaml", with_edge(base()))
    for f in mesh.fakes.values():
        f.job_hook = staged_mesh({"blue": {"blue": 100}, "green": {"blue": 100}})
    loaded: list[tuple[str, str]] = []

    def edge_load(url: str, host: str) -> int | None:
        loaded.append((url, host))
        return 503 if len(loaded) % 10 == 0 else 200

    code, out, _ = mesh.run(*mesh.probe_args("--requests", "30", "--config", str(config)),
                            outputs=edge_outputs(mesh), edge_request=staged_edge({"blue": 100}, []),
                            edge_load=edge_load)
    assert code == 0, out
    assert loaded == [("http://34.120.0.9", "hello.example.com")] * 30
    assert ("load: 30 requests to http://34.120.0.9 with Host hello.example.com: 27 answered, 3 failed or 5xx "
            "(counted by a flip's judge: the ingress gateways report them)") in out


def test_load_hosts_are_the_public_hosts_of_the_services_a_flip_moves() -> None:
    services = [RoutedService("a", "ns", hosts=("a.example.com", "www.a.example.com")),
                RoutedService("b", "ns", weights=(("blue", 100),), hosts=("b.example.com",)),
                RoutedService("c", "ns")]
    assert load_hosts(services) == ("a.example.com",)
    assert load_count("a.example.com", [200, 404, 503, None]) == LoadCount("a.example.com", 2, 2)


def test_without_an_edge_output_the_probe_sends_nothing_to_the_internet(mesh) -> None:
    for f in mesh.fakes.values():
        f.job_hook = staged_mesh({"blue": {"blue": 100}, "green": {"blue": 100}})
    seen: list[tuple[str, str]] = []
    code, out, _ = mesh.run(*mesh.probe_args("--requests", "10"), edge_request=staged_edge({"blue": 100}, seen))
    assert code == 0, out
    assert seen == [] and "  edge " not in out
    assert not [o for f in mesh.fakes.values() for o in f.posted if o["kind"] == "Gateway"]


def test_edge_get_sends_the_host_header_and_treats_non_200_as_a_failure() -> None:
    import http.server
    import threading

    hosts: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            hosts.append(self.headers["Host"])
            ok = self.headers["Host"] == "echo.x.probe.invalid"
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(b"green\n" if ok else b"no route")

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        assert verify_kube.edge_get(url, "echo.x.probe.invalid") == "green\n"
        assert verify_kube.edge_get(url, "other.invalid") is None
    finally:
        server.shutdown()
        server.server_close()
    assert hosts == ["echo.x.probe.invalid", "other.invalid"]
    assert verify_kube.edge_get("http://127.0.0.1:1/", "h.invalid") is None


def test_outputs_with_a_bad_edge_url_are_refused() -> None:
    raw = {"clusters": {}, "kubeconfigs": {}, "rootCertPem": "x", "edge": {"url": "34.1.2.3"}}
    with pytest.raises(OutputsError) as failure:
        parse_outputs(raw)
    assert "outputs.edge.url must be an http:// or https:// URL" in str(failure.value)


def test_the_probes_edge_objects_validate_against_istios_schemas() -> None:
    from offline.schemas import validate_document
    from tools.verify.probe import ProbeSpec, probe_edge_gateway, probe_edge_virtual_service

    clusters = tuple(ClusterSpec(name=n, network=net, region=r, node_cidr="", pod_cidr="", service_cidr="",
                                 master_cidr="") for n, net, r, *_ in CLUSTERS)
    spec = ProbeSpec(namespace="mesh-verify-abc123", clusters=clusters, subset_label="network",
                     weights={"blue": 50, "green": 50}, requests=10, deadline_seconds=60,
                     edge_url="http://34.120.0.9")
    for doc in (probe_edge_gateway(spec), *(probe_edge_virtual_service(spec, c.name) for c in clusters)):
        assert validate_document(doc) == [], doc
