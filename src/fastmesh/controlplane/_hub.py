"""The current config, debounced, and each proxy's snapshot of it (translated once per kind
of proxy, on demand); sessions wait on it for changes."""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Iterable, Mapping
from typing import Protocol

import trio

from ._index import MeshIndex
from ._model import MeshConfig, Workload
from ._proxy import InboundKey, ProxyInfo
from ._resources import SECRET, Resource, Snapshot
from ._scope import Scope, ScopeKey, scope_filter, scope_for, scoped_clusters
from ._translate import inbound_snapshot, prepare_outbound, proxy_snapshot, shared_snapshot

__all__ = ["SecretSource", "SnapshotHub"]

log = logging.getLogger("fastmesh.controlplane")

#: What a proxy's outbound config depends on: its translation key, the labels that matter
#: (`MeshIndex.label_key`) and its Sidecar's scope (None: no Sidecar, every service).
OutboundKey = tuple[tuple[str, str], tuple[tuple[str, str], ...], ScopeKey | None]


class SecretSource(Protocol):
    """Per-proxy SDS secrets (`_sds.SecretIssuer`), by secret name."""

    @property
    def trust_domain(self) -> str:
        """The mesh CA's: with secrets to serve, sidecars speak mTLS."""

    def resources_for(self, proxy: ProxyInfo) -> Mapping[str, Resource]: ...


class SnapshotHub:
    """`publish` a config (from any registry); `run` applies it after `debounce` seconds of
    quiet (at most `max_delay` after the first change), bumping `generation`."""

    def __init__(
        self,
        *,
        debounce: float = 0.1,
        max_delay: float = 1.0,
        secrets: SecretSource | None = None,
    ) -> None:
        self.debounce = debounce
        self.secrets = secrets
        self.max_delay = max_delay
        self.config: MeshConfig | None = None
        self.generation = 0
        self._pending: MeshConfig | None = None
        self._dirty = trio.Event()
        self._changed = trio.Event()
        #: Outbound snapshots per kind of proxy.
        self._snapshots: dict[OutboundKey, Snapshot] = {}
        #: The same keys: their own part (listeners, routes), before the shared clusters.
        self._routing: dict[OutboundKey, Snapshot] = {}
        #: Per Sidecar scope: the part of the shared clusters and endpoints it imports.
        self._scoped: dict[ScopeKey, tuple[Scope, Snapshot]] = {}
        self._inbound: dict[InboundKey, Snapshot] = {}
        #: Per config: its index, the clusters and endpoints every proxy shares, warnings.
        self._index: MeshIndex | None = None
        self._shared: Snapshot | None = None
        self._warned: set[str] = set()

    def publish(self, config: MeshConfig) -> None:
        """A new config; the first one applies at once, later ones after the debounce."""
        if self.config is None:
            self._apply(config)
            return
        self._pending = config
        self._dirty.set()

    def _apply(self, config: MeshConfig) -> None:
        previous, self.config = self.config, config
        moved = workload_change(previous, config) if previous is not None else None
        if moved is not None and self._index is not None and self._shared is not None:
            self._apply_workloads(config, *moved)
        else:
            self._snapshots.clear()
            self._routing.clear()
            self._scoped.clear()
            self._inbound.clear()
            self._warned.clear()
            # the clusters every proxy shares are translated now, as Istio builds its push
            # context on a config change; each kind of proxy's own part waits for one to ask
            self._index = MeshIndex(config)
            self._shared = shared_snapshot(self._index, self._trust_domain)
            prepare_outbound(self._index)
        self._bump()
        log.info("config generation %d applied", self.generation)

    def _apply_workloads(
        self, config: MeshConfig, gone: list[Workload], new: list[Workload]
    ) -> None:
        """Only workloads changed (Istio's incremental EDS push): re-translate the clusters
        of the services that select them and the inbound side of those workloads; the
        routes, listeners and every other cluster stay as they are (scopes do not depend on
        workloads; which scope a proxy has may, through its labels: `_translated` looks)."""
        assert self._index is not None and self._shared is not None
        before, self._index = self._index, self._index.with_workloads(config, gone, new)
        hosts = {svc.hostname for w in gone for svc in before.services_selecting(w)}
        hosts |= {svc.hostname for w in new for svc in self._index.services_selecting(w)}
        touched = shared_snapshot(self._index, self._trust_domain, hosts)
        self._shared = self._shared.replaced(touched.resources)
        self._scoped = {
            key: (scope, part.replaced(scope_filter(touched.resources, scope)))
            for key, (scope, part) in self._scoped.items()
        }
        self._snapshots = {k: self._clusters(k[2]).merged(p) for k, p in self._routing.items()}
        workloads = {(w.namespace, w.name) for w in [*gone, *new]}
        self._inbound = {k: v for k, v in self._inbound.items() if (k[0], k[1]) not in workloads}

    def touch(self) -> None:
        """Something outside the config changed (a secret was renewed): sessions look again."""
        self._bump()

    def _bump(self) -> None:
        self.generation += 1
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._dirty.wait()
            give_up = trio.current_time() + self.max_delay
            while True:
                self._dirty = trio.Event()
                quiet = min(trio.current_time() + self.debounce, give_up)
                with trio.move_on_at(quiet) as scope:
                    await self._dirty.wait()
                if scope.cancelled_caught or trio.current_time() >= give_up:
                    break
            if self._pending is not None:
                pending, self._pending = self._pending, None
                self._apply(pending)

    async def wait_beyond(self, generation: int) -> int:
        """Return the current generation once it is newer than `generation`."""
        while self.generation <= generation:
            await self._changed.wait()
        return self.generation

    def snapshot_for(self, proxy: ProxyInfo) -> Snapshot:
        """The proxy's translated config (the outbound side shared per translation key, the
        inbound side per workload), plus its secrets."""
        snapshot = self._translated(proxy).merged(self._inbound_for(proxy))
        if self.secrets is None:
            return snapshot
        return snapshot.with_type(SECRET, self.secrets.resources_for(proxy))

    @property
    def _trust_domain(self) -> str | None:
        return self.secrets.trust_domain if self.secrets is not None else None

    def _translated(self, proxy: ProxyInfo) -> Snapshot:
        if self._index is None or self._shared is None:  # no config published yet
            self._index = MeshIndex(self.config or MeshConfig())
            self._shared = shared_snapshot(self._index, self._trust_domain)
        scope = scope_for(self._index, proxy)
        scope_key = scope.key if scope is not None else None
        key = (proxy.translation_key, self._index.label_key(proxy), scope_key)
        cached = self._snapshots.get(key)
        if cached is not None:
            return cached
        if scope is not None and scope.key not in self._scoped:
            self._scoped[scope.key] = (scope, scoped_clusters(self._shared, scope))
        part = self._routing[key] = proxy_snapshot(self._index, proxy, scope)
        snapshot = self._snapshots[key] = self._clusters(scope_key).merged(part)
        self._log_warnings(self._index.warnings)
        return snapshot

    def _clusters(self, scope: ScopeKey | None) -> Snapshot:
        """The clusters and endpoints of a scope (None: every proxy's without a Sidecar)."""
        assert self._shared is not None
        return self._shared if scope is None else self._scoped[scope][1]

    def _log_warnings(self, warnings: Iterable[object]) -> None:
        """Each warning once per config (translations of other proxies repeat them)."""
        for warning in map(str, warnings):
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning("%s", warning)

    def _inbound_for(self, proxy: ProxyInfo) -> Snapshot:
        key = proxy.inbound_key
        cached = self._inbound.get(key)
        if cached is not None:
            return cached
        snapshot, warnings = inbound_snapshot(
            self.config or MeshConfig(), proxy, self._trust_domain
        )
        for warning in warnings:
            log.warning("%s", warning)
        self._inbound[key] = snapshot
        return snapshot


#: Above this many changed workloads a full translation is as cheap (and simpler to trust).
_INCREMENTAL_LIMIT = 1000


def workload_change(
    old: MeshConfig, new: MeshConfig
) -> tuple[list[Workload], list[Workload]] | None:
    """(workloads gone, workloads new) when `new` differs from `old` only in workloads (a
    registry keeps unchanged resources as the same objects), else None."""
    if (
        old.services != new.services
        or old.virtual_services != new.virtual_services
        or old.destination_rules != new.destination_rules
        or old.peer_authentications != new.peer_authentications
        or old.authorization_policies != new.authorization_policies
        or old.service_entries != new.service_entries
        or old.sidecars != new.sidecars
    ):
        return None
    gone, added = _replaced(old.workloads, new.workloads)
    if len(gone) + len(added) > _INCREMENTAL_LIMIT:
        return None
    return gone, added


def _replaced(
    old: tuple[Workload, ...], new: tuple[Workload, ...]
) -> tuple[list[Workload], list[Workload]]:
    """(objects only in `old`, objects only in `new`). An edit in place (the registry swaps
    the edited resources where they were) is found position by position, in C: 50k
    workloads per endpoint change."""
    if len(old) == len(new):
        at = list(itertools.compress(itertools.count(), map(operator.is_not, old, new)))
        gone, added = [old[i] for i in at], [new[i] for i in at]
        if not set(map(id, gone)) & set(map(id, added)):
            return gone, added
    before, after = set(map(id, old)), set(map(id, new))
    if before == after:
        return [], []
    return [w for w in old if id(w) not in after], [w for w in new if id(w) not in before]
