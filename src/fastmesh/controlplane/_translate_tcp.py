"""A TCP service port's outbound `tcp_proxy`: the service's own cluster, or the route of
the first `tcp` entry of its VirtualService that applies to this proxy on this port."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from ._index import MeshIndex, cluster_name
from ._model import MESH_GATEWAY, L4Match, VirtualService
from ._proxy import ProxyInfo
from ._resources import TCP_PROXY

__all__ = ["l4_applies", "tcp_proxy", "tcp_proxy_config"]

Json = dict[str, Any]


def _bound_in(address: str, subnets: tuple[str, ...]) -> bool:
    """Whether the listener's bind address lies in one of `subnets`: without iptables
    capture, it is the only destination address the listener ever sees."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(s) for s in subnets)


def l4_applies(m: L4Match, port: int, proxy: ProxyInfo, labels: Mapping[str, str]) -> bool:
    """Istio's `matchTCP`, with `destinationSubnets` decided here too (see `_bound_in`);
    `labels` are the proxy's (`MeshIndex.proxy_labels`)."""
    return (
        m.port in (0, port)
        and m.source_namespace in ("", proxy.namespace)
        and (not m.gateways or MESH_GATEWAY in m.gateways)
        and all(labels.get(k) == v for k, v in m.source_labels.items())
        and (not m.destination_subnets or _bound_in(proxy.outbound_address, m.destination_subnets))
    )


def _first_applying(index: MeshIndex, vs: VirtualService, port: int, proxy: ProxyInfo) -> int:
    """The index of the first of `vs.tcp` that applies to `proxy` on `port`; -1: none."""
    labels = index.proxy_labels(proxy)
    for i, route in enumerate(vs.tcp):
        if not route.matches or any(l4_applies(m, port, proxy, labels) for m in route.matches):
            return i
    return -1


def _clusters(index: MeshIndex, vs: VirtualService, port: int) -> list[list[tuple[str, int]]]:
    """(cluster, weight) of each destination of each tcp route. All are resolved, whichever
    applies, so a dangling one is a finding for every proxy (and for `fastmesh analyze`)."""
    prefix = f"{vs.source}: VirtualService {vs.namespace}/{vs.name}: spec.tcp"
    return [
        [
            (
                index.destination_cluster(
                    vs, f"{prefix}[{i}].route[{j}].destination", rd.destination, port
                ),
                rd.weight,
            )
            for j, rd in enumerate(route.route)
        ]
        for i, route in enumerate(vs.tcp)
    ]


def tcp_proxy_config(
    index: MeshIndex, hostname: str, port: int, proxy: ProxyInfo, stat_prefix: str
) -> Json:
    """The `TcpProxy` typed config of a TCP service port: its route's, else its cluster."""
    vs = index.routes.get(hostname)
    routes = _clusters(index, vs, port) if vs is not None else []
    chosen = _first_applying(index, vs, port, proxy) if vs is not None else -1
    if chosen < 0:
        return tcp_proxy(stat_prefix, [(cluster_name(port, "", hostname), 0)])
    return tcp_proxy(stat_prefix, routes[chosen])


def tcp_proxy(stat_prefix: str, named: list[tuple[str, int]]) -> Json:
    """A `TcpProxy` typed config to (cluster, weight) destinations: `cluster` for one,
    else `weighted_clusters` (zero weights left out, as Istio does)."""
    config: Json = {"@type": TCP_PROXY, "stat_prefix": stat_prefix}
    if len(named) == 1:
        config["cluster"] = named[0][0]
    else:
        config["weighted_clusters"] = {
            "clusters": [{"name": n, "weight": w} for n, w in named if w > 0]
        }
    return config
