"""One home for every name the program gives or reads: type tokens, labels, Istio and GCP names.

The config's name limits are derived here from the functions that make the longest
names, so a rename and its limit cannot drift apart. The offline engine, the commands
and the policy pack's tests read these instead of retyping them.
"""

from __future__ import annotations

from collections.abc import Collection

PROJECT = "gke-istio-mesh"

# ------------------------------------------------------------------ component type tokens

MESH_NETWORK_TYPE = f"{PROJECT}:index:MeshNetwork"
GKE_CLUSTER_TYPE = f"{PROJECT}:index:GkeCluster"
CERTIFICATE_AUTHORITY_TYPE = f"{PROJECT}:index:IstioCertificateAuthority"
ISTIO_PRIMARY_TYPE = f"{PROJECT}:index:IstioPrimary"
MESH_LINK_TYPE = f"{PROJECT}:index:MeshLink"
CLUSTER_ROUTING_TYPE = f"{PROJECT}:index:ClusterRouting"
TELEMETRY_TYPE = f"{PROJECT}:index:MeshTelemetry"
INGRESS_GATEWAY_TYPE = f"{PROJECT}:index:IngressGateway"
GLOBAL_EDGE_TYPE = f"{PROJECT}:index:GlobalEdge"
DASHBOARD_TYPE = f"{PROJECT}:index:MeshDashboard"
ALERTS_TYPE = f"{PROJECT}:index:MeshAlerts"
FLEET_WORKLOADS_TYPE = f"{PROJECT}:index:FleetWorkloads"

# Components made once per cluster, named `<cluster><suffix>`: __main__.py builds the names with
# `cluster_component` and offline/graph.py decodes them with `component_cluster`.
PER_CLUSTER_COMPONENTS = {
    GKE_CLUSTER_TYPE: "",
    ISTIO_PRIMARY_TYPE: "",
    TELEMETRY_TYPE: "-telemetry",
    CLUSTER_ROUTING_TYPE: "-routing",
    INGRESS_GATEWAY_TYPE: "-ingress",
}


def cluster_component(type_token: str, cluster: str) -> str:
    """The name of a cluster's component of this type."""
    return f"{cluster}{PER_CLUSTER_COMPONENTS[type_token]}"


def component_cluster(type_token: str, name: str, clusters: Collection[str]) -> str | None:
    """The cluster whose per-cluster component of this type is `name`, or None (not one, or not ours)."""
    suffix = PER_CLUSTER_COMPONENTS.get(type_token)
    if suffix is None or not name.endswith(suffix):
        return None
    cluster = name[:len(name) - len(suffix)]
    return cluster if cluster in clusters else None


def service_key(host: str, namespace: str) -> str:
    """A routed service's key in outputs, reports and flip plans: `<host>.<namespace>`."""
    return f"{host}.{namespace}"

# ------------------------------------------------------------------ provider type tokens the tools read

GKE_CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
ROUTER_NAT = "gcp:compute/routerNat:RouterNat"
ADDRESS = "gcp:compute/address:Address"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"
SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
DESTINATION_RULE = "kubernetes:networking.istio.io/v1:DestinationRule"
POD_MONITORING = "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"
GATEWAY = "kubernetes:networking.istio.io/v1:Gateway"
FIREWALL = "gcp:compute/firewall:Firewall"
GLOBAL_ADDRESS = "gcp:compute/globalAddress:GlobalAddress"
GLOBAL_FORWARDING_RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
TARGET_HTTP_PROXY = "gcp:compute/targetHttpProxy:TargetHttpProxy"
TARGET_HTTPS_PROXY = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
URL_MAP = "gcp:compute/uRLMap:URLMap"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
HEALTH_CHECK = "gcp:compute/healthCheck:HealthCheck"
MANAGED_SSL_CERTIFICATE = "gcp:compute/managedSslCertificate:ManagedSslCertificate"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
SERVICE_LB_POLICY = "gcp:networkservices/serviceLbPolicies:ServiceLbPolicies"
# The fleet (components/fleet.py): the project's Config Sync feature, a membership and its
# Config Sync settings per cluster.
FLEET_FEATURE = "gcp:gkehub/feature:Feature"
FLEET_MEMBERSHIP = "gcp:gkehub/membership:Membership"
FLEET_FEATURE_MEMBERSHIP = "gcp:gkehub/featureMembership:FeatureMembership"

# ------------------------------------------------------------------ Istio names, labels and APIs

ISTIO_NAMESPACE = "istio-system"
NETWORKING_API = "networking.istio.io/v1"
SECURITY_API = "security.istio.io/v1"
# Endpoint labels istiod adds (AugmentLabels); the network one also labels istio-system.
NETWORK_LABEL = "topology.istio.io/network"
CLUSTER_LABEL = "topology.istio.io/cluster"
INJECTION_LABEL = "istio-injection"
EASTWEST_RELEASE = "istio-eastwestgateway"
CROSS_NETWORK_GATEWAY = "cross-network-gateway"
CACERTS_SECRET = "cacerts"
# The edge: each cluster's ingress gateway release and the Istio Gateway bound to it. The gateway
# and its Service live in a namespace of their own, deleted for real on destroy (components/ingress.py).
INGRESS_NAMESPACE = "istio-ingress"
INGRESS_RELEASE = "istio-ingressgateway"
INGRESS_SELECTOR = {"istio": "ingressgateway"}
EDGE_GATEWAY = "edge-gateway"
# GKE's NEG controller reads this Service annotation (standalone zonal NEGs).
NEG_ANNOTATION = "cloud.google.com/neg"
# ...and reports the NEGs it made, and in which zones, in this one (ingress-gce negannotation.go).
NEG_STATUS_ANNOTATION = "cloud.google.com/neg-status"
# Remote secrets, as `istioctl create-remote-secret` makes them (istioctl remote_secret.go).
MULTICLUSTER_LABEL = "istio/multiCluster"
CLUSTER_ANNOTATION = "networking.istio.io/cluster"
READER_SERVICE_ACCOUNT = "istio-reader-service-account"
# tokenSecretName in remote_secret.go: the token Secret istioctl creates for the reader account.
READER_TOKEN_SECRET = f"{READER_SERVICE_ACCOUNT}-istio-remote-secret-token"


def reader_token_secret_name(generation: int) -> str:
    """The reader token Secret of a token generation (0: istioctl's name; rotation adds -g<n>)."""
    return READER_TOKEN_SECRET if generation == 0 else f"{READER_TOKEN_SECRET}-g{generation}"


def remote_secret_name(cluster: str) -> str:
    """The name `istioctl create-remote-secret` gives the secret for `cluster`."""
    return f"istio-remote-secret-{cluster}"


# ------------------------------------------------------------------ GCP names and their limits

# Pulumi's auto-naming appends "-" and 7 random characters to a resource's logical name.
AUTONAME_SUFFIX = 8
# GKE allows 40 characters for a node pool name (pulumi-gcp#1510); Compute Engine 63 for a firewall rule.
GKE_NODE_POOL_NAME_MAX = 40
COMPUTE_NAME_MAX = 63


def node_pool_name(cluster: str) -> str:
    """A cluster's node pool: the longest GKE name made from a cluster name."""
    return f"{cluster}-pool"


def webhook_firewall_name(network: str) -> str:
    """A network's firewall rule for Istio's webhooks: the longest Compute name made from a network name."""
    return f"{network}-istio-webhook"


def node_tag(cluster: str) -> str:
    """Network tag on a cluster's nodes; firewall rules target it."""
    return f"mesh-{cluster}-node"


def secrets_key_ring_name(cluster: str, suffix: str) -> str:
    """A cluster's Cloud KMS key ring. Key rings are never deleted, so each deployment's gets a random suffix."""
    return f"{cluster}-secrets-{suffix}"


SECRETS_CRYPTO_KEY = "gke-secrets"
KMS_KEY_RING = "gcp:kms/keyRing:KeyRing"
KMS_CRYPTO_KEY = "gcp:kms/cryptoKey:CryptoKey"
GET_PROJECT = "gcp:organizations/getProject:getProject"


def gke_service_agent(project_number: str) -> str:
    """The GKE service agent, which encrypts Secrets with the cluster's KMS key (GKE docs, "Encrypt secrets
    at the application layer")."""
    return f"service-{project_number}@container-engine-robot.iam.gserviceaccount.com"


def edge_firewall_name(network: str) -> str:
    """A network's firewall rule admitting Google's load balancers to the ingress gateway pods."""
    return f"{network}-edge-lb"


def edge_neg_name(cluster: str, suffix: str) -> str:
    """The zonal NEGs (one name, one per zone) GKE's NEG controller makes for a cluster's ingress gateway."""
    return f"{cluster}-ingress-{suffix}"


def edge_virtual_service_name(host: str) -> str:
    """The edge route of a routed service (beside the mesh route `<host>-clusters`)."""
    return f"{host}-edge"


MAX_CLUSTER_NAME = GKE_NODE_POOL_NAME_MAX - len(node_pool_name("")) - AUTONAME_SUFFIX
MAX_NETWORK_NAME = COMPUTE_NAME_MAX - len(webhook_firewall_name("")) - AUTONAME_SUFFIX
