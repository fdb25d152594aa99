"""A TLS port's outbound filter chains (Istio's `buildSidecarOutboundTLSFilterChainOpts`),
matched by the ClientHello's SNI (`server_names`), each a `tcp_proxy` that passes the TLS
through untouched. Per service: a chain per `tls` match of its VirtualService that applies
to the proxy on the port (its `sniHosts`, to its route), else one for the service's
hostname (a `*.suffix` one as written) to its cluster. An SNI no chain names matches none:
Envoy closes the connection."""

from __future__ import annotations

from typing import Any

from ._errors import Finding
from ._index import MeshIndex, cluster_name
from ._model import VirtualService
from ._proxy import ProxyInfo
from ._translate_tcp import l4_applies, tcp_proxy

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

#: (where it comes from, for messages; its SNI names; its `TcpProxy` config).
_Chain = tuple[str, list[str], Json]


def tls_filter_chains(
    index: MeshIndex, hostnames: list[str], port: int, proxy: ProxyInfo
) -> list[Json]:
    """The chains of the services `hostnames` (sorted) on TLS `port`, in that order. Envoy
    refuses two chains matching one name: the first keeps it, a later one drops it (and is
    dropped when it has none left), with a warning, unless it is the same chain again (a
    `tls` match for several hosts of its VirtualService)."""
    chains: list[Json] = []
    claimed: dict[str, str] = {}
    for hostname in hostnames:
        for origin, names, config in _service_chains(index, hostname, port, proxy):
            fresh = [n for n in names if n not in claimed]
            index.warnings.extend(
                Finding(
                    "Warning",
                    "FM0015",
                    f"{origin}: SNI {n} on TLS port {port} is matched by {claimed[n]} already; "
                    "not here",
                )
                for n in names
                if claimed.get(n, origin) != origin
            )
            if fresh:
                claimed.update(dict.fromkeys(fresh, origin))
                chains.append(
                    {
                        "filter_chain_match": {"server_names": fresh},
                        "filters": [
                            {"name": "envoy.filters.network.tcp_proxy", "typed_config": config}
                        ],
                    }
                )
    return chains


def _service_chains(index: MeshIndex, hostname: str, port: int, proxy: ProxyInfo) -> list[_Chain]:
    vs = index.routes.get(hostname)
    routed = _route_chains(index, vs, port, proxy) if vs is not None else []
    if routed:
        return routed
    svc = index.services[hostname]
    cluster = cluster_name(port, "", hostname)
    # the cluster as stat prefix, as Istio's: each service's own tcp stats
    config = tcp_proxy(cluster, [(cluster, 0)])
    return [(f"{svc.source}: {svc.resource}: {hostname}", [hostname], config)]


def _route_chains(
    index: MeshIndex, vs: VirtualService, port: int, proxy: ProxyInfo
) -> list[_Chain]:
    """A chain per `tls` match that applies, the first of those with the same SNI names
    only (Istio's `matchHasBeenHandled`: a later one is never reached). Every route's
    destinations are resolved, whichever applies, so a dangling one is a finding for every
    proxy (as for `tcp` routes)."""
    where = f"{vs.source}: VirtualService {vs.namespace}/{vs.name}: spec.tls"
    labels = index.proxy_labels(proxy)
    out: list[_Chain] = []
    handled: set[tuple[str, ...]] = set()
    for i, route in enumerate(vs.tls):
        named = [
            (
                index.destination_cluster(
                    vs, f"{where}[{i}].route[{j}].destination", rd.destination, port
                ),
                rd.weight,
            )
            for j, rd in enumerate(route.route)
        ]
        # Istio's stat prefix: a single destination's cluster, else the VirtualService
        stat_prefix = named[0][0] if len(named) == 1 else f"{vs.name}.{vs.namespace}"
        for j, m in enumerate(route.matches):
            names = tuple(sorted(m.sni_hosts))
            if names in handled or not l4_applies(m, port, proxy, labels):
                continue
            handled.add(names)
            out.append((f"{where}[{i}].match[{j}]", list(names), tcp_proxy(stat_prefix, named)))
    return out
