"""A model of GKE's NEG controller (kubernetes/ingress-gce) as far as the edge depends on it, on a fake clock.

What it reproduces, and where it was read (kubernetes/ingress-gce, default branch, fetched 2026-12-04):

- A Service with `cloud.google.com/neg` `exposed_ports` gets the `cloud.google.com/neg-status`
  annotation `{"network_endpoint_groups": {port: name}, "zones": [...]}` (pkg/negannotation
  NegStatus) listing the zones that have candidate nodes *now* (pkg/neg/controller.go
  syncNegStatusAnnotation, zoneGetter.ListZones with the node filter).
- The annotation is written BEFORE the NEGs exist: processService calls syncNegStatusAnnotation
  and then manager.EnsureSyncers; the transaction syncer creates the NEGs later
  (pkg/neg/syncers/transaction.go ensureNetworkEndpointGroups -> utils.go
  ensureNetworkEndpointGroup). Modelled as `create_delay` seconds after the Service.
- NEGs are made only in zones with nodes (ListZonesPerSubnet with the candidate-node filter). A
  zone that later loses its nodes keeps its NEG, marked INACTIVE in the svcneg status
  (pkg/neg/syncers/negstatushandler/svcneg.go); only a removed subnet marks it TO_BE_DELETED.
- When the Service goes, its NEGs are deleted by garbage collection, which runs every
  `neg-gc-period` (120 s default, pkg/flags/flags.go) (pkg/neg/manager.go GC ->
  garbageCollectNEGWithCRD). A NEG a backend service still references cannot be deleted then
  (GKE "Standalone zonal NEGs": "if the NEG is still referenced by a backend service, the
  associated NEG is not garbage collected"); the next run tries again. The ServiceNetworkEndpoint-
  Group object keeps its finalizer `networking.gke.io/neg-finalizer` (pkg/utils/common/finalizer.go)
  until its NEGs are deleted (processNEGDeletionCandidate deletes the CR only after them), so a
  namespace holding it stays Terminating until then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GC_PERIOD = 120.0  # --neg-gc-period default


@dataclass
class NegControllerModel:
    nodes: dict[str, int]  # zone -> nodes in it (all clusters of one project share the zones' names here)
    create_delay: float = 5.0
    gc_period: float = GC_PERIOD
    now: float = 0.0
    # (project, zone, name) -> the time the controller creates it
    pending: dict[tuple[str, str, str], float] = field(default_factory=dict)
    negs: set[tuple[str, str, str]] = field(default_factory=set)
    referenced: set[tuple[str, str, str]] = field(default_factory=set)
    orphaned: set[tuple[str, str, str]] = field(default_factory=set)  # Service gone, NEG awaiting GC
    finalized: set[str] = field(default_factory=set)  # NEG names whose svcneg finalizer is still on
    deleted: set[str] = field(default_factory=set)  # NEG names whose Service is gone

    # -- what the offline engine's mocks ask (offline.engine.NegController)

    def service_created(self, project: str, zones: list[str], neg_name: str) -> list[str]:
        with_nodes = sorted(z for z in zones if self.nodes.get(z, 0) > 0)
        for z in with_nodes:
            self.pending.setdefault((project, z, neg_name), self.now + self.create_delay)
        self.finalized.add(neg_name)
        return with_nodes

    def exists(self, project: str, zone: str, name: str) -> bool:
        self._settle()
        return (project, zone, name) in self.negs

    # -- time and the rest of the world

    def advance(self, seconds: float) -> None:
        """Let time pass; garbage collection runs at every multiple of the GC period."""
        end = self.now + seconds
        while True:
            next_gc = (self.now // self.gc_period + 1) * self.gc_period
            if next_gc > end:
                break
            self.now = next_gc
            self._settle()
            self._gc()
        self.now = end
        self._settle()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def scale_zone(self, zone: str, nodes: int) -> None:
        """The autoscaler: existing NEGs stay when a zone goes to 0 (INACTIVE, not deleted)."""
        self.nodes[zone] = nodes

    def service_deleted(self, neg_name: str) -> None:
        self.deleted.add(neg_name)
        self.orphaned |= {k for k in self.negs | set(self.pending) if k[2] == neg_name}
        self.pending = {k: t for k, t in self.pending.items() if k[2] != neg_name}

    def namespace_gone(self, neg_name: str) -> bool:
        """A namespace with the Service's svcneg object is gone only when its finalizer is removed."""
        return neg_name not in self.finalized

    def _settle(self) -> None:
        for key, at in list(self.pending.items()):
            if at <= self.now:
                self.negs.add(key)
                del self.pending[key]

    def _gc(self) -> None:
        for key in sorted(self.orphaned):
            if key in self.referenced:
                continue  # the delete fails while a backend service uses it; tried again next period
            self.negs.discard(key)
            self.orphaned.discard(key)
        for name in self.finalized & self.deleted:
            if not any(k[2] == name for k in self.orphaned):
                self.finalized.discard(name)
