"""The cost estimate counts what the program declares and prices it from tools/cost/prices.yaml."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
import yaml

from offline import ROOT, Program, configs
from tools.cost.cli import main as cost_main
from tools.cost.estimate import PRICES_FILE, PriceError, estimate, load_prices, render, render_change

PRICES = load_prices()
H = PRICES.hours


def _line(est, prefix: str):
    (line,) = [x for x in est.lines if x.item.startswith(prefix)]
    return line


def test_every_price_cites_a_page_and_the_day_it_was_read() -> None:
    for key, price in PRICES.prices.items():
        assert re.match(r"https://\S+$", price.source), key
        assert datetime.date.fromisoformat(price.read) <= datetime.datetime.now(datetime.UTC).date(), key
        assert price.value > 0, key


def test_fees_nodes_disks_and_addresses_follow_the_declared_resources(base_stack: Program) -> None:
    est = estimate(base_stack, PRICES)
    config = configs.base()
    n = len(config["clusters"])
    assert _line(est, "GKE cluster management fee").low == pytest.approx(n * PRICES["gke_cluster_fee"] * H)
    for c in config["clusters"]:
        nodes, disks = _line(est, f"nodes of {c['name']}-pool"), _line(est, f"boot disks of {c['name']}-pool")
        shape = PRICES.machine_types[c["machineType"]]
        family = shape["family"]
        per_node = (shape["vcpus"] * PRICES[f"{family}_vcpu"] + shape["memory_gib"] * PRICES[f"{family}_memory"]) * H
        zones = PRICES.zones
        assert (nodes.low, nodes.high) == pytest.approx(
            (c["minNodes"] * zones * per_node, c["maxNodes"] * zones * per_node))
        assert disks.low == pytest.approx(c["minNodes"] * zones * PRICES.default_disk_gib * PRICES["pd_balanced"])
    # One NAT address and one east-west address and forwarding rule per cluster.
    assert _line(est, "Cloud NAT addresses").low == pytest.approx(n * PRICES["nat_ip"] * H)
    assert _line(est, "load balancer forwarding rules").low == pytest.approx(n * PRICES["forwarding_rule"] * H)
    assert _line(est, "static addresses in use").low == pytest.approx(n * PRICES["static_ip_in_use"] * H)
    assert est.low == pytest.approx(sum(x.low for x in est.lines)) and est.high > est.low
    # Egress is a rate, never a total: no volume is declared.
    assert {p.key for _, p in est.rates} == {"nat_data", "egress_inter_region", "egress_internet"}
    assert "per GiB" in render(est, "base")


def test_a_bigger_machine_type_doubles_the_node_line_and_the_change_is_shown(run, base_config,
                                                                             base_stack: Program) -> None:
    base_config["clusters"][0]["machineType"] = "e2-standard-8"
    after = estimate(run(base_config), PRICES)
    before = estimate(base_stack, PRICES)
    name = base_config["clusters"][0]["name"]
    assert _line(after, f"nodes of {name}-pool").low == pytest.approx(2 * _line(before, f"nodes of {name}-pool").low)
    change = render_change(before, after)
    assert f"nodes of {name}-pool" in change and "boot disks" not in change
    assert render_change(before, before).count("\n") == 0


def test_an_unpriced_region_is_named_not_guessed(run, base_config) -> None:
    base_config["clusters"][0]["region"] = "europe-west1"
    program = run(base_config)
    with pytest.raises(PriceError, match=r"node pool .*-pool: no price for region 'europe-west1'"):
        estimate(program, PRICES)


def test_the_edge_adds_its_forwarding_rules_and_global_address(run, base_stack: Program) -> None:
    config = configs.base()
    config["traffic"]["services"][0]["hosts"] = ["helloworld.example.com"]
    config["edge"] = {"enabled": True, "https": True}
    with_edge, without = estimate(run(config), PRICES), estimate(base_stack, PRICES)
    # HTTP (redirect) and HTTPS rules on one global anycast address.
    rules = _line(with_edge, "load balancer forwarding rules (edge)")
    assert rules.low == pytest.approx(2 * PRICES["forwarding_rule"] * H)
    assert _line(with_edge, "static addresses in use").low - _line(without, "static addresses in use").low == \
        pytest.approx(PRICES["static_ip_in_use"] * H)
    assert not [x for x in without.lines if x.item.endswith("(edge)")]


SHIPPED_STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
MACHINE_TYPE = re.compile(r"\b(?:e2|n1|n2|n2d|n4|c2|c3|c4|t2d)-(?:standard|highmem|highcpu)-\d+\b")


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_shipped_stack_has_an_estimate(stack: str, capsys) -> None:
    """`make cost STACK=<stack>` (python -m tools.cost --stack <stack>) exits 0 for every shipped stack file."""
    assert cost_main(["--stack", stack]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.startswith(f"stack '{stack}': $") and "nodes of " in out


def test_every_machine_type_in_the_stacks_and_docs_is_priced_with_its_family() -> None:
    """The stack files' and the docs' example machine types (N2 in prod) have a shape and family prices,
    each price with its page and the day it was read."""
    texts = [p.read_text() for p in (*ROOT.glob("Pulumi.*.yaml"), ROOT / "README.md", *ROOT.glob("docs/*.md"))]
    used = {m for text in texts for m in MACHINE_TYPE.findall(text)}
    assert "n2-standard-8" in used  # the prod stack's
    for machine in sorted(used):
        assert machine in PRICES.machine_types, machine
        family = PRICES.machine_types[machine]["family"]
        for key in (f"{family}_vcpu", f"{family}_memory"):
            assert key in PRICES.prices, (machine, key)


def test_a_machine_family_without_prices_is_named_not_guessed(run, base_config, tmp_path: Path) -> None:
    prices = yaml.safe_load(PRICES_FILE.read_text())
    del prices["prices"]["n2_vcpu"]
    edited = tmp_path / "prices.yaml"
    edited.write_text(yaml.safe_dump(prices))
    base_config["clusters"][0]["machineType"] = "n2-standard-8"
    with pytest.raises(PriceError, match=r"'n2-standard-8' is of family 'n2', which has no n2_vcpu"):
        estimate(run(base_config), load_prices(edited))
