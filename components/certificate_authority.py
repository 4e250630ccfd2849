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

import pulumi
import pulumi_tls as tls

from components.config import CaSpec
from components.names import CERTIFICATE_AUTHORITY_TYPE

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
# `pulumi up` replaces an intermediate this long before it expires.
INTERMEDIATE_EARLY_RENEWAL_HOURS = 720
KEY_PARAMS = {"RSA": {"algorithm": "RSA", "rsa_bits": 4096}, "ECDSA": {"algorithm": "ECDSA", "ecdsa_curve": "P384"}}


def cacerts_data(intermediate_cert: str, intermediate_key: str, root_cert: str) -> dict[str, str]:
    """The `cacerts` secret's keys, as istiod expects them (cert-chain: intermediate, then root)."""
    inter = intermediate_cert if intermediate_cert.endswith("\n") else intermediate_cert + "\n"
    return {
        "ca-cert.pem": inter,
        "ca-key.pem": intermediate_key,
        "root-cert.pem": root_cert,
        "cert-chain.pem": inter + root_cert,
    }


@dataclass(frozen=True)
class Intermediate:
    cluster: str
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]  # secret

    def cacerts(self, root_cert_pem: pulumi.Input[str]) -> pulumi.Output[dict[str, str]]:
        return pulumi.Output.secret(pulumi.Output.all(self.cert_pem, self.key_pem, root_cert_pem).apply(
            lambda a: cacerts_data(a[0], a[1], a[2])))


@dataclass(frozen=True)
class IstioCertificateAuthorityArgs:
    ca: CaSpec
    clusters: Sequence[str]


class IstioCertificateAuthority(pulumi.ComponentResource):
    """One root (generated or brought by the team) and one intermediate per cluster."""

    root_cert_pem: pulumi.Output[str]
    intermediates: dict[str, Intermediate]

    def __init__(self, name: str, args: IstioCertificateAuthorityArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(CERTIFICATE_AUTHORITY_TYPE, name, None, opts)
        ca = args.ca
        child = pulumi.ResourceOptions(parent=self)
        key_params = KEY_PARAMS[ca.algorithm]

        # The root: a team's own (Vault, an offline root) when configured, else generated here.
        if ca.bring_your_own_root:
            self.root_cert_pem = pulumi.Output.from_input(ca.root_cert_pem or "")
            root_key_pem: pulumi.Output[str] = pulumi.Output.secret(ca.root_key_pem or "")
        else:
            root_key = tls.PrivateKey(f"{name}-root-key", **key_params, opts=child)
            root = tls.SelfSignedCert(
                f"{name}-root-cert",
                private_key_pem=root_key.private_key_pem,
                subject=tls.SelfSignedCertSubjectArgs(organization=ORGANIZATION, common_name=ROOT_COMMON_NAME),
                is_ca_certificate=True,
                max_path_length=ROOT_MAX_PATH_LENGTH,
                allowed_uses=CA_USES,
                validity_period_hours=ca.root_validity_hours,
                opts=child,
            )
            self.root_cert_pem = root.cert_pem
            root_key_pem = pulumi.Output.secret(root_key.private_key_pem)

        # One intermediate per cluster: its own key, so rotating one cluster touches no other.
        # Named `<ca>.<cluster>-…`: no cluster name contains a dot, so none can collide with the
        # root's `<ca>-root-…` (a cluster may well be called `root`).
        self.intermediates = {}
        for cluster in args.clusters:
            key = tls.PrivateKey(f"{name}.{cluster}-key", **key_params, opts=child)
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
                validity_period_hours=ca.intermediate_validity_hours,
                early_renewal_hours=INTERMEDIATE_EARLY_RENEWAL_HOURS,
                opts=child,
            )
            self.intermediates[cluster] = Intermediate(
                cluster=cluster, cert_pem=cert.cert_pem, key_pem=pulumi.Output.secret(key.private_key_pem))

        self.register_outputs({
            "rootCertPem": self.root_cert_pem,
            "intermediateCertPems": {c: i.cert_pem for c, i in self.intermediates.items()},
        })
