"""A TCP service port's outbound `tcp_proxy`: the service's own cluster, or the route of
the first `tcp` entry of its VirtualService that applies to this proxy on this port."""

from __future__ import annotations

import ipaddress
from typing import Any

from ._index import MeshIndex, cluster_name
from ._model import L4Match, TcpRoute, VirtualService
from ._proxy import ProxyInfo
from ._resources import TCP_PROXY

__all__ = ["tcp_proxy_config"]

Json = dict[str, Any]


def _bound_in(address: str, subnets: tuple[str, ...]) -> bool:
    """Whether the listener's bind address lies in one of `subnets`: without iptables
    capture, it is the only destination address the listener ever sees."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(s) for s in subnets)


def _applies(m: L4Match, port: int, proxy: ProxyInfo) -> bool:
    """Istio's `matchTCP`, with `destinationSubnets` decided here too (see `_bound_in`)."""
    return (
        m.port in (0, port)
        and m.source_namespace in ("", proxy.namespace)
        and (not m.gateways or "mesh" in m.gateways)
        and (not m.destination_subnets or _bound_in(proxy.outbound_address, m.destination_subnets))
    )


def _first_applying(vs: VirtualService, port: int, proxy: ProxyInfo) -> tuple[int, TcpRoute] | None:
    for i, route in enumerate(vs.tcp):
        if not route.matches or any(_applies(m, port, proxy) for m in route.matches):
            return i, route
    return None


def tcp_proxy_config(
    index: MeshIndex, hostname: str, port: int, proxy: ProxyInfo, stat_prefix: str
) -> Json:
    """The `TcpProxy` typed config: `cluster`, or `weighted_clusters` for a split route
    (zero weights left out, as Istio does)."""
    config: Json = {"@type": TCP_PROXY, "stat_prefix": stat_prefix}
    vs = index.routes.get(hostname)
    chosen = _first_applying(vs, port, proxy) if vs is not None else None
    if vs is None or chosen is None:
        config["cluster"] = cluster_name(port, "", hostname)
        return config
    i, route = chosen
    where = f"{vs.source}: VirtualService {vs.namespace}/{vs.name}: spec.tcp[{i}].route"
    named = [
        (index.destination_cluster(vs, f"{where}[{j}].destination", rd.destination, port), rd)
        for j, rd in enumerate(route.route)
    ]
    if len(named) == 1:
        config["cluster"] = named[0][0]
    else:
        config["weighted_clusters"] = {
            "clusters": [{"name": n, "weight": rd.weight} for n, rd in named if rd.weight > 0]
        }
    return config
