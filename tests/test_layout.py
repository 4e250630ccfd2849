"""Imports flow one way: components <- offline <- {tools, bench, tests}; the policy pack stands alone.

The test doubles live in `tests/fakes/`: tests import them, nothing the commands ship does, and a
test module never imports another test module."""

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
    "tests": {"components", "offline", "tools", "policy", "tests"},  # `tests` only as `tests.fakes`
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


def imports_of_tests(path: Path) -> list[str]:
    """The `tests...` modules a module imports, dotted, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [node.module] if node.module != "tests" else [f"tests.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [n for n in found if n == "tests" or n.startswith("tests.")]


def test_tests_import_only_the_fakes_from_tests() -> None:
    offenders = [f"{p.relative_to(ROOT)}: {name}" for p in modules("tests") for name in imports_of_tests(p)
                 if not (name == "tests.fakes" or name.startswith("tests.fakes."))]
    assert offenders == []


def test_the_fakes_stay_with_the_tests() -> None:
    """The engine the commands ship holds no test doubles (and nothing it holds imports one)."""
    shipped = [p for package in ("offline", "tools", "bench", "components") for p in modules(package)]
    assert [str(p.relative_to(ROOT)) for p in shipped if p.name.startswith("fake_")] == []
    assert {str(p.relative_to(ROOT)): imports_of_tests(p) for p in shipped if imports_of_tests(p)} == {}


def test_the_program_imports_only_components() -> None:
    assert project_imports(ROOT / "__main__.py") == {"components"}


def test_the_layout_check_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom bench import measure\n\ndef f():\n    from tests import conftest\n"
                      "    from tests.fakes import fake_kube\n    import tests.test_flip\n")
    assert project_imports(module) == {"bench", "tests"}
    assert imports_of_tests(module) == ["tests.conftest", "tests.fakes", "tests.test_flip"]
