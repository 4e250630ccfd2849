"""The verify command's Kubernetes I/O: clients per cluster, reading the objects, running the probe.

Everything that decides PASS/FAIL lives in `tools.verify.checks` and `tools.verify.probe`;
this module only talks to the API servers (through the official `kubernetes` client) and
turns every way that can go wrong into one readable message per cluster.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.config import ConfigException, load_kube_config_from_dict

from components.names import EASTWEST_RELEASE, ISTIO_NAMESPACE, NETWORKING_API, remote_secret_name
from tools.deadline import DeadlineExceeded, call_with_deadline
from tools.verify.checks import (
    CACERTS_SECRET,
    ISTIOD_DEPLOYMENT,
    ROOT_CONFIGMAP,
    ClusterError,
    ClusterOutputs,
    ClusterSnapshot,
    StackOutputs,
)
from tools.verify.probe import (
    CLIENT_CONTAINER,
    CLIENT_JOB,
    ECHO,
    PER_REQUEST_TIMEOUT_SECONDS,
    LoadCount,
    ProbeCounts,
    ProbeSpec,
    client_job,
    echo_deployment,
    echo_service,
    edge_counts,
    load_count,
    namespace_manifest,
    parse_client_log,
    probe_destination_rule,
    probe_edge_gateway,
    probe_edge_virtual_service,
    probe_virtual_service,
)

# (connect, read) seconds for every API call: an address missing from the authorized
# networks shows up as a connect timeout, which must not hang the command.
REQUEST_TIMEOUT: tuple[float, float] = (10.0, 30.0)
# ... and the whole request: a dripping server keeps every single read under its timeout
# (tools/deadline.py), so each call of an ApiClient from default_client_factory gets a total deadline.
REQUEST_DEADLINE_SECONDS = 45.0
AUTH_PLUGIN = "gke-gcloud-auth-plugin"

ClientFactory = Callable[[ClusterOutputs], k8s.ApiClient]


class ClusterFailure(Exception):
    """A cluster cannot be used at all; carries the one message shown for it."""

    def __init__(self, message: str, cause: str, fix: str) -> None:
        super().__init__(message)
        self.message, self.cause, self.fix = message, cause, fix


def default_client_factory(cluster: ClusterOutputs) -> k8s.ApiClient:
    """An ApiClient from the stack's kubeconfig (exec gke-gcloud-auth-plugin, or any plain kubeconfig)."""
    try:
        doc = yaml.safe_load(cluster.kubeconfig)
    except yaml.YAMLError as error:
        raise ClusterFailure(f"the kubeconfig output is not YAML: {error}", "the outputs file was edited or truncated",
                             "re-export with `pulumi stack output --json --show-secrets`") from None
    for user in (doc or {}).get("users") or []:
        command = ((user or {}).get("user") or {}).get("exec", {}).get("command")
        if command and shutil.which(command) is None:
            raise ClusterFailure(
                f"{command} is not on PATH: the kubeconfig authenticates through it",
                "GKE kubeconfigs need Google's credential plugin",
                "`gcloud components install gke-gcloud-auth-plugin` (or your OS package), then "
                "`gcloud auth login`")
    configuration = k8s.Configuration()
    try:
        load_kube_config_from_dict(doc, client_configuration=configuration, persist_config=False)
    except (ConfigException, KeyError, TypeError, AttributeError) as error:
        raise ClusterFailure(f"the kubeconfig cannot be used: {error}", "the outputs file was edited or truncated",
                             "re-export with `pulumi stack output --json --show-secrets`") from None
    # One retry at most: an unreachable control plane should fail in seconds, not minutes.
    configuration.retries = 1
    api = k8s.ApiClient(configuration)
    api.rest_client.pool_manager = DeadlinePool(api.rest_client.pool_manager, REQUEST_DEADLINE_SECONDS,
                                                f"the API server {cluster.endpoint}")
    return api


class DeadlinePool:
    """A urllib3 pool manager whose `request` (every call the kubernetes client makes) has a total deadline.

    The client asks for `preload_content=False` and reads the body later (kubernetes/client/rest.py);
    the body is read here, inside the deadline, and urllib3 keeps it for that later read (`.data`).
    """

    def __init__(self, inner: Any, seconds: float, what: str) -> None:
        self._inner, self._seconds, self._what = inner, seconds, what

    def request(self, *args: Any, **kwargs: Any) -> Any:
        def whole() -> Any:
            response = self._inner.request(*args, **kwargs)
            _ = response.data  # reads and caches the whole body
            return response

        return call_with_deadline(whole, self._seconds, self._what)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def describe_failure(cluster: ClusterOutputs, error: BaseException) -> ClusterFailure:
    """Map what the client raises to a message, its likely cause and the fix."""
    host = f"https://{cluster.endpoint}"
    if isinstance(error, ClusterFailure):
        return error
    if isinstance(error, DeadlineExceeded):
        return ClusterFailure(f"{host} gave no complete answer within {error.seconds:g}s",
                              "the API server or the network to it is answering too slowly",
                              f"retry; check `kubectl --server {host} get ns --request-timeout=30s`")
    if isinstance(error, ApiException):
        if error.status == 401:
            return ClusterFailure(
                "authentication failed (401 Unauthorized)",
                "gcloud credentials are missing or expired, or gke-gcloud-auth-plugin could not get a token",
                "`gcloud auth login` (and `gcloud auth application-default login`), then retry")
        if error.status == 403:
            return ClusterFailure(
                f"forbidden (403): {_api_message(error)}",
                "your account may reach the cluster but lacks read access to istio-system",
                "grant roles/container.developer (or an RBAC binding) to the account running verify")
        return ClusterFailure(f"API error {error.status} {error.reason}: {_api_message(error)}",
                              "the API server rejected the request", f"retry; check `kubectl --server {host} get ns`")
    reason = error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) else error
    if isinstance(reason, urllib3.exceptions.SSLError):
        return ClusterFailure(f"TLS verification of {host} failed",
                              "the CA in the kubeconfig is not this cluster's (was the cluster re-created?)",
                              "`pulumi refresh` then `pulumi up` to refresh the outputs")
    # urllib3's NewConnectionError (refused, no route, DNS) subclasses ConnectTimeoutError: test it first.
    if isinstance(reason, (urllib3.exceptions.NewConnectionError, ConnectionError, urllib3.exceptions.ProtocolError)):
        return ClusterFailure(f"cannot connect to {host}: {_short(reason).rsplit(': ', 1)[-1]}",
                              "the cluster is gone or its endpoint changed since the last `pulumi up`",
                              "`pulumi refresh` then `pulumi up`; check `gcloud container clusters list`")
    if isinstance(reason, (urllib3.exceptions.ConnectTimeoutError, socket.timeout, TimeoutError)):
        return ClusterFailure(f"timed out connecting to {host}",
                              "this machine's egress address is not in authorizedNetworks (GKE drops the "
                              "connection), or the cluster is down",
                              "add `$(curl -s https://ifconfig.me)/32` to authorizedNetworks and `pulumi up`")
    return ClusterFailure(f"cannot use the API server {host}: {_short(error)}",
                          "unexpected client error", "run with a working `kubectl` against the same kubeconfig")


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


def _api_message(error: ApiException) -> str:
    try:
        body = yaml.safe_load(error.body or "")
        return str(body.get("message")) if isinstance(body, dict) else str(error.reason)
    except yaml.YAMLError:
        return str(error.reason)


def _as_json(api: k8s.ApiClient, obj: Any) -> dict[str, Any]:
    return api.sanitize_for_serialization(obj)


def _read(api: k8s.ApiClient, call: Callable[..., Any], *args: str) -> dict[str, Any] | None:
    """One GET; a missing object is None (the checks report it), anything else is raised."""
    try:
        return _as_json(api, call(*args, _request_timeout=REQUEST_TIMEOUT))
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def read_snapshot(api: k8s.ApiClient, cluster: ClusterOutputs, others: Sequence[str]) -> ClusterSnapshot:
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    ns = ISTIO_NAMESPACE
    return ClusterSnapshot(
        name=cluster.name,
        istio_namespace=_read(api, core.read_namespace, ns),
        istiod=_read(api, apps.read_namespaced_deployment, ISTIOD_DEPLOYMENT, ns),
        eastwest_service=_read(api, core.read_namespaced_service, EASTWEST_RELEASE, ns),
        cacerts=_read(api, core.read_namespaced_secret, CACERTS_SECRET, ns),
        root_configmap=_read(api, core.read_namespaced_config_map, ROOT_CONFIGMAP, ns),
        remote_secrets={o: _read(api, core.read_namespaced_secret, remote_secret_name(o), ns) for o in others},
    )


def connect(outputs: StackOutputs, factory: ClientFactory) -> tuple[dict[str, k8s.ApiClient], list[ClusterError]]:
    """A client per cluster; a cluster whose client cannot be built gets one error instead."""
    clients: dict[str, k8s.ApiClient] = {}
    errors: list[ClusterError] = []
    for c in outputs.clusters:
        try:
            clients[c.name] = factory(c)
        except Exception as error:
            f = describe_failure(c, error)
            errors.append(ClusterError(c.name, f.message, f.cause, f.fix))
    return clients, errors


def collect(outputs: StackOutputs,
            clients: Mapping[str, k8s.ApiClient]) -> tuple[list[ClusterSnapshot], list[ClusterError]]:
    """Read every reachable cluster in parallel (a slow or dead control plane does not delay the others)."""
    def one(c: ClusterOutputs) -> ClusterSnapshot | ClusterError:
        try:
            return read_snapshot(clients[c.name], c, [o for o in outputs.names if o != c.name])
        except Exception as error:
            f = describe_failure(c, error)
            return ClusterError(c.name, f.message, f.cause, f.fix)

    todo = [c for c in outputs.clusters if c.name in clients]
    with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
        done = list(pool.map(one, todo))
    return [d for d in done if isinstance(d, ClusterSnapshot)], [d for d in done if isinstance(d, ClusterError)]


# --------------------------------------------------------------------------- probe


def edge_get(url: str, host: str) -> str | None:
    """One GET through the public entry with the probe's Host; None if it failed (any status but 200)."""
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=PER_REQUEST_TIMEOUT_SECONDS))
    try:
        response = http.request("GET", url, headers={"Host": host})
    except urllib3.exceptions.HTTPError:
        return None
    return response.data.decode(errors="replace") if response.status == 200 else None


def edge_status(url: str, host: str) -> int | None:
    """One GET through the public entry with a routed service's Host: its status, None if nothing answered."""
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=PER_REQUEST_TIMEOUT_SECONDS))
    try:
        return http.request("GET", url, headers={"Host": host}).status
    except urllib3.exceptions.HTTPError:
        return None


class ProbeTimeout(Exception):
    """A bounded wait ran out."""


@dataclass
class ProbeOutcome:
    counts: list[ProbeCounts] = field(default_factory=list)
    load: list[LoadCount] = field(default_factory=list)
    error: str | None = None
    cleanup_errors: list[str] = field(default_factory=list)


@dataclass
class ProbeRunner:
    """Deploys the probe into every cluster, runs the clients, reads their logs, and always cleans up."""

    spec: ProbeSpec
    clients: Mapping[str, k8s.ApiClient]
    report: Callable[[str, str], None]
    wait_timeout: float
    settle_seconds: float
    poll_interval: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    # GET through the stack's public entry (url, Host header) -> body or None.
    edge_request: Callable[[str, str], str | None] = edge_get
    # GET of a routed service's public host through the public entry (url, Host) -> status or None.
    edge_load: Callable[[str, str], int | None] = edge_status
    created: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.spec.clusters]

    def run(self) -> ProbeOutcome:
        outcome = ProbeOutcome()
        try:
            for name in self.names:
                self._deploy(name)
                self.report(name, "echo deployed, routing applied")
            self._wait_all("echo ready", self._echo_ready,
                           "the echo pods are not ready: image pull (private nodes need Cloud NAT) or "
                           "sidecar injection failing")
            if self.settle_seconds > 0:
                for name in self.names:
                    self.report(name, f"letting endpoints propagate ({self.settle_seconds:g}s)")
                self.sleep(self.settle_seconds)
            for name in self.names:
                self._batch(name).create_namespaced_job(self.spec.namespace, client_job(self.spec),
                                                        _request_timeout=REQUEST_TIMEOUT)
                self.report(name, f"client sending {self.spec.requests} requests")
            self._wait_all("client finished", self._job_done,
                           f"requests are slow or failing (each may take {PER_REQUEST_TIMEOUT_SECONDS}s); "
                           "try fewer --requests or a longer --wait-timeout")
            for name in self.names:
                outcome.counts.append(parse_client_log(name, self._client_log(name), self.names))
                self.report(name, "client log read")
            if self.spec.edge_url:
                # Bounded: exactly spec.requests requests, each with its own timeout.
                bodies = [self.edge_request(self.spec.edge_url, self.spec.edge_host)
                          for _ in range(self.spec.requests)]
                outcome.counts.append(edge_counts(bodies, self.names))
                for host in self.spec.load_hosts:
                    outcome.load.append(load_count(host, [self.edge_load(self.spec.edge_url, host)
                                                          for _ in range(self.spec.requests)]))
        except ProbeTimeout as error:
            outcome.error = str(error)
        except ApiException as error:
            outcome.error = (f"the API server refused a probe object: {error.status} {error.reason}: "
                             f"{_api_message(error)}")
        except Exception as error:
            outcome.error = f"probe failed: {_short(error)}"
        finally:
            outcome.cleanup_errors = self.cleanup()
        return outcome

    def cleanup(self) -> list[str]:
        """Delete the probe namespace wherever it was created (deleting it removes everything in it)."""
        problems: list[str] = []
        for name in list(self.created):
            try:
                k8s.CoreV1Api(self.clients[name]).delete_namespace(
                    self.spec.namespace, propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT)
                self.created.remove(name)
                self.report(name, f"namespace {self.spec.namespace} deleted")
            except ApiException as error:
                if error.status == 404:
                    self.created.remove(name)
                    continue
                problems.append(f"{name}: could not delete namespace {self.spec.namespace} ({error.status} "
                                f"{error.reason}); run `kubectl delete namespace {self.spec.namespace}` there")
            except Exception as error:
                problems.append(f"{name}: could not delete namespace {self.spec.namespace} ({_short(error)}); "
                                f"run `kubectl delete namespace {self.spec.namespace}` there")
        return problems

    # -- steps

    def _deploy(self, name: str) -> None:
        api = self.clients[name]
        core = k8s.CoreV1Api(api)
        ns = self.spec.namespace
        core.create_namespace(namespace_manifest(self.spec), _request_timeout=REQUEST_TIMEOUT)
        self.created.append(name)
        k8s.AppsV1Api(api).create_namespaced_deployment(ns, echo_deployment(self.spec, name),
                                                         _request_timeout=REQUEST_TIMEOUT)
        core.create_namespaced_service(ns, echo_service(self.spec), _request_timeout=REQUEST_TIMEOUT)
        custom = k8s.CustomObjectsApi(api)
        group, version = NETWORKING_API.split("/")
        # Subsets before the route that names them.
        objects = [(probe_destination_rule(self.spec, name), "destinationrules"),
                   (probe_virtual_service(self.spec), "virtualservices")]
        if self.spec.edge_url:
            # This cluster's ingress answers the probe's public host from this cluster's echo only.
            objects += [(probe_edge_gateway(self.spec), "gateways"),
                        (probe_edge_virtual_service(self.spec, name), "virtualservices")]
        for body, plural in objects:
            custom.create_namespaced_custom_object(group, version, ns, plural, body, _request_timeout=REQUEST_TIMEOUT)

    def _batch(self, name: str) -> k8s.BatchV1Api:
        return k8s.BatchV1Api(self.clients[name])

    def _echo_ready(self, name: str) -> str | None:
        d = k8s.AppsV1Api(self.clients[name]).read_namespaced_deployment(
            ECHO, self.spec.namespace, _request_timeout=REQUEST_TIMEOUT)
        return "echo ready" if (d.status.available_replicas or 0) >= 1 else None

    def _job_done(self, name: str) -> str | None:
        job = self._batch(name).read_namespaced_job(CLIENT_JOB, self.spec.namespace, _request_timeout=REQUEST_TIMEOUT)
        if (job.status.succeeded or 0) >= 1:
            return "client finished"
        if (job.status.failed or 0) >= 1:
            # Its log still says how far it got; a failed client is judged by its counts.
            return "client failed (reading its log)"
        return None

    def _wait_all(self, what: str, ready: Callable[[str], str | None], hint: str) -> None:
        pending = list(self.names)
        deadline = self.clock() + self.wait_timeout
        while pending:
            for name in list(pending):
                status = ready(name)
                if status is not None:
                    pending.remove(name)
                    self.report(name, status)
            if not pending:
                return
            if self.clock() >= deadline:
                raise ProbeTimeout(f"timed out after {self.wait_timeout:g}s waiting for '{what}' in "
                                   f"{', '.join(pending)}: {hint}")
            self.sleep(self.poll_interval)

    def _client_log(self, name: str) -> str:
        core = k8s.CoreV1Api(self.clients[name])
        pods = core.list_namespaced_pod(self.spec.namespace, label_selector=f"app={CLIENT_JOB}",
                                        _request_timeout=REQUEST_TIMEOUT).items
        if not pods:
            return ""
        return str(core.read_namespaced_pod_log(pods[0].metadata.name, self.spec.namespace,
                                                container=CLIENT_CONTAINER, _request_timeout=REQUEST_TIMEOUT))
