"""Dynamic mode of fastmesh-proxy: a bootstrap with `dynamic_resources` runs the ADS
client, and every snapshot it completes (bootstrap + dynamic resources, translated in a
child like the file) is applied to the engine."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastmesh.config._compile import Compiled
from fastmesh.config._xds import DynamicResources
from fastmesh.proxy._config import LoadedConfig, load_file_in_child

if TYPE_CHECKING:
    from fastmesh.proxy._server import ProxyServer
    from fastmesh.xds import AdsClient

__all__ = ["DynamicConfig"]

log = logging.getLogger("fastmesh.proxy.config")

#: How long startup waits for the first complete dynamic snapshot before going LIVE with
#: what it has (Envoy's `initial_fetch_timeout` default).
INITIAL_FETCH_TIMEOUT_S = 15.0


class DynamicConfig:
    """The `ConfigTarget` of the ADS client for one `ProxyServer`."""

    def __init__(
        self, server: ProxyServer, addresses: tuple[tuple[str, int], ...], delta: bool = False
    ) -> None:
        from fastmesh.xds import AdsClient, node_message

        self.server = server
        node_id, cluster = server.node()
        metadata: Any = server.config.compiled.node_metadata if server.config else {}
        self.client: AdsClient = AdsClient(
            addresses, node_message(node_id, cluster, metadata), self, delta=delta
        )

    async def run(self) -> None:
        await self.client.run()

    def dynamic(self) -> DynamicResources:
        """The resources accepted so far (for a file reload to translate with)."""
        return self.client.session.dynamic()

    async def translate(self, dynamic: DynamicResources) -> Compiled:
        """With the bootstrap as last loaded, not the file as it is now: an edit in
        progress (or a broken one) must not turn into NACKs."""
        config = self.server.config
        assert config is not None
        loaded = await load_file_in_child(
            config.source, dynamic, document_json=config.bootstrap_json()
        )
        return loaded.compiled

    async def apply(self, compiled: Compiled) -> None:
        if await self.server.apply(LoadedConfig(compiled)):
            log.info("applied xDS snapshot version %s", compiled.version)
