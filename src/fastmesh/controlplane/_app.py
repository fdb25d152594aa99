"""The control plane assembled: a registry feeding the snapshot hub feeding the ADS server."""

from __future__ import annotations

import trio

from ._hub import SnapshotHub
from ._registry import Registry
from ._sds import SecretIssuer
from ._server import AdsServer
from ._status import ProxyStatus, proxy_status

__all__ = ["ControlPlane", "ProxyStatus"]


class ControlPlane:
    """Serve xDS for what `registry` holds. `await nursery.start(cp.run)` returns the port."""

    def __init__(
        self,
        registry: Registry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        debounce: float = 0.1,
        max_delay: float = 1.0,
        secrets: SecretIssuer | None = None,
    ) -> None:
        """`secrets`: serve SDS (`default`, `ROOTCA`) from this issuer; none without it."""
        self.registry = registry
        self.host = host
        self.port = port
        self.secrets = secrets
        self.hub = SnapshotHub(debounce=debounce, max_delay=max_delay, secrets=secrets)
        if secrets is not None:
            secrets.on_change = self.hub.touch
        self.server = AdsServer(self.hub)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.hub.run)
            if self.secrets is not None:
                await nursery.start(self.secrets.run)
            await nursery.start(self.registry.run, self.hub.publish)
            self.port = await nursery.start(self.server.serve, self.host, self.port)
            task_status.started(self.port)

    def proxy_status(self) -> list[ProxyStatus]:
        return proxy_status(self.server.streams.values())
