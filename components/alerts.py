"""The mesh's alert policies in Cloud Monitoring, each a PromQL condition built from the config.

`alert_rules()` is pure: clusters, services and the flip's thresholds in, rules out. The same
rules become the AlertPolicy conditions (`MeshAlerts`) and a Prometheus rules file
(`rules_file`) that the tests run through `promtool test rules` with synthetic series, so an
expression that would never fire, or always fire, fails the suite. docs/observability.md says
what each policy means and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from components import promql
from components.certificate_authority import INTERMEDIATE_EARLY_RENEWAL_HOURS
from components.config import FlipSpec
from components.dashboard import ObservedCluster, ObservedService
from components.names import ALERTS_TYPE, ISTIO_NAMESPACE

# A root transition is three `up`s with workloads rotating their certificates in between
# (docs/root-transition.md): start it a season ahead.
ROOT_RENEWAL_WINDOW_HOURS = 2160
# The window the request-based rules look back over, and how long a rule must hold before it opens
# an incident (the PromQL condition's `duration`, the rule's `for`).
TRAFFIC_WINDOW = "10m"
HOLD_SECONDS = 300
EVALUATION_INTERVAL = "60s"
RULE_GROUP = "gke-istio-mesh"


@dataclass(frozen=True)
class AlertRule:
    """One condition: its rule name, the policy it belongs to, and its PromQL."""

    name: str
    policy: str
    title: str
    expr: str
    hold_seconds: int = HOLD_SECONDS


@dataclass(frozen=True)
class Policy:
    key: str
    title: str
    severity: str
    documentation: str


POLICIES = (
    Policy("eastwest", "Mesh: an east-west gateway is down or carries no cross-network traffic", "CRITICAL",
           "A cluster's east-west gateway has no available replica, or the other clusters send its services "
           "nothing although it serves them: that cluster's share of cross-network traffic fails. "
           "Check `kubectl -n istio-system get deploy istio-eastwestgateway` and `make verify`."),
    Policy("success", "Mesh: a destination cluster answers below the flip's success rate", "ERROR",
           "Outside a flip (the flip snoozes this policy while it runs), a destination cluster answers more "
           "5xx than `flip.minSuccessRate` allows. Move its share away by config (README, The flip)."),
    Policy("nat", "Mesh: Cloud NAT drops packets for lack of ports", "ERROR",
           "A network's Cloud NAT drops sent packets with reason OUT_OF_RESOURCES: raise `nat.maxPortsPerVm` "
           "or `nat.addresses` (docs/config.md)."),
    Policy("ca", "Mesh: a CA certificate is inside its renewal window", "WARNING",
           "istiod signs with an intermediate or a root that expires soon: rotate the intermediate "
           "(docs/rotate-intermediate-ca.md) or start a root transition (docs/root-transition.md)."),
)


def _label(expr: str, **labels: str) -> str:
    for k, v in labels.items():
        expr = f'label_replace({expr}, "{k}", {promql.quote(v)}, "", "")'
    return expr


def eastwest_unready(clusters: Sequence[ObservedCluster]) -> str:
    """No available east-west gateway replica in a cluster, or its Deployment missing from the metrics."""
    base = {"namespace": ISTIO_NAMESPACE, "deployment": promql.EASTWEST_DEPLOYMENT}
    present = promql.selector(base, cluster="=~" + promql.one_of(c.gke_name for c in clusters))
    parts = [f"max by (cluster) ({promql.DEPLOYMENT_AVAILABLE}{present}) < 1"]
    parts += [f"absent({promql.DEPLOYMENT_AVAILABLE}{promql.selector(base | {'cluster': c.gke_name})})"
              for c in clusters]
    return " or ".join(parts)


def no_cross_network(clusters: Sequence[ObservedCluster], services: Sequence[ObservedService],
                     flip: FlipSpec, window: str = TRAFFIC_WINDOW) -> str:
    """Per cluster Y and service S: Y serves S to its own callers and others call S, yet none of them reach Y.

    Every cluster routes S by the same weights, so a cluster that serves S locally has weight for S
    and should receive S's requests from the other networks too.
    """
    parts = []
    for y in clusters:
        for s in services:
            def increase(**m: str) -> str:
                return f"sum(increase({promql.REQUESTS}{promql.requests_selector([s.fqdn], **m)}[{window}]))"  # noqa: B023
            q = promql.quote(y.name)
            served = increase(source_cluster="=" + q, destination_cluster="=" + q)
            called = increase(source_cluster="!=" + q)
            reached = increase(source_cluster="!=" + q, destination_cluster="=" + q)
            expr = (f"(({served} >= {flip.min_requests}) and ({called} >= {flip.min_requests})) "
                    f"unless ({reached} > 0)")
            parts.append(_label(expr, destination_cluster=y.name, destination_service=s.fqdn))
    return " or ".join(parts)


def low_success_rate(services: Sequence[ObservedService], flip: FlipSpec, window: str = TRAFFIC_WINDOW) -> str:
    """A destination cluster's success rate below the flip's threshold, judged only with enough requests."""
    fqdns = [s.fqdn for s in services]
    return (f"({promql.success_rate(fqdns, None, window)} < {flip.min_success_rate:g}) and on (destination_cluster) "
            f"({promql.request_count(fqdns, None, window)} >= {flip.min_requests})")


def nat_out_of_resources(clusters: Sequence[ObservedCluster], window: str = TRAFFIC_WINDOW) -> str:
    s = promql.selector({"reason": promql.NAT_OUT_OF_RESOURCES},
                        gateway_name="=~" + promql.one_of(c.nat_gateway for c in clusters))
    return f"sum by (gateway_name) (increase({promql.NAT_DROPPED_SENT}{s}[{window}])) > 0"


def cert_expiring(metric: str, clusters: Sequence[ObservedCluster], window_hours: int) -> str:
    s = promql.selector({}, cluster="=~" + promql.one_of(c.gke_name for c in clusters))
    return f"(min by (cluster) ({metric}{s}) - time()) < {window_hours * 3600}"


def alert_rules(clusters: Sequence[ObservedCluster], services: Sequence[ObservedService],
                flip: FlipSpec) -> list[AlertRule]:
    rules = [AlertRule("EastWestGatewayUnready", "eastwest", "no available east-west gateway replica",
                       eastwest_unready(clusters))]
    if len(clusters) > 1 and services:
        rules.append(AlertRule("NoCrossNetworkTraffic", "eastwest",
                               "a serving cluster receives no cross-network requests",
                               no_cross_network(clusters, services, flip), 600))
    if services:
        rules.append(AlertRule("DestinationClusterSuccessRateLow", "success",
                               f"success rate below {flip.min_success_rate:g}%", low_success_rate(services, flip)))
    rules += [
        AlertRule("CloudNatOutOfResources", "nat", "packets dropped: OUT_OF_RESOURCES",
                  nat_out_of_resources(clusters), 0),
        AlertRule("IntermediateCertificateRenewalWindow", "ca",
                  f"intermediate expires within {INTERMEDIATE_EARLY_RENEWAL_HOURS} h",
                  cert_expiring(promql.CHAIN_EXPIRY, clusters, INTERMEDIATE_EARLY_RENEWAL_HOURS), 0),
        AlertRule("RootCertificateRenewalWindow", "ca", f"root expires within {ROOT_RENEWAL_WINDOW_HOURS} h",
                  cert_expiring(promql.ROOT_EXPIRY, clusters, ROOT_RENEWAL_WINDOW_HOURS), 0),
    ]
    return rules


def rules_file(rules: Sequence[AlertRule]) -> dict[str, Any]:
    """The rules as a Prometheus rules file (what `promtool check rules` / `test rules` read)."""
    return {"groups": [{"name": RULE_GROUP, "interval": EVALUATION_INTERVAL, "rules": [
        {"alert": r.name, "expr": r.expr, "for": f"{r.hold_seconds}s", "labels": {"policy": r.policy}}
        for r in rules]}]}


@dataclass(frozen=True)
class MeshAlertsArgs:
    project: str
    mesh_id: str
    # (cluster, network, GKE cluster name, Cloud NAT gateway name) per cluster, in config order.
    clusters: Sequence[tuple[str, str, pulumi.Input[str], pulumi.Input[str]]]
    services: Sequence[ObservedService]
    flip: FlipSpec
    notification_channels: Sequence[str] = ()


class MeshAlerts(pulumi.ComponentResource):
    """One alert policy per concern, each condition a PromQL rule of `alert_rules`."""

    policies: dict[str, gcp.monitoring.AlertPolicy]

    def __init__(self, name: str, args: MeshAlertsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ALERTS_TYPE, name, None, opts)
        # Which rules exist depends on the config only; their text also on the resolved resource names.
        shape = alert_rules([ObservedCluster(c, n, c, c) for c, n, _, _ in args.clusters], args.services, args.flip)
        names = pulumi.Output.all(*[pulumi.Output.all(g, n) for _, _, g, n in args.clusters])
        resolved = names.apply(lambda r: alert_rules(
            [ObservedCluster(c, net, g, n) for (c, net, _, _), (g, n) in zip(args.clusters, r, strict=True)],
            args.services, args.flip))
        self.policies = {}
        for p in POLICIES:
            members = [(i, rule) for i, rule in enumerate(shape) if rule.policy == p.key]
            if not members:
                continue
            self.policies[p.key] = gcp.monitoring.AlertPolicy(
                f"{name}-{p.key}", project=args.project, display_name=p.title, combiner="OR", severity=p.severity,
                notification_channels=list(args.notification_channels),
                user_labels={"mesh": args.mesh_id},
                documentation=gcp.monitoring.AlertPolicyDocumentationArgs(content=p.documentation,
                                                                          mime_type="text/markdown"),
                conditions=[gcp.monitoring.AlertPolicyConditionArgs(
                    display_name=rule.title,
                    condition_prometheus_query_language=gcp.monitoring
                    .AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                        query=resolved.apply(lambda rules, i=i: rules[i].expr),
                        duration=f"{rule.hold_seconds}s", evaluation_interval=EVALUATION_INTERVAL,
                        alert_rule=rule.name, rule_group=RULE_GROUP,
                        labels={"policy": p.key}),
                ) for i, rule in members],
                opts=pulumi.ResourceOptions(parent=self))
        self.names = {k: v.name for k, v in self.policies.items()}
        self.register_outputs({"policies": self.names})
