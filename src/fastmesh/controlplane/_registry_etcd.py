"""The etcd 3 registry source: read every key under the prefix, then follow the watch.

Every replica of the control plane reads the same keys and builds the config the same way
(sorted by key), so replicas sharing one etcd serve identical snapshots and versions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from ._errors import Problem
from ._etcd_client import EtcdClient, EtcdError, WatchCompacted, WatchEvent
from ._etcd_keys import DEFAULT_PREFIX, EntryCache
from ._model import MeshConfig
from ._registry import Publish

__all__ = ["EtcdRegistry"]

log = logging.getLogger("fastmesh.controlplane.etcd")

#: Seconds between attempts when no endpoint answers (doubling from `retry_interval`).
_MAX_BACKOFF = 2.0


class EtcdRegistry:
    """Services, workloads and Istio resources from etcd (key layout: `_etcd_keys`).

    `run` reads the whole prefix, publishes, then watches from the next revision; a broken
    watch resumes on another endpoint from the last revision seen (a compacted revision means
    one full read again). Workloads written with a lease vanish when the lease expires, and the
    watch's DELETE is published like any other change.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        retry_interval: float = 0.2,
        timeout: float = 3.0,
    ) -> None:
        self.endpoints = list(endpoints)
        self.prefix = prefix
        self.retry_interval = retry_interval
        self.timeout = timeout
        self.problems: list[Problem] = []
        #: Key -> value text, as last read or watched.
        self.entries: dict[str, str] = {}
        #: The store revision `entries` reflects.
        self.revision = 0
        self.loads = 0
        self.reconnects = 0
        self._cache = EntryCache(prefix)

    def _build(self) -> MeshConfig:
        config, problems = self._cache.load(self.entries)
        self.problems = problems
        self.loads += 1
        for problem in problems:
            log.warning("etcd %s", problem)
        return config

    def _apply(self, events: list[WatchEvent]) -> None:
        for event in events:
            if event.deleted:
                self.entries.pop(event.key, None)
            else:
                self.entries[event.key] = event.value.decode(errors="replace")
            self.revision = max(self.revision, event.revision)

    async def _read_all(self, client: EtcdClient) -> None:
        """Until it works: the whole prefix, on whichever endpoint answers."""
        while True:
            try:
                revision, kvs = await client.range_prefix(self.prefix)
            except EtcdError as exc:
                log.warning("etcd read of %s failed: %s", self.prefix, exc)
                client.rotate()
                await trio.sleep(self.retry_interval)
                continue
            self.entries = {kv.key: kv.value.decode(errors="replace") for kv in kvs}
            self.revision = revision
            return

    async def run(
        self, publish: Publish, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with EtcdClient(self.endpoints, timeout=self.timeout) as client:
            await self._read_all(client)
            publish(self._build())
            task_status.started()
            backoff = self.retry_interval
            while True:
                try:
                    async with client.watch(self.prefix, self.revision + 1) as stream:
                        while True:
                            self._apply(await stream.next_events())
                            backoff = self.retry_interval
                            publish(self._build())
                except WatchCompacted as exc:
                    log.warning("etcd watch: %s; reading everything again", exc)
                    await self._read_all(client)
                    publish(self._build())
                except EtcdError as exc:
                    self.reconnects += 1
                    log.warning("etcd watch broke (%s); resuming at %d", exc, self.revision + 1)
                    client.rotate()
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
