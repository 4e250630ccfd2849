"""The keys tools/replace needs: a per-cluster GKE version floor and version-skew rules (Istio and GKE)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import config
from components.config.model import GKE_CHANNEL_MINOR_SPAN, MAX_ISTIO_MINOR_SKEW
from components.names import GKE_CLUSTER
from offline import ProgramError
from offline.configs import base


def test_min_master_version_reaches_the_cluster_and_is_not_sent_when_unset(run, base_stack) -> None:
    assert all("minMasterVersion" not in c.inputs for c in base_stack.of_type(GKE_CLUSTER))
    config_ = base()
    config_["clusters"][1]["minMasterVersion"] = "1.34"
    program = run(config_)
    by_name = {c.name: c.inputs for c in program.of_type(GKE_CLUSTER)}
    assert by_name["green"]["minMasterVersion"] == "1.34"
    assert "minMasterVersion" not in by_name["blue"]


@pytest.mark.parametrize(("edit", "message"), [
    ({"clusters[0].minMasterVersion": "latest"},
     "clusters[0].minMasterVersion 'latest' must be a GKE version: a minor such as 1.33"),
    ({"clusters[0].minMasterVersion": "2.1"}, "clusters[0].minMasterVersion '2.1' must be a GKE version"),
    ({"clusters[0].minMasterVersion": "1.31", "clusters[1].minMasterVersion": "1.34"},
     "clusters[1].minMasterVersion 1.34 (green) is 3 minor versions from clusters[0].minMasterVersion 1.31 (blue); "
     "the REGULAR release channel offers 3 minor versions side by side, so its clusters can be at most 2 apart"),
    ({"clusters[0].minMasterVersion": "1.33", "clusters[1].minMasterVersion": "1.35.0-gke.1",
      "clusters[1].releaseChannel": "STABLE"},
     "clusters[1].minMasterVersion 1.35.0-gke.1 (green) is 2 minor versions from clusters[0].minMasterVersion 1.33 "
     "(blue); the STABLE release channel offers 2 minor versions side by side, so its clusters can be at most 1 apart"),
    ({"clusters[1].istioVersion": "1.32.0"},
     "clusters[1].istioVersion 1.32.0 (green) is 2 minor releases from istio.version 1.30.3 (blue); Istio supports "
     "a control plane at most 1 minor ahead of the proxies it serves"),
    ({"clusters[0].istioVersion": "1.28.1", "istio.version": "1.30.3"},
     "clusters[0].istioVersion 1.28.1 (blue)"),
])
def test_each_version_rule_stops_the_program_naming_the_key(run, edit, message) -> None:
    config_ = base()
    for path, value in edit.items():
        section, _, key = path.rpartition(".")
        node = config_[section] if "[" not in section else config_["clusters"][int(section[9])]
        node[key] = value
    with pytest.raises(ProgramError) as failure:
        run(config_)
    assert message in str(failure.value)
    assert failure.value.declared == []


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(GKE_CHANNEL_MINOR_SPAN)), st.sampled_from(sorted(GKE_CHANNEL_MINOR_SPAN)),
       st.integers(28, 36), st.integers(28, 36), st.integers(27, 33), st.integers(27, 33))
def test_skew_is_refused_exactly_beyond_the_documented_limits(ch_a, ch_b, gke_a, gke_b, istio_a, istio_b) -> None:
    config_ = base()
    config_["istio"]["version"] = f"1.{istio_a}.1"
    config_["clusters"][1]["istioVersion"] = f"1.{istio_b}.1"
    for c, ch, v in zip(config_["clusters"], (ch_a, ch_b), (gke_a, gke_b), strict=True):
        c["releaseChannel"], c["minMasterVersion"] = ch, f"1.{v}"
    gke_limit = min(GKE_CHANNEL_MINOR_SPAN[ch_a], GKE_CHANNEL_MINOR_SPAN[ch_b]) - 1
    expected = {"minMasterVersion": abs(gke_a - gke_b) > gke_limit,
                "istioVersion": abs(istio_a - istio_b) > MAX_ISTIO_MINOR_SKEW}
    try:
        config.parse(config_, project="mesh-test-project")
        problems: tuple[str, ...] = ()
    except config.ConfigError as error:
        problems = error.problems
    for key, refused in expected.items():
        assert any(key in p for p in problems) == refused, problems
    assert len(problems) == sum(expected.values()), problems


def test_an_invalid_mesh_pin_is_reported_once_not_again_as_skew() -> None:
    config_ = base()
    config_["istio"]["version"] = "abc"
    config_["clusters"][1]["istioVersion"] = "1.31.0"
    with pytest.raises(config.ConfigError) as failure:
        config.parse(config_, project="mesh-test-project")
    assert len(failure.value.problems) == 1 and failure.value.problems[0].startswith("istio.version 'abc'")
