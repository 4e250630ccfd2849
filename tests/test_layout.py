"""Imports flow one way: components <- offline <- {tools, bench, tests}; the policy pack stands alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from offline import ROOT

PACKAGES = ("components", "offline", "tools", "bench", "tests", "policy")
# What each part of the code may import from the others.
ALLOWED: dict[str, set[str]] = {
    "components": {"components"},
    "offline": {"components", "offline"},
    "tools": {"components", "offline", "tools"},
    "bench": {"components", "offline", "bench"},
    "tests": {"components", "offline", "tools", "policy", "tests"},  # tests: only tests.fakes (below)
    "policy": set(),  # runs in its own virtualenv: imports only its own modules, top-level
}


def project_imports(path: Path) -> set[str]:
    """The project packages a module imports (first dotted part), at any depth of the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES)
    return found


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "venv" not in p.parts)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package: str) -> None:
    wrong = {str(p.relative_to(ROOT)): sorted(project_imports(p) - ALLOWED[package]) for p in modules(package)}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_no_test_imports_another_test_module() -> None:
    offenders = []
    for p in modules("tests"):
        for node in ast.walk(ast.parse(p.read_text())):
            # tests.fakes is the test doubles' home (stand-ins for the CLI and the APIs), shared by the tests.
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests") \
                    and not node.module.startswith("tests.fakes"):
                offenders.append(f"{p.name}: from {node.module}")
            if isinstance(node, ast.Import) and any(a.name.startswith("tests") and not a.name.startswith("tests.fakes")
                                                    for a in node.names):
                offenders.append(f"{p.name}: import tests")
    assert offenders == []


def test_the_program_imports_only_components() -> None:
    assert project_imports(ROOT / "__main__.py") == {"components"}


def test_the_layout_check_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom bench import measure\n\ndef f():\n    from tests import conftest\n")
    assert project_imports(module) == {"bench", "tests"}
