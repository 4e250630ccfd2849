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
        install = _index(steps, lambda s: "pip install --require-hashes -r requirements.lock" in s.get("run", ""))
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
                # The sealed copy of the default branch's pack (test_the_pull_request_preview_runs_the_sealed_...).
                assert pack == "${{ runner.temp }}/trusted-policy", f"{job_id}: the PR's own pack would apply"
                install = _index(steps, lambda s: 'pip install --require-hashes -r "$pack/requirements.lock"'
                                 in s.get("run", ""))
            else:
                assert pack == "policy", f"{name}:{job_id}: runs without the pack"
                install = _index(steps, lambda s, p=pack: f"pip install --require-hashes -r {p}/requirements.lock"
                                 in s.get("run", ""))
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


# ------------------------------------------------------------------ what was reviewed is what runs

LOCKS = {"requirements.txt": "requirements.lock", "policy/requirements.txt": "policy/requirements.lock"}
LOCK_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, hashes)} of a `uv pip compile --generate-hashes` file."""
    from packaging.utils import canonicalize_name

    entries: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert current, f"{path.name}: a hash before any package"
            entries[current][1].append(stripped.split(":", 1)[1].rstrip(" \\"))
            continue
        match = LOCK_ENTRY.match(stripped)
        assert match, f"{path.name}: not an exact pin: {stripped!r}"
        current = canonicalize_name(match.group(1))
        entries[current] = (match.group(2), [])
    return entries


def _requirements(path: Path) -> list[Any]:
    from packaging.requirements import Requirement

    reqs = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            reqs.append(Requirement(line))
    return reqs


@pytest.mark.parametrize("source", sorted(LOCKS), ids=lambda s: s)
def test_the_lock_pins_every_requirement_to_a_version_it_allows_with_hashes(source: str) -> None:
    from packaging.utils import canonicalize_name

    lock = _lock(ROOT / LOCKS[source])
    assert lock, f"{LOCKS[source]} is empty"
    for req in _requirements(ROOT / source):
        name = canonicalize_name(req.name)
        assert name in lock, f"{LOCKS[source]} lacks {req.name} from {source}: run `make lock`"
        version, _ = lock[name]
        assert req.specifier.contains(version, prereleases=True), \
            f"{LOCKS[source]} pins {req.name}=={version}, outside {source}'s {req.specifier}: run `make lock`"
    unhashed = sorted(n for n, (_, hashes) in lock.items() if not hashes)
    assert unhashed == [], f"pip --require-hashes refuses packages without a hash: {unhashed}"
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for _, hashes in lock.values() for h in hashes)


def test_the_lock_check_fails_on_a_missing_or_unhashed_package(tmp_path: Path) -> None:
    good = (ROOT / "requirements.lock").read_text()
    missing = re.sub(r"(?ms)^kubernetes==.*?(?=^\S)", "", good)
    (tmp_path / "requirements.lock").write_text(missing)
    assert "kubernetes" not in _lock(tmp_path / "requirements.lock")
    (tmp_path / "bad.lock").write_text("pyyaml>=6\n")
    with pytest.raises(AssertionError, match="not an exact pin"):
        _lock(tmp_path / "bad.lock")


def test_the_locks_say_which_command_makes_them_and_the_makefile_runs_it() -> None:
    for lock in LOCKS.values():
        assert "#    make lock" in (ROOT / lock).read_text().split("\n", 3)[1], f"{lock}: header must name `make lock`"
    dry = __import__("subprocess").run(["make", "-n", "lock"], cwd=ROOT, capture_output=True, text=True, check=True)
    recipe = dry.stdout
    assert re.search(r"pip install .*uv==\d+\.\d+\.\d+", recipe), "uv must be pinned"
    for source, lock in LOCKS.items():
        line = next(x for x in recipe.splitlines() if f" {source} -o {lock}" in x)
        for flag in ("uv pip compile", "--generate-hashes", "--universal", "--python-version 3.11",
                     "--index-url https://pypi.org/simple"):
            assert flag in line, f"`make lock` for {lock} lacks {flag}"


def test_every_job_with_a_cloud_identity_installs_only_from_the_hash_locked_files() -> None:
    for name, job_id, job in _credential_jobs():
        installs = [s["run"] for s in _steps(job) if "pip install" in s.get("run", "")]
        assert installs, f"{name}:{job_id} installs nothing"
        for run in installs:
            for line in (x for x in run.splitlines() if "pip install" in x):
                assert "--require-hashes -r" in line and re.search(r"requirements\.lock\"?$", line.strip()), \
                    f"{name}:{job_id}: {line.strip()!r} is not a hash-checked install of a lock file"


def _locked_pulumi_sdk() -> str:
    return _lock(ROOT / "requirements.lock")["pulumi"][0]


def test_every_job_with_a_cloud_identity_runs_the_pinned_pulumi_cli_the_sdk_matches() -> None:
    version = (ROOT / ".pulumi.version").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f".pulumi.version {version!r}: an exact release"
    # pulumi/pulumi releases the CLI and the Python SDK together under one version (sdk/.version).
    assert version == _locked_pulumi_sdk(), ".pulumi.version and the locked pulumi SDK differ"
    for name, job_id, job in _credential_jobs():
        steps = [s for s in _steps(job) if _action(s) == PULUMI_ACTION]
        assert steps, f"{name}:{job_id} holds a cloud identity and installs no pinned Pulumi CLI"
        for step in steps:
            w = step.get("with", {})
            # pulumi/actions v7.0.0 action.yml: pulumi-version / pulumi-version-file; without either, `^3`.
            assert w.get("pulumi-version-file") == ".pulumi.version" and "pulumi-version" not in w, \
                f"{name}:{job_id}: {step.get('name', 'pulumi/actions')} does not pin the CLI"


# ------------------------------------------------------------------ the trusted policy pack

DIGEST = re.compile(r"tar -C \"\$(?:pack|RUNNER_TEMP/trusted-policy)\" (--sort=name [^|]+)\| sha256sum")


def test_the_pull_request_preview_runs_the_sealed_default_branch_pack() -> None:
    jobs = _workflow("pull-request.yml")["jobs"]
    pack_job = jobs["policy-pack"]
    assert str(pack_job["runs-on"]).startswith("ubuntu-") and "permissions" not in pack_job, \
        "the pack job holds nothing and runs on a hosted runner"
    (checkout,) = [s for s in _steps(pack_job) if _action(s) == "actions/checkout"]
    assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    assert [s for s in _steps(pack_job) if "run" in s and ("pip" in s["run"] or "make" in s["run"])] == []
    assert set(pack_job["outputs"]) == {"commit", "tree"}

    job = jobs["preview"]
    assert "policy-pack" in _needs(job)
    steps = _steps(job)
    trusted = next(s for s in steps if _action(s) == "actions/checkout" and "ref" in s.get("with", {}))
    assert trusted["with"]["ref"] == "${{ needs.policy-pack.outputs.commit }}"
    seal = _index(steps, lambda s: s.get("id") == "seal")
    seal_run = steps[seal]["run"]
    assert steps[seal]["env"]["TREE"] == "${{ needs.policy-pack.outputs.tree }}"
    assert '"$RUNNER_TEMP/trusted-policy"' in seal_run and "chmod -R a-w" in seal_run
    # Pull-request code: the PR's own install (its setup.py / build hooks) and anything it runs.
    pr_code = _index(steps, lambda s: "-r requirements.lock" in s.get("run", ""))
    assert seal < pr_code, "the pack must be sealed before any pull-request code runs"
    check = _index(steps, lambda s: s.get("env", {}).get("SEALED") == "${{ steps.seal.outputs.digest }}")
    preview = steps.index(_pulumi_steps(job)[0])
    assert pr_code < check < preview
    assert all("run" not in s for s in steps[check + 1:preview]), "nothing may run between the check and the preview"
    # Both run under `shell: bash` (-eo pipefail): a tar that fails cannot yield two equal digests of nothing.
    assert steps[seal].get("shell") == steps[check].get("shell") == "bash"
    assert re.search(r"^\s*digest=\$\(tar ", seal_run, re.M)
    assert re.search(r"^\s*now=\$\(tar ", steps[check]["run"], re.M)
    (sealed_digest,) = DIGEST.findall(seal_run)
    (checked_digest,) = DIGEST.findall(steps[check]["run"])
    assert sealed_digest == checked_digest, "the check must compute the digest the seal recorded"


# ------------------------------------------------------------------ identities (docs/delivery.md)

DELIVERY = ROOT / "docs" / "delivery.md"


def _identity_table() -> list[dict[str, str]]:
    text = DELIVERY.read_text()
    section = text.split("## Identities", 1)[1]
    lines = [x for x in section.splitlines() if x.startswith("| `gke-mesh-")]
    header = ["account", "project", "variable", "environment", "workflows", "roles"]
    rows = []
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == len(header):
            rows.append(dict(zip(header, cells, strict=True)))
    assert rows, "docs/delivery.md has no identity table"
    return rows


def _ticked(cell: str) -> list[str]:
    """The workflow files a table cell names."""
    return re.findall(r"`([\w.-]+\.yml)`", cell)


def _stack_expression(expr: str, stack: str) -> str:
    """Evaluate flip.yml's `${{ inputs.stack == 'prod' && A || B }}` for one stack."""
    m = re.fullmatch(r"\$\{\{ inputs\.stack == '(\w+)' && (\S+) \|\| (\S+) \}\}", expr)
    if not m:
        return expr
    pick = m.group(2) if stack == m.group(1) else m.group(3)
    if pick == "inputs.stack":
        return stack
    return pick.strip("'") if pick.startswith("'") else f"${{{{ {pick} }}}}"


def _credential_uses() -> set[tuple[str, str, str]]:
    """(workflow file, environment, `${{ vars.X }}` service account) for every job that authenticates."""
    uses = set()
    for name, _, job in _credential_jobs():
        sa = next(s for s in _steps(job) if _action(s) == AUTH_ACTION)["with"]["service_account"]
        env = str(job.get("environment"))
        rows = job.get("strategy", {}).get("matrix", {}).get("include")
        if rows:
            uses |= {(name, r["environment"], f"${{{{ vars.{r['service-account']} }}}}") for r in rows}
        elif "inputs.stack" in env:
            options = _load(WORKFLOWS / name)["on"]["workflow_dispatch"]["inputs"]["stack"]["options"]
            uses |= {(name, _stack_expression(env, st), _stack_expression(sa, st)) for st in options}
        else:
            uses.add((name, env, sa))
    return uses


def test_every_identity_a_workflow_uses_is_in_the_identity_table_with_its_environment_and_workflow() -> None:
    table = {(row["environment"].split()[0].strip("`"), f"${{{{ vars.{row['variable'].strip('`')} }}}}"): row
             for row in _identity_table()}
    uses = _credential_uses()
    assert {sa for _, _, sa in uses} >= {"${{ vars.GCP_SA_E2E }}", "${{ vars.GCP_SA_DEPLOY_PROD }}"}
    for workflow, env, sa in sorted(uses):
        row = table.get((env, sa))
        assert row, f"{workflow} authenticates as {sa} in {env}: not in docs/delivery.md's identity table"
        assert workflow in _ticked(row["workflows"]), f"{workflow} is not listed for {row['account']}"
    listed = {(env, sa, wf) for (env, sa), row in table.items() for wf in _ticked(row["workflows"])}
    assert listed == {(env, sa, wf) for wf, env, sa in uses}, "the table lists a use no workflow makes"


def _condition() -> str:
    text = DELIVERY.read_text()
    match = re.search(r'--attribute-condition "(.+?)"\n', text, re.S)
    assert match, "docs/delivery.md has no --attribute-condition"
    return match.group(1)


def _admitted() -> dict[str, set[str]]:
    """environment -> workflow files the documented Workload Identity condition admits."""
    clauses = re.split(r"\(assertion\.environment == ", _condition())[1:]
    admitted: dict[str, set[str]] = {}
    for clause in clauses:
        env = clause.split("'")[1]
        files = set(re.findall(r"\.github/workflows/([\w.-]+\.yml)@refs/heads/main", clause))
        if "assertion.event_name == 'pull_request'" in clause:
            files.add("pull-request.yml")
        if env in MAIN_ONLY_ENVIRONMENTS | {"e2e"}:
            assert "assertion.ref == 'refs/heads/main'" in clause, f"{env}: the condition must require main"
        admitted[env] = files
    return admitted


def test_the_workload_identity_condition_admits_exactly_the_workflows_that_use_each_environment() -> None:
    used: dict[str, set[str]] = {}
    for workflow, env, _ in _credential_uses():
        used.setdefault(env, set()).add(workflow)
    assert _admitted() == used
    assert "flip.yml" in used["production"] and "flip.yml" in used["dev"]


def test_each_identity_is_bound_to_its_own_environment_only() -> None:
    text = DELIVERY.read_text()
    binds = dict(re.findall(r'^\s*bind "(gke-mesh-[\w-]+)@\S+"\s+([\w-]+)$', text, re.M))
    for row in _identity_table():
        account = row["account"].strip("`")
        assert binds.get(account) == row["environment"].split()[0].strip("`"), account


def _role_array(name: str) -> set[str]:
    match = re.search(rf"^\s*{name}=\(([^)]*)\)", DELIVERY.read_text(), re.M)
    assert match, f"docs/delivery.md defines no {name}"
    return set(match.group(1).split())


def test_the_role_table_and_the_setup_commands_grant_the_same_roles() -> None:
    text = DELIVERY.read_text()
    rows = re.findall(r"^\| `(roles/[\w.]+)` \| ([\w, ]+) \|", text, re.M)
    by_set: dict[str, set[str]] = {}
    for role, sets in rows:
        for s in sets.split(","):
            by_set.setdefault(s.strip(), set()).add(role)
    assert by_set["deploy"] == _role_array("DEPLOY_ROLES")
    assert by_set["preview"] == _role_array("PREVIEW_ROLES")
    # Monitoring (dashboards, alert policies, the judge's reads) and the fleet / Config Sync roles.
    assert {"roles/monitoring.viewer", "roles/monitoring.dashboardEditor", "roles/monitoring.alertPolicyEditor",
            "roles/gkehub.admin"} <= by_set["deploy"]
    assert not {r for r in by_set["preview"] if re.search(r"admin|editor|user$", r, re.I)}, "previews only read"
    grants = dict(re.findall(r'^\s*grant "\$\w+" (gke-mesh-[\w-]+) "\$\{(\w+)\[@\]\}"$', text, re.M))
    for row in _identity_table():
        account = row["account"].strip("`")
        expected = "DEPLOY_ROLES" if row["roles"].startswith("deploy roles") else "PREVIEW_ROLES"
        assert grants.get(account) == expected, account


def test_preview_identities_read_state_and_never_write_it() -> None:
    text = DELIVERY.read_text()
    state = text.split("3. **State", 1)[1].split("4. **Secrets", 1)[0]
    assert re.search(r"\$previewer@\$project\.iam\.gserviceaccount\.com\" --role roles/storage\.objectViewer", state)
    assert "objectUser" not in state
    for name, job_id, job in _credential_jobs():
        env = str(job.get("environment"))
        if "preview" not in env:
            continue
        for step in _pulumi_steps(job):
            assert step["with"]["command"] == "preview" and not step["with"].get("refresh"), f"{name}:{job_id}"
        for step in _steps(job):
            run = step.get("run", "")
            assert not re.search(r"pulumi (up|refresh|destroy|import|stack (init|rm)|state)", run), f"{name}:{job_id}"


# ------------------------------------------------------------------ the end-to-end run

def _e2e() -> dict[str, Any]:
    return _workflow("e2e.yml")


def test_e2e_runs_on_a_schedule_or_by_hand_and_only_when_switched_on_from_main() -> None:
    workflow = _e2e()
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"} and workflow["on"]["schedule"]
    for job_id, job in workflow["jobs"].items():
        assert "vars.E2E_ENABLED == 'true'" in job["if"], f"{job_id}: forks and unconfigured copies must skip"
        assert "github.ref == 'refs/heads/main'" in job["if"], job_id
        assert _environment(job) == "e2e" and DEPLOY_RUNNER in _labels(job)
        sa = next(s for s in _steps(job) if _action(s) == AUTH_ACTION)["with"]["service_account"]
        assert sa == "${{ vars.GCP_SA_E2E }}", f"{job_id} must run as the e2e identity, never a stack's"
    assert "${{ github.run_id }}" in workflow["env"]["STACK"], "the stack name must be unique per run"
    assert workflow["env"]["PULUMI_BACKEND_URL"] == "gs://${{ vars.E2E_STATE_BUCKET }}"


def _phase_steps(job: dict[str, Any]) -> list[str]:
    return [m.group(1) for s in _steps(job) for m in [re.search(r"tools\.e2e phase ([\w-]+)", s.get("run", ""))] if m]


def test_e2e_goes_through_up_verify_probe_and_a_flip_under_load_recording_each_phase() -> None:
    job = _e2e()["jobs"]["e2e"]
    assert _phase_steps(job) == ["init", "up", "samples", "verify", "probe", "flip"]
    runs = {m: s["run"] for s in _steps(job) for m in [re.search(r"tools\.e2e phase ([\w-]+)", s.get("run", ""))]
            if m for m in [m.group(1)]}
    assert 'pulumi up --yes --stack "$STACK" --policy-pack policy --event-log' in runs["up"]
    assert runs["verify"].rstrip().endswith('-- make verify STACK="$STACK"')
    assert runs["probe"].rstrip().endswith('-- make verify STACK="$STACK" ARGS=--probe')
    flip = runs["flip"]
    assert 'make flip STACK="$STACK" ARGS="--to green"' in flip
    assert flip.index("&") < flip.index("make flip") < flip.index("kill"), "load starts before the flip, stops after"
    assert "exec deploy/curl" in flip and "helloworld.sample:5000" in flip and '"http://$edge/' in flip
    steps = _steps(job)
    # Nothing installs after the credential, and the Makefile's venv stamp keeps make from installing.
    install = _index(steps, lambda s: "requirements.lock" in s.get("run", "") and "touch venv/.installed" in s["run"])
    assert install < _index(steps, lambda s: _action(s) == AUTH_ACTION)
    report = [s for s in steps if "tools.e2e report" in s.get("run", "")]
    upload = [s for s in steps if _action(s) == "actions/upload-artifact"]
    assert report and upload and all(s["if"] == "always()" for s in report + upload)
    assert "build/e2e/record.json" in upload[0]["with"]["path"]


def test_e2e_always_destroys_and_removes_the_stack_in_a_job_of_its_own() -> None:
    jobs = _e2e()["jobs"]
    destroy = jobs["destroy"]
    assert _needs(destroy) == ["e2e"]
    # GitHub keeps running a job whose `if` is true on cancel; always() is true on failure and cancel.
    assert destroy["if"].startswith("always() && ")
    run = next(s["run"] for s in _steps(destroy) if "pulumi destroy" in s.get("run", ""))
    assert run.index("pulumi destroy --yes") < run.index("pulumi stack rm --yes")
    (rm,) = [line for line in run.splitlines() if "pulumi stack rm" in line and not line.strip().startswith("#")]
    assert "--force" not in rm, "stack rm must refuse while resources remain"
    assert _phase_steps(destroy) == [] and "phase destroy" in run and "phase stack-rm" in run
    # The stack file (secrets provider and data key) is kept beside the state for this job.
    init = next(s["run"] for s in _steps(jobs["e2e"]) if "phase init" in s.get("run", ""))
    kept = re.search(r'gcloud storage cp "Pulumi\.\$STACK\.yaml" "(\S+)"', init).group(1)
    assert f'gcloud storage cp "{kept}" "Pulumi.$STACK.yaml"' in run


def test_e2e_has_a_budget_guard_priced_by_tools_cost_for_the_timeouts() -> None:
    workflow = _e2e()
    jobs = workflow["jobs"]
    assert workflow["concurrency"] == {"group": "e2e-sandbox", "cancel-in-progress": False}, \
        "one ephemeral stack at a time, and a running run is never cancelled by the next"
    ceiling_hours = sum(job["timeout-minutes"] for job in jobs.values()) / 60
    steps = _steps(jobs["e2e"])
    guard = _index(steps, lambda s: "tools.e2e cost" in s.get("run", ""))
    hours = float(re.search(r"--hours (\S+)", steps[guard]["run"]).group(1))
    assert hours == ceiling_hours, "the guard must price the longest the stack can live"
    assert "--max-usd" in steps[guard]["run"]
    # GitHub runs an unspecified shell as `bash -e {0}` and `shell: bash` as `bash --noprofile --norc -eo pipefail
    # {0}`: a guard piped into tee must say `shell: bash`, or its refusal (exit 3) is lost.
    for step in steps:
        first = step.get("run", "").strip().splitlines()[0] if step.get("run") else ""
        if "|" in first and "tools.e2e" in first.split("|", 1)[0]:
            assert step.get("shell") == "bash", f"{step['name']}: a pipe would hide the guard's exit code"
    assert guard < _index(steps, lambda s: "phase up" in s.get("run", ""))
    leftovers = _index(steps, lambda s: "tools.e2e leftovers" in s.get("run", ""))
    assert leftovers < _index(steps, lambda s: "phase init" in s.get("run", ""))
