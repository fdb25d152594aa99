"""A TLS port's outbound filter chains (Istio's `buildSidecarOutboundTLSFilterChainOpts`):
one per service, matched by the ClientHello's SNI (`server_names`: the service's hostname,
a `*.suffix` one as written), each a `tcp_proxy` to its cluster that passes the TLS through
untouched. An SNI no chain names matches none: Envoy closes the connection."""

from __future__ import annotations

from typing import Any

from ._index import MeshIndex, cluster_name
from ._translate_tcp import tcp_proxy

__all__ = ["TLS_INSPECTOR_FILTER", "tls_filter_chains"]

Json = dict[str, Any]

#: Reads the ClientHello's SNI (and ALPN) for `filter_chain_match`, before any chain runs.
TLS_INSPECTOR_FILTER: Json = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3."
        "TlsInspector"
    },
}


def tls_filter_chains(index: MeshIndex, hostnames: list[str], port: int) -> list[Json]:
    """The chains of the services `hostnames` (sorted) on TLS `port`, in that order."""
    chains: list[Json] = []
    for hostname in hostnames:
        cluster = cluster_name(port, "", hostname)
        # the cluster as stat prefix, as Istio's: each service's own tcp stats
        chains.append(_chain([hostname], tcp_proxy(cluster, [(cluster, 0)])))
    return chains


def _chain(server_names: list[str], config: Json) -> Json:
    return {
        "filter_chain_match": {"server_names": server_names},
        "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": config}],
    }
