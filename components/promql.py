"""PromQL over the metrics this mesh feeds to Cloud Monitoring: one home for metric and label names.

Pure text builders shared by the dashboard (components/dashboard.py) and the alert policies
(components/alerts.py). Where each name comes from (docs/observability.md has the links):

- Istio's standard metrics, from every sidecar and gateway Envoy (components/telemetry.py scrapes
  them): `istio_requests_total` and `istio_request_duration_milliseconds_bucket`, labelled
  `reporter`, `source_cluster`/`destination_cluster` (the cluster IDs, i.e. the stack's cluster
  names), `destination_service` (the FQDN), `source_workload(_namespace)`, `response_code`.
- GKE's kube state metrics package (GKE >= 1.29.2-gke.2000 Standard: on by default), written like
  open-source kube-state-metrics: `kube_deployment_status_replicas_available{namespace,deployment}`;
  Managed Service for Prometheus adds `cluster`, the GKE cluster's name.
- Cloud NAT's gateway metrics (`router.googleapis.com/nat/...`, monitored resource `nat_gateway`,
  resource label `gateway_name`), named in PromQL by Cloud Monitoring's mapping rule: the first
  `/` becomes `:`, every other `/` and `.` becomes `_`.
- istiod's CA gauges (istio 1.30.3 security/pkg/server/ca/monitoring.go, server.go
  RecordCertsExpiry): `citadel_server_root_cert_expiry_timestamp`, the notAfter of the first
  certificate of root-cert.pem (the signing root), and `citadel_server_cert_chain_expiry_timestamp`,
  the notAfter of the first certificate of cert-chain.pem (the cluster's intermediate).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from components.names import EASTWEST_RELEASE, INGRESS_RELEASE, ISTIO_NAMESPACE

REQUESTS = "istio_requests_total"
DURATION_BUCKETS = "istio_request_duration_milliseconds_bucket"
DEPLOYMENT_AVAILABLE = "kube_deployment_status_replicas_available"
ROOT_EXPIRY = "citadel_server_root_cert_expiry_timestamp"
CHAIN_EXPIRY = "citadel_server_cert_chain_expiry_timestamp"
# Both deployments are named after their Helm release (the gateway chart's default name).
EASTWEST_DEPLOYMENT = EASTWEST_RELEASE
INGRESS_DEPLOYMENT = INGRESS_RELEASE
# The clients whose requests a panel counts: the edge (ingress gateways) or the mesh (sidecars).
EDGE, MESH = "edge", "mesh"
RATE_WINDOW = "5m"


def cloud_monitoring_metric(metric_type: str) -> str:
    """A Cloud Monitoring metric type in PromQL: first `/` -> `:`, other `/` and `.` -> `_`."""
    domain, _, path = metric_type.partition("/")
    return re.sub(r"[^a-zA-Z0-9_:]", "_", domain) + ":" + re.sub(r"[^a-zA-Z0-9_]", "_", path)


NAT_ALLOCATED_PORTS = cloud_monitoring_metric("router.googleapis.com/nat/allocated_ports")
NAT_PORT_USAGE = cloud_monitoring_metric("router.googleapis.com/nat/port_usage")
NAT_DROPPED_SENT = cloud_monitoring_metric("router.googleapis.com/nat/dropped_sent_packets_count")
NAT_OUT_OF_RESOURCES = "OUT_OF_RESOURCES"


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


REGEX_SPECIALS = re.compile(r"([.^$*+?()\[\]{}|\\])")


def one_of(values: Iterable[str]) -> str:
    """A regex (RE2, anchored by Prometheus) matching exactly these values (for `=~`)."""
    return quote("|".join(REGEX_SPECIALS.sub(r"\\\1", v) for v in sorted(set(values))))


def selector(labels: Mapping[str, str], **matchers: str) -> str:
    """`{k="v",...}` from equality labels plus raw matchers written as `name='op"value"'`."""
    parts = [f"{k}={quote(v)}" for k, v in labels.items()] + [f"{k}{m}" for k, m in matchers.items()]
    return "{" + ",".join(parts) + "}"


def requests_selector(services: Iterable[str], source: str | None = None, **extra: str) -> str:
    """Requests to these service FQDNs as their clients report them, from the edge, the mesh or both."""
    matchers = {"destination_service": "=~" + one_of(services)}
    if source == EDGE:
        matchers |= {"source_workload": "=" + quote(INGRESS_DEPLOYMENT),
                     "source_workload_namespace": "=" + quote(ISTIO_NAMESPACE)}
    elif source == MESH:
        matchers["source_workload_namespace"] = "!=" + quote(ISTIO_NAMESPACE)
    return selector({"reporter": "source"}, **matchers, **extra)


def share(services: Iterable[str], source: str, window: str = RATE_WINDOW) -> str:
    """Percent of the requests each destination cluster receives."""
    s = requests_selector(services, source)
    per = f"sum by (destination_cluster) (rate({REQUESTS}{s}[{window}]))"
    return f"100 * {per} / ignoring (destination_cluster) group_left sum(rate({REQUESTS}{s}[{window}]))"


def configured_weights(weights: Mapping[str, int]) -> str:
    """The configured split as constant series, one per destination cluster."""
    return " or ".join(f'label_replace(vector({w}), "destination_cluster", {quote(c)}, "", "")'
                       for c, w in weights.items())


def success_rate(services: Iterable[str], source: str | None, window: str = RATE_WINDOW) -> str:
    """Percent of non-5xx answers per destination cluster (100 when there is no 5xx at all)."""
    s = requests_selector(services, source)
    e = requests_selector(services, source, response_code='=~"5.."')
    total = f"sum by (destination_cluster) (increase({REQUESTS}{s}[{window}]))"
    errors = f"sum by (destination_cluster) (increase({REQUESTS}{e}[{window}]))"
    return f"100 * (1 - (({errors}) or ({total}) * 0) / ({total}))"


def request_count(services: Iterable[str], source: str | None, window: str) -> str:
    return f"sum by (destination_cluster) (increase({REQUESTS}{requests_selector(services, source)}[{window}]))"


def p99(services: Iterable[str], source: str, window: str = RATE_WINDOW) -> str:
    s = requests_selector(services, source)
    return (f"histogram_quantile(0.99, sum by (destination_cluster, le) "
            f"(rate({DURATION_BUCKETS}{s}[{window}])))")


def cross_network_out(cluster: str, window: str = RATE_WINDOW) -> str:
    """Requests per second this cluster's workloads send to each other cluster (through the east-west gateways)."""
    s = selector({"reporter": "source", "source_cluster": cluster}, destination_cluster="!=" + quote(cluster))
    return f"sum by (destination_cluster) (rate({REQUESTS}{s}[{window}]))"


def cross_network_in(cluster: str, window: str = RATE_WINDOW) -> str:
    """Requests per second other clusters' workloads send to this cluster's endpoints."""
    s = selector({"reporter": "source", "destination_cluster": cluster}, source_cluster="!=" + quote(cluster))
    return f"sum by (source_cluster) (rate({REQUESTS}{s}[{window}]))"


def gateway_available(gke_cluster: str, deployment: str) -> str:
    """Available (ready for minReadySeconds) replicas of a gateway Deployment in istio-system."""
    s = selector({"cluster": gke_cluster, "namespace": ISTIO_NAMESPACE, "deployment": deployment})
    return f"max({DEPLOYMENT_AVAILABLE}{s})"


def nat_allocated_ports(gateway: str) -> str:
    return f"sum by (nat_ip) ({NAT_ALLOCATED_PORTS}{selector({'gateway_name': gateway})})"


def nat_port_usage(gateway: str) -> str:
    """The most connections any one VM holds to a single destination (IP:port): what ports per VM bound."""
    return f"max({NAT_PORT_USAGE}{selector({'gateway_name': gateway})})"


def nat_dropped(gateway: str, window: str = RATE_WINDOW) -> str:
    return f"sum by (reason) (rate({NAT_DROPPED_SENT}{selector({'gateway_name': gateway})}[{window}]))"
