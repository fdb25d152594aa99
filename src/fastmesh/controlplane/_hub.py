"""The current config, debounced, and each proxy's snapshot of it (translated once per kind
of proxy, on demand); sessions wait on it for changes."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

import trio

from ._index import MeshIndex
from ._model import MeshConfig
from ._proxy import ProxyInfo
from ._resources import SECRET, PackCache, Resource, Snapshot
from ._translate import inbound_snapshot, proxy_snapshot, shared_snapshot

__all__ = ["SecretSource", "SnapshotHub"]

log = logging.getLogger("fastmesh.controlplane")


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
        #: Outbound snapshots per (translation key, the proxy's labels that matter).
        self._snapshots: dict[tuple[tuple[str, str], tuple[tuple[str, str], ...]], Snapshot] = {}
        self._inbound: dict[tuple[str, str, tuple[tuple[str, int], ...]], Snapshot] = {}
        #: Per config: its index, the clusters and endpoints every proxy shares, warnings.
        self._index: MeshIndex | None = None
        self._shared: Snapshot | None = None
        self._warned: set[str] = set()
        #: Packed resources of the last two configs: a change re-packs only what changed.
        self._packed = PackCache()

    def publish(self, config: MeshConfig) -> None:
        """A new config; the first one applies at once, later ones after the debounce."""
        if self.config is None:
            self._apply(config)
            return
        self._pending = config
        self._dirty.set()

    def _apply(self, config: MeshConfig) -> None:
        self.config = config
        self._snapshots.clear()
        self._inbound.clear()
        self._index, self._shared = None, None
        self._warned.clear()
        self._packed.next_generation()
        self._bump()
        log.info("config generation %d applied", self.generation)

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
        if self._index is None:
            self._index = MeshIndex(self.config or MeshConfig())
            self._shared = shared_snapshot(self._index, self._trust_domain, self._packed)
        assert self._shared is not None
        key = (proxy.translation_key, self._index.label_key(proxy.namespace, proxy.workload))
        cached = self._snapshots.get(key)
        if cached is not None:
            return cached
        snapshot = self._shared.merged(proxy_snapshot(self._index, proxy, self._packed))
        self._snapshots[key] = snapshot
        self._log_warnings(self._index.warnings)
        return snapshot

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
