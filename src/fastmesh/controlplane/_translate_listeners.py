"""Service ports -> outbound Envoy listeners: HTTP (HCM + RDS), TCP (tcp_proxy, see
`_translate_tcp`) or TLS (SNI filter chains, see `_translate_tls`)."""

from __future__ import annotations

from typing import Any, NamedTuple

from ._errors import Finding
from ._index import MeshIndex
from ._model import Protocol
from ._proxy import ProxyInfo
from ._resources import CORS, FAULT, HCM, ROUTER
from ._scope import Scope, listener_protocol
from ._translate_clusters import ADS_SOURCE
from ._translate_http import CORS_FILTER_NAME, FAULT_FILTER_NAME
from ._translate_tcp import tcp_proxy_config
from ._translate_tls import TLS_INSPECTOR_FILTER, tls_filter_chains

__all__ = ["PortPlan", "listener_name", "outbound_ports", "translate_listeners"]

Json = dict[str, Any]

ROUTER_FILTER: Json = {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}
#: Inert until a route carries a fault (`typed_per_filter_config`), as in Istio's sidecars.
FAULT_FILTER: Json = {"name": FAULT_FILTER_NAME, "typed_config": {"@type": FAULT}}
#: Inert until a route carries a CORS policy; after the fault filter, as in Istio.
CORS_FILTER: Json = {"name": CORS_FILTER_NAME, "typed_config": {"@type": CORS}}


def listener_name(proxy: ProxyInfo, port: int) -> str:
    """Istio's outbound listener name: `0.0.0.0_9080` (here the proxy's outbound address)."""
    return f"{proxy.outbound_address}_{port}"


class PortPlan(NamedTuple):
    """The outbound listeners of one kind of proxy, by port."""

    #: HTTP listeners (HCM + RDS, the route config of the port).
    http: list[int]
    #: TCP listeners: port -> its one service's hostname.
    tcp: dict[int, str]
    #: TLS listeners: port -> its services' hostnames (sorted), each an SNI filter chain.
    tls: dict[int, list[str]]


def outbound_ports(index: MeshIndex, scope: Scope | None = None) -> PortPlan:
    """The outbound ports of the services `scope` shows on each port (None: all), by the
    protocol of their listener (`listener_protocol`). Without cluster IPs only HTTP (by
    Host) and TLS (by SNI) services can share a port: a TCP port shared by several
    services, or a port mixing HTTP, TCP and TLS services, is warned of, its TCP and TLS
    services left without a listener. Once per index and scope: the same for every proxy."""
    key = scope.key if scope is not None else None
    plan = index.port_plans.get(key)
    if plan is None:
        plan = index.port_plans[key] = _ports(index, scope)
    return plan


def _ports(index: MeshIndex, scope: Scope | None) -> PortPlan:
    http: dict[int, list[str]] = {}
    tcp: dict[int, list[str]] = {}
    tls: dict[int, list[str]] = {}
    names = sorted(index.services) if scope is None else scope.hostnames
    for hostname in names:
        for port in index.services[hostname].ports:
            if scope is not None and not scope.visible(port.number, hostname):
                continue
            protocol = listener_protocol(scope, port)
            kind = http if protocol.is_http else tls if protocol is Protocol.TLS else tcp
            kind.setdefault(port.number, []).append(hostname)
    plan = PortPlan(sorted(http), {}, {})
    for number in sorted({*tcp, *tls}):
        tcp_hosts, tls_hosts = tcp.get(number, []), tls.get(number, [])
        if tls_hosts and (tcp_hosts or number in http):
            index.warnings.append(_mixed_tls(number, tls_hosts, tcp_hosts, http.get(number, [])))
        elif tls_hosts:
            plan.tls[number] = tls_hosts
        elif number in http or len(tcp_hosts) > 1:
            index.warnings.append(
                Finding(
                    "Warning",
                    "FM0002",
                    f"TCP port {number} of {', '.join(tcp_hosts)} is shared with other services; "
                    "no outbound listener for it",
                )
            )
        else:
            plan.tcp[number] = tcp_hosts[0]
    return plan


def _mixed_tls(number: int, tls: list[str], tcp: list[str], http: list[str]) -> Finding:
    """FM0002 for a TLS port that TCP or HTTP services share: SNI chains can only tell TLS
    services apart."""
    others = [
        f"{kind} services {', '.join(hosts)}"
        for kind, hosts in (("TCP", tcp), ("HTTP", http))
        if hosts
    ]
    return Finding(
        "Warning",
        "FM0002",
        f"TLS port {number} of {', '.join(tls)} is shared with {' and '.join(others)} (SNI "
        "filter chains need every service of a port to be TLS); no TLS or TCP listener for it",
    )


def _listener(proxy: ProxyInfo, port: int, chains: list[Json]) -> Json:
    return {
        "name": listener_name(proxy, port),
        "address": {"socket_address": {"address": proxy.outbound_address, "port_value": port}},
        "traffic_direction": "OUTBOUND",
        "filter_chains": chains,
    }


def translate_listeners(
    index: MeshIndex, proxy: ProxyInfo, scope: Scope | None = None
) -> list[Json]:
    plan = outbound_ports(index, scope)
    listeners: list[Json] = []
    for port in plan.http:
        hcm = {
            "@type": HCM,
            "stat_prefix": f"outbound_{listener_name(proxy, port)}",
            "rds": {"route_config_name": str(port), "config_source": ADS_SOURCE},
            "http_filters": [FAULT_FILTER, CORS_FILTER, ROUTER_FILTER],
        }
        network_filter = {
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm,
        }
        listeners.append(_listener(proxy, port, [{"filters": [network_filter]}]))
    for port, hostname in sorted(plan.tcp.items()):
        prefix = f"outbound_{listener_name(proxy, port)}"
        tcp_proxy = tcp_proxy_config(index, hostname, port, proxy, prefix)
        network_filter = {"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp_proxy}
        listeners.append(_listener(proxy, port, [{"filters": [network_filter]}]))
    for port, hostnames in sorted(plan.tls.items()):
        listener = _listener(proxy, port, tls_filter_chains(index, hostnames, port, proxy))
        listener["listener_filters"] = [TLS_INSPECTOR_FILTER]
        listeners.append(listener)
    return listeners
