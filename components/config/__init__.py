"""Typed, immutable stack configuration, validated in full before anything is declared.

Every rule reports the config key it concerns and the rule it breaks, so that a bad
edit in ``Pulumi.<stack>.yaml`` fails the preview with a message the author can act
on instead of a half-created mesh. Parsing is pure; only `load` touches the Pulumi
runtime.

- `model`: the typed values and their defaults.
- `rules`: generic rules (types, DNS labels, CIDRs, hosts, known keys with "did you mean").
- `ca_checks`: X.509 checks on a brought-in CA.
- `parsing`: the stack's own rules, section by section (`parse`).
- `safety`: availability, Cloud NAT and GKE maintenance sections.
- `loading`: reading the engine's config and stopping cleanly (`load`).
"""

from components.config.loading import load, read_raw
from components.config.model import (
    DEFAULT_CHART_REPOSITORY,
    DEFAULT_ISTIO_VERSION,
    MAX_CLUSTERS,
    MIN_ISTIO_VERSION,
    RESERVED_NAMESPACES,
    AuthorizedNetwork,
    AvailabilitySpec,
    CaSpec,
    ClusterSpec,
    ConfigError,
    EdgeSpec,
    FlipSpec,
    Hardening,
    IstioSettings,
    MaintenanceExclusion,
    MaintenanceWindow,
    MeshLinkSpec,
    NatSpec,
    RoutedService,
    StackConfig,
    SubsetLabel,
    TrafficSpec,
    WorkloadsSpec,
)
from components.config.parsing import TOP_LEVEL_KEYS, declared_cluster_names, parse
from components.names import MAX_CLUSTER_NAME, MAX_NETWORK_NAME, PROJECT

__all__ = [
    "DEFAULT_CHART_REPOSITORY",
    "DEFAULT_ISTIO_VERSION",
    "MAX_CLUSTERS",
    "MAX_CLUSTER_NAME",
    "MAX_NETWORK_NAME",
    "MIN_ISTIO_VERSION",
    "PROJECT",
    "RESERVED_NAMESPACES",
    "TOP_LEVEL_KEYS",
    "AuthorizedNetwork",
    "AvailabilitySpec",
    "CaSpec",
    "ClusterSpec",
    "ConfigError",
    "EdgeSpec",
    "FlipSpec",
    "Hardening",
    "IstioSettings",
    "MaintenanceExclusion",
    "MaintenanceWindow",
    "MeshLinkSpec",
    "NatSpec",
    "RoutedService",
    "StackConfig",
    "SubsetLabel",
    "TrafficSpec",
    "WorkloadsSpec",
    "declared_cluster_names",
    "load",
    "parse",
    "read_raw",
]
