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
# `uses: owner/repo[/path]@<40-hex commit> # vX.Y.Z`: a tag can be moved, a commit cannot; the
# comment says which release the commit is (verified against the action's repository).
PINNED_LINE = re.compile(r"^\s*(- )?uses: [A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
PREVIEW_RUNNER = "gke-mesh-preview"
DEPLOY_RUNNER = "gke-mesh-deployer"
# Environments whose deployment-branch rule admits main only (docs/delivery.md "Identities").
MAIN_ONLY_ENVIRONMENTS = {"dev", "production-preview", "production"}


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
    """Steps that run a Pulumi command (an install-only step has none)."""
    return [s for s in _steps(job) if _action(s) == PULUMI_ACTION and s.get("with", {}).get("command")]


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


def _labels(job: dict[str, Any]) -> list[str]:
    return job["runs-on"] if isinstance(job["runs-on"], list) else [job["runs-on"]]


def _index(steps: list[dict[str, Any]], pred: Any) -> int:
    return next(i for i, s in enumerate(steps) if pred(s))


def test_pull_requests_run_the_readme_test_command_on_a_hosted_runner_without_credentials() -> None:
    assert (ROOT / ".ci" / "run").read_text().strip().endswith(_readme_test_command())
    for name in ("pull-request.yml", "deploy.yml"):
        workflow = _workflow(name)
        (test_job,) = _test_jobs(workflow)
        job = workflow["jobs"][test_job]
        assert str(job["runs-on"]).startswith("ubuntu-")
        assert any(_action(s) == "actions/setup-python" for s in _steps(job))
        assert "id-token" not in job.get("permissions", {}), "the suite runs untrusted code: no OIDC token"
        assert AUTH_ACTION not in [_action(s) for s in _steps(job)]
    assert "pull_request" in _workflow("pull-request.yml")["on"]
    assert "pull_request_target" not in _workflow("pull-request.yml")["on"], "would run PR code with our secrets"


def test_every_stack_is_previewed_before_it_is_updated() -> None:
    """dev: on the pull request, as a comment. prod: from main, before the approval gate of up-prod."""
    pr = _workflow("pull-request.yml")
    (test_job,) = _test_jobs(pr)
    pr_previews: set[str] = set()
    for job_id, job in pr["jobs"].items():
        for step in _pulumi_steps(job):
            w = step["with"]
            assert test_job in _needs(job), f"{job_id} must wait for the offline suite"
            assert job["permissions"]["pull-requests"] == "write"
            assert w["command"] == "preview"
            assert w["diff"] is True and w["comment-on-pr"] is True
            assert w["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
            stacks = job.get("strategy", {}).get("matrix", {}).get("stack", [])
            pr_previews |= set(stacks) if w["stack-name"] == "${{ matrix.stack }}" else {w["stack-name"]}
    assert pr_previews == {"dev"}, "pull-request code must never reach prod's state"
    deploy = _workflow("deploy.yml")
    steps = {s["with"]["stack-name"]: (job_id, s["with"]["command"])
             for job_id, job in deploy["jobs"].items() for s in _pulumi_steps(job) if s["with"]["command"] == "preview"}
    assert set(steps) == _stacks_in_repo() - pr_previews
    assert _stacks_in_repo() >= {"dev", "prod"}


def _ancestors(jobs: dict[str, Any], job_id: str) -> set[str]:
    seen: set[str] = set()
    todo = list(_needs(jobs[job_id]))
    while todo:
        j = todo.pop()
        if j not in seen:
            seen.add(j)
            todo.extend(_needs(jobs[j]))
    return seen


def test_push_to_main_deploys_dev_then_previews_prod_then_prod_behind_the_production_environment() -> None:
    workflow = _workflow("deploy.yml")
    jobs = workflow["jobs"]
    assert workflow["on"]["push"]["branches"] == ["main"]
    (test_job,) = _test_jobs(workflow)
    ups, previews = {}, {}
    for job_id, job in jobs.items():
        for step in _pulumi_steps(job):
            (ups if step["with"]["command"] == "up" else previews)[step["with"]["stack-name"]] = job_id
    assert set(ups) == _stacks_in_repo()
    assert test_job in _needs(jobs[ups["dev"]])
    assert {ups["dev"], previews["prod"]} <= _ancestors(jobs, ups["prod"])
    assert _environment(jobs[ups["prod"]]) == "production"
    assert _environment(jobs[ups["dev"]]) == "dev"
    assert _environment(jobs[previews["prod"]]) == "production-preview"


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


def _credential_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(f, j, job) for f, j, job in _all_jobs() if AUTH_ACTION in [_action(s) for s in _steps(job)]]


def test_gcp_is_reached_through_workload_identity_after_every_dependency_is_installed() -> None:
    for path in WORKFLOW_FILES:
        assert "credentials_json" not in path.read_text(), path.name
    jobs = _credential_jobs()
    assert jobs
    for name, job_id, job in jobs:
        steps = _steps(job)
        actions = [_action(s) for s in steps]
        auth_at = actions.index(AUTH_ACTION)
        auth = steps[auth_at]
        assert set(auth["with"]) == {"workload_identity_provider", "service_account"}
        assert job["permissions"]["id-token"] == "write", f"{name}:{job_id} cannot mint an OIDC token"
        # The WIF bindings are per environment: a job without one gets no identity.
        assert _environment(job), f"{name}:{job_id} holds a credential outside any environment"
        installs = [i for i, s in enumerate(steps) if "pip install" in s.get("run", "")
                    or _action(s) in (SETUP_GCLOUD_ACTION, "actions/setup-python")
                    or (_action(s) == PULUMI_ACTION and "command" not in s.get("with", {}))]
        assert installs and max(installs) < auth_at, f"{name}:{job_id}: something is installed after auth"
        if SETUP_GCLOUD_ACTION in actions:
            assert "gke-gcloud-auth-plugin" in steps[actions.index(SETUP_GCLOUD_ACTION)]["with"]["install_components"]
        assert all(steps.index(s) > auth_at for s in _pulumi_steps(job))
        assert all(s.get("with", {}).get("persist-credentials") is False
                   for s in steps if _action(s) == "actions/checkout"), f"{name}:{job_id} leaves a git token"


def test_each_environment_has_its_own_identity_and_only_production_holds_the_prod_deployer() -> None:
    by_env: dict[str, set[str]] = {}
    for _, _, job in _credential_jobs():
        steps = _steps(job)
        sa = next(s for s in steps if _action(s) == AUTH_ACTION)["with"]["service_account"]
        env = _environment(job)
        matrix = job.get("strategy", {}).get("matrix", {}).get("include")
        if matrix:  # ${{ vars[matrix.service-account] }} per row
            for row in matrix:
                by_env.setdefault(row["environment"], set()).add(f"${{{{ vars.{row['service-account']} }}}}")
        else:
            by_env.setdefault(str(env), set()).add(sa)
    assert all(len(s) == 1 for s in by_env.values()), by_env
    identities = [next(iter(s)) for s in by_env.values()]
    assert len(identities) == len(set(identities)), f"two environments share an identity: {by_env}"
    assert by_env["production"] == {"${{ vars.GCP_SA_DEPLOY_PROD }}"}
    assert by_env["dev"] == {"${{ vars.GCP_SA_DEPLOY_DEV }}"}


def test_pull_request_code_never_gets_a_deploy_identity_runner_or_main_only_environment() -> None:
    for job_id, job in _workflow("pull-request.yml")["jobs"].items():
        assert DEPLOY_RUNNER not in _labels(job), job_id
        assert _environment(job) not in MAIN_ONLY_ENVIRONMENTS, job_id
        text = str(job)
        assert "DEPLOY" not in text and "PROD" not in text, f"{job_id} names a deploy or prod variable"
    for name, job_id, job in _all_jobs():
        if name != "pull-request.yml" and AUTH_ACTION in [_action(s) for s in _steps(job)]:
            assert PREVIEW_RUNNER not in _labels(job), f"{name}:{job_id}: trusted jobs never share the PR runner"


def test_pulumi_runs_on_an_allow_listed_runner_with_dependencies_and_per_stack_state() -> None:
    jobs = _pulumi_jobs()
    assert jobs
    for name, job_id, job in jobs:
        assert "self-hosted" in _labels(job), f"{name}:{job_id}: hosted runners are not in authorizedNetworks"
        steps = _steps(job)
        install = _index(steps, lambda s: "pip install -r requirements.txt" in s.get("run", ""))
        first_pulumi = steps.index(_pulumi_steps(job)[0])
        assert install < first_pulumi, "pulumi/actions does not install Python dependencies"
        for step in _pulumi_steps(job):
            w = step["with"]
            stack = w["stack-name"]
            suffix = "DEV" if stack in ("dev", "${{ matrix.stack }}") else stack.upper()
            assert w["cloud-url"] == f"gs://${{{{ vars.PULUMI_STATE_BUCKET_{suffix} }}}}", f"{name}:{job_id}"
            assert w["work-dir"] == "."


def test_no_shared_passphrase_exists_anywhere() -> None:
    for path in WORKFLOW_FILES:
        assert "PULUMI_CONFIG_PASSPHRASE" not in path.read_text(), path.name


def test_stacks_use_their_own_cloud_kms_key_when_a_secrets_provider_is_recorded() -> None:
    keys = {}
    for stack in _stacks_in_repo():
        doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        provider = doc.get("secretsprovider")
        assert "encryptionsalt" not in doc, f"{stack}: a passphrase stack; change-secrets-provider to gcpkms"
        if provider is not None:
            assert re.match(r"^gcpkms://projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", provider)
            keys[stack] = provider
    assert len(set(keys.values())) == len(keys), "two stacks share a KMS key"


def test_every_preview_and_update_enforces_the_policy_pack_pull_requests_from_the_default_branch() -> None:
    jobs = _pulumi_jobs()
    assert jobs
    for name, job_id, job in jobs:
        steps = _steps(job)
        for i, step in enumerate(steps):
            # A pulumi/actions step without `command` only installs the CLI (tools.flip drives it).
            if step not in _pulumi_steps(job) or "command" not in step["with"]:
                continue
            pack = step["with"].get("policyPacks")
            if name == "pull-request.yml":
                trusted = next(s for s in steps if _action(s) == "actions/checkout" and "ref" in s.get("with", {}))
                assert trusted["with"]["ref"] == "${{ github.event.repository.default_branch }}"
                assert pack == f"{trusted['with']['path']}/policy", f"{job_id}: the PR's own pack would apply"
            else:
                assert pack == "policy", f"{name}:{job_id}: runs without the pack"
            install = _index(steps, lambda s, p=pack: f"pip install -r {p}/requirements.txt" in s.get("run", ""))
            assert install < i
    assert (ROOT / "policy" / "PulumiPolicy.yaml").is_file()


def test_pull_requests_from_forks_never_reach_a_runner_of_ours() -> None:
    for job_id, job in _workflow("pull-request.yml")["jobs"].items():
        if _pulumi_steps(job):
            assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository", job_id


def test_every_action_is_pinned_to_a_full_commit_with_its_version() -> None:
    lines = [(p.name, line) for p in WORKFLOW_FILES for line in p.read_text().splitlines() if "uses:" in line]
    assert lines
    unpinned = [(name, line.strip()) for name, line in lines if not PINNED_LINE.match(line)]
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
    flip = next(s for s in steps if "python -m tools.flip" in s.get("run", ""))
    assert "${{" not in flip["run"], "inputs must reach the shell as environment variables"
    backend = job["env"]["PULUMI_BACKEND_URL"]
    assert backend.startswith("gs://${{ inputs.stack == 'prod' && vars.PULUMI_STATE_BUCKET_PROD"), backend
    record = steps[steps.index(flip) + 1]
    assert record["if"] == "always()", "a rollback's weights must be recorded too"
    assert 'git add -- "$file"' in record["run"] and "gh pr create" in record["run"]
    # The weights the journal says are deployed, written before the pull request is made of them.
    assert record["run"].index('tools.flip --stack "$STACK" --record') < record["run"].index("git add")
    assert job["if"] == "github.ref == 'refs/heads/main'", "the stacks' identities admit main only"
    assert job["permissions"] == {"contents": "write", "pull-requests": "write", "id-token": "write"}


def test_every_deploy_refuses_to_revert_a_flip_before_pulumi_up() -> None:
    jobs = _workflow("deploy.yml")["jobs"]
    for job in jobs.values():
        steps = _steps(job)
        ups = [s for s in _pulumi_steps(job) if s["with"]["command"] == "up"]
        if not ups:
            continue
        stack = ups[0]["with"]["stack-name"]
        (check,) = [s for s in steps if "--deploy-check" in s.get("run", "")]
        assert check["run"] == f"venv/bin/python -m tools.flip --stack {stack} --deploy-check"
        assert check["env"]["PULUMI_BACKEND_URL"] == ups[0]["with"]["cloud-url"], "the lease lives beside the state"
        assert steps.index(check) < steps.index(ups[0])


def test_flip_pins_every_action_by_full_commit_sha_with_its_version() -> None:
    lines = [line for line in (WORKFLOWS / "flip.yml").read_text().splitlines() if "uses:" in line]
    assert lines
    assert [line for line in lines if not FULL_SHA_WITH_VERSION.match(line)] == []


def test_the_scheduled_expiry_check_reads_outputs_with_a_preview_identity() -> None:
    workflow = _workflow("ca-expiry.yml")
    assert workflow["on"]["schedule"], "it must run by itself"
    (job,) = workflow["jobs"].values()
    rows = job["strategy"]["matrix"]["include"]
    assert {r["stack"] for r in rows} == _stacks_in_repo()
    assert all("PREVIEW" in r["service-account"] for r in rows), "the check never holds a deployer"
    run = next(s["run"] for s in _steps(job) if "tools.verify.expiry" in s.get("run", ""))
    assert "--show-secrets" not in run and "caExpiry" in run
