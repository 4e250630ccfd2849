"""The config table of docs/config.md and the stack files' JSON Schema cannot drift from the declaration."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

from components.config import TOP_LEVEL_KEYS, stack_file
from offline.configs import base
from tools.config_docs.generate import DOC, SCHEMA, rows, schema, schema_text, with_table

VALIDATOR = jsonschema.Draft202012Validator(schema())


def _errors(values: dict[str, Any]) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors({"config": values})]


def test_the_docs_table_is_the_generated_one() -> None:
    text = DOC.read_text()
    assert text == with_table(text), "docs/config.md's table is stale: run `python -m tools.config_docs`"


def test_the_schema_file_is_the_generated_one() -> None:
    assert SCHEMA.read_text() == schema_text(), "the schema is stale: run `python -m tools.config_docs`"


def test_the_generator_command_runs_as_the_docs_show_it() -> None:
    done = subprocess.run([sys.executable, "-m", "tools.config_docs"], cwd=stack_file.ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


def test_every_top_level_key_has_a_row_and_a_schema_entry() -> None:
    documented = {r.key.strip("`").split(".")[0].split("[")[0] for r in rows()}
    assert set(TOP_LEVEL_KEYS) <= documented
    assert {f"gke-istio-mesh:{k}" for k in TOP_LEVEL_KEYS} <= set(schema()["properties"]["config"]["properties"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_shipped_stacks_validate(stack: str) -> None:
    raw = stack_file.read_stack(stack).values()
    assert _errors(raw) == []


def _stack(project: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"gcp:project": "mesh-test-project", "pulumi:disable-default-providers": ["kubernetes"]}
    values.update({f"gke-istio-mesh:{k}": v for k, v in project.items()})
    return values


def test_a_secret_may_stand_for_any_value_even_nested() -> None:
    cfg = base()
    cfg["ca"] = {"rootCertPem": "-----BEGIN CERTIFICATE-----", "rootKeyPem": {"secure": "v1:AAAA"}}
    values = _stack(cfg)
    values["gke-istio-mesh:authorizedNetworks"] = {"secure": "v1:BBBB"}
    assert _errors(values) == []


@pytest.mark.parametrize("edit", [
    lambda v: v.update({"gke-istio-mesh:meshID": "mesh1"}),
    lambda v: v["gke-istio-mesh:clusters"][0].update(maxNodes="3"),
    lambda v: v["gke-istio-mesh:clusters"][0].update(releaseChannel="FAST"),
    lambda v: v["gke-istio-mesh:clusters"][0].update(machinetype="e2-standard-4"),
    lambda v: v["gke-istio-mesh:clusters"][0].pop("podCidr"),
    lambda v: v["gke-istio-mesh:clusters"][0].update(region="us-wset1"),
    lambda v: v.update({"gke-istio-mesh:flip": {"minSuccessRate": 0}}),
], ids=["unknown-key", "string-for-int", "not-allowed", "misspelt-key", "missing", "unknown-region",
        "threshold-off"])
def test_the_editor_marks_what_the_program_refuses(edit: Any) -> None:
    values = copy.deepcopy(_stack(base()))
    assert _errors(values) == []
    edit(values)
    assert _errors(values)


def test_other_namespaces_are_left_to_their_owners() -> None:
    values = _stack(base()) | {"kubernetes:context": "x", "gcp:region": "us-west1"}
    assert _errors(values) == []


def test_the_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA.read_text()))
