"""The one reader of Pulumi.<stack>.yaml: found at the project root by every command, ciphertext dropped once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.config import stack_file
from offline.configs import base, write_stack_file
from tools.verify import cli as verify_cli


def test_the_root_is_the_project_folder_whoever_asks() -> None:
    assert (stack_file.ROOT / "Pulumi.yaml").is_file()
    assert stack_file.path_for("dev") == stack_file.ROOT / "Pulumi.dev.yaml"
    assert verify_cli.ROOT == stack_file.ROOT


def test_verify_without_config_reads_the_stack_file_at_the_project_root() -> None:
    """`make verify` runs `python -m tools.verify --stack dev`: no --config, so the default path is used."""
    expected = stack_file.read_stack("dev")
    cfg = verify_cli.read_stack_config("dev", None)
    assert [c.name for c in cfg.clusters] == [c["name"] for c in expected.project["clusters"]]
    with pytest.raises(verify_cli.UsageError) as error:
        verify_cli.read_stack_config("nosuch", None)
    assert str(stack_file.ROOT / "Pulumi.nosuch.yaml") in str(error.value)
    assert "/tools/" not in str(error.value)


def test_a_file_splits_into_project_keys_gcp_project_and_other_namespaces(tmp_path: Path) -> None:
    found = stack_file.read(write_stack_file(tmp_path / "Pulumi.t.yaml", base(), gcp_project="p-123456"))
    assert found.project == base()
    assert found.gcp_project == "p-123456"
    assert found.other == {"pulumi:disable-default-providers": ["kubernetes"]}
    assert found.values()["gke-istio-mesh:meshId"] == "mesh1"


def test_the_ca_section_may_be_ciphertext_and_only_readable_drops_it(tmp_path: Path) -> None:
    config = base() | {"ca": {"rootCertPem": "x", "rootKeyPem": {"secure": "v1:abc"}}}
    found = stack_file.read(write_stack_file(tmp_path / "Pulumi.t.yaml", config))
    assert found.project["ca"]["rootKeyPem"] == {"secure": "v1:abc"}
    assert "ca" not in found.readable() and found.readable()["clusters"] == base()["clusters"]
    assert stack_file.is_secure(found.project["ca"]["rootKeyPem"])


@pytest.mark.parametrize(("text", "message"), [
    ("config: [1]\n", "has no `config:` map"),
    ("config: {a: [\n", "not valid YAML"),
])
def test_a_bad_file_names_itself_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(text)
    with pytest.raises(stack_file.StackFileError, match=message) as error:
        stack_file.read(path)
    assert str(path) in str(error.value)


def test_a_missing_stack_names_the_stacks_there_are(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": {}}))
    with pytest.raises(stack_file.StackFileError, match=r"there is no Pulumi.prod.yaml .*\(stacks: dev\)"):
        stack_file.read_stack("prod", tmp_path)
