"""Checks on a brought-in CA: real X.509 parsed with `cryptography`, reported against `ca.*` keys."""

from __future__ import annotations

from typing import Any

from components.config.rules import Problems


def _check_root_pem(cert_pem: Any, key_pem: Any, intermediate_hours: int | None, p: Problems) -> None:
    """A BYO root must be a CA that may sign intermediates (basicConstraints CA, a path length that
    allows one more CA, keyCertSign if it has a keyUsage), valid now, whose key is the one given, and
    that outlives the intermediates issued under it (pulumi-tls does not clamp their validity)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if not isinstance(cert_pem, str) or not isinstance(key_pem, str):
        p.add("ca.rootCertPem and ca.rootKeyPem must be PEM strings")
        return
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        p.add("ca.rootCertPem is not a PEM X.509 certificate")
        return
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        p.add("ca.rootKeyPem is not an unencrypted PEM private key")
        return
    try:
        constraints: x509.BasicConstraints | None = cert.extensions.get_extension_for_class(
            x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        p.add("ca.rootCertPem is not a CA certificate (basicConstraints CA:TRUE is required)")
    elif constraints.path_length == 0:
        p.add("ca.rootCertPem has pathlen:0, so it may not sign the per-cluster intermediate CAs; use a "
              "root with pathlen >= 1 or none")
    try:
        usage: x509.KeyUsage | None = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None  # RFC 5280 wants it on a CA, but Go's verifier (istiod's) accepts a CA without one
    if usage is not None and not usage.key_cert_sign:
        p.add("ca.rootCertPem has a keyUsage without keyCertSign, so verifiers (Go's, istiod's) refuse the "
              "intermediates it signs; reissue the root with keyUsage keyCertSign (and cRLSign)")
    now = dt.datetime.now(dt.UTC)
    expires = cert.not_valid_after_utc
    starts = cert.not_valid_before_utc
    if starts > now:
        p.add(f"ca.rootCertPem is not valid before {starts:%Y-%m-%d %H:%M} UTC, so nothing it signs verifies "
              "yet; use a root whose validity has begun (check the issuing machine's clock)")
    if expires <= now:
        p.add(f"ca.rootCertPem expired on {expires:%Y-%m-%d}; renew the root")
    elif intermediate_hours is not None and now + dt.timedelta(hours=intermediate_hours) > expires:
        p.add(f"ca.intermediateValidityHours {intermediate_hours} would outlive ca.rootCertPem, which expires on "
              f"{expires:%Y-%m-%d}: shorten it or renew the root")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != cert.public_key().public_bytes(enc, pub):
        p.add("ca.rootKeyPem does not belong to ca.rootCertPem")


