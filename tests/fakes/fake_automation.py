"""A fake Automation API stack for the flip tool's tests: no Pulumi CLI, same contract as `tools.flip.stack`.

- `set_weights` rewrites the stack file exactly as `pulumi config set-all --path` does
  (integers stay integers, comments survive: ruamel round-trip), in one write.
- `preview` is the offline engine's diff between what is deployed and what the stack file
  now says (`run_with_weights` twice), plus any `extra_changes` a test stages.
- `preview(targets)` with targets reports only those URNs, as `pulumi preview --target` does.
- `up(targets)` "deploys" only the targeted resources (`pulumi up --target`): a targeted
  VirtualService URN puts the VirtualServices the program renders for the stack file's weights
  (`components.traffic.virtual_service`) into its cluster's fake API server, except `stale`
  clusters; staged extra changes are applied only if targeted (`applied_extra` records them).
- Every call is logged with the weights in the file, so tests assert what was written and
  applied at each step.

Where the real behaviour was read: pulumi/automation 3.272 in the venv
(venv/lib/python3.11/site-packages/pulumi/automation/_local_workspace.py `set_all_config` runs
`pulumi config set-all --path --plaintext k=v...`; _stack.py `preview`/`up` take `target`, an
exclusive list of URNs) and the CLI's value rule for `--path` (pulumi/pulumi sdk/go/common/resource/
config `adjustObjectValue`: "true"/"false" become booleans, a value of more than one character
starting with "0" stays a string, other integers become integers - `adjust`, the stand-in
CLI pulumi_cli.py's).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from components import config as stack_config
from components.alerts import POLICIES
from components.traffic import virtual_service
from offline import configs
from offline.engine import PROJECT, changed_resources, run_with_weights
from tests.fakes.fake_kube import FakeCluster
from tests.fakes.pulumi_cli import adjust

FAKE_ROOT_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class FakeStackError(Exception):
    """Stands in for the CLI's CommandError (tools.flip.stack.StackError is raised instead where given)."""


@dataclass(frozen=True)
class Change:
    op: str
    urn: str


class FakeStack:
    """One stack: a stack file on disk, a deployment made of fake API servers."""

    def __init__(self, name: str, stack_file: Path, clusters: Mapping[str, FakeCluster], *,
                 error: type[Exception] = FakeStackError,
                 fail_up: Callable[[int], str | None] = lambda n: None,
                 fail_preview: Callable[[int], str | None] = lambda n: None,
                 extra_changes: Iterable[tuple[str, str]] | Callable[[int], Iterable[tuple[str, str]]] = (),
                 stale: Iterable[str] = ()) -> None:
        self.name = name
        self.stack_file = stack_file
        self.clusters = dict(clusters)
        self.error = error
        self.fail_up = fail_up
        self.fail_preview = fail_preview
        # Staged changes beyond the diff: always, or per preview number (1-based).
        self.extra_changes = extra_changes if callable(extra_changes) else (lambda n, fixed=list(extra_changes): fixed)
        self.stale = set(stale)
        self.log: list[tuple[str, dict[str, int]]] = []
        self.targets: list[list[str] | None] = []
        self.applied_extra: list[str] = []
        self.ups = 0
        self.previews = 0
        self._yaml = YAML()
        self._yaml.preserve_quotes = True
        self.deployed = self.file_weights()
        self._deploy(self.deployed)

    # -- the stack file

    def _load(self) -> Any:
        return self._yaml.load(self.stack_file.read_text())

    def project_config(self) -> dict[str, Any]:
        doc = self._load()["config"]
        prefix = f"{PROJECT}:"
        return {k[len(prefix):]: copy.deepcopy(_plain(v)) for k, v in doc.items() if k.startswith(prefix)}

    def parsed(self) -> stack_config.StackConfig:
        raw = {k: v for k, v in self.project_config().items() if k != "ca"}
        return stack_config.parse(raw, project="fake-project")

    def file_weights(self) -> dict[str, int]:
        return dict(self.parsed().traffic.weights)

    def set_weights(self, weights: Mapping[str, int]) -> None:
        doc = self._load()
        config = doc["config"]
        for cluster, weight in weights.items():
            key, *path = f"{PROJECT}:traffic.weights.{cluster}".split(".")
            node = config.setdefault(key, {})
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = adjust(str(int(weight)))
        tmp = self.stack_file.with_suffix(".tmp")
        with tmp.open("w") as f:
            self._yaml.dump(doc, f)
        tmp.replace(self.stack_file)
        self.log.append(("set", dict(weights)))

    # -- the engine

    def preview(self, targets: Iterable[str] | None = None) -> list[Change]:
        self.previews += 1
        self.targets.append(None if targets is None else list(targets))
        failure = self.fail_preview(self.previews)
        if failure:
            raise self.error(failure)
        project = {k: v for k, v in self.project_config().items() if k != "ca"}
        project["ca"] = configs.fast_ca()
        before = run_with_weights(project, self.deployed, stack=self.name)
        after = run_with_weights(project, self.file_weights(), stack=self.name)
        diff = changed_resources(before, after)
        self.log.append(("preview", self.file_weights()))
        changes = ([Change("update", u) for u in diff.changed] + [Change("create", u) for u in diff.added]
                   + [Change("delete", u) for u in diff.removed]
                   + [Change(op, urn) for op, urn in self.extra_changes(self.previews)])
        wanted = None if targets is None else set(targets)
        return [c for c in changes if wanted is None or c.urn in wanted]

    def up(self, targets: Iterable[str]) -> None:
        self.ups += 1
        targeted = list(targets)
        weights = self.file_weights()
        failure = self.fail_up(self.ups)
        if failure:
            self.log.append(("up failed", weights))
            raise self.error(failure)
        self.applied_extra += [urn for _, urn in self.extra_changes(self.previews) if urn in targeted]
        clusters = {name for name in self.clusters if any(f"VirtualService::{name}-routing." in u for u in targeted)}
        self._deploy(weights, clusters)
        if clusters == set(self.clusters):
            self.deployed = weights
        self.log.append(("up", weights))

    def _deploy(self, weights: Mapping[str, int], clusters: Iterable[str] | None = None) -> None:
        cfg = self.parsed()
        only = None if clusters is None else set(clusters)
        for name, cluster in self.clusters.items():
            if name in self.stale and self.log:
                continue
            if only is not None and name not in only:
                continue
            for service in cfg.traffic.services:
                split = dict(service.weights) if service.weights is not None else dict(weights)
                vs = virtual_service(service, split)
                cluster.put(vs)

    def outputs(self) -> dict[str, Any]:
        cfg = self.parsed()
        return {
            "clusters": {c.name: {"name": c.name, "region": c.region, "network": c.network,
                                  "endpoint": "127.0.0.1", "eastWestGatewayAddress": "34.64.0.10"}
                         for c in cfg.clusters},
            "kubeconfigs": {name: cluster.kubeconfig() for name, cluster in self.clusters.items()},
            "rootCertPem": FAKE_ROOT_PEM,
            "trafficSplit": {f"{s.host}.{s.namespace}": cfg.traffic.weights_for(s) for s in cfg.traffic.services},
            # As __main__.py exports them (components/alerts.py MeshAlerts.names): policy key -> resource name.
            "alertPolicies": self.alert_policies(),
        }

    def alert_policies(self) -> dict[str, str]:
        project = self._load()["config"].get("gcp:project", "fake-project")
        return {p.key: f"projects/{project}/alertPolicies/{1000 + i}" for i, p in enumerate(POLICIES)}

    # -- what the tests ask

    def applied(self) -> list[dict[str, int]]:
        return [w for op, w in self.log if op == "up"]

    def written(self) -> list[dict[str, int]]:
        return [w for op, w in self.log if op == "set"]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
