"""One shared fixture: run the whole program under Pulumi mocks and inspect what it declared.

Tests start from `offline.configs.base()`, the tests' own config, never from a
`Pulumi.<stack>.yaml` a user edits; tests of the shipped stacks say so in their names.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

from offline import Program, run_program
from offline.configs import base


def pytest_configure(config: pytest.Config) -> None:
    """Collect garbage less often: each program run allocates ~10^5 objects beside the programs the
    module fixtures keep, and the default thresholds spend about a third of a run walking them."""
    gc.set_threshold(10_000, 20, 20)


@pytest.fixture
def base_config() -> dict[str, Any]:
    """A fresh, editable copy of the tests' two-cluster config."""
    return base()


@pytest.fixture
def run() -> Callable[..., Program]:
    """Run the program with a given project config (default: the base config, never a stack file)."""

    def run_config(config: dict[str, Any] | None = None, **options: Any) -> Program:
        return run_program(base() if config is None else config, **options)

    return run_config


@pytest.fixture(scope="session")
def base_stack() -> Program:
    """The base config as declared, computed once for the read-only tests."""
    return run_program(base())
