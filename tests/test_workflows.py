"""GitHub Actions delivery: valid workflows that test, preview every stack and deploy dev before prod.

Each workflow is validated offline against the GitHub workflow JSON schema that
check-jsonschema vendors (no network), then checked for what matters to whoever merges a
pull request: every stack file gets a `pulumi preview --diff` comment, prod is deployed only
after dev and behind the `production` environment, no job can overlap another update of the
same stack, GCP is reached without a JSON key, and the runner that talks to the control planes
is the self-hosted one whose egress address is allow-listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema
from ruamel.yaml import YAML

from offline import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(p for p in WORKFLOWS.glob("*.y*ml") if p.suffix in (".yml", ".yaml"))
PULUMI_ACTION = "pulumi/actions"
AUTH_ACTION = "google-github-actions/auth"
SETUP_GCLOUD_ACTION = "google-github-actions/setup-gcloud"
# owner/repo[/path]@vMAJOR[.MINOR[.PATCH]] or a full commit SHA; never a branch such as @main.
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


def _load(path: Path) -> dict[str, Any]:
    # YAML 1.2, as GitHub reads workflows: the `on:` key stays a string (PyYAML would make it True).
    return YAML(typ="safe", pure=True).load(path.read_text())


def _workflow(name: str) -> dict[str, Any]:
    path = WORKFLOWS / name
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    return _load(path)


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def _action(step: dict[str, Any]) -> str:
    return step.get("uses", "").split("@", 1)[0]


def _pulumi_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _steps(job) if _action(s) == PULUMI_ACTION]


def _all_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in WORKFLOW_FILES:
        for job_id, job in _load(path)["jobs"].items():
            yield path.name, job_id, job


def _pulumi_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(f, j, job) for f, j, job in _all_jobs() if _pulumi_steps(job)]


def _stacks_in_repo() -> set[str]:
    return {p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")}


def _readme_test_command() -> str:
    """The test command of README's "The two commands": the line of its block that is not `pulumi`."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.+?)\n```", section, re.S)
    assert match, "README's two-commands block is missing"
    commands = [line.split("#", 1)[0].strip() for line in match.group(1).splitlines()]
    tests = [c for c in commands if c and not c.startswith("pulumi ")]
    assert len(tests) == 1, f"README's two commands should be one deploy and one test command: {commands}"
    return tests[0]


def _test_jobs(workflow: dict[str, Any]) -> list[str]:
    command = _readme_test_command()
    return [job_id for job_id, job in workflow["jobs"].items()
            if any(s.get("run", "").strip() == command for s in _steps(job))]


def _environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


# ------------------------------------------------------------------ schema


@pytest.fixture(scope="module")
def workflow_schema() -> dict[str, Any]:
    """GitHub's workflow schema as vendored by check-jsonschema (offline)."""
    return get_builtin_schema("vendor.github-workflows")


def test_the_delivery_workflows_exist() -> None:
    assert {p.name for p in WORKFLOW_FILES} >= {"pull-request.yml", "deploy.yml"}


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_is_valid_for_github(workflow_schema: dict[str, Any], path: Path) -> None:
    validator = jsonschema.Draft7Validator(workflow_schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(_load(path))]
    assert errors == []


def test_the_schema_check_rejects_a_broken_workflow(workflow_schema: dict[str, Any]) -> None:
    broken = _workflow("deploy.yml")
    del broken["jobs"]["up-dev"]["runs-on"]
    broken["jobs"]["up-prod"]["concurrency"] = {"cancel-in-progress": False}
    validator = jsonschema.Draft7Validator(workflow_schema)
    assert list(validator.iter_errors(broken)), "a job without runs-on and a group-less concurrency must fail"


# ------------------------------------------------------------------ behaviour


def test_pull_requests_run_the_readme_test_command_on_a_hosted_runner() -> None:
    assert (ROOT / ".ci" / "run").read_text().strip().endswith(_readme_test_command())
    for name in ("pull-request.yml", "deploy.yml"):
        workflow = _workflow(name)
        (test_job,) = _test_jobs(workflow)
        job = workflow["jobs"][test_job]
        assert str(job["runs-on"]).startswith("ubuntu-")
        assert any(_action(s) == "actions/setup-python" for s in _steps(job))
    assert "pull_request" in _workflow("pull-request.yml")["on"]


def test_every_stack_file_gets_a_diff_preview_comment_on_pull_requests() -> None:
    workflow = _workflow("pull-request.yml")
    (test_job,) = _test_jobs(workflow)
    previews = {job_id: job for job_id, job in workflow["jobs"].items() if _pulumi_steps(job)}
    assert previews
    previewed: set[str] = set()
    for job_id, job in previews.items():
        assert test_job in _needs(job), f"{job_id} must wait for the offline suite"
        assert job["permissions"]["pull-requests"] == "write"
        stacks = job.get("strategy", {}).get("matrix", {}).get("stack", [])
        for step in _pulumi_steps(job):
            w = step["with"]
            assert w["command"] == "preview"
            assert w["diff"] is True and w["comment-on-pr"] is True
            assert w["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
            previewed |= set(stacks) if w["stack-name"] == "${{ matrix.stack }}" else {w["stack-name"]}
    assert previewed == _stacks_in_repo()
    assert _stacks_in_repo() >= {"dev", "prod"}


def test_push_to_main_deploys_dev_then_prod_behind_the_production_environment() -> None:
    workflow = _workflow("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    (test_job,) = _test_jobs(workflow)
    ups = {}
    for job_id, job in workflow["jobs"].items():
        for step in _pulumi_steps(job):
            assert step["with"]["command"] == "up"
            ups[step["with"]["stack-name"]] = job_id
    assert set(ups) == _stacks_in_repo()
    dev, prod = workflow["jobs"][ups["dev"]], workflow["jobs"][ups["prod"]]
    assert test_job in _needs(dev)
    assert ups["dev"] in _needs(prod)
    assert _environment(prod) == "production"
    assert _environment(dev) != "production"


def test_two_updates_of_one_stack_never_overlap() -> None:
    groups: dict[str, set[str]] = {}
    for name, job_id, job in _pulumi_jobs():
        for step in _pulumi_steps(job):
            if step["with"].get("command") != "up":
                continue
            concurrency = job.get("concurrency")
            assert isinstance(concurrency, dict), f"{name}:{job_id} has no concurrency group"
            assert concurrency["cancel-in-progress"] is False, "an update must never be cancelled midway"
            groups.setdefault(step["with"]["stack-name"], set()).add(concurrency["group"])
    assert all(len(g) == 1 for g in groups.values()), groups
    assert len({next(iter(g)) for g in groups.values()}) == len(groups), "each stack needs its own group"


def test_gcp_is_reached_through_workload_identity_never_a_json_key() -> None:
    for path in WORKFLOW_FILES:
        assert "credentials_json" not in path.read_text(), path.name
    for name, job_id, job in _pulumi_jobs():
        steps = _steps(job)
        actions = [_action(s) for s in steps]
        auth = steps[actions.index(AUTH_ACTION)]
        assert set(auth["with"]) == {"workload_identity_provider", "service_account"}
        assert job["permissions"]["id-token"] == "write", f"{name}:{job_id} cannot mint an OIDC token"
        gcloud = steps[actions.index(SETUP_GCLOUD_ACTION)]
        assert "gke-gcloud-auth-plugin" in gcloud["with"]["install_components"]
        assert actions.index(AUTH_ACTION) < actions.index(SETUP_GCLOUD_ACTION) < actions.index(PULUMI_ACTION)


def test_pulumi_runs_on_the_allow_listed_runner_with_dependencies_and_gcs_state() -> None:
    jobs = _pulumi_jobs()
    assert jobs
    for name, job_id, job in jobs:
        labels = job["runs-on"] if isinstance(job["runs-on"], list) else [job["runs-on"]]
        assert "self-hosted" in labels, f"{name}:{job_id}: hosted runners are not in authorizedNetworks"
        steps = _steps(job)
        install = next(i for i, s in enumerate(steps) if "pip install -r requirements.txt" in s.get("run", ""))
        first_pulumi = next(i for i, s in enumerate(steps) if _action(s) == PULUMI_ACTION)
        assert install < first_pulumi, "pulumi/actions does not install Python dependencies"
        for step in _pulumi_steps(job):
            assert step["with"]["cloud-url"].startswith("gs://${{ vars.")
            assert step["with"]["work-dir"] == "."
            assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


def test_every_preview_and_update_enforces_the_policy_pack() -> None:
    jobs = _pulumi_jobs()
    assert jobs
    for name, job_id, job in jobs:
        steps = _steps(job)
        install = next((i for i, s in enumerate(steps)
                        if "pip install -r policy/requirements.txt" in s.get("run", "")), None)
        assert install is not None, f"{name}:{job_id}: the policy pack's virtualenv is never installed"
        for i, step in enumerate(steps):
            # A pulumi/actions step without `command` only installs the CLI (tools.flip drives it).
            if _action(step) == PULUMI_ACTION and "command" in step["with"]:
                assert step["with"].get("policyPacks") == "policy", f"{name}:{job_id}: runs without the pack"
                assert install < i
    assert (ROOT / "policy" / "PulumiPolicy.yaml").is_file()


def test_pull_requests_from_forks_never_reach_the_deploy_runner() -> None:
    for job_id, job in _workflow("pull-request.yml")["jobs"].items():
        if _pulumi_steps(job):
            assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository", job_id


def test_stacks_use_the_passphrase_secrets_provider_the_workflows_supply() -> None:
    for stack in _stacks_in_repo():
        doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        assert doc.get("secretsprovider", "passphrase") == "passphrase", stack


def test_every_action_is_pinned_to_a_version() -> None:
    uses = [s["uses"] for _, _, job in _all_jobs() for s in _steps(job) if "uses" in s]
    assert uses
    unpinned = [u for u in uses if not PINNED.match(u)]
    assert unpinned == []


# ------------------------------------------------------------------ flip


FULL_SHA_WITH_VERSION = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def test_flip_is_dispatched_by_hand_for_each_stack_behind_its_environment() -> None:
    workflow = _workflow("flip.yml")
    assert set(workflow["on"]) == {"workflow_dispatch"}
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs["stack"]["options"]) == _stacks_in_repo()
    (job,) = workflow["jobs"].values()
    assert job["environment"] == "${{ inputs.stack == 'prod' && 'production' || inputs.stack }}"
    # The same group as the deploy workflow's update of that stack: a flip never overlaps `pulumi up`.
    deploy_groups = {job["concurrency"]["group"] for job in _workflow("deploy.yml")["jobs"].values()
                     if "concurrency" in job}
    assert {job["concurrency"]["group"].replace("${{ inputs.stack }}", s) for s in _stacks_in_repo()} == deploy_groups
    assert job["concurrency"]["cancel-in-progress"] is False


def test_flip_runs_the_command_with_inputs_as_variables_and_records_the_weights_in_a_pull_request() -> None:
    (job,) = _workflow("flip.yml")["jobs"].values()
    steps = _steps(job)
    (flip,) = [s for s in steps if "python -m tools.flip" in s.get("run", "")]
    assert "${{" not in flip["run"], "inputs must reach the shell as environment variables"
    assert flip["env"]["PULUMI_BACKEND_URL"].startswith("gs://${{ vars.")
    record = steps[steps.index(flip) + 1]
    assert record["if"] == "always()", "a rollback's weights must be recorded too"
    assert 'git add -- "$file"' in record["run"] and "gh pr create" in record["run"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write", "id-token": "write"}


def test_flip_pins_every_action_by_full_commit_sha_with_its_version() -> None:
    lines = [line for line in (WORKFLOWS / "flip.yml").read_text().splitlines() if "uses:" in line]
    assert lines
    assert [line for line in lines if not FULL_SHA_WITH_VERSION.match(line)] == []
