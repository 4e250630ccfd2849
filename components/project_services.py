"""The Google APIs the program needs on in its project: one map from what it declares to the API.

The program does not enable them itself; README step 3 enables every one with one `gcloud
services enable`, and a test holds that command to this map for every resource type the
program can declare (dev, prod, edge on and off, every hardening option). Why not
`gcp.projects.Service` in the program: enabling an API needs serviceusage.googleapis.com
and cloudresourcemanager.googleapis.com on already (so a manual step stays), and it would
give the deployer identity `serviceusage.services.enable` on the project for every later
`up` - a permission CI never needs once the APIs are on. Enabling is a one-time act per
project, like creating the state bucket, so it lives with the other first-deploy steps.

Service names are the hosts of each product's API (magic-modules `mmv1/products/<product>/
product.yaml` `base_url`, the endpoints terraform-provider-google and so pulumi-gcp call).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COMPUTE = "compute.googleapis.com"
CONTAINER = "container.googleapis.com"
IAM = "iam.googleapis.com"
RESOURCE_MANAGER = "cloudresourcemanager.googleapis.com"
KMS = "cloudkms.googleapis.com"
NETWORK_SERVICES = "networkservices.googleapis.com"
BINARY_AUTHORIZATION = "binaryauthorization.googleapis.com"
MONITORING = "monitoring.googleapis.com"
LOGGING = "logging.googleapis.com"
# Only with `workloads.enabled` (components/fleet.py): fleet memberships and features are GKE Hub's;
# the `configmanagement` feature (Config Sync) also needs its own API (docs/replace.md).
GKE_HUB = "gkehub.googleapis.com"
CONFIG_MANAGEMENT = "anthosconfigmanagement.googleapis.com"
# `gcloud services enable` itself calls the Service Usage API.
SERVICE_USAGE = "serviceusage.googleapis.com"

# Every GCP resource type the program may declare -> the API its provider calls.
API_OF_TYPE: Mapping[str, str] = {
    "gcp:compute/network:Network": COMPUTE,
    "gcp:compute/subnetwork:Subnetwork": COMPUTE,
    "gcp:compute/router:Router": COMPUTE,
    "gcp:compute/routerNat:RouterNat": COMPUTE,
    "gcp:compute/address:Address": COMPUTE,
    "gcp:compute/firewall:Firewall": COMPUTE,
    "gcp:compute/globalAddress:GlobalAddress": COMPUTE,
    "gcp:compute/healthCheck:HealthCheck": COMPUTE,
    "gcp:compute/backendService:BackendService": COMPUTE,
    "gcp:compute/uRLMap:URLMap": COMPUTE,
    "gcp:compute/targetHttpProxy:TargetHttpProxy": COMPUTE,
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": COMPUTE,
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": COMPUTE,
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": COMPUTE,
    "gcp:container/cluster:Cluster": CONTAINER,
    "gcp:container/nodePool:NodePool": CONTAINER,
    "gcp:serviceaccount/account:Account": IAM,
    # Project IAM policy: projects.getIamPolicy / setIamPolicy of Resource Manager.
    "gcp:projects/iAMMember:IAMMember": RESOURCE_MANAGER,
    "gcp:kms/keyRing:KeyRing": KMS,
    "gcp:kms/cryptoKey:CryptoKey": KMS,
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": KMS,
    "gcp:networkservices/serviceLbPolicies:ServiceLbPolicies": NETWORK_SERVICES,
    # Cloud Monitoring API v1 (projects.dashboards) and v3 (projects.alertPolicies).
    "gcp:monitoring/dashboard:Dashboard": MONITORING,
    "gcp:monitoring/alertPolicy:AlertPolicy": MONITORING,
    "gcp:gkehub/membership:Membership": GKE_HUB,
    "gcp:gkehub/feature:Feature": GKE_HUB,
    "gcp:gkehub/featureMembership:FeatureMembership": GKE_HUB,
}
# Data sources the program reads (provider functions) -> their API.
API_OF_INVOKE: Mapping[str, str] = {
    "gcp:organizations/getProject:getProject": RESOURCE_MANAGER,
    "gcp:compute/getNetworkEndpointGroup:getNetworkEndpointGroup": COMPUTE,
}


class UnmappedType(KeyError):
    """A GCP type or data source without an API in this map: add it before declaring it."""


def _get(inputs: Mapping[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(inputs, Mapping):
            return None
        inputs = inputs.get(key)
    return inputs


def apis_for(type_: str, inputs: Mapping[str, Any]) -> set[str]:
    """The APIs one declared GCP resource needs: its own, and those its settings turn on.

    A cluster evaluating Binary Authorization calls binaryauthorization; Managed Service for
    Prometheus writes to Cloud Monitoring; Config Sync (the fleet's `configmanagement` feature) needs
    its own API beside GKE Hub's; GKE's system logs (its default `loggingService`,
    logging.googleapis.com/kubernetes), subnet flow logs and NAT logs go to Cloud Logging.
    """
    if type_ not in API_OF_TYPE:
        raise UnmappedType(f"{type_}: no API in components/project_services.py API_OF_TYPE")
    apis = {API_OF_TYPE[type_]}
    if type_ == "gcp:container/cluster:Cluster":
        apis.add(LOGGING)
        if _get(inputs, "binaryAuthorization", "evaluationMode") not in (None, "DISABLED"):
            apis.add(BINARY_AUTHORIZATION)
        if _get(inputs, "monitoringConfig", "managedPrometheus", "enabled"):
            apis.add(MONITORING)
    if (type_ == "gcp:gkehub/feature:Feature" and inputs.get("name") == "configmanagement") or \
            (type_ == "gcp:gkehub/featureMembership:FeatureMembership" and _get(inputs, "configmanagement")):
        apis.add(CONFIG_MANAGEMENT)
    if type_ in ("gcp:compute/subnetwork:Subnetwork", "gcp:compute/routerNat:RouterNat") and \
            _get(inputs, "logConfig") and _get(inputs, "logConfig", "enable") is not False:
        apis.add(LOGGING)
    return apis


def apis_for_invoke(token: str) -> set[str]:
    if token not in API_OF_INVOKE:
        raise UnmappedType(f"{token}: no API in components/project_services.py API_OF_INVOKE")
    return {API_OF_INVOKE[token]}
