"""The mesh root changes only through a multi-root transition, never by an edit.

Why: a root some proxies do not trust yet breaks mTLS mesh-wide, and istiod ignores a changed
`root-cert.pem` unless ISTIO_MULTIROOT_MESH is on. So a transition is three `up`s (trust, sign,
finish) and everything else is refused before anything is declared; the steps, what refuses
what and the Istio 1.30.3 sources are in docs/root-transition.md. The deployed trust comes from
the stack's last outputs (`caTrust`, components/last_deployment.py). A generated root can never
be trusted in advance, so replacing one is always refused: bring in a new root instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from components.config import CaSpec
from components.config.ca_checks import root_fingerprint

CA_TRUST_OUTPUT = "caTrust"
ROOT_CERT_OUTPUT = "rootCertPem"
GENERATED = "generated"
RUNBOOK = "docs/root-transition.md"
# istiod: "If enabled, mesh will support certificates signed by more than one trustAnchor for
# ISTIO_MUTUAL mTLS" (pilot/pkg/features/pilot.go, default false); with it istiod also reloads a
# changed root-cert.pem. Set while the bundle holds more than one root; switching it restarts
# istiod, which then loads the bundle afresh.
MULTIROOT_ENV = "ISTIO_MULTIROOT_MESH"


def trust_bundle(signing_root_pem: str, trusted_root_pems: Sequence[str]) -> str:
    """`root-cert.pem`: the signing root first, then every other trusted root, one PEM each."""
    pems = [signing_root_pem, *trusted_root_pems]
    return "".join(p if p.endswith("\n") else p + "\n" for p in pems)


def multiroot_env(ca: CaSpec) -> dict[str, str]:
    """istiod's env while more than one root is trusted (transition steps 1 and 2), else none."""
    return {MULTIROOT_ENV: "true"} if ca.trusted_root_pems else {}


def ca_trust(ca: CaSpec, signing_root_pem: str) -> dict[str, Any]:
    """The `caTrust` stack output: what the next run compares its config with."""
    signing = root_fingerprint(signing_root_pem)
    return {
        "source": ca.source,
        "algorithm": ca.algorithm,
        "rootValidityHours": ca.root_validity_hours,
        "signingRoot": signing,
        "trustedRoots": sorted({signing, *map(root_fingerprint, ca.trusted_root_pems)}),
        "rootTransition": ca.root_transition,
    }


def _last_trust(last: Mapping[str, Any]) -> dict[str, Any] | None:
    """The deployed trust, from `caTrust`; a deployment older than it has only `rootCertPem`."""
    trust = last.get(CA_TRUST_OUTPUT)
    if isinstance(trust, Mapping) and trust.get("signingRoot"):
        hours = trust.get("rootValidityHours")
        if isinstance(hours, float) and hours.is_integer():
            return {**trust, "rootValidityHours": int(hours)}  # the engine's numbers are doubles
        return dict(trust)
    pem = last.get(ROOT_CERT_OUTPUT)
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    cert = x509.load_pem_x509_certificate(pem.encode())
    key = cert.public_key()
    algorithm = "RSA" if isinstance(key, rsa.RSAPublicKey) else "ECDSA" if isinstance(key, ec.EllipticCurvePublicKey) \
        else None
    hours = (cert.not_valid_after_utc - cert.not_valid_before_utc) // dt.timedelta(hours=1)
    fp = root_fingerprint(pem)
    return {"source": None, "algorithm": algorithm, "rootValidityHours": hours, "signingRoot": fp,
            "trustedRoots": [fp]}


def root_change_problems(last: Mapping[str, Any], ca: CaSpec) -> list[str]:
    """Why this config may not replace the deployed signing root (empty: it keeps it, or may)."""
    deployed = _last_trust(last)
    if deployed is None:
        return []  # a new stack: nothing trusts anything yet
    how = f"follow {RUNBOOK} (trust the new root in every cluster first, then sign with it)"
    if ca.source == GENERATED:
        if deployed["source"] not in (None, GENERATED):
            return [f"ca: the deployed mesh is signed by the root of {deployed['source']}; removing it would make "
                    f"this program generate a new root nobody trusts; {how}"]
        changed = [f"ca.{k} {deployed[k]!r} -> {getattr(ca, attr)!r}"
                   for k, attr in (("algorithm", "algorithm"), ("rootValidityHours", "root_validity_hours"))
                   if deployed.get(k) is not None and deployed[k] != getattr(ca, attr)]
        if not changed:
            return []
        return [f"{'; '.join(changed)} would replace the generated mesh root, which no cluster trusts yet; Istio "
                f"accepts a new root only through a multi-root transition (a mesh-wide mTLS outage otherwise). "
                f"Revert the edit; to change the root, bring in a new one and {how}"]
    new = root_fingerprint(ca.root_cert_pem or "")
    if new == deployed["signingRoot"]:
        return []
    problems = []
    if not ca.root_transition:
        problems.append(f"{ca.source} brings a root ({new}) other than the deployed signing root "
                        f"({deployed['signingRoot']}); set ca.rootTransition: true to sign with it, after the "
                        f"trust step; {how}")
    if new not in deployed.get("trustedRoots", []):
        problems.append(f"{ca.source}: the new root {new} is not trusted by the deployed mesh yet; first `up` with "
                        f"it in ca.trustedRootPems (and the old root still signing); {how}")
    if deployed["signingRoot"] not in {root_fingerprint(p) for p in ca.trusted_root_pems}:
        problems.append(f"ca.trustedRootPems must keep the deployed root {deployed['signingRoot']} while the new one "
                        f"takes over (its workloads' certificates chain to it until they renew); get it with "
                        f"`pulumi stack output rootCertPem`")
    return problems
