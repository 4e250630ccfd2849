"""Pulumi runtime glue: read the project's keys from the engine and stop with a clean message."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from components.config.model import PROD_STACKS, ConfigError, StackConfig
from components.config.parsing import TOP_LEVEL_KEYS, parse
from components.config.rules import unknown_key_message
from components.names import PROJECT


def read_raw(get: Callable[[str], Any]) -> dict[str, Any]:
    """Read the project's keys through `get(full_key)`; structured values arrive as JSON."""
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        value = get(f"{PROJECT}:{key}")
        if value is None:
            continue
        if isinstance(value, str) and key != "meshId":
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # left as a string; the parser reports its type
        raw[key] = value
    return raw


def load() -> StackConfig:
    """Read and validate the stack's config; a bad value stops the program with a clean message."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = read_raw(runtime_config.get_config)
    unknown = _unknown_project_keys(runtime_config)
    try:
        if unknown:
            raise ConfigError([unknown_key_message(k, TOP_LEVEL_KEYS) for k in unknown])
        return parse(
            raw,
            project=pulumi.Config("gcp").get("project"),
            ca_is_secret=runtime_config.is_config_secret(f"{PROJECT}:ca"),
            # Prod is recognised by stack name, as the policy pack recognises it (PROD_STACKS).
            prod=pulumi.get_stack() in PROD_STACKS,
        )
    except ConfigError as error:
        lines = "\n".join(f"  - {line}" for line in error.problems)
        raise pulumi.RunError(f"invalid stack config ({len(error.problems)} problem(s)):\n{lines}") from None


def _unknown_project_keys(runtime_config: Any) -> list[str]:
    # The language host passes config either in-process or through PULUMI_CONFIG.
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{PROJECT}:"
    return sorted(k[len(prefix):] for k in keys if k.startswith(prefix) and k[len(prefix):] not in TOP_LEVEL_KEYS)
