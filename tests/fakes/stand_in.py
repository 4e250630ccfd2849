"""Setting up the stand-in `pulumi` (pulumi_cli.py beside this file) for a test: PATH wrapper, seeded state."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from components import config as stack_config
from components.traffic import virtual_service
from offline import changed_resources, run_with_weights, self_signed_pem
from offline.graph import owners

STAND_IN = Path(__file__).resolve().parent / "pulumi_cli.py"
START = {"blue": 100, "green": 0}
FINAL = {"blue": 0, "green": 100}


@functools.cache
def root_pem() -> str:
    return self_signed_pem(ec.generate_private_key(ec.SECP256R1()), "Root CA", organization="Istio", path_length=1)


def install(bin_dir: Path) -> Path:
    """A `pulumi` on PATH that runs the stand-in with this interpreter (its venv has ruamel, yaml, grpc)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "pulumi"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {STAND_IN} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def parse(config: Mapping[str, Any]) -> stack_config.StackConfig:
    return stack_config.parse({k: v for k, v in config.items() if k != "ca"}, project="stand-in-project")


# The owner of what a weights change touches but no cluster owns (the dashboard's weight lines).
SHARED = "(shared)"


@functools.cache
def _touched(config_json: str, stack: str) -> tuple[tuple[str, str], ...]:
    cfg = json.loads(config_json)
    cfg["ca"] = {"algorithm": "ECDSA"}
    before, after = run_with_weights(cfg, START, stack=stack), run_with_weights(cfg, FINAL, stack=stack)
    owner = owners(after)
    return tuple((urn, owner.get(urn) or SHARED) for urn in changed_resources(before, after).touched)


def routing_urns(config: Mapping[str, Any], stack: str = "dev") -> dict[str, str]:
    """URN -> owning cluster (or SHARED) of the resources a weights change touches, from the offline engine
    (a URN names its stack)."""
    return dict(_touched(json.dumps(dict(config), sort_keys=True), stack))


def seed(backend: Path, config: Mapping[str, Any], outputs: Mapping[str, Any], clusters: list[str],
         stack: str = "dev") -> Path:
    """The stand-in's `file://` state for `stack`: every cluster serving START, its outputs and resources."""
    state = backend / ".pulumi" / "stacks" / "gke-istio-mesh" / f"{stack}.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({
        "served": dict.fromkeys([*clusters, SHARED], START), "routing": routing_urns(config, stack),
        "virtualServices": [virtual_service(s, START) for s in parse(config).traffic.services],
        "outputs": dict(outputs)}))
    return state
