"""README's first-deploy steps against what the program needs: APIs, roles and tools.

A first `up` on an empty project fails at the first resource whose API is off; a runbook fails
at the first tool nobody installed. The program is run in every shape it can take (dev, prod,
edge on and off, HTTP and HTTPS, every hardening option relaxed) and each declared GCP type and
data source is mapped to its API (components/project_services.py); README step 3's
`gcloud services enable` must list every one.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest

from components import config
from components.project_services import (
    API_OF_INVOKE,
    API_OF_TYPE,
    SERVICE_USAGE,
    UnmappedType,
    apis_for,
    apis_for_invoke,
)
from offline import FROM_STACK_FILE, ROOT, Program, configs, run_program

README = (ROOT / "README.md").read_text()
FIRST_DEPLOY = README[README.index("## First deploy"):README.index("## The flip")]
RUNBOOKS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Code fences, also indented ones inside list items.
FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```$", re.S | re.M)


def _relaxed(**hardening: Any) -> dict[str, Any]:
    config = configs.with_edge(configs.base())
    config["hardening"] = hardening
    return config


def _workloads(config: dict[str, Any]) -> dict[str, Any]:
    config["workloads"] = {"enabled": True, "repo": "https://github.com/acme/mesh-apps"}
    return config


VARIANTS = {
    "base (edge off)": lambda: run_program(configs.base()),
    "edge over HTTP": lambda: run_program(configs.with_edge(configs.base())),
    "edge over HTTPS, three clusters": lambda: run_program(
        configs.with_edge(configs.three_clusters(configs.base()), https=True)),
    "no KMS, no Binary Authorization, no flow logs": lambda: run_program(_relaxed(
        databaseEncryption=False, binaryAuthorization="DISABLED", subnetFlowLogs=False)),
    "workloads (fleet and Config Sync)": lambda: run_program(_workloads(configs.base())),
    "shipped dev stack": lambda: run_program(None, stack="dev", gcp_project=FROM_STACK_FILE),
    "shipped prod stack": lambda: run_program(None, stack="prod", gcp_project=FROM_STACK_FILE),
}


def required_apis(program: Program) -> set[str]:
    apis: set[str] = set()
    for r in program.resources:
        if r.custom and r.type.startswith("gcp:"):
            apis |= apis_for(r.type, r.inputs)
    for token in program.invokes:
        if token.startswith("gcp:"):
            apis |= apis_for_invoke(token)
    return apis


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    return {name: make() for name, make in VARIANTS.items()}


def enabled_in_readme() -> set[str]:
    """The services README's first-deploy `gcloud services enable` command names."""
    commands = [line for _, body in FENCE.findall(FIRST_DEPLOY)
                for line in body.replace("\\\n", " ").splitlines() if "gcloud services enable" in line]
    assert commands, "README's first deploy has no `gcloud services enable`"
    return {w for c in commands for w in shlex.split(c, comments=True) if w.endswith(".googleapis.com")}


def test_every_declared_gcp_type_and_data_source_has_its_api(programs: dict[str, Program]) -> None:
    seen = {r.type for p in programs.values() for r in p.resources if r.custom and r.type.startswith("gcp:")}
    assert "gcp:networkservices/serviceLbPolicies:ServiceLbPolicies" in seen  # the edge's policy
    assert "gcp:gkehub/featureMembership:FeatureMembership" in seen  # Config Sync
    assert seen - set(API_OF_TYPE) == set()
    invoked = {t for p in programs.values() for t in p.invokes if t.startswith("gcp:")}
    assert invoked - set(API_OF_INVOKE) == set()


def test_an_unmapped_type_is_named_not_skipped() -> None:
    with pytest.raises(UnmappedType, match=r"gcp:sql/databaseInstance:DatabaseInstance: no API"):
        apis_for("gcp:sql/databaseInstance:DatabaseInstance", {})
    with pytest.raises(UnmappedType, match=r"gcp:dns/getManagedZone:getManagedZone: no API"):
        apis_for_invoke("gcp:dns/getManagedZone:getManagedZone")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_readme_step_3_enables_every_api_the_program_needs(programs: dict[str, Program], variant: str) -> None:
    missing = required_apis(programs[variant]) - enabled_in_readme()
    assert missing == set(), f"{variant}: README step 3 does not enable {sorted(missing)}"


def test_settings_turn_their_apis_on_and_off(programs: dict[str, Program]) -> None:
    """The map follows the settings: Binary Authorization only when evaluated, the edge's policy only with it,
    the fleet and Config Sync only with `workloads.enabled`."""
    base = required_apis(programs["base (edge off)"])
    edge = required_apis(programs["edge over HTTP"])
    relaxed = required_apis(programs["no KMS, no Binary Authorization, no flow logs"])
    assert "networkservices.googleapis.com" not in base and "networkservices.googleapis.com" in edge
    assert "binaryauthorization.googleapis.com" in edge and "binaryauthorization.googleapis.com" not in relaxed
    assert "cloudkms.googleapis.com" in edge and "cloudkms.googleapis.com" not in relaxed
    fleet = required_apis(programs["workloads (fleet and Config Sync)"])
    for api in ("gkehub.googleapis.com", "anthosconfigmanagement.googleapis.com"):
        assert api in fleet and api not in base and api not in edge


def test_readme_enables_nothing_the_program_does_not_use(programs: dict[str, Program]) -> None:
    needed = set().union(*(required_apis(p) for p in programs.values())) | {SERVICE_USAGE}
    assert enabled_in_readme() - needed == set()


def test_readme_names_every_role_the_first_up_grants(programs: dict[str, Program]) -> None:
    """The first `up` grants project and key roles, so its account must be able to: README says which."""
    granted = {r.inputs["role"] for p in programs.values() for r in p.resources
               if r.type in ("gcp:projects/iAMMember:IAMMember", "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")}
    assert granted == {"roles/container.defaultNodeServiceAccount", "roles/cloudkms.cryptoKeyEncrypterDecrypter"}
    assert "`roles/owner`" in FIRST_DEPLOY
    assert {g for g in granted if f"`{g}`" not in FIRST_DEPLOY} == set()


# Command-line tools the README and the runbooks run, beyond a POSIX shell (grep, base64, ...).
TOOLS = ("pulumi", "gcloud", "kubectl", "istioctl", "jq", "curl", "openssl", "make")


def test_readme_step_1_names_every_tool_the_runbooks_use() -> None:
    used = set()
    for doc in RUNBOOKS:
        for lang, body in FENCE.findall(doc.read_text()):
            if lang in ("", "bash", "sh", "console"):
                used |= {t for t in TOOLS if re.search(rf"(^|[\s|($;]){re.escape(t)}\s", body, re.M)}
    assert "istioctl" in used  # blue-green, add-cluster, istio-upgrade, rotate-intermediate-ca
    step1 = FIRST_DEPLOY[FIRST_DEPLOY.index("1. **Tools.**"):FIRST_DEPLOY.index("2. **Log in")]
    named = {t for t in TOOLS if re.search(rf"`{t}`|{t.capitalize()} CLI|gcloud CLI", step1)
             and (t != "gcloud" or "gcloud CLI" in step1) and (t != "pulumi" or "Pulumi CLI" in step1)}
    assert used - named == set()
    # istioctl of the Istio the program installs by default (config.DEFAULT_ISTIO_VERSION).
    assert f"ISTIO_VERSION={config.DEFAULT_ISTIO_VERSION} sh -" in step1
