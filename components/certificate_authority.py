"""The mesh's trust: one root CA and, per cluster, an intermediate CA that istiod signs with.

Istio's "Plug in CA certificates" step, as `tools/certs/common.mk` does it: a root
(O=Istio, CN=Root CA) and per-cluster intermediates (O=Istio, CN=Intermediate CA,
L=<cluster>, SAN istiod.istio-system.svc). Every cluster trusts the same root, so
workloads in different clusters accept each other's certificates. The root key
lives only in Pulumi state (encrypted); it never enters a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_tls as tls

from components.config import CaSpec
from components.names import CERTIFICATE_AUTHORITY_TYPE
from components.root_transition import ca_trust, trust_bundle

ORGANIZATION = "Istio"
ROOT_COMMON_NAME = "Root CA"
INTERMEDIATE_COMMON_NAME = "Intermediate CA"
ISTIOD_SAN = "istiod.istio-system.svc"
# Key usage of Istio's root-ca.conf / intermediate conf: digitalSignature, nonRepudiation,
# keyEncipherment, keyCertSign (pulumi-tls names).
CA_USES = ["digital_signature", "content_commitment", "key_encipherment", "cert_signing"]
# pulumi-tls (terraform-provider-tls) writes max_path_length=0 as "no constraint" (Go's
# MaxPathLenZero is never set), so the intermediates cannot carry pathlen:0 themselves.
# The root carries pathlen:1 instead: below it, an intermediate may sign only leaves.
ROOT_MAX_PATH_LENGTH = 1
INTERMEDIATE_MAX_PATH_LENGTH = 0
# `pulumi up` replaces an intermediate this long before it expires - but only if an `up` runs in
# that window (pulumi/pulumi-tls#39); the daily ca-expiry workflow fails from then on.
INTERMEDIATE_EARLY_RENEWAL_HOURS = 720
# Staggering: the i-th cluster's intermediate lives i steps shorter, so the intermediates issued
# in one `up` never all expire (or enter their renewal windows) together. The step depends only on
# the configured validity (never on N), so adding a cluster leaves the others' certificates alone.
MAX_STAGGERED_CLUSTERS = 16
KEY_PARAMS = {"RSA": {"algorithm": "RSA", "rsa_bits": 4096}, "ECDSA": {"algorithm": "ECDSA", "ecdsa_curve": "P384"}}


def cacerts_data(intermediate_cert: str, intermediate_key: str, root_cert: str,
                 trusted_roots: Sequence[str] = ()) -> dict[str, str]:
    """The `cacerts` secret's keys, as istiod expects them (cert-chain: intermediate, then its root).

    `root-cert.pem` is the trust bundle: the signing root, then the other trusted roots of a
    root transition (components/root_transition.py).
    """
    inter = intermediate_cert if intermediate_cert.endswith("\n") else intermediate_cert + "\n"
    return {
        "ca-cert.pem": inter,
        "ca-key.pem": intermediate_key,
        "root-cert.pem": trust_bundle(root_cert, trusted_roots),
        "cert-chain.pem": inter + root_cert,
    }


def stagger_step_hours(validity_hours: int) -> int:
    """Hours between neighbouring clusters' expiries: a renewal window, or less for short validities."""
    return min(INTERMEDIATE_EARLY_RENEWAL_HOURS, validity_hours // (2 * MAX_STAGGERED_CLUSTERS))


def intermediate_validity_hours(validity_hours: int, index: int) -> int:
    """The validity of the index-th cluster's intermediate (index 0: the configured validity).

    Clusters past MAX_STAGGERED_CLUSTERS wrap around; at most half the configured validity is lost.
    """
    return validity_hours - (index % MAX_STAGGERED_CLUSTERS) * stagger_step_hours(validity_hours)


def not_after(cert_pem: str) -> str:
    """A certificate's end of validity, RFC 3339 like pulumi-tls's validity_end_time."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc.isoformat()


def intermediate_key_name(ca: str, cluster: str, generation: int) -> str:
    """The key's logical name: a new generation is a new key (and so CSR and certificate)."""
    return f"{ca}.{cluster}-key" if generation == 0 else f"{ca}.{cluster}-key-g{generation}"


@dataclass(frozen=True)
class Intermediate:
    cluster: str
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]  # secret
    # RFC 3339 end of validity, as pulumi-tls reports it.
    not_after: pulumi.Output[str]

    def cacerts(self, root_cert_pem: pulumi.Input[str],
                trusted_roots: Sequence[str] = ()) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.secret(pulumi.Output.all(self.cert_pem, self.key_pem, root_cert_pem).apply(
            lambda a: cacerts_data(a[0], a[1], a[2], trusted_roots)))


@dataclass(frozen=True)
class IstioCertificateAuthorityArgs:
    ca: CaSpec
    clusters: Sequence[str]
    # Pulumi `protect` on a generated root's key and certificate (prod): no edit or destroy can
    # replace the root, which Istio accepts only through a multi-root transition. Lifted while
    # `ca.rootTransition` is set, so a transition away from it needs no `pulumi state unprotect`.
    protect_root: bool = False


class IstioCertificateAuthority(pulumi.ComponentResource):
    """One root (generated or brought by the team) and one intermediate per cluster."""

    root_cert_pem: pulumi.Output[str]
    intermediates: dict[str, Intermediate]

    def __init__(self, name: str, args: IstioCertificateAuthorityArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(CERTIFICATE_AUTHORITY_TYPE, name, None, opts)
        ca = args.ca
        self.trusted_roots = ca.trusted_root_pems
        child = pulumi.ResourceOptions(parent=self)
        key_params = KEY_PARAMS[ca.algorithm]

        self.intermediates = {}
        if ca.bring_your_own_intermediates:
            # Each cluster's intermediate from config (signed by Vault, CAS, an offline root): the
            # root's key never exists here, only its certificate.
            self.root_cert_pem = pulumi.Output.from_input(ca.root_cert_pem or "")
            for cluster, cert_pem, key_pem in ca.intermediate_pems:
                self.intermediates[cluster] = Intermediate(
                    cluster=cluster, cert_pem=pulumi.Output.from_input(cert_pem),
                    key_pem=pulumi.Output.secret(key_pem), not_after=pulumi.Output.from_input(not_after(cert_pem)))
        else:
            # The root: a team's own (Vault, an offline root) when configured, else generated here.
            if ca.bring_your_own_root:
                self.root_cert_pem = pulumi.Output.from_input(ca.root_cert_pem or "")
                root_key_pem: pulumi.Output[str] = pulumi.Output.secret(ca.root_key_pem or "")
            else:
                root_opts = pulumi.ResourceOptions(parent=self, protect=args.protect_root)
                root_key = tls.PrivateKey(f"{name}-root-key", **key_params, opts=root_opts)
                root = tls.SelfSignedCert(
                    f"{name}-root-cert",
                    private_key_pem=root_key.private_key_pem,
                    subject=tls.SelfSignedCertSubjectArgs(organization=ORGANIZATION, common_name=ROOT_COMMON_NAME),
                    is_ca_certificate=True,
                    max_path_length=ROOT_MAX_PATH_LENGTH,
                    allowed_uses=CA_USES,
                    validity_period_hours=ca.root_validity_hours,
                    opts=root_opts,
                )
                self.root_cert_pem = root.cert_pem
                root_key_pem = pulumi.Output.secret(root_key.private_key_pem)

            # One intermediate per cluster: its own key, so rotating one cluster touches no other.
            # Named `<ca>.<cluster>-…`: no cluster name contains a dot, so none can collide with the
            # root's `<ca>-root-…` (a cluster may well be called `root`).
            for index, cluster in enumerate(args.clusters):
                key_name = intermediate_key_name(name, cluster, ca.generation(cluster))
                key = tls.PrivateKey(key_name, **key_params, opts=child)
                request = tls.CertRequest(
                    f"{name}.{cluster}-csr",
                    private_key_pem=key.private_key_pem,
                    subject=tls.CertRequestSubjectArgs(
                        organization=ORGANIZATION, common_name=INTERMEDIATE_COMMON_NAME, locality=cluster),
                    dns_names=[ISTIOD_SAN],
                    opts=child,
                )
                cert = tls.LocallySignedCert(
                    f"{name}.{cluster}-cert",
                    cert_request_pem=request.cert_request_pem,
                    ca_cert_pem=self.root_cert_pem,
                    ca_private_key_pem=root_key_pem,
                    is_ca_certificate=True,
                    max_path_length=INTERMEDIATE_MAX_PATH_LENGTH,
                    allowed_uses=CA_USES,
                    validity_period_hours=intermediate_validity_hours(ca.intermediate_validity_hours, index),
                    early_renewal_hours=INTERMEDIATE_EARLY_RENEWAL_HOURS,
                    opts=child,
                )
                self.intermediates[cluster] = Intermediate(
                    cluster=cluster, cert_pem=cert.cert_pem, key_pem=pulumi.Output.secret(key.private_key_pem),
                    not_after=cert.validity_end_time)

        self.expiry: dict[str, pulumi.Output[dict[str, Any]]] = {
            c: i.not_after.apply(lambda t: {"notAfter": t, "earlyRenewalHours": INTERMEDIATE_EARLY_RENEWAL_HOURS})
            for c, i in self.intermediates.items()
        }
        # What the next run compares its config with (components/root_transition.py).
        self.trust = self.root_cert_pem.apply(lambda pem: ca_trust(ca, pem))
        self.register_outputs({
            "rootCertPem": self.root_cert_pem,
            "caTrust": self.trust,
            "intermediateCertPems": {c: i.cert_pem for c, i in self.intermediates.items()},
        })
