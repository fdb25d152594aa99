"""The current config, debounced, and each proxy's snapshot of it (translated once per kind
of proxy, on demand); sessions wait on it for changes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

import trio

from ._model import MeshConfig
from ._proxy import ProxyInfo
from ._resources import SECRET, PackCache, Resource, Snapshot, build_snapshot
from ._translate import translate

__all__ = ["SecretSource", "SnapshotHub"]

log = logging.getLogger("fastmesh.controlplane")


class SecretSource(Protocol):
    """Per-proxy SDS secrets (`_sds.SecretIssuer`), by secret name."""

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
        self._snapshots: dict[tuple[str, str], Snapshot] = {}
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
        """The proxy's translated config (shared per translation key), plus its secrets."""
        snapshot = self._translated(proxy)
        if self.secrets is None:
            return snapshot
        return snapshot.with_type(SECRET, self.secrets.resources_for(proxy))

    def _translated(self, proxy: ProxyInfo) -> Snapshot:
        key = proxy.translation_key
        cached = self._snapshots.get(key)
        if cached is not None:
            return cached
        translation = translate(self.config or MeshConfig(), proxy)
        for warning in translation.warnings:
            log.warning("%s", warning)
        snapshot = self._snapshots[key] = build_snapshot(translation.documents, self._packed)
        return snapshot
