"""IstioCertificateAuthority: one root, one intermediate per cluster, checked as real X.509."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from components.certificate_authority import (
    INTERMEDIATE_EARLY_RENEWAL_HOURS,
    ISTIOD_SAN,
    MAX_STAGGERED_CLUSTERS,
    cacerts_data,
    intermediate_validity_hours,
    stagger_step_hours,
)
from offline import Program, ProgramError, changed_resources, pem_key, self_signed_pem
from offline.configs import base, three_clusters

CLUSTERS = [c["name"] for c in base()["clusters"]]
PUB = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def certs(pem_bundle: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem_bundle.encode())


def cacerts_of(stack: Program, cluster: str) -> dict[str, str]:
    secret = stack.find("kubernetes:core/v1:Secret", f"{cluster}-cacerts")
    return secret.inputs["stringData"]


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    key = parent.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(child.signature, child.tbs_certificate_bytes, padding.PKCS1v15(), child.signature_hash_algorithm)
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(child.signature_hash_algorithm))
    return True


def test_cacerts_data_orders_the_chain_intermediate_then_root() -> None:
    data = cacerts_data("INTER", "KEY", "ROOT\n")
    assert data == {"ca-cert.pem": "INTER\n", "ca-key.pem": "KEY", "root-cert.pem": "ROOT\n",
                    "cert-chain.pem": "INTER\nROOT\n"}


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_each_cluster_gets_an_intermediate_issued_by_the_mesh_root(base_stack: Program, cluster: str) -> None:
    data = cacerts_of(base_stack, cluster)
    assert set(data) == {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}
    (inter,) = certs(data["ca-cert.pem"])
    (root,) = certs(data["root-cert.pem"])
    assert issued_by(inter, root)
    assert issued_by(root, root)
    # cert-chain.pem: the intermediate first, then the root.
    assert [c.fingerprint(hashes.SHA256()) for c in certs(data["cert-chain.pem"])] == [
        inter.fingerprint(hashes.SHA256()), root.fingerprint(hashes.SHA256())]
    # ca-key.pem is the intermediate's key.
    key = serialization.load_pem_private_key(data["ca-key.pem"].encode(), None)
    assert key.public_key().public_bytes(*PUB) == inter.public_key().public_bytes(*PUB)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_intermediate_is_a_signing_ca_named_for_its_cluster(base_stack: Program, cluster: str) -> None:
    (inter,) = certs(cacerts_of(base_stack, cluster)["ca-cert.pem"])
    constraints = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = inter.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.digital_signature
    assert inter.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Istio"
    assert inter.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Intermediate CA"
    assert inter.subject.get_attributes_for_oid(NameOID.LOCALITY_NAME)[0].value == cluster
    san = inter.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [ISTIOD_SAN]


def test_path_length_leaves_room_for_exactly_one_intermediate(base_stack: Program) -> None:
    """The root's pathlen:1 stops an intermediate from minting sub-CAs (see ROOT_MAX_PATH_LENGTH)."""
    (root,) = certs(cacerts_of(base_stack, CLUSTERS[0])["root-cert.pem"])
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 1
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    cert = base_stack.find("tls:index/locallySignedCert:LocallySignedCert", f"mesh-ca.{CLUSTERS[0]}-cert")
    assert cert.inputs["isCaCertificate"] is True
    assert cert.inputs["maxPathLength"] == 0
    assert {"cert_signing", "digital_signature"} <= set(cert.inputs["allowedUses"])


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_intermediate_validity_lies_inside_the_roots(base_stack: Program, cluster: str) -> None:
    data = cacerts_of(base_stack, cluster)
    (inter,), (root,) = certs(data["ca-cert.pem"]), certs(data["root-cert.pem"])
    # The configured lifetimes (ca.rootValidityHours / intermediateValidityHours defaults), and so an
    # intermediate that expires years before its root. (Both are issued in the same run, so comparing
    # their start times would prove nothing.)
    hours = intermediate_validity_hours(17520, CLUSTERS.index(cluster))
    assert inter.not_valid_after_utc - inter.not_valid_before_utc == dt.timedelta(hours=hours)
    assert root.not_valid_after_utc - root.not_valid_before_utc == dt.timedelta(hours=87600)
    assert root.not_valid_after_utc - inter.not_valid_after_utc > dt.timedelta(days=365)


def test_every_cluster_trusts_the_same_root_and_has_its_own_intermediate(base_stack: Program) -> None:
    roots = {cacerts_of(base_stack, c)["root-cert.pem"] for c in CLUSTERS}
    assert len(roots) == 1
    assert roots == {base_stack.exports["rootCertPem"]}
    assert len({cacerts_of(base_stack, c)["ca-cert.pem"] for c in CLUSTERS}) == len(CLUSTERS)
    assert len({cacerts_of(base_stack, c)["ca-key.pem"] for c in CLUSTERS}) == len(CLUSTERS)


def _all_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _all_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _all_strings(v)]
    return []


def test_root_key_never_enters_a_cluster(base_stack: Program) -> None:
    root_key = base_stack.find("tls:index/privateKey:PrivateKey", "mesh-ca-root-key").outputs["privateKeyPem"]
    for r in base_stack.resources:
        if r.type.startswith("kubernetes:"):
            assert not any(root_key.strip() in s for s in _all_strings(r.inputs)), f"{r.type} {r.name}"
    assert root_key not in str(base_stack.exports)


def test_key_material_travels_only_as_secrets(base_stack: Program) -> None:
    for cluster in CLUSTERS:
        assert "stringData" in base_stack.find("kubernetes:core/v1:Secret", f"{cluster}-cacerts").secret_inputs
        cert = base_stack.find("tls:index/locallySignedCert:LocallySignedCert", f"mesh-ca.{cluster}-cert")
        assert "caPrivateKeyPem" in cert.secret_inputs
        csr = base_stack.find("tls:index/certRequest:CertRequest", f"mesh-ca.{cluster}-csr")
        assert "privateKeyPem" in csr.secret_inputs
    root = base_stack.find("tls:index/selfSignedCert:SelfSignedCert", "mesh-ca-root-cert")
    assert "privateKeyPem" in root.secret_inputs


@pytest.mark.parametrize(("algorithm", "key_type"), [("RSA", rsa.RSAPrivateKey), ("ECDSA", ec.EllipticCurvePrivateKey)])
def test_algorithm_follows_config(run, base_config, algorithm: str, key_type: type) -> None:
    base_config["ca"] = {"algorithm": algorithm}
    stack = run(base_config)
    for key in stack.of_type("tls:index/privateKey:PrivateKey"):
        assert key.inputs["algorithm"] == algorithm
    data = cacerts_of(stack, CLUSTERS[0])
    assert isinstance(serialization.load_pem_private_key(data["ca-key.pem"].encode(), None), key_type)
    (inter,), (root,) = certs(data["ca-cert.pem"]), certs(data["root-cert.pem"])
    assert issued_by(inter, root)


def _ca_inputs(stack: Program) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in stack.resources if r.type.startswith("tls:index/")}


def test_changing_intermediate_validity_leaves_the_root_alone(run, base_config) -> None:
    before = _ca_inputs(run(base_config))
    base_config["ca"] = {"intermediateValidityHours": 8760}
    after = _ca_inputs(run(base_config))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {f"mesh-ca.{c}-cert" for c in CLUSTERS}


def test_rotating_one_intermediate_touches_only_that_cluster(run, base_stack: Program) -> None:
    """`pulumi up --replace <green key urn>`: what the preview would show changing."""
    key = f"mesh-ca.{CLUSTERS[1]}-key"
    rotated = run(base(), replace=[key])  # the tests' own config, as base_stack
    diff = changed_resources(base_stack, rotated)
    assert diff.added == diff.removed == ()
    changed = {rotated.by_urn[u].name for u in diff.changed}
    assert changed == {f"mesh-ca.{CLUSTERS[1]}-csr", f"mesh-ca.{CLUSTERS[1]}-cert", f"{CLUSTERS[1]}-cacerts"}
    old_cacerts = base_stack.find("kubernetes:core/v1:Secret", f"{CLUSTERS[1]}-cacerts").inputs["stringData"]
    new_cacerts = rotated.find("kubernetes:core/v1:Secret", f"{CLUSTERS[1]}-cacerts").inputs["stringData"]
    assert new_cacerts["ca-key.pem"] != old_cacerts["ca-key.pem"]
    assert new_cacerts["root-cert.pem"] == old_cacerts["root-cert.pem"], "the mesh keeps its root"


def _self_signed_root() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    return self_signed_pem(key, "Team Root", organization="Team Vault", subject_key_id=True), pem_key(key)


def test_bring_your_own_root_signs_the_intermediates(run, base_config) -> None:
    cert_pem, key_pem = _self_signed_root()
    base_config["ca"] = {"rootCertPem": cert_pem, "rootKeyPem": key_pem}
    stack = run(base_config, secret_keys=["ca"])
    assert not stack.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert not [r for r in stack.of_type("tls:index/privateKey:PrivateKey") if "root" in r.name]
    (team_root,) = certs(cert_pem)
    for cluster in CLUSTERS:
        data = cacerts_of(stack, cluster)
        assert data["root-cert.pem"] == cert_pem
        (inter,) = certs(data["ca-cert.pem"])
        assert issued_by(inter, team_root)
        signed = stack.find("tls:index/locallySignedCert:LocallySignedCert", f"mesh-ca.{cluster}-cert")
        assert "caPrivateKeyPem" in signed.secret_inputs
        assert key_pem.strip() not in str(data)


def test_three_clusters_three_intermediates_one_root(run, base_config) -> None:
    stack = run(three_clusters(base_config))
    names = [c["name"] for c in three_clusters(base_config)["clusters"]]
    roots = {cacerts_of(stack, n)["root-cert.pem"] for n in names}
    assert len(roots) == 1
    (root,) = certs(roots.pop())
    for n in names:
        (inter,) = certs(cacerts_of(stack, n)["ca-cert.pem"])
        assert issued_by(inter, root)


# ------------------------------------------------------------------ lifecycle (issue 14, item 2)


@given(validity=st.integers(min_value=24, max_value=87599))
def test_staggered_validities_are_distinct_positive_and_independent_of_the_cluster_count(validity: int) -> None:
    hours = [intermediate_validity_hours(validity, i) for i in range(MAX_STAGGERED_CLUSTERS)]
    assert hours[0] == validity, "the first cluster keeps the configured validity"
    assert all(h >= validity // 2 for h in hours), "no cluster loses more than half"
    if validity >= 2 * MAX_STAGGERED_CLUSTERS:
        assert len(set(hours)) == len(hours), "no two of 16 clusters expire together"


def test_intermediates_issued_together_expire_apart_and_a_new_cluster_changes_none(run, base_config) -> None:
    base_config["ca"] = {"algorithm": "ECDSA"}
    two, three = run(base_config), run(three_clusters(base_config))
    ends = [dt.datetime.fromisoformat(three.exports["caExpiry"][c]["notAfter"]) for c in ("blue", "green", "teal")]
    step = dt.timedelta(hours=stagger_step_hours(17520))
    assert step > dt.timedelta(days=7)
    assert [a - b for a, b in itertools.pairwise(ends)] == [step, step]
    for cluster in CLUSTERS:
        name = f"mesh-ca.{cluster}-cert"
        assert three.find("tls:index/locallySignedCert:LocallySignedCert", name).inputs == \
            two.find("tls:index/locallySignedCert:LocallySignedCert", name).inputs, "adding teal reissued " + cluster


def test_ca_expiry_export_is_each_certificates_real_not_after(base_stack: Program) -> None:
    expiry = base_stack.exports["caExpiry"]
    assert set(expiry) == set(CLUSTERS)
    for cluster in CLUSTERS:
        (inter,) = certs(cacerts_of(base_stack, cluster)["ca-cert.pem"])
        assert dt.datetime.fromisoformat(expiry[cluster]["notAfter"]) == inter.not_valid_after_utc
        assert expiry[cluster]["earlyRenewalHours"] == INTERMEDIATE_EARLY_RENEWAL_HOURS


def test_root_is_protected_exactly_when_a_cluster_is(run, base_config, base_stack: Program) -> None:
    def root(stack: Program) -> list[bool]:
        return [stack.find(t, n).protect for t, n in (("tls:index/privateKey:PrivateKey", "mesh-ca-root-key"),
                                                      ("tls:index/selfSignedCert:SelfSignedCert", "mesh-ca-root-cert"))]
    assert root(base_stack) == [False, False]
    base_config["clusters"][1]["protect"] = True
    base_config["ca"] = {"algorithm": "ECDSA"}
    stack = run(base_config)
    assert root(stack) == [True, True]
    assert not any(r.protect for r in stack.of_type("tls:index/locallySignedCert:LocallySignedCert")), \
        "intermediates must stay rotatable"


def test_a_new_generation_rotates_one_clusters_intermediate_through_config(run, base_config) -> None:
    """The path prod takes through the workflows: raise ca.intermediateGenerations.<cluster> in a PR."""
    base_config["ca"] = {"algorithm": "ECDSA"}
    before = run(base_config)
    base_config["ca"]["intermediateGenerations"] = {CLUSTERS[1]: 1}
    after = run(base_config)
    diff = changed_resources(before, after)
    names = lambda stack, urns: {stack.by_urn[u].name for u in urns}  # noqa: E731
    assert names(after, diff.added) == {f"mesh-ca.{CLUSTERS[1]}-key-g1"}
    assert names(before, diff.removed) == {f"mesh-ca.{CLUSTERS[1]}-key"}
    assert names(after, diff.changed) == {f"mesh-ca.{CLUSTERS[1]}-csr", f"mesh-ca.{CLUSTERS[1]}-cert",
                                          f"{CLUSTERS[1]}-cacerts"}, "only that cluster changes"
    old, new = cacerts_of(before, CLUSTERS[1]), cacerts_of(after, CLUSTERS[1])
    assert new["ca-key.pem"] != old["ca-key.pem"]
    assert new["root-cert.pem"] == old["root-cert.pem"], "the mesh keeps its root"
    (inter,), (root,) = certs(new["ca-cert.pem"]), certs(new["root-cert.pem"])
    assert issued_by(inter, root)


def _intermediate(root_key: Any, root_pem: str, cluster: str, *, sign: bool = True) -> tuple[str, str]:
    """An intermediate CA issued by the given root, as Vault or CAS would issue it."""
    (root,) = certs(root_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "crl_sign", "encipher_only", "decipher_only"), False)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Intermediate {cluster}")]))
            .issuer_name(root.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(key_cert_sign=sign, **usage), critical=True)
            .sign(root_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key(key)


def _byo_intermediates(base_config: dict[str, Any]) -> tuple[str, Any]:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_pem = self_signed_pem(root_key, "Team Root", organization="Team CAS", subject_key_id=True)
    base_config["ca"] = {"rootCertPem": root_pem, "intermediates": {
        c: dict(zip(("certPem", "keyPem"), _intermediate(root_key, root_pem, c), strict=True)) for c in CLUSTERS}}
    return root_pem, root_key


def test_bring_your_own_intermediates_keep_every_root_key_out_of_the_state(run, base_config) -> None:
    root_pem, _ = _byo_intermediates(base_config)
    stack = run(base_config, secret_keys=["ca"])
    assert not [r for r in stack.resources if r.type.startswith("tls:")], "nothing is generated or signed here"
    for cluster in CLUSTERS:
        data = cacerts_of(stack, cluster)
        given_cert = base_config["ca"]["intermediates"][cluster]["certPem"]
        assert data["ca-cert.pem"].strip() == given_cert.strip() and data["root-cert.pem"] == root_pem
        assert data["ca-key.pem"] == base_config["ca"]["intermediates"][cluster]["keyPem"]
        (inter,) = certs(given_cert)
        assert dt.datetime.fromisoformat(stack.exports["caExpiry"][cluster]["notAfter"]) == inter.not_valid_after_utc
    assert stack.exports["rootCertPem"] == root_pem


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda ca, k, r: ca["intermediates"].pop("green"), "ca.intermediates lacks green"),
    (lambda ca, k, r: ca.update(rootKeyPem=pem_key(k)), "ca.rootKeyPem must not be set with ca.intermediates"),
    (lambda ca, k, r: ca["intermediates"]["green"].update(zip(("certPem", "keyPem"), _intermediate(
        ec.generate_private_key(ec.SECP256R1()), r, "green"), strict=True)),
     "ca.intermediates.green.certPem is not issued by ca.rootCertPem"),
    (lambda ca, k, r: ca["intermediates"]["blue"].update(zip(("certPem", "keyPem"), _intermediate(
        k, r, "blue", sign=False), strict=True)), "ca.intermediates.blue.certPem lacks key usage keyCertSign"),
    (lambda ca, k, r: ca["intermediates"]["blue"].update(keyPem=ca["intermediates"]["green"]["keyPem"]),
     "ca.intermediates.blue.keyPem does not belong to ca.intermediates.blue.certPem"),
])
def test_brought_in_intermediates_are_checked_as_x509(run, base_config, mutate, message) -> None:
    root_pem, root_key = _byo_intermediates(base_config)
    mutate(base_config["ca"], root_key, root_pem)
    with pytest.raises(ProgramError) as failure:
        run(base_config, secret_keys=["ca"])
    assert message in str(failure.value), str(failure.value)
    assert failure.value.declared == []
