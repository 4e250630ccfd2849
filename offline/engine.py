"""Run the whole Pulumi program offline and record everything it sends to the engine.

Used by the test suite, the bench and the user tools (`render`, `flip`): no cloud, no credentials,
no Pulumi CLI.

The mocks answer like the real providers would: GCP resources get ids, self links
and addresses; GKE clusters an endpoint and a real CA certificate; pulumi-tls
resources real keys and X.509 certificates made with `cryptography` from the
inputs the program sent; service-account-token Secrets a token. So the program's
wiring (kubeconfigs, cert chains, remote secrets) is exercised for real.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import logging
import runpy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config

from components.config import stack_file
from components.names import PROJECT
from offline.x509 import cluster_ca, tls_outputs

ROOT = stack_file.ROOT
SECRET_SIG = rpc._special_sig_key
GCP_PROJECT_DEFAULT = "mesh-test-project"
FROM_STACK_FILE = "<from the stack file>"
# What every stack file sets besides the project's keys; a run with a config of its own gets these.
PROVIDER_SETTINGS: dict[str, Any] = {"pulumi:disable-default-providers": ["kubernetes"]}


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def fake_public_ip(*parts: str) -> str:
    """A stable public-looking IPv4 address (34.64.0.0/10, Google's range) per name."""
    n = int(_digest(*parts)[:8], 16)
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("34.64.0.0")) + n % (1 << 22) + 1))


# ------------------------------------------------------------------ secrets on the wire


def unwrap(value: Any, path: str = "", secrets: set[str] | None = None) -> Any:
    """Strip secret envelopes, noting the dotted paths that were secret."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == rpc._special_secret_sig:
            if secrets is not None:
                secrets.add(path)
            return unwrap(value["value"], path, secrets)
        return {k: unwrap(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


# ------------------------------------------------------------------ the mocks

# Global Compute resources: the collection in their self-link.
GLOBAL_COLLECTIONS = {
    "gcp:compute/globalAddress:GlobalAddress": "addresses",
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": "forwardingRules",
    "gcp:compute/targetHttpProxy:TargetHttpProxy": "targetHttpProxies",
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": "targetHttpsProxies",
    "gcp:compute/uRLMap:URLMap": "urlMaps",
    "gcp:compute/backendService:BackendService": "backendServices",
    "gcp:compute/healthCheck:HealthCheck": "healthChecks",
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": "sslCertificates",
}


GET_NEG = "gcp:compute/getNetworkEndpointGroup:getNetworkEndpointGroup"
NEG_ANNOTATION = "cloud.google.com/neg"
NEG_STATUS_ANNOTATION = "cloud.google.com/neg-status"


class NegController(Protocol):
    """GKE's NEG controller as the mocks ask it: what it reports for a new Service, and which NEGs exist."""

    def service_created(self, project: str, zones: list[str], neg_name: str) -> list[str]:
        """The zones it reports in the Service's neg-status for a NEG the Service asks for."""
        ...

    def exists(self, project: str, zone: str, name: str) -> bool:
        ...


class SteadyNegController:
    """The controller once it has done its work: every zone of the cluster has nodes and its NEG.

    What offline runs (render, cost, diff, most tests) assume; tests/fakes/neg_controller.py models
    the timing (NEGs after a delay, only in zones with nodes, garbage collection on a timer).
    """

    def __init__(self) -> None:
        self.negs: set[tuple[str, str, str]] = set()

    def service_created(self, project: str, zones: list[str], neg_name: str) -> list[str]:
        self.negs |= {(project, z, neg_name) for z in zones}
        return sorted(zones)

    def exists(self, project: str, zone: str, name: str) -> bool:
        return (project, zone, name) in self.negs


class MeshMocks(pulumi.runtime.Mocks):
    """Provider stand-ins that compute outputs the way the real providers would."""

    def __init__(self, gcp_project: str, replaced: Iterable[str] = (),
                 last_outputs: Mapping[str, Any] | None = None, negs: NegController | None = None) -> None:
        self.project = gcp_project
        self.negs = negs or SteadyNegController()
        # Kubernetes provider id -> its cluster's id; cluster id -> the zones of its nodes.
        self.provider_cluster: dict[str, str] = {}
        self.cluster_zones: dict[str, list[str]] = {}
        # Resources re-created as by `pulumi up --replace`: they get fresh key material.
        self.replaced = frozenset(replaced)
        # The stack's outputs of its last deployment, as a StackReference to itself reads them
        # (the engine answers from the last checkpoint; a brand-new stack has none: {}).
        self.last_outputs = dict(last_outputs or {})
        self.stack_references: list[str] = []
        # Tokens of the provider functions (data sources) the program called, in order.
        self.invokes: list[str] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any] | None]:
        """Only the data sources the program is meant to read; any other call is a mistake."""
        self.invokes.append(args.token)
        if args.token == GET_NEG:
            # The data source fails with "<id> not found" until the NEG exists
            # (terraform-provider-google data_source_compute_network_endpoint_group.go).
            project, zone, name = args.args.get("project") or self.project, args.args["zone"], args.args["name"]
            neg_id = f"projects/{project}/zones/{zone}/networkEndpointGroups/{name}"
            if not self.negs.exists(project, zone, name):
                return {}, [("name", f"{neg_id} not found")]
            return {"id": neg_id, "name": name, "zone": zone, "project": project,
                    "selfLink": f"https://www.googleapis.com/compute/v1/{neg_id}",
                    "networkEndpointType": "GCE_VM_IP_PORT"}, []
        if args.token == "gcp:organizations/getProject:getProject":
            # A project's number is a 12-digit string Google assigns; here a stable one per project ID.
            project_id = args.args.get("projectId") or self.project
            number = str(int(_digest(f"number:{project_id}")[:10], 16) % 10**12).zfill(12)
            return {"projectId": project_id, "number": number, "name": project_id,
                    "id": f"projects/{project_id}"}, []
        raise AssertionError(f"the program must not invoke provider functions offline: {args.token}")

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = unwrap(dict(args.inputs))
        name = args.name
        t = args.typ
        physical = inputs.get("name") or f"{name}-{_digest(name)[:7]}"
        out: dict[str, Any] = {**inputs}
        rid = f"{name}-id"
        p = self.project
        compute = "https://www.googleapis.com/compute/v1/"
        if t == "pulumi:pulumi:StackReference":
            self.stack_references.append(inputs["name"])
            return inputs["name"], {"name": inputs["name"], "outputs": self.last_outputs, "secretOutputNames": []}
        if t == "gcp:compute/network:Network":
            rid = f"projects/{p}/global/networks/{physical}"
            out.update(name=physical, selfLink=compute + rid)
        elif t == "gcp:compute/subnetwork:Subnetwork":
            rid = f"projects/{p}/regions/{inputs['region']}/subnetworks/{physical}"
            out.update(name=physical, selfLink=compute + rid, gatewayAddress="10.0.0.1")
        elif t == "gcp:compute/address:Address":
            rid = f"projects/{p}/regions/{inputs['region']}/addresses/{physical}"
            out.update(name=physical, selfLink=compute + rid, address=fake_public_ip(p, name))
        elif t in GLOBAL_COLLECTIONS:
            rid = f"projects/{p}/global/{GLOBAL_COLLECTIONS[t]}/{physical}"
            out.update(name=physical, selfLink=compute + rid)
            if t == "gcp:compute/globalAddress:GlobalAddress":
                out["address"] = fake_public_ip(p, "global", name)
        elif t in ("gcp:compute/router:Router", "gcp:compute/routerNat:RouterNat",
                   "gcp:compute/firewall:Firewall"):
            rid = f"projects/{p}/{physical}"
            out.update(name=physical)
        elif t == "gcp:container/cluster:Cluster":
            rid = f"projects/{p}/locations/{inputs['location']}/clusters/{physical}"
            out.update(
                name=physical,
                endpoint=fake_public_ip(p, "endpoint", name),
                masterAuth={**(inputs.get("masterAuth") or {}),
                            "clusterCaCertificate": base64.b64encode(cluster_ca(name).encode()).decode()},
                selfLink=f"https://container.googleapis.com/v1/{rid}",
                project=p,
                # GKE picks the zones of a regional cluster's nodes; known once the cluster exists.
                nodeLocations=inputs.get("nodeLocations") or [f"{inputs['location']}-{z}" for z in "abc"],
            )
            self.cluster_zones[rid] = list(out["nodeLocations"])
        elif t == "gcp:container/nodePool:NodePool":
            rid = f"{inputs['cluster']}/nodePools/{physical}"
            out.update(name=physical)
        elif t == "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{p}.iam.gserviceaccount.com"
            rid = f"projects/{p}/serviceAccounts/{email}"
            out.update(email=email, member=f"serviceAccount:{email}")
        elif t == "gcp:networkservices/serviceLbPolicies:ServiceLbPolicies":
            rid = f"projects/{inputs.get('project') or p}/locations/{inputs['location']}/serviceLbPolicies/{physical}"
            out.update(name=physical)
        elif t == "gcp:kms/keyRing:KeyRing":
            rid = f"projects/{inputs.get('project') or p}/locations/{inputs['location']}/keyRings/{physical}"
            out.update(name=physical)
        elif t == "gcp:kms/cryptoKey:CryptoKey":
            rid = f"{inputs['keyRing']}/cryptoKeys/{physical}"
            out.update(name=physical)
        elif t == "gcp:monitoring/dashboard:Dashboard":
            # The provider's id (magic-modules Dashboard: projects/{{project}}/dashboards/{{dashboard_id}}).
            rid = f"projects/{inputs.get('project') or p}/dashboards/{_digest(name)[:12]}"
        elif t == "gcp:monitoring/alertPolicy:AlertPolicy":
            # `name` is an output: projects/{{project}}/alertPolicies/{{policy_id}}.
            rid = f"projects/{inputs.get('project') or p}/alertPolicies/{int(_digest(name)[:12], 16)}"
            out.update(name=rid)
        elif t == "random:index/randomId:RandomId":
            out.update(hex=_digest(name)[: int(inputs["byteLength"]) * 2])
        elif t.startswith("tls:index/"):
            out.update(tls_outputs(t, name, json.dumps(inputs, sort_keys=True), name in self.replaced))
        elif t == "kubernetes:core/v1:Secret" and inputs.get("type") == "kubernetes.io/service-account-token":
            # The token controller fills these in (pulumi-kubernetes awaits it); a Secret of another
            # name (a token rotation) is another Secret, so it gets another token.
            token = "eyJhbGciOiJSUzI1NiJ9." + _digest(f"{name}/{inputs.get('metadata', {}).get('name')}")
            out["data"] = {
                "token": base64.b64encode(token.encode()).decode(),
                "ca.crt": base64.b64encode(b"from-the-cluster").decode(),
                "namespace": base64.b64encode(b"istio-system").decode(),
            }
        elif t == "pulumi:providers:kubernetes":
            self.provider_cluster[rid] = inputs.get("clusterIdentifier", "")
        elif t == "kubernetes:core/v1:Service" and NEG_ANNOTATION in (inputs.get("metadata") or {}).get(
                "annotations", {}):
            # GKE's NEG controller reports the Service's NEGs (the provider awaits it: pulumi.com/waitFor).
            metadata = inputs["metadata"]
            exposed = json.loads(metadata["annotations"][NEG_ANNOTATION])["exposed_ports"]
            cluster = self.provider_cluster.get(args.provider.rsplit("::", 1)[-1], "")
            zones = self.cluster_zones.get(cluster, [])
            ports = {port: spec["name"] for port, spec in exposed.items()}
            reported = sorted({z for neg in ports.values() for z in self.negs.service_created(p, zones, neg)})
            status = json.dumps({"network_endpoint_groups": ports, "zones": reported}, separators=(",", ":"))
            out["metadata"] = {**metadata, "annotations": {**metadata["annotations"], NEG_STATUS_ANNOTATION: status}}
        elif t == "kubernetes:helm.sh/v3:Release":
            out["status"] = {"name": inputs.get("name"), "namespace": inputs.get("namespace"),
                             "chart": inputs.get("chart"), "version": inputs.get("version"),
                             "status": "deployed", "revision": 1.0}
        return rid, out


# ------------------------------------------------------------------ recording what the engine sees


@dataclass
class Resource:
    urn: str
    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    secret_inputs: set[str]
    parent: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    provider: str
    protect: bool
    deleted_with: str
    # Input properties the engine leaves alone on update (as sent: the engine's camelCase names).
    ignore_changes: list[str] = field(default_factory=list)
    id: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def provider_urn(self) -> str:
        return self.provider.rsplit("::", 1)[0] if self.provider else ""


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also keeps each registration's options (parent, deps, provider)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Resource] = []
        self._urns: set[str] = set()

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        # The engine refuses a second resource with the same type, parent type and name.
        if response.urn in self._urns:
            raise ValueError(f"Duplicate resource URN '{response.urn}'; try giving it a unique name")
        self._urns.add(response.urn)
        secrets: set[str] = set()
        inputs = unwrap(rpc.deserialize_properties(request.object), "", secrets)
        state = self.resources.get(response.urn)
        self.recorded.append(Resource(
            urn=response.urn, type=request.type, name=request.name, custom=request.custom,
            inputs=inputs, secret_inputs=secrets, parent=request.parent,
            dependencies=list(request.dependencies),
            property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
            provider=request.provider, protect=bool(request.protect), deleted_with=request.deletedWith,
            ignore_changes=list(request.ignoreChanges), id=response.id, outputs=unwrap(state.state) if state else {},
        ))
        return response


class ProgramError(Exception):
    """The program stopped; `declared` is everything it had sent to the engine by then."""

    def __init__(self, cause: BaseException, declared: list[Resource]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.declared = declared


class Program:
    """What one run of the program declared, with helpers for graph questions."""

    def __init__(self, resources: list[Resource], exports: dict[str, Any], secret_exports: set[str],
                 stack_references: list[str] | None = None, invokes: list[str] | None = None) -> None:
        self.resources = resources
        self.exports = exports
        self.secret_exports = secret_exports
        # Names of the stacks read through StackReference (reads are not registrations).
        self.stack_references = list(stack_references or [])
        # Tokens of the provider functions it called (data sources read in preview and up).
        self.invokes = list(invokes or [])
        self.by_urn = {r.urn: r for r in resources}

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Resource:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"{len(matches)} resources named {name!r}"
        return matches[0]

    def find(self, type_: str, name: str) -> Resource:
        matches = [r for r in self.resources if r.type == type_ and r.name == name]
        assert len(matches) == 1, f"{len(matches)} resources of type {type_} named {name!r}"
        return matches[0]

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def descendants(self, parent: Resource) -> list[Resource]:
        out: list[Resource] = []
        stack = [parent]
        while stack:
            for child in self.children(stack.pop()):
                out.append(child)
                stack.append(child)
        return out

    def ancestors(self, r: Resource) -> list[Resource]:
        out = []
        while r.parent in self.by_urn:
            r = self.by_urn[r.parent]
            out.append(r)
        return out

    def direct_waits(self, r: Resource) -> set[str]:
        """URNs this resource waits for: dependencies, property dependencies and its provider."""
        waits = set(r.dependencies)
        for deps in r.property_dependencies.values():
            waits.update(deps)
        if r.provider_urn:
            waits.add(r.provider_urn)
        return waits

    def waits_for(self, a: Resource, b: Resource) -> bool:
        """True if `a` cannot be created before `b` completes (the engine's ordering).

        A dependency on a component means all of its descendants; a dependency is
        inherited through a resource's provider.
        """
        seen: set[str] = set()
        todo = list(self.direct_waits(a))
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            if urn == b.urn:
                return True
            node = self.by_urn.get(urn)
            if node is None:
                continue
            todo.extend(self.direct_waits(node))
            if not node.custom:
                todo.extend(d.urn for d in self.descendants(node))
        return False


@dataclass(frozen=True)
class ResourceDiff:
    """What `pulumi preview --diff` would show between two runs, by URN."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]  # same URN, different inputs

    @property
    def touched(self) -> tuple[str, ...]:
        return self.added + self.removed + self.changed


def changed_resources(before: Program, after: Program) -> ResourceDiff:
    """Resources added, removed, or whose inputs differ between two runs of the program."""
    a = {r.urn: r.inputs for r in before.resources}
    b = {r.urn: r.inputs for r in after.resources}
    return ResourceDiff(
        added=tuple(sorted(set(b) - set(a))),
        removed=tuple(sorted(set(a) - set(b))),
        changed=tuple(sorted(u for u in set(a) & set(b) if a[u] != b[u])),
    )


def stack_file_config(stack: str = "dev") -> dict[str, Any]:
    """The `config:` block of Pulumi.<stack>.yaml, keys fully qualified."""
    return stack_file.read_stack(stack).values()


def project_config(stack: str = "dev") -> dict[str, Any]:
    """The project's own keys from a stack file, without the namespace, for editing in tests."""
    return stack_file.read_stack(stack).project


# What the program logs to the engine: warnings and errors reach the test output; the SDK's
# per-registration debug lines (hundreds per run) are dropped before they are formatted.
_ENGINE_LOG = logging.getLogger("offline.engine.program")
_ENGINE_LOG.setLevel(logging.INFO)

# Messages of the failures run_program has already reported as ProgramError.
_REPORTED_FAILURES: set[str] = set()


def _drop_reported_failures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's handler, except for futures that carry a failure the test already got.

    A refused program fails every registration waiting on its gate; the real engine then ends the
    process. Here the process goes on, and each of those futures, when collected, would format and
    log its traceback ("Future exception was never retrieved") in some later test - seconds of
    work per refusal, and noise that hides real problems.
    """
    error = context.get("exception")
    if error is not None and str(error) in _REPORTED_FAILURES:
        return
    loop.default_exception_handler(context)


def run_program(
    config: Mapping[str, Any] | None = None,
    *,
    stack: str = "dev",
    gcp_project: str | None = GCP_PROJECT_DEFAULT,
    secret_keys: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
    replace: Iterable[str] = (),
    last_outputs: Mapping[str, Any] | None = None,
    organization: str | None = "organization",
    negs: NegController | None = None,
) -> Program:
    """Run __main__.py under mocks with the project's config.

    `config` None reads Pulumi.<stack>.yaml as `pulumi preview` would (the user tools do
    this); a given config runs with PROVIDER_SETTINGS and no value of the stack file.

    `gcp_project` replaces the stack's `gcp:project` (None removes it, FROM_STACK_FILE keeps it).
    `replace` names resources to re-create as `pulumi up --replace` would (fresh keys).
    `last_outputs` are the stack's outputs of its previous deployment (e.g. `Program.exports` of an
    earlier run), read back through the stack's StackReference to itself; None = a brand-new stack.
    `negs` stands for GKE's NEG controller (default: every NEG exists in every zone of its cluster).
    `organization` is what the engine reports: "organization" on every DIY backend (the default, as
    the README's state buckets are), the stack's organization on Pulumi Cloud.
    Raises ProgramError (with what was declared before the failure) if the program fails.
    """
    if config is None:
        values = {k: v for k, v in stack_file_config(stack).items() if not k.startswith(f"{PROJECT}:")}
        project_values = project_config(stack)
    else:
        values, project_values = dict(PROVIDER_SETTINGS), dict(config)
    values.update({f"{PROJECT}:{k}": v for k, v in project_values.items()})
    if gcp_project is None:
        values.pop("gcp:project", None)
    elif gcp_project != FROM_STACK_FILE:
        values["gcp:project"] = gcp_project
    values.update(extra or {})
    set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()},
        [f"{PROJECT}:{k}" if ":" not in k else k for k in secret_keys],
    )

    mocks = MeshMocks(str(values.get("gcp:project") or GCP_PROJECT_DEFAULT), replace, last_outputs, negs)
    monitor = RecordingMonitor(mocks)
    # DIY backends (gs://, file://) name every stack's organization "organization".
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor,
                             organization=organization, logger=_ENGINE_LOG)
    root = pulumi.runtime.get_root_resource()
    root.outputs.clear()
    exports: dict[str, Any] = {}
    secret_exports: set[str] = set()

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        outputs = dict(root.outputs)

        async def collect() -> None:
            for key, value in outputs.items():
                out = pulumi.Output.from_input(value)
                exports[key] = await out.future()
                if await out.is_secret():
                    secret_exports.add(key)

        return pulumi.Output.from_input(collect())

    loop = asyncio.get_event_loop()
    if loop.get_exception_handler() is not _drop_reported_failures:
        loop.set_exception_handler(_drop_reported_failures)
    try:
        program()
    except Exception as error:
        _REPORTED_FAILURES.add(str(error))
        raise ProgramError(error, monitor.recorded) from error
    return Program(monitor.recorded, exports, secret_exports, mocks.stack_references, mocks.invokes)


_WEIGHT_RUNS: dict[str, Program] = {}


def run_with_weights(config: Mapping[str, Any], weights: Mapping[str, int], *, stack: str = "dev",
                     gcp_project: str | None = GCP_PROJECT_DEFAULT) -> Program:
    """The program run with `config` whose mesh-wide `traffic.weights` are `weights` (memoised per input).

    `tools.flip` compares two of these to know which resources a flip may change; the same
    config and weights always declare the same resources, so a run is made once per process.
    """
    edited = json.loads(json.dumps(dict(config)))
    edited.setdefault("traffic", {})["weights"] = dict(weights)
    key = json.dumps([edited, stack, gcp_project], sort_keys=True)
    if key not in _WEIGHT_RUNS:
        _WEIGHT_RUNS[key] = run_program(edited, stack=stack, gcp_project=gcp_project)
    return _WEIGHT_RUNS[key]
