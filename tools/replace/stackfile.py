"""The stack file as the user wrote it: project config in, edited text out, comments and order kept.

Each phase of a replacement is a config state (`tools.replace.plan`); `rewrite` turns the file
into that state with ruamel.yaml's round trip, touching only what differs, so a phase's pull
request shows exactly its edit (and the user's comments survive). `project_config` reads the
project's keys back (without the namespace) as the program would.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Mapping
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from components.names import PROJECT


def _yaml() -> YAML:
    y = YAML()  # round trip
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    return y


def project_config(text: str) -> dict[str, Any]:
    """The project's keys of a stack file, without the namespace."""
    doc = yaml.safe_load(text) or {}
    return {k.split(":", 1)[1]: v for k, v in (doc.get("config") or {}).items() if k.startswith(f"{PROJECT}:")}


def gcp_project(text: str) -> str | None:
    return ((yaml.safe_load(text) or {}).get("config") or {}).get("gcp:project")


def _plain(value: Any) -> Any:
    """A value as ruamel writes it in block style (nested plain dicts and lists become commented nodes)."""
    if isinstance(value, Mapping):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _plain(v)
        return out
    if isinstance(value, list):
        return CommentedSeq([_plain(v) for v in value])
    return value


def _reconcile_map(node: CommentedMap, target: Mapping[str, Any]) -> None:
    for key in [k for k in node if k not in target]:
        del node[key]
    for key, value in target.items():
        if key in node:
            node[key] = _reconcile(node[key], value)
        else:
            node[key] = _plain(value)


def _named(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i, Mapping) and "name" in i for i in items)


def _reconcile(current: Any, target: Any) -> Any:
    """`current` (a ruamel node) turned into `target`, reusing nodes (and their comments) that still fit."""
    if isinstance(current, CommentedMap) and isinstance(target, Mapping):
        _reconcile_map(current, target)
        return current
    if isinstance(current, CommentedSeq) and isinstance(target, list):
        if _named(current) and _named(target):
            # Lists of named entries (clusters): entries keep their node by name; removed ones go, new ones append.
            wanted = [t["name"] for t in target]
            for i in reversed(range(len(current))):
                if current[i]["name"] not in wanted:
                    del current[i]
            have = [c["name"] for c in current]
            if have == wanted[:len(have)]:
                for node, t in zip(current, target, strict=False):
                    _reconcile_map(node, t)
                for t in target[len(have):]:
                    current.append(_plain(t))
                return current
            return _plain(target)
        if len(current) == len(target):
            for i, t in enumerate(target):
                current[i] = _reconcile(current[i], t)
            return current
        return _plain(target)
    return current if current == target and type(current) is type(target) else _plain(target)


def rewrite(text: str, target: Mapping[str, Any]) -> str:
    """The stack file's text with its project keys set to `target` (keys without the namespace)."""
    y = _yaml()
    doc = y.load(text)
    config = doc["config"]
    wanted = {f"{PROJECT}:{k}": v for k, v in target.items()}
    for key in [k for k in config if str(k).startswith(f"{PROJECT}:") and k not in wanted]:
        del config[key]
    for key, value in wanted.items():
        config[key] = _reconcile(config[key], value) if key in config else _plain(value)
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()


def diff(before: str, after: str, name: str, label: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=name, tofile=f"{name} ({label})"))
