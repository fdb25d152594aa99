"""One proxy's view of the mesh: MeshConfig -> Envoy v3 xDS (CDS, EDS, LDS, RDS). Clusters and
endpoints are the same for every proxy (a Sidecar's scope picks some of them), outbound
listeners and routes per kind of proxy (namespace, scope), the inbound side per workload:
each part is translated once and shared."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._errors import Finding
from ._index import MeshIndex
from ._model import MeshConfig
from ._model_security import ROOT_NAMESPACE
from ._proxy import ProxyInfo
from ._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot, build_snapshot, memoize
from ._scope import Scope, scope_for, scoped_clusters
from ._translate_clusters import translate_clusters
from ._translate_inbound import translate_inbound
from ._translate_listeners import outbound_ports, translate_listeners
from ._translate_routes import prepare_routes, route_config

__all__ = [
    "Translation",
    "inbound_snapshot",
    "prepare_outbound",
    "proxy_snapshot",
    "shared_snapshot",
    "translate",
    "translate_snapshot",
]


@dataclass
class Translation:
    """Envoy-JSON documents per type URL, and what was wrong but not fatal."""

    documents: dict[str, list[dict[str, Any]]]
    warnings: list[Finding] = field(default_factory=list)


def translate(
    config: MeshConfig, proxy: ProxyInfo, trust_domain: str | None = None, *, scoped: bool = False
) -> Translation:
    """The outbound side as documents (see `shared_snapshot` and `proxy_snapshot`): of every
    service, or, `scoped`, of those the proxy's Sidecar imports (as the hub sends them)."""
    index = MeshIndex(config)
    scope = scope_for(index, proxy) if scoped else None
    clusters, assignments = translate_clusters(index, trust_domain)
    if scope is not None:
        clusters = [c for c in clusters if scope.has_cluster(c["name"])]
        assignments = [a for a in assignments if scope.has_cluster(a["cluster_name"])]
    documents = {CLUSTER: clusters, ENDPOINT: assignments, **_per_proxy(index, proxy, scope)}
    return Translation(documents, list(dict.fromkeys(index.warnings)))


def _per_proxy(
    index: MeshIndex, proxy: ProxyInfo, scope: Scope | None = None
) -> dict[str, list[dict[str, Any]]]:
    listeners = translate_listeners(index, proxy, scope)
    routes = [route_config(index, port, proxy, scope) for port in outbound_ports(index, scope).http]
    return {LISTENER: listeners, ROUTE: routes}


def shared_snapshot(
    index: MeshIndex, trust_domain: str | None = None, hostnames: Iterable[str] | None = None
) -> Snapshot:
    """Clusters and their endpoints: the same for every proxy, so translated once per config
    (with a `trust_domain`, the mesh CA's, clusters speak mTLS where it applies);
    `hostnames`: only those services' (what a workload change touched)."""
    clusters, assignments = translate_clusters(index, trust_domain, hostnames)
    return build_snapshot({CLUSTER: clusters, ENDPOINT: assignments})


def prepare_outbound(index: MeshIndex) -> None:
    """What the route configs of every proxy outside a Sidecar scope share (`prepare_routes`),
    translated and encoded before a proxy asks, as the shared clusters are. Skipped when a
    root-namespace Sidecar gives every proxy a scope."""
    if any(s.selector is None for s in index.sidecars.get(ROOT_NAMESPACE, ())):
        return
    http_ports = outbound_ports(index).http
    memoize(ROUTE, {"virtual_hosts": prepare_routes(index, http_ports)}, index.encoded)


def proxy_snapshot(index: MeshIndex, proxy: ProxyInfo, scope: Scope | None = None) -> Snapshot:
    """Outbound listeners and routes (of what `scope` imports): shared by proxies with the
    same `translation_key`, labels that matter and scope."""
    documents = _per_proxy(index, proxy, scope)
    index.encoded_documents.append(documents)  # ids in `index.encoded` stay theirs
    return build_snapshot(documents, index.encoded)


def translate_snapshot(
    config: MeshConfig, proxy: ProxyInfo, trust_domain: str | None = None
) -> Snapshot:
    """The proxy's whole config, composed as the hub composes it (same version)."""
    index = MeshIndex(config)
    scope = scope_for(index, proxy)
    shared = shared_snapshot(index, trust_domain)
    if scope is not None:
        shared = scoped_clusters(shared, scope)
    outbound = shared.merged(proxy_snapshot(index, proxy, scope))
    return outbound.merged(inbound_snapshot(config, proxy, trust_domain)[0])


def inbound_snapshot(
    config: MeshConfig, proxy: ProxyInfo, trust_domain: str | None = None
) -> tuple[Snapshot, list[str]]:
    """The inbound listeners and clusters of the proxy's workload (see `_translate_inbound`),
    and warnings."""
    listeners, clusters, warnings = translate_inbound(config, proxy, mtls=trust_domain is not None)
    return build_snapshot({LISTENER: listeners, CLUSTER: clusters}), warnings
