"""Real X.509 for the mocks: keys, certificates and pulumi-tls outputs made with `cryptography`.

The mocks answer pulumi-tls resources with real keys and certificates built from the
inputs the program sent, the way terraform-provider-tls would, so the program's CA
chain, cacerts and kubeconfigs are exercised for real; tests use the same builders for
stand-in roots.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# One clock for every certificate the mocks issue in this process.
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@functools.cache
def private_key(kind: str, size: str, seed: str) -> Any:
    """Generate (once per process) a key for the given algorithm; seed keeps keys distinct."""
    del seed
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=int(size))
    curve = {"P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1}[size]
    return ec.generate_private_key(curve())


def pem_key(key: Any, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def self_signed_pem(key: Any, common_name: str, *, organization: str | None = None, days: float = 3650,
                    ca: bool = True, path_length: int | None = None, subject_key_id: bool = False) -> str:
    """A self-signed certificate, valid from a day ago for `days` (negative: already expired), PEM.

    The one builder for stand-in roots (a team's own, a test's) and GKE's cluster CAs.
    """
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    name = x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True))
    if subject_key_id:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _name(subject: Mapping[str, Any] | None) -> x509.Name:
    subject = subject or {}
    attrs = []
    for key, oid in (("country", NameOID.COUNTRY_NAME), ("province", NameOID.STATE_OR_PROVINCE_NAME),
                     ("locality", NameOID.LOCALITY_NAME), ("organization", NameOID.ORGANIZATION_NAME),
                     ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
                     ("commonName", NameOID.COMMON_NAME)):
        if subject.get(key):
            attrs.append(x509.NameAttribute(oid, subject[key]))
    return x509.Name(attrs)


# pulumi-tls `allowed_uses` names (terraform-provider-tls) -> X.509 key usage / extended key usage.
_KEY_USAGE = {
    "digital_signature": "digital_signature", "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment", "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement", "cert_signing": "key_cert_sign", "crl_signing": "crl_sign",
    "encipher_only": "encipher_only", "decipher_only": "decipher_only",
}
_EXT_KEY_USAGE = {"server_auth": ExtendedKeyUsageOID.SERVER_AUTH, "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH}


def _build_cert(inputs: Mapping[str, Any], subject: x509.Name, public_key: Any, issuer: x509.Name,
                signing_key: Any, issuer_cert: x509.Certificate | None, now: dt.datetime) -> x509.Certificate:
    """Issue a certificate the way terraform-provider-tls (behind pulumi-tls) does.

    Mirrors internal/provider/common_cert.go: BasicConstraintsValid is always set,
    `max_path_length` >= 0 becomes Go's MaxPathLen without MaxPathLenZero - so 0 means
    *no* path-length constraint in the issued certificate -, a CA gets a subject key
    id, the authority key id comes from the issuer's subject key id, key usage is
    critical and extended key usage is not.
    """
    hours = float(inputs["validityPeriodHours"])
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + dt.timedelta(hours=hours)))
    is_ca = bool(inputs.get("isCaCertificate"))
    max_path = inputs.get("maxPathLength")
    path_len = int(max_path) if is_ca and max_path is not None and max_path > 0 else None
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_len), critical=True)
    uses = list(inputs.get("allowedUses") or [])
    flags = {v: False for v in _KEY_USAGE.values()}
    for use in uses:
        if use in _KEY_USAGE:
            flags[_KEY_USAGE[use]] = True
    if any(flags.values()):
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    ext = [_EXT_KEY_USAGE[u] for u in uses if u in _EXT_KEY_USAGE]
    if ext:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ext), critical=False)
    if inputs.get("dnsNames"):
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in inputs["dnsNames"]]), critical=False)
    if is_ca or inputs.get("setSubjectKeyId"):
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    issuer_ski = None
    if issuer_cert is not None:
        try:
            issuer_ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            issuer_ski = None
    elif is_ca:
        issuer_ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    if issuer_ski is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _cert_outputs(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": cert.not_valid_before_utc.isoformat(),
        "validityEndTime": cert.not_valid_after_utc.isoformat(),
    }


@functools.cache
def cluster_ca(seed: str) -> str:
    """A cluster CA certificate like GKE's (self-signed, CA:TRUE), PEM."""
    return self_signed_pem(private_key("ECDSA", "P256", f"cluster-ca:{seed}"), f"cluster-ca-{seed}", days=1825)


@functools.cache
def tls_outputs(t: str, name: str, inputs_json: str, replaced: bool = False) -> dict[str, Any]:
    """pulumi-tls outputs, computed once per (resource, inputs) like a provider's state.

    Re-running the program with the same inputs yields the same PEMs, so tests can diff
    two runs the way `pulumi preview --diff` would.
    """
    inputs = json.loads(inputs_json)
    if t == "tls:index/privateKey:PrivateKey":
        algorithm = inputs["algorithm"]
        size = str(int(inputs.get("rsaBits", 2048))) if algorithm == "RSA" else inputs.get("ecdsaCurve", "P224")
        key = private_key(algorithm, size, f"{name}#replaced" if replaced else name)
        pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return {"privateKeyPem": pem_key(key), "privateKeyPemPkcs8": pem_key(key), "publicKeyPem": pub}
    if t == "tls:index/selfSignedCert:SelfSignedCert":
        key = serialization.load_pem_private_key(inputs["privateKeyPem"].encode(), None)
        subject = _name(inputs.get("subject"))
        cert = _build_cert(inputs, subject, key.public_key(), subject, key, None, NOW)
        return _cert_outputs(cert)
    if t == "tls:index/certRequest:CertRequest":
        key = serialization.load_pem_private_key(inputs["privateKeyPem"].encode(), None)
        csr = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
        if inputs.get("dnsNames"):
            csr = csr.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(d) for d in inputs["dnsNames"]]), critical=False)
        return {"certRequestPem": csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()}
    if t == "tls:index/locallySignedCert:LocallySignedCert":
        csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
        ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
        ca_key = serialization.load_pem_private_key(inputs["caPrivateKeyPem"].encode(), None)
        assert ca_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == ca_cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ), "LocallySignedCert: caPrivateKeyPem does not match caCertPem"
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = san.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            dns = []
        cert = _build_cert({**inputs, "dnsNames": dns}, csr.subject, csr.public_key(), ca_cert.subject,
                           ca_key, ca_cert, NOW)
        return _cert_outputs(cert)
    raise AssertionError(f"unexpected tls resource {t}")
