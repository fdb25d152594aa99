"""One proxy's view of the mesh: MeshConfig -> Envoy v3 xDS documents (LDS, RDS, CDS, EDS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._index import MeshIndex
from ._model import MeshConfig
from ._proxy import ProxyInfo
from ._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot, build_snapshot
from ._translate_clusters import translate_clusters
from ._translate_listeners import outbound_ports, translate_listeners
from ._translate_routes import route_config

__all__ = ["Translation", "translate", "translate_snapshot"]


@dataclass
class Translation:
    """Envoy-JSON documents per type URL, and what was wrong but not fatal."""

    documents: dict[str, list[dict[str, Any]]]
    warnings: list[str] = field(default_factory=list)


def translate(config: MeshConfig, proxy: ProxyInfo) -> Translation:
    index = MeshIndex(config)
    clusters, assignments = translate_clusters(index)
    listeners = translate_listeners(index, proxy)
    http_ports, _ = outbound_ports(index)
    routes = [route_config(index, port, proxy) for port in http_ports]
    documents = {CLUSTER: clusters, ENDPOINT: assignments, LISTENER: listeners, ROUTE: routes}
    return Translation(documents, list(dict.fromkeys(index.warnings)))


def translate_snapshot(config: MeshConfig, proxy: ProxyInfo) -> Snapshot:
    return build_snapshot(translate(config, proxy).documents)
