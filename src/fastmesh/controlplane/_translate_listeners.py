"""Service ports -> outbound Envoy listeners: HTTP (HCM + RDS) or TCP (tcp_proxy, see
`_translate_tcp`)."""

from __future__ import annotations

from typing import Any

from ._errors import Finding
from ._index import MeshIndex
from ._proxy import ProxyInfo
from ._resources import CORS, FAULT, HCM, ROUTER
from ._scope import Scope, listener_protocol
from ._translate_clusters import ADS_SOURCE
from ._translate_http import CORS_FILTER_NAME, FAULT_FILTER_NAME
from ._translate_tcp import tcp_proxy_config

__all__ = ["listener_name", "outbound_ports", "translate_listeners"]

Json = dict[str, Any]

ROUTER_FILTER: Json = {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}
#: Inert until a route carries a fault (`typed_per_filter_config`), as in Istio's sidecars.
FAULT_FILTER: Json = {"name": FAULT_FILTER_NAME, "typed_config": {"@type": FAULT}}
#: Inert until a route carries a CORS policy; after the fault filter, as in Istio.
CORS_FILTER: Json = {"name": CORS_FILTER_NAME, "typed_config": {"@type": CORS}}


def listener_name(proxy: ProxyInfo, port: int) -> str:
    """Istio's outbound listener name: `0.0.0.0_9080` (here the proxy's outbound address)."""
    return f"{proxy.outbound_address}_{port}"


def outbound_ports(
    index: MeshIndex, scope: Scope | None = None
) -> tuple[list[int], dict[int, str]]:
    """(HTTP ports, TCP port -> its one service hostname), of the services `scope` shows on
    each port (None: all), by the protocol of their listener (`listener_protocol`). A TCP
    port shared by several services, or by HTTP and TCP services, cannot be told apart
    without cluster IPs: warned. Once per index and scope: the same for every proxy."""
    key = scope.key if scope is not None else None
    plan = index.port_plans.get(key)
    if plan is None:
        plan = index.port_plans[key] = _ports(index, scope)
    return plan


def _ports(index: MeshIndex, scope: Scope | None) -> tuple[list[int], dict[int, str]]:
    http: set[int] = set()
    tcp: dict[int, list[str]] = {}
    names = sorted(index.services) if scope is None else scope.hostnames
    for hostname in names:
        for port in index.services[hostname].ports:
            if scope is not None and not scope.visible(port.number, hostname):
                continue
            if listener_protocol(scope, port).is_http:
                http.add(port.number)
            else:
                tcp.setdefault(port.number, []).append(hostname)
    tcp_single: dict[int, str] = {}
    for number, hosts in sorted(tcp.items()):
        if number in http or len(hosts) > 1:
            index.warnings.append(
                Finding(
                    "Warning",
                    "FM0002",
                    f"TCP port {number} of {', '.join(hosts)} is shared with other services; "
                    "no outbound listener for it",
                )
            )
        else:
            tcp_single[number] = hosts[0]
    return sorted(http), tcp_single


def _listener(proxy: ProxyInfo, port: int, network_filter: Json) -> Json:
    return {
        "name": listener_name(proxy, port),
        "address": {"socket_address": {"address": proxy.outbound_address, "port_value": port}},
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{"filters": [network_filter]}],
    }


def translate_listeners(
    index: MeshIndex, proxy: ProxyInfo, scope: Scope | None = None
) -> list[Json]:
    http, tcp = outbound_ports(index, scope)
    listeners: list[Json] = []
    for port in http:
        hcm = {
            "@type": HCM,
            "stat_prefix": f"outbound_{listener_name(proxy, port)}",
            "rds": {"route_config_name": str(port), "config_source": ADS_SOURCE},
            "http_filters": [FAULT_FILTER, CORS_FILTER, ROUTER_FILTER],
        }
        listeners.append(
            _listener(
                proxy,
                port,
                {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm},
            )
        )
    for port, hostname in sorted(tcp.items()):
        prefix = f"outbound_{listener_name(proxy, port)}"
        tcp_proxy = tcp_proxy_config(index, hostname, port, proxy, prefix)
        listeners.append(
            _listener(
                proxy, port, {"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp_proxy}
            )
        )
    return listeners
