"""A fake Kubernetes API server on 127.0.0.1 for the verify tool's tests.

It answers the REST paths the official `kubernetes` client calls (GET/POST/DELETE on
core, apps, batch and custom resources, label-selected lists, pod logs) with JSON
shaped like `kubectl get -o json` output, so the real client code path - URL building,
auth header, (de)serialisation, error mapping - runs in the tests. A "mesh" hook
decides what a probe client Job would have seen, so traffic results can be staged.

Real behaviour reproduced, and where it was read:
- errors are `Status` objects (`kind: Status`, `status: Failure`, `reason`, `code`) with the HTTP code
  the API conventions give: 401 Unauthorized without the bearer token, 404 NotFound for a missing
  object (or a create into a missing namespace), 409 AlreadyExists for a create of an existing name
  (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md,
  "Response Status Kind" and "HTTP Status codes"; the Status schema in the API reference, meta/v1 Status);
- every object carries `uid`, `resourceVersion` and `creationTimestamp` set by the server on create
  (api-conventions.md, "Metadata");
- lists answer `<Kind>List` and honour the `labelSelector` query parameter (equality terms), as the
  API concepts page describes collections (https://kubernetes.io/docs/reference/using-api/api-concepts/);
- deleting a namespace deletes every object in it (here at once; the real namespace controller
  does it asynchronously, which the callers never wait on: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/);
- a created Deployment is (or is not, `echo_becomes_ready`) available and a Job runs its hook, which
  stands in for the controllers; nothing else a controller does is modelled.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.fakes.loopback import LoopbackServer

CREATED = "2026-11-25T09:00:00Z"
_rv = itertools.count(1000)

# Collections the fake lists (GET on a namespaced collection path): plural -> (list kind, apiVersion).
LISTABLE = {"pods": ("PodList", "v1"), "endpointslices": ("EndpointSliceList", "discovery.k8s.io/v1"),
            "deployments": ("DeploymentList", "apps/v1"), "statefulsets": ("StatefulSetList", "apps/v1")}

# (client cluster, job manifest) -> (job outcome "succeeded"/"failed"/"running", client log)
JobHook = Callable[[str, Mapping[str, Any]], tuple[str, str]]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _meta(name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None,
          annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": str(next(_rv)),
                            "creationTimestamp": CREATED}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


# --------------------------------------------------------------------------- recorded-style objects


def namespace(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(name, labels={"kubernetes.io/metadata.name": name, **(labels or {})}),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def istiod_deployment(available: int = 1, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": "istiod", "istio": "pilot"}
    status: dict[str, Any] = {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas}
    if available:
        status |= {"readyReplicas": available, "availableReplicas": available}
    if replicas - available:
        status["unavailableReplicas"] = replicas - available
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta("istiod", "istio-system", labels={**labels, "app.kubernetes.io/managed-by": "Helm"}),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"istio": "pilot"}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                "name": "discovery", "image": "docker.io/istio/pilot:1.30.3",
                "ports": [{"containerPort": 15017, "protocol": "TCP"}, {"containerPort": 15012, "protocol": "TCP"}],
            }]}},
        },
        "status": status,
    }


def eastwest_service(ip: str | None, load_balancer_ip: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta("istio-eastwestgateway", "istio-system",
                          labels={"app": "istio-eastwestgateway", "istio": "eastwestgateway"}),
        "spec": {
            "type": "LoadBalancer", "clusterIP": "10.16.3.7", "loadBalancerIP": load_balancer_ip or ip,
            "selector": {"app": "istio-eastwestgateway", "istio": "eastwestgateway"},
            "ports": [{"name": "tls", "port": 15443, "targetPort": 15443, "protocol": "TCP", "nodePort": 31443}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}] if ip else []}},
    }


def secret(name: str, data: Mapping[str, str], labels: Mapping[str, str] | None = None,
           annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _meta(name, "istio-system", labels, annotations),
            "data": {k: b64(v) for k, v in data.items()}}


def configmap(name: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, "istio-system",
                                                                       labels={"istio.io/config": "true"}),
            "data": dict(data)}


def remote_kubeconfig(cluster: str, endpoint: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": cluster,
        "clusters": [{"name": cluster, "cluster": {"server": f"https://{endpoint}",
                                                    "certificate-authority-data": b64("ca")}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "users": [{"name": cluster, "user": {"token": "reader-token"}}],
    })


def remote_secret(cluster: str, endpoint: str) -> dict[str, Any]:
    return secret(f"istio-remote-secret-{cluster}", {cluster: remote_kubeconfig(cluster, endpoint)},
                  labels={"istio/multiCluster": "true"}, annotations={"networking.istio.io/cluster": cluster})


def endpoint_slice(service: str, namespace: str, ready: int, not_ready: int = 0) -> dict[str, Any]:
    """An EndpointSlice of `service` with `ready` ready and `not_ready` unready endpoints."""
    endpoints = [{"addresses": [f"10.12.0.{i + 10}"], "conditions": {"ready": i < ready, "serving": i < ready,
                                                                   "terminating": False}}
                 for i in range(ready + not_ready)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": _meta(f"{service}-abc12", namespace, labels={"kubernetes.io/service-name": service}),
            "endpoints": endpoints, "ports": [{"name": "http", "port": 5000, "protocol": "TCP"}]}


def workload(kind: str, name: str, namespace: str, images: Mapping[str, str], replicas: int = 2,
             ready: int | None = None) -> dict[str, Any]:
    """A Deployment or StatefulSet (apps/v1) selecting `app: <name>`, with `ready` of `replicas` ready."""
    labels = {"app": name}
    ready = replicas if ready is None else ready
    spec: dict[str, Any] = {"replicas": replicas, "selector": {"matchLabels": labels},
                            "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                                {"name": c, "image": image} for c, image in images.items()]}}}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    status = {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready} if ready else \
        {"replicas": replicas}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": _meta(name, namespace, labels=labels), "spec": spec,
            "status": status}


def workload_pod(owner: Mapping[str, Any], index: int, image_ids: Mapping[str, str],
                 ready: bool = True) -> dict[str, Any]:
    """A pod of `owner` as the kubelet reports it: every template container plus the injected `istio-proxy`,
    each with the `imageID` the runtime resolved (`<repo>@sha256:<digest>`; Kubernetes API, ContainerStatus)."""
    meta, template = owner["metadata"], owner["spec"]["template"]
    containers = [*template["spec"]["containers"], {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.30.3"}]
    statuses = [{"name": c["name"], "image": c["image"], "ready": ready, "restartCount": 0,
                 "imageID": image_ids.get(c["name"], f"docker.io/istio/proxyv2@sha256:{'e' * 64}")}
                for c in containers]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _meta(f"{meta['name']}-{index}", meta["namespace"], labels=template["metadata"]["labels"]),
            "spec": {"containers": containers},
            "status": {"phase": "Running", "containerStatuses": statuses}}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


# --------------------------------------------------------------------------- the server


class FakeCluster(LoopbackServer):
    """One API server: an object store keyed by REST path, plus behaviour knobs for the probe."""

    def __init__(self, name: str, token: str = "test-token") -> None:
        self.name = name
        self.token = token
        self.objects: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        # every object as it was posted (before the fake's status and metadata additions)
        self.posted: list[dict[str, Any]] = []
        self.echo_becomes_ready = True
        self.job_hook: JobHook | None = None
        # path prefix -> (code, reason) to fail a create with
        self.reject_create: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def kubeconfig(self, token: str | None = None) -> str:
        """A plain kubeconfig (bearer token, no exec plugin) pointing at this server."""
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": self.name,
            "clusters": [{"name": self.name, "cluster": {"server": self.url}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": self.name}}],
            "users": [{"name": self.name, "user": {"token": token or self.token}}],
        })

    # -- object store

    @staticmethod
    def path_of(obj: Mapping[str, Any]) -> str:
        api = obj["apiVersion"]
        base = f"/api/{api}" if "/" not in api else f"/apis/{api}"
        kind = obj["kind"]
        plural = {"Namespace": "namespaces", "Deployment": "deployments", "Service": "services",
                  "Secret": "secrets", "ConfigMap": "configmaps", "Job": "jobs", "Pod": "pods",
                  "StatefulSet": "statefulsets",
                  "DestinationRule": "destinationrules", "VirtualService": "virtualservices",
                  "EndpointSlice": "endpointslices",
                  "Gateway": "gateways"}[kind]
        meta = obj["metadata"]
        if kind == "Namespace":
            return f"{base}/namespaces/{meta['name']}"
        return f"{base}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"

    def put(self, obj: dict[str, Any]) -> None:
        with self._lock:
            self.objects[self.path_of(obj)] = obj

    def get(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path)

    def remove(self, path: str) -> None:
        with self._lock:
            self.objects.pop(path, None)

    def in_namespace(self, ns: str) -> list[dict[str, Any]]:
        return [o for p, o in self.objects.items() if f"/namespaces/{ns}/" in p]

    # -- HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {fake.token}":
                    return True
                self._send(401, _status(401, "Unauthorized", "Unauthorized"))
                return False

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append(("GET", self.path))
                if not self._authorized():
                    return
                if url.path.endswith("/log"):
                    pod = url.path.removesuffix("/log")
                    if pod not in fake.objects:
                        self._send(404, _status(404, "NotFound", "pod not found"))
                    else:
                        self._send(200, fake.logs.get(pod, ""), "text/plain")
                    return
                obj = fake.get(url.path)
                if obj is not None:
                    self._send(200, obj)
                    return
                plural = url.path.rsplit("/", 1)[-1]
                if plural in LISTABLE and "/namespaces/" in url.path:
                    # A namespaced list, filtered by an equality-based labelSelector (k=v,k2=v2: all must
                    # match), as the API server answers `kubectl get <kind> -l …`.
                    selector = parse_qs(url.query).get("labelSelector", [""])[0]
                    wanted = dict(s.split("=", 1) for s in selector.split(",") if s)
                    items = [o for p, o in fake.objects.items() if p.rsplit("/", 1)[0] == url.path
                             and all(o["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]
                    kind, api = LISTABLE[plural]
                    self._send(200, {"kind": kind, "apiVersion": api, "metadata": {"resourceVersion": "1"},
                                     "items": items})
                    return
                name = url.path.rsplit("/", 1)[-1]
                self._send(404, _status(404, "NotFound", f'"{name}" not found'))

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append(("POST", self.path))
                if not self._authorized():
                    return
                body = self._body()
                fake.posted.append(json.loads(json.dumps(body)))
                for prefix, (code, reason) in fake.reject_create.items():
                    if url.path.startswith(prefix):
                        self._send(code, _status(code, reason, f"{reason} (staged by the test)"))
                        return
                meta = body.setdefault("metadata", {})
                if "/namespaces/" in url.path:
                    ns = url.path.split("/namespaces/")[1].split("/")[0]
                    if f"/api/v1/namespaces/{ns}" not in fake.objects:
                        self._send(404, _status(404, "NotFound", f'namespaces "{ns}" not found'))
                        return
                    meta["namespace"] = ns
                path = f"{url.path}/{meta['name']}"
                if path in fake.objects:
                    self._send(409, _status(409, "AlreadyExists", f'"{meta["name"]}" already exists'))
                    return
                meta |= {"uid": str(uuid.uuid4()), "resourceVersion": str(next(_rv)), "creationTimestamp": CREATED}
                fake._admit(path, body)
                self._send(201, body)

            def do_DELETE(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append(("DELETE", self.path))
                if not self._authorized():
                    return
                if url.path not in fake.objects:
                    self._send(404, _status(404, "NotFound", "not found"))
                    return
                fake.deleted.append(url.path)
                fake.remove(url.path)
                if url.path.startswith("/api/v1/namespaces/") and url.path.count("/") == 4:
                    ns = url.path.rsplit("/", 1)[1]
                    for p in [p for p in fake.objects if f"/namespaces/{ns}/" in p]:
                        fake.remove(p)
                self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                 "details": {"name": url.path.rsplit("/", 1)[1]}})

        return Handler

    def _admit(self, path: str, body: dict[str, Any]) -> None:
        """Store a created object and play what the cluster's controllers would do with it."""
        kind = body.get("kind")
        if kind == "Namespace":
            body["status"] = {"phase": "Active"}
        if kind == "Deployment":
            replicas = body["spec"].get("replicas", 1)
            body["status"] = ({"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}
                              if self.echo_becomes_ready else {"replicas": replicas, "unavailableReplicas": replicas})
        with self._lock:
            self.objects[path] = body
        if kind == "Job":
            outcome, log = self.job_hook(self.name, body) if self.job_hook else ("running", "")
            body["status"] = {"active": 1} if outcome == "running" else {outcome: 1}
            ns = body["metadata"]["namespace"]
            template = body["spec"]["template"]
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": _meta(f"{body['metadata']['name']}-x7k2p", ns, template["metadata"].get("labels")),
                   "spec": template["spec"], "status": {"phase": "Succeeded" if outcome == "succeeded" else "Running"}}
            self.put(pod)
            self.logs[self.path_of(pod)] = log


def served_splits(clusters: Mapping[str, FakeCluster], namespace: str = "sample",
                  name: str = "helloworld-clusters") -> dict[str, dict[str, int]]:
    """Per cluster, the split its routing VirtualService serves (route weights per subset), as read back."""
    out = {}
    for cluster, fake in clusters.items():
        vs = fake.get(f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/{name}")
        out[cluster] = {r["destination"]["subset"]: r["weight"] for r in vs["spec"]["http"][0]["route"]}
    return out


def staged_mesh(answers: Mapping[str, Mapping[str, int]], errors: Mapping[str, int] | None = None,
                outcome: str = "succeeded") -> JobHook:
    """A job hook standing in for the data path: per client cluster, the percentage of its
    REQUESTS each cluster answers (e.g. {"blue": {"blue": 90, "green": 10}}), plus failed requests."""
    def hook(client: str, job: Mapping[str, Any]) -> tuple[str, str]:
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        requests = int(env["REQUESTS"])
        lines: list[str] = ["starting"]
        for target, pct in answers.get(client, {}).items():
            lines += [f"probe-response: {target}"] * (requests * pct // 100)
        failed = (errors or {}).get(client, 0)
        lines += ["probe-response: error curl: (22) The requested URL returned error: 503"] * failed
        return outcome, "\n".join(lines) + "\n"

    return hook
