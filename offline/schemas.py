"""Validate rendered Kubernetes objects against published schemas, offline.

Why: a typo in a manifest (`trafficPolicy.tlss`) or an invalid enum value is accepted
by Pulumi's mocks and only fails on a real cluster, after the control plane is up. Here
it fails in the test suite.

- Core Kubernetes objects (Namespace, Secret, ...): Kubernetes' OpenAPI schemas shipped by
  `kubernetes_validate`, strict (an unknown field is an error).
- Istio objects: Istio's API models for 1.24 from `cloudcoil-models-istio` (generated from
  Istio's CRDs), older than any Istio this program installs. The models check types
  and enums but ignore unknown fields, so every input path missing from the model's
  dump is reported here as an unknown field.
- Managed Service for Prometheus' PodMonitoring (`monitoring.googleapis.com/v1`): a strict JSON
  schema written here from the fields GoogleCloudPlatform/prometheus-engine documents in
  doc/api.md (PodMonitoringSpec, ScrapeEndpoint), durations as Prometheus durations.
- Helm release values are not validated: the charts (and their values schemas) are not
  available offline, and no schema is invented for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import kubernetes_validate
import pydantic
from cloudcoil.models.istio.networking import v1 as istio_networking
from cloudcoil.models.istio.security import v1 as istio_security

from offline.manifests import HELM_RELEASE_TYPE, Manifest, Rendered

# GKE's REGULAR channel: default version for new clusters and auto-upgrade target 1.35
# (1.35.7-gke.1222000; 1.34 to 1.36 available), per GKE's release notes "Current versions".
KUBERNETES_VERSION = "1.35"
# The Istio API the models describe. The program installs 1.27.1 or newer
# (components.config.MIN_ISTIO_VERSION); Istio's v1 APIs only gain fields, so an object that
# validates against 1.24 uses no field a supported release lacks.
ISTIO_MODELS_VERSION = "1.24"
ISTIO_MODELS: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("networking.istio.io/v1", "Gateway"): istio_networking.Gateway,
    ("networking.istio.io/v1", "DestinationRule"): istio_networking.DestinationRule,
    ("networking.istio.io/v1", "VirtualService"): istio_networking.VirtualService,
    ("security.istio.io/v1", "PeerAuthentication"): istio_security.PeerAuthentication,
}
# Declared resource types that are deliberately not schema-checked, and why.
NOT_SCHEMA_CHECKED: dict[str, str] = {
    HELM_RELEASE_TYPE: "Helm values: the chart and its values schema are not available offline; "
                       "no schema is invented for them",
}

Validator = Callable[[Mapping[str, Any]], list[str]]

_PROMETHEUS_DURATION = r"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_LABEL_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": _STRING_MAP,
    "matchExpressions": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["key", "operator"], "properties": {
            "key": {"type": "string"}, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
            "values": {"type": "array", "items": {"type": "string"}}}}}}}
POD_MONITORING_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.googleapis.com/v1"}, "kind": {"const": "PodMonitoring"},
        "metadata": {"type": "object", "additionalProperties": False, "required": ["name", "namespace"],
                     "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                    "labels": _STRING_MAP, "annotations": _STRING_MAP}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                 "properties": {
                     "selector": _LABEL_SELECTOR,
                     "endpoints": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "additionalProperties": False, "required": ["port"], "properties": {
                             "port": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 65535},
                                                {"type": "string", "minLength": 1}]},
                             "scheme": {"enum": ["http", "https"]},
                             "path": {"type": "string", "pattern": "^/"},
                             "params": {"type": "object"},
                             "interval": {"type": "string", "pattern": _PROMETHEUS_DURATION},
                             "timeout": {"type": "string", "pattern": _PROMETHEUS_DURATION},
                             "metricRelabeling": {"type": "array"}}}},
                     "targetLabels": {"type": "object", "additionalProperties": False, "properties": {
                         "metadata": {"type": "array", "items": {"enum": [
                             "container", "node", "pod", "top_level_controller_name", "top_level_controller_type"]}},
                         "fromPod": {"type": "array"}}},
                     "limits": {"type": "object"},
                     "filterRunning": {"type": "boolean"}}},
    },
}


def validate_pod_monitoring(document: Mapping[str, Any]) -> list[str]:
    """PodMonitoring against the schema above, strict (an unknown field is an error)."""
    validator = jsonschema.Draft7Validator(POD_MONITORING_SCHEMA)
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(object)'}: {e.message} (PodMonitoring, "
            "prometheus-engine doc/api.md)" for e in validator.iter_errors(dict(document))]


@dataclass(frozen=True)
class Problem:
    """One validation failure, located by cluster and object."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _is_builtin_api(api_version: str) -> bool:
    """Core (`v1`), unqualified groups (`apps/v1`) and *.k8s.io groups are Kubernetes' own APIs."""
    if "/" not in api_version:
        return True
    group = api_version.split("/", 1)[0]
    return "." not in group or group.endswith(".k8s.io")


def validate_kubernetes(document: Mapping[str, Any]) -> list[str]:
    """Kubernetes' OpenAPI schema for the object's kind, strict."""
    try:
        kubernetes_validate.validate(dict(document), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.path) or "(object)"
        return [f"{path}: {error.message} (Kubernetes {error.version} schema, strict)"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [error.message]
    return []


def _paths(value: Any, prefix: str = "") -> set[str]:
    """Every node's path: `spec.http[0].route[1].weight`."""
    out = {prefix} if prefix else set()
    if isinstance(value, Mapping):
        for k, v in value.items():
            out |= _paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out |= _paths(v, f"{prefix}[{i}]")
    return out


def _minimal(paths: Iterable[str]) -> list[str]:
    """Drop paths below another reported path (report `a.tlss`, not also `a.tlss.mode`)."""
    ordered = sorted(paths)
    kept: list[str] = []
    for p in ordered:
        if not any(p.startswith(k + ".") or p.startswith(k + "[") for k in kept):
            kept.append(p)
    return kept


def validate_istio(document: Mapping[str, Any]) -> list[str]:
    """Istio's 1.24 API model: strict types and enums, and no field the model does not know."""
    model = ISTIO_MODELS[(str(document.get("apiVersion")), str(document.get("kind")))]
    try:
        parsed = model.model_validate(dict(document), strict=True)
    except pydantic.ValidationError as error:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r}; "
                f"Istio {ISTIO_MODELS_VERSION} {model.__name__})" for e in error.errors()]
    dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    unknown = _minimal(_paths(document) - _paths(dumped))
    return [f"{p}: unknown field (not in Istio {ISTIO_MODELS_VERSION}'s {model.__name__} API)" for p in unknown]


def validator_for(document: Mapping[str, Any]) -> Validator | None:
    """The validator for an object's apiVersion and kind, or None if there is none."""
    key = (str(document.get("apiVersion")), str(document.get("kind")))
    if key in ISTIO_MODELS:
        return validate_istio
    if key == ("monitoring.googleapis.com/v1", "PodMonitoring"):
        return validate_pod_monitoring
    if _is_builtin_api(key[0]):
        return validate_kubernetes
    return None


def validate_document(document: Mapping[str, Any]) -> list[str]:
    """All problems of one object; an object nothing can validate is a problem too."""
    validator = validator_for(document)
    if validator is None:
        return [f"no schema for {document.get('apiVersion')} {document.get('kind')}: add its model to "
                "offline/schemas.py ISTIO_MODELS (or another validator) rather than skipping it"]
    return validator(document)


def describe(m: Manifest) -> str:
    where = f"{m.namespace}/{m.name}" if m.namespace else m.name
    return f"{m.cluster}: {m.api_version} {m.kind} {where}"


def validate_rendered(rendered: Rendered) -> list[Problem]:
    """Every Kubernetes object of a render (Helm values excluded: see NOT_SCHEMA_CHECKED)."""
    return [Problem(describe(m), message) for m in rendered.manifests for message in validate_document(m.document)]
