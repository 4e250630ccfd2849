"""Retiring a cluster is two steps: drain, then remove. The stack reads its own last outputs.

Each test runs the program twice, as two `pulumi up`s: the first run's exports are what the
stack's StackReference to itself returns on the second (offline/engine.py answers it from
`last_outputs`, as the engine answers it from the last checkpoint).
"""

from __future__ import annotations

from typing import Any

import pytest

from components.retirement import retirement_problems
from offline import Program, ProgramError, run_program
from offline.configs import base, three_clusters


def _config(weights: dict[str, int], *, teal: bool = True) -> dict[str, Any]:
    config = three_clusters(base()) if teal else base()
    config["ca"] = {"algorithm": "ECDSA"}
    config["traffic"]["weights"] = weights
    return config


@pytest.fixture(scope="module")
def teal_carrying() -> Program:
    return run_program(_config({"blue": 50, "teal": 50}))


def test_removing_a_cluster_that_still_carries_weight_is_refused_before_anything(teal_carrying) -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(_config({"blue": 100}, teal=False), last_outputs=teal_carrying.exports)
    assert ("clusters: 'teal' was removed but the last deployment still sends it traffic (helloworld.sample 50%); "
            "drain it first: set its weight to 0 in traffic.weights (and every traffic.services[].weights), "
            "`pulumi up`, then remove it from clusters") in str(failure.value)
    assert failure.value.declared == [], "a refused retirement must not register anything"


def test_drain_then_remove_goes_through(teal_carrying) -> None:
    drained = run_program(_config({"blue": 100}), last_outputs=teal_carrying.exports)
    assert drained.exports["trafficSplit"]["helloworld.sample"]["teal"] == 0
    removed = run_program(_config({"blue": 100}, teal=False), last_outputs=drained.exports)
    assert sorted(removed.exports["clusters"]) == ["blue", "green"]


def test_a_brand_new_stack_reads_its_own_empty_outputs_and_is_not_refused() -> None:
    program = run_program(_config({"blue": 100}, teal=False))
    assert sorted(program.exports["clusters"]) == ["blue", "green"]
    # A DIY backend reports "organization": the bare stack name, which both DIY layouts resolve.
    assert program.stack_references == ["dev"]


@pytest.mark.parametrize(("organization", "expected"), [
    ("organization", "dev"),                       # DIY (gs://, file://, --local), either layout
    ("acme", "acme/gke-istio-mesh/dev"),           # Pulumi Cloud: the stack's own organization
    (None, "dev"),                                  # no organization reported
])
def test_the_self_reference_is_spelled_for_the_backend_the_engine_reports(organization, expected) -> None:
    program = run_program(_config({"blue": 100}, teal=False), organization=organization)
    assert program.stack_references == [expected]
    # A pre-3.61 DIY store parses the whole reference as a stack name: no '/' may reach it.
    if organization in ("organization", None):
        assert "/" not in program.stack_references[0]


def test_a_per_service_weight_counts_too() -> None:
    last = {"clusters": {"blue": {}, "green": {}, "teal": {}},
            "trafficSplit": {"helloworld.sample": {"blue": 100, "green": 0, "teal": 0},
                             "cart.shop": {"blue": 70, "green": 0, "teal": 30}}}
    (problem,) = retirement_problems(last, ["blue", "green"])
    assert "'teal'" in problem and "(cart.shop 30%)" in problem
    assert retirement_problems(last, ["blue", "teal"]) == []
    assert retirement_problems({}, ["blue"]) == []
