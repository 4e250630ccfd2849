"""Fleet + Config Sync (`workloads`): off by default; on, every cluster joins the fleet and syncs one Git path."""

from __future__ import annotations

import pytest

from components.config import WorkloadsSpec
from components.fleet import config_sync, membership_resource_link
from components.names import FLEET_FEATURE, FLEET_FEATURE_MEMBERSHIP, FLEET_MEMBERSHIP, GKE_CLUSTER
from offline import ProgramError, changed_resources
from offline.configs import base, three_clusters

REPO = "https://github.com/acme/mesh-apps"


def _on(config: dict, **workloads) -> dict:
    config["workloads"] = {"enabled": True, "repo": REPO, **workloads}
    return config


def test_off_by_default_nothing_of_the_fleet_is_declared(base_stack) -> None:
    assert not [r for r in base_stack.resources if "gkehub" in r.type]


def test_every_cluster_joins_the_fleet_and_syncs_the_same_path(run) -> None:
    program = run(_on(base(), path="apps/prod", branch="release"))
    features = program.of_type(FLEET_FEATURE)
    assert [(f.inputs["name"], f.inputs["location"]) for f in features] == [("configmanagement", "global")]
    memberships = {m.name: m for m in program.of_type(FLEET_MEMBERSHIP)}
    gke = {c.name: c for c in program.of_type(GKE_CLUSTER)}
    for cluster in ("blue", "green"):
        m = memberships[f"{cluster}-membership"]
        # The membership points at this cluster's GKE resource and is named after its (unique) GKE name.
        assert m.inputs["endpoint"]["gkeCluster"]["resourceLink"] == f"//container.googleapis.com/{gke[cluster].id}"
        assert m.inputs["membershipId"] == gke[cluster].outputs["name"]
    syncs = {s.name: s.inputs for s in program.of_type(FLEET_FEATURE_MEMBERSHIP)}
    assert set(syncs) == {"blue-config-sync", "green-config-sync"}
    for s in syncs.values():
        assert s["feature"] == "configmanagement"
        git = s["configmanagement"]["configSync"]["git"]
        assert (git["syncRepo"], git["policyDir"], git["syncBranch"]) == (REPO, "apps/prod", "release")
        assert s["configmanagement"]["configSync"]["enabled"] is True


def test_a_new_cluster_gets_its_membership_and_sync_without_touching_the_others(run) -> None:
    before, after = run(_on(base())), run(_on(three_clusters(base())))
    diff = changed_resources(before, after)
    fleet_added = sorted(after.by_urn[u].name for u in diff.added if "gkehub" in after.by_urn[u].type)
    assert fleet_added == ["teal-config-sync", "teal-membership"]
    assert not [u for u in diff.changed + diff.removed if "gkehub" in u]


def test_config_sync_spec_is_refused_without_a_repository() -> None:
    with pytest.raises(ValueError, match=r"workloads\.repo"):
        config_sync(WorkloadsSpec(enabled=True))
    assert membership_resource_link("projects/p/locations/r/clusters/c") == \
        "//container.googleapis.com/projects/p/locations/r/clusters/c"


@pytest.mark.parametrize(("workloads", "message"), [
    ({"enabled": True}, "workloads.enabled is true but workloads.repo is not set"),
    ({"enabled": "yes", "repo": REPO}, "workloads.enabled 'yes' must be true or false"),
    ({"enabled": True, "repo": "github.com/acme"}, "workloads.repo 'github.com/acme' must be a Git URL"),
    ({"enabled": True, "repo": REPO, "path": "../etc"}, "workloads.path '../etc' must be a relative directory"),
    ({"enabled": True, "repo": REPO, "branch": "a b"}, "workloads.branch 'a b' must be a Git branch name"),
    ({"enabled": True, "repo": REPO, "ref": "x"}, "workloads.ref is not a known key"),
])
def test_bad_workloads_config_stops_the_program_with_the_key_named(run, workloads, message) -> None:
    config = base()
    config["workloads"] = workloads
    with pytest.raises(ProgramError) as failure:
        run(config)
    assert message in str(failure.value)
    assert failure.value.declared == []
