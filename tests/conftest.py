"""One shared fixture: run the whole program under Pulumi mocks and inspect what it declared."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import Program, project_config, run_program


@pytest.fixture
def dev_config() -> dict[str, Any]:
    """A fresh, editable copy of the dev stack's project config."""
    return copy.deepcopy(project_config("dev"))


@pytest.fixture
def run() -> Callable[..., Program]:
    """Run the program with a given project config (default: Pulumi.dev.yaml's)."""
    return run_program


@pytest.fixture(scope="session")
def dev_stack() -> Program:
    """The dev stack as declared, computed once for the read-only tests."""
    return run_program()
