"""Builders of small Envoy v3 bootstrap documents for translator tests (plain dicts)."""

from __future__ import annotations

from typing import Any

HCM_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
TCP_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

#: Path of the HCM typed_config of the first listener.
HCM = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
#: Path of the first listener's inline route config.
RC = f"{HCM}.route_config"


def socket(address: str = "127.0.0.1", port: int = 10000) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def route(cluster: str = "backend", prefix: str = "/", **action: Any) -> dict[str, Any]:
    return {"match": {"prefix": prefix}, "route": {"cluster": cluster, **action}}


def vhost(
    name: str = "all",
    domains: list[str] | None = None,
    routes: list[Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "domains": ["*"] if domains is None else domains,
        "routes": [route()] if routes is None else routes,
        **extra,
    }


def hcm(virtual_hosts: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An http_connection_manager typed_config with a router filter."""
    return {
        "@type": HCM_TYPE,
        "stat_prefix": "ingress",
        "route_config": {
            "name": "local",
            "virtual_hosts": [vhost()] if virtual_hosts is None else virtual_hosts,
        },
        "http_filters": [
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
        ],
        **fields,
    }


def listener(
    typed_config: dict[str, Any] | None = None,
    name: str = "ingress",
    port: int = 10000,
    filter_name: str = "envoy.filters.network.http_connection_manager",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "address": socket(port=port),
        "filter_chains": [
            {"filters": [{"name": filter_name, "typed_config": typed_config or hcm()}]}
        ],
        **extra,
    }


def tcp_listener(
    cluster: str = "backend", name: str = "tcp", port: int = 10001, **fields: Any
) -> dict[str, Any]:
    cfg = {"@type": TCP_TYPE, "stat_prefix": name, "cluster": cluster, **fields}
    return listener(cfg, name=name, port=port, filter_name="envoy.filters.network.tcp_proxy")


def cluster(name: str = "backend", *endpoints: tuple[str, int], **extra: Any) -> dict[str, Any]:
    eps = endpoints or (("127.0.0.1", 8080),)
    return {
        "name": name,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": socket(h, p)}} for h, p in eps]}
            ],
        },
        **extra,
    }


def bootstrap(
    listeners: list[Any] | None = None, clusters: list[Any] | None = None, **top: Any
) -> dict[str, Any]:
    return {
        "static_resources": {
            "listeners": [listener()] if listeners is None else listeners,
            "clusters": [cluster()] if clusters is None else clusters,
        },
        **top,
    }
