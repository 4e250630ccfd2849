"""Checks on a brought-in CA: real X.509 parsed with `cryptography`, reported against `ca.*` keys."""

from __future__ import annotations

from typing import Any

from components.config.rules import Problems


def _extension(cert: Any, kind: type) -> Any:
    """The value of a certificate's extension of this kind (x509.BasicConstraints, KeyUsage), or None."""
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


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
    constraints: x509.BasicConstraints | None = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        p.add("ca.rootCertPem is not a CA certificate (basicConstraints CA:TRUE is required)")
    elif constraints.path_length == 0:
        p.add("ca.rootCertPem has pathlen:0, so it may not sign the per-cluster intermediate CAs; use a "
              "root with pathlen >= 1 or none")
    # RFC 5280 wants a keyUsage on a CA, but Go's verifier (istiod's) accepts a CA without one.
    usage: x509.KeyUsage | None = _extension(cert, x509.KeyUsage)
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




def _check_intermediate_pems(cluster: str, cert_pem: Any, key_pem: Any, root_pem: Any, p: Problems) -> None:
    """A brought-in intermediate: a signing CA (CA:TRUE, keyCertSign), unexpired, its own key,
    and issued (signature verified) by ca.rootCertPem."""
    import datetime as dt

    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    key_name = f"ca.intermediates.{cluster}"
    if not isinstance(cert_pem, str) or not isinstance(key_pem, str):
        p.add(f"{key_name}.certPem and {key_name}.keyPem must be PEM strings")
        return
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        p.add(f"{key_name}: certPem must be a PEM X.509 certificate and keyPem an unencrypted PEM private key")
        return
    if not getattr(_extension(cert, x509.BasicConstraints), "ca", False):
        p.add(f"{key_name}.certPem is not a CA certificate (basicConstraints CA:TRUE is required)")
    if not getattr(_extension(cert, x509.KeyUsage), "key_cert_sign", False):
        p.add(f"{key_name}.certPem lacks key usage keyCertSign: istiod could not sign workload certificates")
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        p.add(f"{key_name}.certPem is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} to "
              f"{cert.not_valid_after_utc:%Y-%m-%d})")
    pub, enc = serialization.PublicFormat.SubjectPublicKeyInfo, serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != cert.public_key().public_bytes(enc, pub):
        p.add(f"{key_name}.keyPem does not belong to {key_name}.certPem")
    try:
        root = x509.load_pem_x509_certificate(root_pem.encode()) if isinstance(root_pem, str) else None
    except ValueError:
        root = None
    if root is None:
        return  # ca.rootCertPem's own rule reports it
    issuer_key = root.public_key()
    try:
        if cert.issuer != root.subject:
            raise ValueError
        if isinstance(issuer_key, rsa.RSAPublicKey):
            issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                              cert.signature_hash_algorithm)
        elif isinstance(issuer_key, ec.EllipticCurvePublicKey):
            issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        else:
            raise ValueError
    except (ValueError, TypeError, InvalidSignature):
        p.add(f"{key_name}.certPem is not issued by ca.rootCertPem (issuer and signature must chain to the root)")
    if cert.not_valid_after_utc > root.not_valid_after_utc:
        p.add(f"{key_name}.certPem outlives ca.rootCertPem")


def root_fingerprint(cert_pem: str) -> str:
    """`sha256:<hex>` of a certificate's DER: how the program names a root across deployments."""
    from cryptography import x509

    return _fingerprint(x509.load_pem_x509_certificate(cert_pem.encode()))


def _fingerprint(cert: Any) -> str:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _check_trusted_roots(raw: Any, signing_pem: Any, p: Problems) -> tuple[str, ...]:
    """ca.trustedRootPems: extra roots every cluster trusts (a root transition's other root).

    Each must be a CA certificate valid now; public only (no keys), one entry per root, and not
    the signing root (`ca.rootCertPem`, always trusted)."""
    import datetime as dt

    from cryptography import x509

    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        p.add("ca.trustedRootPems must be a list of PEM certificates")
        return ()
    try:
        own = root_fingerprint(signing_pem) if isinstance(signing_pem, str) else None
    except ValueError:
        own = None  # reported by the ca.rootCertPem checks
    now, seen, out = dt.datetime.now(dt.UTC), set(), []
    for i, pem in enumerate(raw):
        key = f"ca.trustedRootPems[{i}]"
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            p.add(f"{key} is not a PEM X.509 certificate")
            continue
        if not getattr(_extension(cert, x509.BasicConstraints), "ca", False):
            p.add(f"{key} is not a CA certificate (basicConstraints CA:TRUE is required of a trusted root)")
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            p.add(f"{key} is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                  f"{cert.not_valid_after_utc:%Y-%m-%d}); an expired root verifies nothing")
        fp = _fingerprint(cert)
        if fp == own:
            p.add("ca.trustedRootPems repeats ca.rootCertPem: the signing root is always trusted")
        elif fp in seen:
            p.add(f"{key} repeats an earlier entry")
        seen.add(fp)
        out.append(pem)
    return tuple(out)
