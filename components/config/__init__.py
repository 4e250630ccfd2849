"""Typed, immutable stack configuration, validated in full before anything is declared.

Every rule reports the config key it concerns and the rule it breaks, so that a bad
edit in ``Pulumi.<stack>.yaml`` fails the preview with a message the author can act
on instead of a half-created mesh. Parsing is pure; only `load` touches the Pulumi
runtime.

- `model`: every key declared once (type, default, rule, doc) as frozen pydantic dataclasses.
- `declare`: how a key is declared, and pydantic's findings as the project's messages.
- `checks`: single-key rules beyond type and bounds (names, CIDRs, versions, hosts, weights).
- `gcp`: the regions and machine families checked offline, with the day they were read.
- `rules`: generic helpers (DNS labels, CIDRs, hosts, "did you mean").
- `ca_checks`: X.509 checks on a brought-in CA.
- `parsing`: `parse`, each section by its declaration, then the rules that span keys.
- `safety`: cross-key rules for NAT, pod ranges, maintenance and prod's protection.
- `loading`: reading the engine's config and stopping cleanly (`load`).
- `stack_file`: the one reader of `Pulumi.<stack>.yaml` for the offline engine and the commands.
"""

from components.config.loading import load, read_raw
from components.config.model import (
    DEFAULT_CHART_REPOSITORY,
    DEFAULT_ISTIO_VERSION,
    HOLD_RULE,
    MAX_CLUSTERS,
    MIN_ISTIO_VERSION,
    MIN_WINDOW_SECONDS,
    PROD_STACKS,
    RESERVED_NAMESPACES,
    SCRAPE_INTERVAL_SECONDS,
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
    MonitoringSpec,
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
    "HOLD_RULE",
    "MAX_CLUSTERS",
    "MAX_CLUSTER_NAME",
    "MAX_NETWORK_NAME",
    "MIN_ISTIO_VERSION",
    "MIN_WINDOW_SECONDS",
    "PROD_STACKS",
    "PROJECT",
    "RESERVED_NAMESPACES",
    "SCRAPE_INTERVAL_SECONDS",
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
    "MonitoringSpec",
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
