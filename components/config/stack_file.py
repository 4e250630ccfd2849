"""The one reader of `Pulumi.<stack>.yaml` for the offline engine and every command.

It finds the file at the project root (the folder holding Pulumi.yaml, whatever module
asks), splits the `config:` block into the project's keys (namespace dropped), `gcp:project`
and the other namespaced keys, and owns the one rule about ciphertext: a section that
`pulumi config set --secret` may have encrypted is dropped before an offline parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.names import PROJECT

# components/config/stack_file.py -> the project root, where Pulumi.yaml and the stack files live.
ROOT = Path(__file__).resolve().parents[2]

# Sections that may hold `secure:` ciphertext only the Pulumi CLI can decrypt (ca.rootKeyPem,
# ca.intermediates.<cluster>.keyPem). Routing, flips, probes and prices do not depend on them.
CIPHERTEXT_SECTIONS = ("ca",)


class StackFileError(ValueError):
    """The stack file is missing, unreadable or not in the `config:` format."""


def path_for(stack: str, root: Path = ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def stacks(root: Path = ROOT) -> list[str]:
    """The stacks that have a file in `root`."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def is_secure(value: Any) -> bool:
    """A value as `pulumi config set --secret` stores it: `{secure: <ciphertext>}`."""
    return isinstance(value, Mapping) and set(value) == {"secure"}


@dataclass(frozen=True)
class StackFile:
    path: Path
    # The project's keys without the `gke-istio-mesh:` namespace, as the program's parser takes them.
    project: dict[str, Any]
    gcp_project: str | None
    # Every other namespaced key (e.g. pulumi:disable-default-providers), fully qualified.
    other: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        """The `config:` block as written, keys fully qualified."""
        values = dict(self.other)
        if self.gcp_project is not None:
            values["gcp:project"] = self.gcp_project
        values.update({f"{PROJECT}:{k}": v for k, v in self.project.items()})
        return values

    def readable(self) -> dict[str, Any]:
        """The project's keys an offline tool can parse: without the sections that may be ciphertext."""
        return {k: v for k, v in self.project.items() if k not in CIPHERTEXT_SECTIONS}


def read(path: Path) -> StackFile:
    """A stack-format YAML file; StackFileError names the file and what is wrong."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as error:
        raise StackFileError(f"{path}: cannot read the stack file ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{path}: not valid YAML ({error})") from None
    values = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(values, dict):
        raise StackFileError(f"{path} has no `config:` map (expected the format of Pulumi.<stack>.yaml)")
    prefix = f"{PROJECT}:"
    project = {k[len(prefix):]: v for k, v in values.items() if str(k).startswith(prefix)}
    other = {k: v for k, v in values.items() if not str(k).startswith(prefix) and k != "gcp:project"}
    gcp = values.get("gcp:project")
    return StackFile(path=path, project=project, gcp_project=None if gcp is None else str(gcp), other=other)


def read_stack(stack: str, root: Path = ROOT) -> StackFile:
    """`Pulumi.<stack>.yaml` at the project root; a missing one names the stacks there are."""
    path = path_for(stack, root)
    if not path.is_file():
        raise StackFileError(f"there is no {path.name} in {root} (stacks: {', '.join(stacks(root)) or 'none'})")
    return read(path)
