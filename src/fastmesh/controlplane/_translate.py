"""One proxy's view of the mesh: MeshConfig -> Envoy v3 xDS documents (LDS, RDS, CDS, EDS):
the outbound side shared per kind of proxy, the inbound side per workload."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._index import MeshIndex
from ._model import MeshConfig
from ._proxy import ProxyInfo
from ._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot, build_snapshot
from ._translate_clusters import translate_clusters
from ._translate_inbound import translate_inbound
from ._translate_listeners import outbound_ports, translate_listeners
from ._translate_routes import route_config

__all__ = ["Translation", "inbound_snapshot", "translate", "translate_snapshot"]


@dataclass
class Translation:
    """Envoy-JSON documents per type URL, and what was wrong but not fatal."""

    documents: dict[str, list[dict[str, Any]]]
    warnings: list[str] = field(default_factory=list)


def translate(config: MeshConfig, proxy: ProxyInfo, trust_domain: str | None = None) -> Translation:
    """The outbound side, shared by every proxy with the same `translation_key`; with a
    `trust_domain` (the mesh CA's), clusters speak mTLS where it applies."""
    index = MeshIndex(config)
    clusters, assignments = translate_clusters(index, trust_domain)
    listeners = translate_listeners(index, proxy)
    http_ports, _ = outbound_ports(index)
    routes = [route_config(index, port, proxy) for port in http_ports]
    documents = {CLUSTER: clusters, ENDPOINT: assignments, LISTENER: listeners, ROUTE: routes}
    return Translation(documents, list(dict.fromkeys(index.warnings)))


def translate_snapshot(
    config: MeshConfig, proxy: ProxyInfo, trust_domain: str | None = None
) -> Snapshot:
    """The proxy's whole config: outbound plus its workload's inbound side."""
    outbound = build_snapshot(translate(config, proxy, trust_domain).documents)
    return outbound.merged(inbound_snapshot(config, proxy, trust_domain)[0])


def inbound_snapshot(
    config: MeshConfig, proxy: ProxyInfo, trust_domain: str | None = None
) -> tuple[Snapshot, list[str]]:
    """The inbound listeners and clusters of the proxy's workload (see `_translate_inbound`),
    and warnings."""
    listeners, clusters, warnings = translate_inbound(config, proxy, mtls=trust_domain is not None)
    return build_snapshot({LISTENER: listeners, CLUSTER: clusters}), warnings
