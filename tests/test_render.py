"""offline.manifests and tools.render: what lands in each cluster's folder, redaction, releases, graph, CLI."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

from components.istio_primary import istiod_values
from offline import ROOT, Program, Resource, run_program
from offline.configs import base, write_stack_file
from offline.manifests import (
    CLUSTER_SCOPED_DIR,
    GRAPH_FILE,
    HELM_RELEASE_TYPE,
    REDACTED,
    RenderError,
    is_kubernetes_object,
    render,
)
from tools.render.cli import main

ECDSA = {"ca": {"algorithm": "ECDSA"}}


@pytest.fixture(scope="module")
def base_render(base_stack):
    return render(base_stack, "dev")


def _objects(rendered, cluster, kind):
    return [m for m in rendered.manifests if m.cluster == cluster and m.kind == kind]


def test_every_declared_resource_is_rendered_exactly_once(base_stack, base_render) -> None:
    customs = [r for r in base_stack.resources if r.custom]
    rendered = ([m.resource for m in base_render.manifests] + [r.resource for r in base_render.releases]
                + [c.resource for c in base_render.resources])
    assert sorted(rendered) == sorted(r.name for r in customs)
    assert len(base_render.manifests) == sum(1 for r in customs if is_kubernetes_object(r))
    assert len(base_render.releases) == len(base_stack.of_type(HELM_RELEASE_TYPE))
    assert {c.resource for c in base_render.resources if c.group == "gcp"} == {
        r.name for r in customs if r.type.startswith("gcp:")}


def test_each_cluster_folder_holds_that_clusters_objects(base_render) -> None:
    """Checked against the config, not the provider links the render itself follows."""
    clusters = base()["clusters"]
    assert base_render.clusters == sorted(c["name"] for c in clusters)
    for spec in clusters:
        name = spec["name"]
        (ns,) = [m for m in _objects(base_render, name, "Namespace") if m.name == "istio-system"]
        assert ns.document["metadata"]["labels"]["topology.istio.io/network"] == spec["network"]
        remote = {m.name for m in _objects(base_render, name, "Secret") if m.name.startswith("istio-remote-secret-")}
        assert remote == {f"istio-remote-secret-{c['name']}" for c in clusters if c["name"] != name}
        istiod = next(r for r in base_render.releases if r.cluster == name and r.release["name"] == "istiod")
        assert istiod.values["global"]["multiCluster"]["clusterName"] == name
        assert {m.kind for m in base_render.manifests if m.cluster == name} == {
            "Namespace", "Secret", "Gateway", "PeerAuthentication", "DestinationRule", "VirtualService",
            "PodMonitoring"}


def test_objects_are_what_the_api_server_receives(base_render) -> None:
    files = base_render.files()
    gateway = next(m for m in base_render.manifests if m.kind == "Gateway")
    assert list(gateway.document)[:3] == ["apiVersion", "kind", "metadata"]
    assert gateway.path.parts[-2] == "istio-system"
    text = files[gateway.path]
    body = yaml.safe_load(text)
    assert body == gateway.document
    # The engine carries numbers as floats; the provider sends integral ones as integers.
    assert body["spec"]["servers"][0]["port"]["number"] == 15443
    assert isinstance(body["spec"]["servers"][0]["port"]["number"], int)
    assert "15443.0" not in text
    namespace = next(m for m in base_render.manifests if m.kind == "Namespace")
    assert namespace.path.parts[-2] == CLUSTER_SCOPED_DIR


def test_secret_values_never_reach_a_file(base_stack, base_render) -> None:
    files = base_render.files()
    text = "\n".join(files.values())
    assert "PRIVATE KEY" not in text
    assert "-----BEGIN" not in text
    tokens = [r.outputs["data"]["token"] for r in base_stack.of_type("kubernetes:core/v1:Secret")
              if r.inputs.get("type") == "kubernetes.io/service-account-token"]
    assert tokens
    secret_values = [*tokens]
    for r in base_stack.resources:
        for key in ("stringData", "kubeconfig", "privateKeyPem", "caPrivateKeyPem"):
            value = r.inputs.get(key)
            if isinstance(value, dict):
                secret_values.extend(v for v in value.values() if isinstance(v, str))
            elif isinstance(value, str):
                secret_values.append(value)
    assert len(secret_values) > 10
    for value in secret_values:
        for line in (ln for ln in value.splitlines() if len(ln) > 20):
            assert line not in text
    for m in _objects(base_render, "blue", "Secret"):
        for field in ("data", "stringData"):
            assert set(m.document.get(field, {}).values()) <= {REDACTED}
    (cacerts,) = [m for m in _objects(base_render, "blue", "Secret") if m.name == "cacerts"]
    assert cacerts.document["stringData"] == dict.fromkeys(
        ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"), REDACTED)
    provider = next(c for c in base_render.resources if c.type == "pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == REDACTED


def test_helm_release_files(base_render) -> None:
    config = base()
    files = base_render.files()
    for spec in config["clusters"]:
        folder = PurePosixPath("clusters", spec["name"], "releases", "istio-system", "istiod")
        release = yaml.safe_load(files[folder / "release.yaml"])
        assert release["chart"] == "istiod"
        assert release["version"] == config["istio"]["version"]
        assert release["repository"] == config["istio"]["chartRepository"]
        assert release["namespace"] == "istio-system"
        assert release["name"] == "istiod"
        assert release["valuesFile"] == "values.yaml"
        assert "compat" not in release
        values = yaml.safe_load(files[folder / "values.yaml"])
        assert values == istiod_values(config["meshId"], spec["name"], spec["network"], config["clusterLocal"])
    charts = sorted(r.release["chart"] for r in base_render.releases if r.cluster == "blue")
    assert charts == ["base", "gateway", "istiod"]


def _graph(rendered):
    body = rendered.graph.split("```mermaid\n", 1)[1].split("```", 1)[0]
    labels = dict(re.findall(r'^\s*(r\d+)\["(.*)"\]$', body, re.M))
    subgraphs = dict(re.findall(r'^\s*subgraph (c\d+)\["(.*)"\]$', body, re.M))
    solid = re.findall(r"^\s*(\w+) --> (\w+)$", body, re.M)
    dotted = re.findall(r"^\s*(\w+) -\.-> (\w+)$", body, re.M)
    return body, labels, subgraphs, solid, dotted


def test_graph_has_one_node_per_resource_and_the_install_order(base_stack, base_render) -> None:
    body, labels, subgraphs, solid, dotted = _graph(base_render)
    assert body.startswith("flowchart ")
    assert len(labels) == sum(1 for r in base_stack.resources if r.custom)
    assert len(subgraphs) == sum(1 for r in base_stack.resources if not r.custom)
    assert "IstioPrimary blue" in subgraphs.values()
    assert sum(1 for line in body.splitlines() if line.strip() == "end") == len(subgraphs)
    for a, b in solid + dotted:
        assert a in labels or a in subgraphs, a
        assert b in labels or b in subgraphs, b

    # Within blue's IstioPrimary: namespace -> cacerts -> istiod <- base; istiod -> gateway release.
    primary = next(k for k, v in subgraphs.items() if v == "IstioPrimary blue")
    block = body.split(f'subgraph {primary}["IstioPrimary blue"]', 1)[1].split("\n  end", 1)[0]
    ids = {lab: i for i, lab in re.findall(r'(r\d+)\["(.*)"\]', block)}
    ns, cacerts = ids["Namespace<br/>istio-system"], ids["Secret<br/>istio-system/cacerts"]
    base, istiod = ids["helm base<br/>istio-base"], ids["helm istiod<br/>istiod"]
    eastwest = ids["helm gateway<br/>istio-eastwestgateway"]
    for edge in ((ns, cacerts), (cacerts, istiod), (base, istiod), (istiod, eastwest)):
        assert edge in solid, edge
    # The namespace waits only for its cluster's provider: a dotted link; cacerts' is implied by the namespace.
    provider = next(k for k, v in labels.items() if v == "kubernetes provider<br/>blue-k8s")
    assert (provider, ns) in dotted
    assert (provider, cacerts) not in dotted


def test_render_stops_on_what_the_engine_would_reject(base_stack) -> None:
    namespace = base_stack.named("blue-istio-system")
    stray = Resource(**{**namespace.__dict__, "urn": namespace.urn + "-stray", "provider": ""})
    with pytest.raises(RenderError, match="names no Kubernetes provider"):
        render(Program([*base_stack.resources, stray], {}, set()), "dev")

    clash = Resource(**{**namespace.__dict__, "urn": namespace.urn + "-again", "name": "blue-istio-system-2"})
    with pytest.raises(RenderError, match="Namespace istio-system is declared twice"):
        render(Program([*base_stack.resources, clash], {}, set()), "dev")


def test_a_traffic_flip_changes_only_the_virtual_service_files(base_config) -> None:
    before = render(run_program({**base_config, **ECDSA}), "dev").files()
    flipped = copy.deepcopy(base_config)
    flipped["traffic"]["weights"] = {"blue": 90, "green": 10}
    after = render(run_program({**flipped, **ECDSA}), "dev").files()
    assert before.keys() == after.keys()
    changed = sorted(str(p) for p in before if before[p] != after[p])
    # ... and the dashboard, which draws the configured weights beside the observed share.
    assert changed == [f"clusters/{c}/objects/sample/VirtualService-helloworld-clusters.yaml"
                       for c in ("blue", "green")] + ["gcp/MeshDashboard-mesh-dashboard.yaml"]


def _stack_file(tmp_path: Path, project: dict) -> Path:
    return write_stack_file(tmp_path / "Pulumi.test.yaml", project, gcp_project="render-test")


def test_cli_writes_the_render_and_prints_a_summary(base_config, tmp_path, capsys) -> None:
    out = tmp_path / "render"
    assert main(["--config", str(_stack_file(tmp_path, {**base_config, **ECDSA})), "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert f"into {out}" in summary
    assert "clusters/blue: 12 Kubernetes objects, 3 Helm releases" in summary
    # 11 per cluster, and 3 for its Secrets encryption (KMS key ring, key, the GKE agent's use of it).
    assert "gcp/: 33 GCP resources" in summary  # ... and the dashboard and 4 alert policies
    assert "cost: $" in summary and "a month" in summary
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert GRAPH_FILE in written
    assert "clusters/green/objects/sample/DestinationRule-helloworld-clusters.yaml" in written
    assert "clusters/blue/releases/istio-system/istio-eastwestgateway/values.yaml" in written
    assert "gcp/MeshNetwork-network1.yaml" in written
    gcp = list(yaml.safe_load_all((out / "gcp" / "GkeCluster-blue.yaml").read_text()))
    cluster = next(d for d in gcp if d["type"] == "gcp:container/cluster:Cluster")
    assert cluster["inputs"]["workloadIdentityConfig"]["workloadPool"] == "render-test.svc.id.goog"

    # A second run replaces the previous render; a folder that is not a render is never wiped.
    (out / "stale.yaml").write_text("old")
    assert main(["--config", str(_stack_file(tmp_path, {**base_config, **ECDSA})), "--out", str(out)]) == 0
    assert not (out / "stale.yaml").exists()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["--config", str(_stack_file(tmp_path, {**base_config, **ECDSA})), "--out", str(precious)]) == 2
    assert (precious / "notes.txt").read_text() == "keep me"
    assert "is not a previous render" in capsys.readouterr().err


def test_cli_on_a_bad_config_prints_the_problems_writes_nothing_and_exits_2(base_config, tmp_path) -> None:
    bad = copy.deepcopy(base_config)
    bad["clusters"][1]["masterCidr"] = "172.16.0.16/29"
    bad["traffic"]["weights"] = {"blue": 60, "green": 30}
    out = tmp_path / "render"
    result = subprocess.run(
        [sys.executable, "-m", "tools.render", "--config", str(_stack_file(tmp_path, bad)), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert "clusters[1].masterCidr 172.16.0.16/29 must be a /28" in result.stderr
    assert "traffic.weights sum to 90" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists()


def test_cli_rejects_an_unknown_stack(tmp_path, capsys) -> None:
    assert main(["--stack", "nope", "--out", str(tmp_path / "r")]) == 2
    assert "there is no Pulumi.nope.yaml" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
