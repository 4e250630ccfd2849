"""What one offline run declared, as files a reviewer can read and a validator can check.

Pure: `render` turns a recorded `Program` into a `Rendered` (per cluster, every Kubernetes
object as the API server would receive it and every Helm release with its values; the
GCP and other resources with their inputs; the resource graph as a Mermaid flowchart).
Secret values never reach a file. Writing and diffing live in the `render` command
(`tools/render`); schema checks in `offline.schemas`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from components.names import GKE_CLUSTER_TYPE
from components.names import HELM_RELEASE as HELM_RELEASE_TYPE
from components.names import K8S_PROVIDER as K8S_PROVIDER_TYPE
from offline.engine import Program, Resource

REDACTED = "<redacted>"
# '_' is not allowed in a namespace name, so this folder never clashes with a namespace.
CLUSTER_SCOPED_DIR = "_cluster"
GRAPH_FILE = "graph.md"
# Release inputs the Python SDK adds for itself; they are not part of the Helm release.
RELEASE_SDK_INPUTS = frozenset({"compat"})
RELEASE_KEYS = ("name", "namespace", "chart", "version", "repositoryOpts", "values")
# The Secret fields whose values are key material; their keys are kept so a reviewer sees the shape.
SECRET_DATA_FIELDS = frozenset({"data", "stringData"})
PEM_MARK = "-----BEGIN "


class RenderError(Exception):
    """What the program declared cannot be rendered faithfully (the engine would reject it too)."""


# ------------------------------------------------------------------ rendered documents


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object in one cluster, as the API server would receive it."""

    cluster: str
    resource: str  # the Pulumi resource name
    document: dict[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.document["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.document["kind"])

    @property
    def name(self) -> str:
        return str(self.document.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.document.get("metadata", {}).get("namespace", ""))

    @property
    def path(self) -> PurePosixPath:
        scope = self.namespace or CLUSTER_SCOPED_DIR
        return PurePosixPath("clusters", self.cluster, "objects", scope, f"{self.kind}-{self.name}.yaml")


@dataclass(frozen=True)
class Release:
    """One Helm release: what `helm install` would be given, with its values apart."""

    cluster: str
    resource: str
    release: dict[str, Any]  # name, namespace, chart, version, repository, other options
    values: dict[str, Any]

    @property
    def folder(self) -> PurePosixPath:
        return PurePosixPath("clusters", self.cluster, "releases", self.release["namespace"], self.release["name"])


@dataclass(frozen=True)
class CloudResource:
    """A resource outside the clusters (GCP, pulumi-tls, random, providers) with its inputs."""

    group: str  # "gcp" or "other"
    component: str  # e.g. "MeshNetwork-network1"; "_stack" at the top level
    resource: str
    type: str
    inputs: dict[str, Any]

    @property
    def path(self) -> PurePosixPath:
        return PurePosixPath(self.group, f"{self.component}.yaml")


@dataclass(frozen=True)
class Rendered:
    """Everything one run declared, ready to be written or validated."""

    stack: str
    manifests: tuple[Manifest, ...]
    releases: tuple[Release, ...]
    resources: tuple[CloudResource, ...]
    graph: str
    graph_stats: tuple[int, int, int]  # nodes, subgraphs, edges

    @property
    def clusters(self) -> list[str]:
        return sorted({m.cluster for m in self.manifests} | {r.cluster for r in self.releases})

    def files(self) -> dict[PurePosixPath, str]:
        """Every file of the render, by path relative to the output folder."""
        files: dict[PurePosixPath, str] = {}
        for m in self.manifests:
            files[m.path] = _header(m.resource) + _dump(m.document)
        for r in self.releases:
            files[r.folder / "release.yaml"] = _header(r.resource) + _dump({**r.release, "valuesFile": "values.yaml"})
            files[r.folder / "values.yaml"] = _header(r.resource) + _dump(r.values)
        grouped: dict[PurePosixPath, list[CloudResource]] = {}
        for c in self.resources:
            grouped.setdefault(c.path, []).append(c)
        for path, items in grouped.items():
            docs = [{"type": c.type, "name": c.resource, "inputs": c.inputs} for c in items]
            files[path] = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=120)
        files[PurePosixPath(GRAPH_FILE)] = self.graph
        return dict(sorted(files.items()))

    def summary(self, out: Path | str) -> str:
        """A few lines for the terminal: what went where."""
        lines = [f"rendered stack {self.stack!r} offline into {out}"]
        for cluster in self.clusters:
            objects = sum(1 for m in self.manifests if m.cluster == cluster)
            releases = [r.release["name"] for r in self.releases if r.cluster == cluster]
            lines.append(f"  clusters/{cluster}: {objects} Kubernetes objects, {len(releases)} Helm releases "
                         f"({', '.join(sorted(releases))})")
        gcp = sum(1 for c in self.resources if c.group == "gcp")
        other = sorted({c.type.split(":")[0] for c in self.resources if c.group == "other"})
        lines.append(f"  gcp/: {gcp} GCP resources")
        lines.append(f"  other/: {len(self.resources) - gcp} other resources ({', '.join(other)})")
        nodes, subgraphs, edges = self.graph_stats
        lines.append(f"  {GRAPH_FILE}: {nodes} resources in {subgraphs} components, {edges} edges")
        return "\n".join(lines)


def _header(resource: str) -> str:
    return f"# Pulumi resource {resource}; rendered offline by python -m tools.render\n"


def _dump(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, width=120)


# ------------------------------------------------------------------ pure helpers


def normalize(value: Any) -> Any:
    """Turn engine values into what the provider sends: sorted maps, integral numbers as integers.

    The engine carries every number as a float64; the Kubernetes provider encodes an
    integral one as a JSON integer, so `15443.0` is `15443` on the wire. PEM blocks
    come from the offline mocks (fresh keys every process), so they are shown as a
    stand-in, which also keeps renders comparable across runs.
    """
    if isinstance(value, dict):
        return {k: normalize(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and PEM_MARK in value:
        kind = value.split(PEM_MARK, 1)[1].split("-----", 1)[0]
        return f"<{kind} PEM, issued at deploy time>"
    return value


def redact(value: Any, secret_paths: Iterable[str], shaped: Iterable[str] = (), path: str = "") -> Any:
    """Replace secret values by REDACTED.

    `secret_paths` are the paths the engine received as secrets (offline.engine.unwrap
    builds them the same way: `a.b[0].c`). A path in `shaped` that holds a map keeps its
    keys and loses only its values (a Secret's `data`, so a reviewer still sees the keys).
    """
    secret_paths, shaped = set(secret_paths), set(shaped)
    if path in shaped and isinstance(value, dict):
        return dict.fromkeys(value, REDACTED)
    if path and path in secret_paths:
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, secret_paths, shaped, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret_paths, shaped, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def is_kubernetes_object(r: Resource) -> bool:
    """A custom resource of the Kubernetes provider that is an API object (not a Helm release)."""
    return r.custom and r.type.startswith("kubernetes:") and r.type != HELM_RELEASE_TYPE


def cluster_of(program: Program, r: Resource) -> str:
    """The GkeCluster whose `<cluster>-k8s` provider `r` is registered with (from the recorded links)."""
    provider = program.by_urn.get(r.provider_urn)
    if provider is None or provider.type != K8S_PROVIDER_TYPE:
        raise RenderError(f"{r.type} {r.name} names no Kubernetes provider of this program "
                          f"({r.provider or 'none'}); it would go to whatever cluster kubectl points at")
    owner = program.by_urn.get(provider.parent)
    if owner is None or owner.type != GKE_CLUSTER_TYPE:
        raise RenderError(f"{r.type} {r.name}: its provider {provider.name} does not belong to a GkeCluster")
    return owner.name


def kubernetes_document(r: Resource) -> dict[str, Any]:
    """The object the provider sends to the API server, secret values redacted."""
    shaped = SECRET_DATA_FIELDS if r.inputs.get("kind") == "Secret" else frozenset()
    body = normalize(redact(r.inputs, r.secret_inputs, shaped))
    ordered = {k: body[k] for k in ("apiVersion", "kind", "metadata") if k in body}
    ordered.update({k: v for k, v in body.items() if k not in ordered})
    return ordered


def helm_release(r: Resource, cluster: str) -> Release:
    """A helm.v3.Release as chart, version, repository, name, namespace (+ options) and values."""
    inputs = normalize(redact(r.inputs, r.secret_inputs))
    repo = inputs.get("repositoryOpts") or {}
    release: dict[str, Any] = {
        "name": inputs.get("name") or r.name,
        "namespace": inputs.get("namespace") or "default",
        "chart": inputs["chart"],
        "version": inputs.get("version"),
        "repository": repo.get("repo"),
    }
    extra_repo = {k: v for k, v in repo.items() if k != "repo"}
    if extra_repo:
        release["repositoryOptions"] = extra_repo
    release.update({k: v for k, v in inputs.items() if k not in RELEASE_KEYS and k not in RELEASE_SDK_INPUTS})
    return Release(cluster=cluster, resource=r.name, release=release, values=inputs.get("values") or {})


def _component_label(program: Program, r: Resource) -> str:
    parent = program.by_urn.get(r.parent)
    while parent is not None and parent.custom:
        parent = program.by_urn.get(parent.parent)
    if parent is None:
        return "_stack"
    return f"{parent.type.rsplit(':', 1)[-1]}-{parent.name}"


def _check_unique(manifests: Sequence[Manifest]) -> None:
    """Two resources may not declare one Kubernetes object (duplicate URNs the offline engine refuses)."""
    objects: dict[tuple[str, str, str, str], str] = {}
    for m in manifests:
        group = m.api_version.rsplit("/", 1)[0] if "/" in m.api_version else ""
        key = (m.cluster, f"{m.kind}.{group}", m.namespace, m.name)
        if key in objects:
            where = f"{m.namespace}/{m.name}" if m.namespace else m.name
            raise RenderError(f"cluster {m.cluster}: {m.kind} {where} is declared twice "
                              f"({objects[key]} and {m.resource}); the two would overwrite each other")
        objects[key] = m.resource


def render(program: Program, stack: str) -> Rendered:
    """Program -> every rendered document and the graph (pure; nothing is written)."""
    manifests: list[Manifest] = []
    releases: list[Release] = []
    resources: list[CloudResource] = []
    for r in program.resources:
        if not r.custom:
            continue
        if r.type == HELM_RELEASE_TYPE:
            releases.append(helm_release(r, cluster_of(program, r)))
        elif is_kubernetes_object(r):
            manifests.append(Manifest(cluster=cluster_of(program, r), resource=r.name,
                                      document=kubernetes_document(r)))
        else:
            resources.append(CloudResource(
                group="gcp" if r.type.startswith("gcp:") else "other",
                component=_component_label(program, r), resource=r.name, type=r.type,
                inputs=normalize(redact(r.inputs, r.secret_inputs)),
            ))
    _check_unique(manifests)
    graph, stats = mermaid_graph(program)
    return Rendered(
        stack=stack,
        manifests=tuple(sorted(manifests, key=lambda m: str(m.path))),
        releases=tuple(sorted(releases, key=lambda r: str(r.folder))),
        resources=tuple(sorted(resources, key=lambda c: (c.group, c.component, c.type, c.resource))),
        graph=graph,
        graph_stats=stats,
    )


# ------------------------------------------------------------------ the graph


def _node_label(r: Resource) -> str:
    if is_kubernetes_object(r):
        meta = r.inputs.get("metadata") or {}
        where = f"{meta['namespace']}/{meta.get('name', '')}" if meta.get("namespace") else meta.get("name", r.name)
        return f"{r.inputs.get('kind', r.type.rsplit(':', 1)[-1])}<br/>{where}"
    if r.type == HELM_RELEASE_TYPE:
        return f"helm {r.inputs.get('chart')}<br/>{r.inputs.get('name') or r.name}"
    if r.type.startswith("pulumi:providers:"):
        return f"{r.type.rsplit(':', 1)[-1]} provider<br/>{r.name}"
    module = r.type.split(":")[1].split("/")[0] if r.type.count(":") == 2 else ""
    kind = r.type.rsplit(":", 1)[-1]
    return f"{module}.{kind}<br/>{r.name}" if module and module != "index" else f"{kind}<br/>{r.name}"


def _quote(label: str) -> str:
    return '"' + label.replace('"', "#quot;") + '"'


def mermaid_graph(program: Program) -> tuple[str, tuple[int, int, int]]:
    """The resource graph as a Mermaid flowchart in markdown (GitHub renders it).

    Components are subgraphs; each custom resource is one node. A solid arrow A --> B
    means B waits for A (an explicit `depends_on` or an input taken from A). A dotted
    arrow is the link to a Kubernetes provider, drawn only where no dependency on an
    object of the same provider already implies it.
    """
    customs = sorted((r for r in program.resources if r.custom), key=lambda r: (r.type, r.name, r.urn))
    components = sorted((r for r in program.resources if not r.custom), key=lambda r: (r.type, r.name, r.urn))
    ids = {r.urn: f"r{i}" for i, r in enumerate(customs)}
    ids.update({r.urn: f"c{i}" for i, r in enumerate(components)})
    children: dict[str, list[Resource]] = {}
    for r in [*components, *customs]:
        children.setdefault(r.parent if r.parent in program.by_urn else "", []).append(r)

    lines = ["flowchart LR"]

    def emit(r: Resource, depth: int) -> None:
        pad = "  " * depth
        if r.custom:
            lines.append(f"{pad}{ids[r.urn]}[{_quote(_node_label(r))}]")
            return
        lines.append(f"{pad}subgraph {ids[r.urn]}[{_quote(r.type.rsplit(':', 1)[-1] + ' ' + r.name)}]")
        for child in children.get(r.urn, []):
            emit(child, depth + 1)
        lines.append(f"{pad}end")

    for r in children.get("", []):
        emit(r, 1)

    edges: list[str] = []
    seen: set[tuple[str, str]] = set()
    for r in customs:
        deps = set(r.dependencies)
        for urns in r.property_dependencies.values():
            deps.update(urns)
        for d in sorted(deps):
            if d in ids and (ids[d], ids[r.urn]) not in seen:
                seen.add((ids[d], ids[r.urn]))
                edges.append(f"  {ids[d]} --> {ids[r.urn]}")
        provider = r.provider_urn
        implied = any(program.by_urn[d].provider_urn == provider for d in deps if d in program.by_urn)
        if provider in ids and not implied and (ids[provider], ids[r.urn]) not in seen:
            seen.add((ids[provider], ids[r.urn]))
            edges.append(f"  {ids[provider]} -.-> {ids[r.urn]}")
    lines.extend(edges)

    text = "\n".join([
        "# Resource graph",
        "",
        "Rendered offline by `make render`. Boxes are components; each node is one resource Pulumi creates.",
        "A solid arrow `A --> B`: B waits for A (explicit `depends_on` or an input taken from A's outputs).",
        "A dotted arrow: the Kubernetes provider (the cluster) an object is created through, drawn only where",
        "no arrow from an object of the same cluster already implies it.",
        "",
        "```mermaid",
        *lines,
        "```",
        "",
    ])
    return text, (len(customs), len(components), len(edges))
