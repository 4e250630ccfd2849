"""Offline checks of the dashboard and the alerts: Cloud Monitoring's Dashboard schema and promtool.

The schema is the `Dashboard` resource of Cloud Monitoring's API discovery document, the one
google-api-python-client ships (googleapiclient/discovery_cache/documents/monitoring.v1.json),
walked field by field like the API's JSON parser does: unknown fields, wrong types and values
outside an enum are errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

INSTALL_HINT = "promtool is missing: run `make test` (it installs Debian's `prometheus` package when missing)"


@cache
def discovery_schemas() -> dict[str, Any]:
    import googleapiclient

    path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "monitoring.v1.json"
    return json.loads(path.read_text())["schemas"]


def schema_problems(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Problems of `value` against a discovery-document schema (a `$ref` or an inline one)."""
    schemas = discovery_schemas()
    if "$ref" in schema:
        return schema_problems(value, schemas[schema["$ref"]], path)
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        problems: list[str] = []
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                problems += schema_problems(v, props[k], f"{path}.{k}")
            elif extra is not None:
                problems += schema_problems(v, extra, f"{path}.{k}")
            else:
                problems.append(f"{path}.{k}: no such field")
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [p for i, v in enumerate(value) for p in schema_problems(v, schema["items"], f"{path}[{i}]")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {value!r}"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{path}: {value!r} is not one of {schema['enum']}"]
        return []
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer, got {value!r}"]
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number, got {value!r}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r}"]
    if kind == "any":
        return []
    return [f"{path}: schema without a type ({schema})"]


def dashboard_problems(document: Mapping[str, Any]) -> list[str]:
    return schema_problems(document, {"$ref": "Dashboard"})


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, INSTALL_HINT
    return found


def check_queries(queries: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on a rules file recording every query: Prometheus' own parser reads each."""
    rules = {"groups": [{"name": "queries", "rules": [{"record": f"query_{i}", "expr": q}
                                                      for i, q in enumerate(queries)]}]}
    path = tmp / "queries.rules.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)


def run_rule_tests(rules: Mapping[str, Any], tests: list[dict[str, Any]],
                   tmp: Path) -> subprocess.CompletedProcess[str]:
    """`promtool test rules`: the rules file and one test file holding every case."""
    (tmp / "alerts.rules.yaml").write_text(yaml.safe_dump(dict(rules), sort_keys=False))
    (tmp / "alerts.test.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["alerts.rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    return subprocess.run([promtool(), "test", "rules", "alerts.test.yaml"], cwd=tmp, capture_output=True, text=True,
                          check=False)



