"""The mesh root changes only through the three-step multi-root transition (docs/root-transition.md).

Each step is a run of the program fed the previous run's exports as its last deployment, the
way the stack's StackReference to itself reads them back (offline/engine.py). Refused steps
must name the key and declare nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from components.config import CaSpec
from components.config.ca_checks import root_fingerprint
from components.root_transition import MULTIROOT_ENV, root_change_problems, trust_bundle
from offline import Program, ProgramError, pem_key, run_program, self_signed_pem
from offline.configs import base

CLUSTERS = [c["name"] for c in base()["clusters"]]
RELEASE = "kubernetes:helm.sh/v3:Release"
_PEM = Encoding.PEM


def _config(**ca: Any) -> dict[str, Any]:
    config = base()
    config["ca"] = {"algorithm": "ECDSA", **ca}
    return config


def _new_root() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    return self_signed_pem(key, "Team Root 2027", organization="Team Vault", subject_key_id=True), pem_key(key)


def _roots(stack: Program, cluster: str) -> list[str]:
    """The fingerprints in a cluster's trust bundle (cacerts root-cert.pem), in order."""
    bundle = stack.find("kubernetes:core/v1:Secret", f"{cluster}-cacerts").inputs["stringData"]["root-cert.pem"]
    return [root_fingerprint(c.public_bytes(_PEM).decode()) for c in x509.load_pem_x509_certificates(bundle.encode())]


def _signer(stack: Program, cluster: str) -> str:
    """The root the cluster's intermediate chains to (the last certificate of cert-chain.pem)."""
    chain = stack.find("kubernetes:core/v1:Secret", f"{cluster}-cacerts").inputs["stringData"]["cert-chain.pem"]
    return root_fingerprint(x509.load_pem_x509_certificates(chain.encode())[-1].public_bytes(_PEM).decode())


def _istiod_env(stack: Program, cluster: str) -> dict[str, str] | None:
    return stack.find(RELEASE, f"{cluster}-istiod").inputs["values"].get("env")


def _refused(config: dict[str, Any], last: dict[str, Any], **options: Any) -> str:
    with pytest.raises(ProgramError) as failure:
        run_program(config, last_outputs=last, **options)
    assert failure.value.declared == [], "a refused root change must not register anything"
    return str(failure.value)


@pytest.fixture(scope="module")
def generated() -> Program:
    return run_program(_config())


def test_the_deployed_trust_is_an_output_the_next_run_reads(generated: Program) -> None:
    trust = generated.exports["caTrust"]
    fp = root_fingerprint(generated.exports["rootCertPem"])
    assert trust == {"source": "generated", "algorithm": "ECDSA", "rootValidityHours": 87600,
                     "signingRoot": fp, "trustedRoots": [fp], "rootTransition": False}
    again = run_program(_config(), last_outputs=generated.exports)
    assert again.exports["rootCertPem"] == generated.exports["rootCertPem"], "an unchanged config keeps its root"
    assert all(_istiod_env(again, c) is None for c in CLUSTERS), "one root: istiod runs as the chart ships"


@pytest.mark.parametrize(("edit", "named"), [
    ({"algorithm": "RSA"}, "ca.algorithm 'ECDSA' -> 'RSA'"),
    ({"rootValidityHours": 43800}, "ca.rootValidityHours 87600 -> 43800"),
])
def test_an_edit_that_would_replace_the_generated_root_is_refused(generated: Program, edit, named) -> None:
    message = _refused(_config(**edit), generated.exports)
    assert named in message and "would replace the generated mesh root" in message
    assert "docs/root-transition.md" in message


def test_a_deployment_older_than_the_trust_output_is_read_from_its_root_certificate(generated: Program) -> None:
    last = {k: v for k, v in generated.exports.items() if k != "caTrust"}
    assert "ca.algorithm 'ECDSA' -> 'RSA'" in _refused(_config(algorithm="RSA"), last)
    assert root_change_problems(last, CaSpec(algorithm="ECDSA")) == [], "the same root, read back, is not a change"


def test_generated_to_brought_in_root_in_three_ups(generated: Program) -> None:
    new_pem, new_key = _new_root()
    old_pem = generated.exports["rootCertPem"]
    old, new = root_fingerprint(old_pem), root_fingerprint(new_pem)

    # 1. trust: every cluster trusts both roots; the old one still signs; istiod loads a bundle.
    trust = run_program(_config(trustedRootPems=[new_pem], rootTransition=True), last_outputs=generated.exports,
                        secret_keys=["ca"])
    for c in CLUSTERS:
        assert _roots(trust, c) == [old, new] and _signer(trust, c) == old
        assert _istiod_env(trust, c) == {MULTIROOT_ENV: "true"}
    assert trust.exports["caTrust"]["trustedRoots"] == sorted([old, new])

    # 2. sign: the new root issues every intermediate; the old one stays trusted.
    sign_config = _config(rootCertPem=new_pem, rootKeyPem=new_key, trustedRootPems=[old_pem], rootTransition=True)
    sign = run_program(sign_config, last_outputs=trust.exports, secret_keys=["ca"])
    for c in CLUSTERS:
        assert _roots(sign, c) == [new, old] and _signer(sign, c) == new
        assert _istiod_env(sign, c) == {MULTIROOT_ENV: "true"}
    assert not sign.of_type("tls:index/selfSignedCert:SelfSignedCert"), "the generated root is retired"

    # 3. finish: only the new root is left; istiod back to the chart's default.
    finish = run_program(_config(rootCertPem=new_pem, rootKeyPem=new_key), last_outputs=sign.exports,
                         secret_keys=["ca"])
    for c in CLUSTERS:
        assert _roots(finish, c) == [new] and _signer(finish, c) == new and _istiod_env(finish, c) is None
    assert finish.exports["caTrust"]["source"] == "ca.rootCertPem"


@pytest.fixture(scope="module")
def trusting() -> tuple[Program, str, str]:
    """Step 1 done: the deployed mesh trusts a new root beside its generated one."""
    new_pem, new_key = _new_root()
    stack = run_program(_config(trustedRootPems=[new_pem]), secret_keys=["ca"])
    return stack, new_pem, new_key


def test_signing_with_a_root_the_mesh_does_not_trust_yet_is_refused(generated: Program) -> None:
    new_pem, new_key = _new_root()
    message = _refused(_config(rootCertPem=new_pem, rootKeyPem=new_key, trustedRootPems=[
        generated.exports["rootCertPem"]], rootTransition=True), generated.exports, secret_keys=["ca"])
    assert "is not trusted by the deployed mesh yet; first `up` with it in ca.trustedRootPems" in message


def test_signing_with_the_new_root_needs_the_flag(trusting) -> None:
    stack, new_pem, new_key = trusting
    message = _refused(_config(rootCertPem=new_pem, rootKeyPem=new_key, trustedRootPems=[
        stack.exports["rootCertPem"]]), stack.exports, secret_keys=["ca"])
    assert "set ca.rootTransition: true to sign with it" in message


def test_the_old_root_stays_trusted_while_the_new_one_takes_over(trusting) -> None:
    stack, new_pem, new_key = trusting
    message = _refused(_config(rootCertPem=new_pem, rootKeyPem=new_key, rootTransition=True), stack.exports,
                       secret_keys=["ca"])
    assert f"ca.trustedRootPems must keep the deployed root {root_fingerprint(stack.exports['rootCertPem'])}" \
        in message


def test_dropping_a_brought_in_root_for_a_generated_one_is_refused() -> None:
    pem, key = _new_root()
    byo = run_program(_config(rootCertPem=pem, rootKeyPem=key), secret_keys=["ca"])
    message = _refused(_config(), byo.exports)
    assert "the deployed mesh is signed by the root of ca.rootCertPem" in message


def test_prod_protection_of_the_generated_root_is_lifted_only_by_the_transition_flag() -> None:
    def protected(config: dict[str, Any]) -> set[bool]:
        stack = run_program(config, secret_keys=["ca"])
        return {stack.find(t, n).protect for t, n in (("tls:index/privateKey:PrivateKey", "mesh-ca-root-key"),
                                                      ("tls:index/selfSignedCert:SelfSignedCert", "mesh-ca-root-cert"))}
    config = _config()
    for c in config["clusters"]:
        c["protect"] = True
    assert protected(config) == {True}
    # Without this the `up` of step 2 could not delete the retired root: prod's workflows run only `pulumi up`.
    config["ca"].update(trustedRootPems=[_new_root()[0]], rootTransition=True)
    assert protected(config) == {False}


def test_trust_bundle_puts_the_signing_root_first_one_pem_per_line() -> None:
    a, b = _new_root()[0], _new_root()[0]
    assert trust_bundle(a.rstrip("\n"), [b]) == a + b
    assert trust_bundle(a, []) == a


def _expired_root() -> str:
    return self_signed_pem(ec.generate_private_key(ec.SECP256R1()), "Old Root", days=-1)


def _leaf() -> str:
    return self_signed_pem(ec.generate_private_key(ec.SECP256R1()), "not a ca", ca=False)


@pytest.mark.parametrize(("ca", "message"), [
    ({"trustedRootPems": "-----BEGIN CERTIFICATE-----"}, "ca.trustedRootPems must be a list of PEM certificates"),
    ({"trustedRootPems": ["hello"]}, "ca.trustedRootPems[0] is not a PEM X.509 certificate"),
    ({"trustedRootPems": [_leaf()]}, "ca.trustedRootPems[0] is not a CA certificate"),
    ({"trustedRootPems": [_expired_root()]}, "ca.trustedRootPems[0] is not valid now"),
    ({"rootTransition": "yes"}, "ca.rootTransition 'yes' must be true or false"),
])
def test_bad_transition_config_names_the_key_and_declares_nothing(ca: dict[str, Any], message: str) -> None:
    with pytest.raises(ProgramError) as failure:
        run_program(_config(**ca), secret_keys=["ca"])
    assert message in str(failure.value), str(failure.value)
    assert failure.value.declared == []


def test_a_root_listed_twice_or_beside_itself_is_refused() -> None:
    pem, key = _new_root()
    with pytest.raises(ProgramError) as failure:
        run_program(_config(trustedRootPems=[pem, pem]), secret_keys=["ca"])
    assert "ca.trustedRootPems[1] repeats an earlier entry" in str(failure.value)
    with pytest.raises(ProgramError) as failure:
        run_program(_config(rootCertPem=pem, rootKeyPem=key, trustedRootPems=[pem]), secret_keys=["ca"])
    assert "ca.trustedRootPems repeats ca.rootCertPem" in str(failure.value)
    assert failure.value.declared == []
