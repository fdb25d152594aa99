"""Builders for Envoy bootstrap configs as plain dicts, so a test states its topology in a
few lines. The output is standard Envoy v3 API: it runs under real Envoy and fastmesh-proxy.

    cfg = bootstrap(
        admin_port=free_port(),
        listeners=[http_listener("ingress", port, [virtual_host("all", ["*"], [
            route(prefix("/"), cluster="backend"),
        ])])],
        clusters=[cluster("backend", [("127.0.0.1", upstream.port)])],
    )
"""

from __future__ import annotations

from typing import Any

import yaml

Json = dict[str, Any]

HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HTTP_PROTOCOL_OPTIONS_TYPE = (
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)


def socket_address(port: int, host: str = "127.0.0.1") -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def to_yaml(config: Json) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def bootstrap(*, admin_port: int, listeners: list[Json], clusters: list[Json]) -> Json:
    """A static bootstrap: admin on 127.0.0.1:`admin_port`, the given listeners and clusters."""
    return {
        "admin": {"address": socket_address(admin_port)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


# --- HTTP routes ---------------------------------------------------------------------------


def prefix(value: str, **extra: Any) -> Json:
    return {"prefix": value, **extra}


def path(value: str, **extra: Any) -> Json:
    return {"path": value, **extra}


def regex(value: str, **extra: Any) -> Json:
    return {"safe_regex": {"regex": value}, **extra}


def header_exact(name: str, value: str, *, invert: bool = False) -> Json:
    matcher: Json = {"name": name, "string_match": {"exact": value}}
    if invert:
        matcher["invert_match"] = True
    return matcher


def header_present(name: str, present: bool = True) -> Json:
    return {"name": name, "present_match": present}


def header_values(headers: dict[str, str], *, append: bool = False) -> list[Json]:
    """`request_headers_to_add` / `response_headers_to_add` entries.

    append=False overwrites an existing value (Envoy `OVERWRITE_IF_EXISTS_OR_ADD`),
    append=True adds another value (`APPEND_IF_EXISTS_OR_ADD`).
    """
    action = "APPEND_IF_EXISTS_OR_ADD" if append else "OVERWRITE_IF_EXISTS_OR_ADD"
    return [
        {"header": {"key": key, "value": value}, "append_action": action}
        for key, value in headers.items()
    ]


def route(
    match: Json,
    *,
    cluster: str | None = None,
    direct: tuple[int, str | None] | None = None,
    timeout_ms: int | None = None,
    prefix_rewrite: str | None = None,
    host_rewrite: str | None = None,
    headers: list[Json] | None = None,
    name: str | None = None,
    request_headers_to_add: dict[str, str] | None = None,
    request_headers_to_remove: list[str] | None = None,
    response_headers_to_add: dict[str, str] | None = None,
    response_headers_to_remove: list[str] | None = None,
) -> Json:
    """One route: forward to `cluster`, or answer `direct=(status, body or None)`."""
    if (cluster is None) == (direct is None):
        raise ValueError("a route needs exactly one of cluster= or direct=")
    out: Json = {}
    if name is not None:
        out["name"] = name
    out["match"] = dict(match)
    if headers:
        out["match"]["headers"] = headers
    if cluster is not None:
        action: Json = {"cluster": cluster}
        if timeout_ms is not None:
            action["timeout"] = f"{timeout_ms / 1000:.3f}s"
        if prefix_rewrite is not None:
            action["prefix_rewrite"] = prefix_rewrite
        if host_rewrite is not None:
            action["host_rewrite_literal"] = host_rewrite
        out["route"] = action
    else:
        assert direct is not None
        status, body = direct
        response: Json = {"status": status}
        if body is not None:
            response["body"] = {"inline_string": body}
        out["direct_response"] = response
    _add_header_mutation(
        out,
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
    )
    return out


def virtual_host(
    name: str,
    domains: list[str],
    routes: list[Json],
    *,
    request_headers_to_add: dict[str, str] | None = None,
    request_headers_to_remove: list[str] | None = None,
    response_headers_to_add: dict[str, str] | None = None,
    response_headers_to_remove: list[str] | None = None,
) -> Json:
    out: Json = {"name": name, "domains": domains, "routes": routes}
    _add_header_mutation(
        out,
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
    )
    return out


def _add_header_mutation(
    out: Json,
    req_add: dict[str, str] | None,
    req_remove: list[str] | None,
    resp_add: dict[str, str] | None,
    resp_remove: list[str] | None,
) -> None:
    if req_add:
        out["request_headers_to_add"] = header_values(req_add)
    if req_remove:
        out["request_headers_to_remove"] = req_remove
    if resp_add:
        out["response_headers_to_add"] = header_values(resp_add)
    if resp_remove:
        out["response_headers_to_remove"] = resp_remove


# --- listeners -----------------------------------------------------------------------------


def http_listener(
    name: str,
    port: int,
    virtual_hosts: list[Json],
    *,
    stat_prefix: str | None = None,
    codec_type: str = "AUTO",
    max_request_headers_kb: int | None = None,
    route_config_name: str = "local_route",
    **route_config_extra: Any,
) -> Json:
    """A listener with an HTTP connection manager, an inline route config and the router."""
    hcm: Json = {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix or name,
        "codec_type": codec_type,
        "route_config": {
            "name": route_config_name,
            "virtual_hosts": virtual_hosts,
            **route_config_extra,
        },
        "http_filters": [
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
        ],
    }
    if max_request_headers_kb is not None:
        hcm["max_request_headers_kb"] = max_request_headers_kb
    return {
        "name": name,
        "address": socket_address(port),
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def tcp_listener(
    name: str, port: int, cluster_name: str, *, stat_prefix: str | None = None
) -> Json:
    return {
        "name": name,
        "address": socket_address(port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": TCP_PROXY_TYPE,
                            "stat_prefix": stat_prefix or name,
                            "cluster": cluster_name,
                        },
                    }
                ]
            }
        ],
    }


# --- clusters ------------------------------------------------------------------------------


def cluster(
    name: str,
    endpoints: list[tuple[str, int]],
    *,
    http2: bool = False,
    type: str = "STATIC",
    lb_policy: str = "ROUND_ROBIN",
    connect_timeout_s: float = 1.0,
) -> Json:
    """A cluster of `(host, port)` endpoints; `http2=True` speaks h2c to them."""
    out: Json = {
        "name": name,
        "type": type,
        "connect_timeout": f"{connect_timeout_s}s",
        "lb_policy": lb_policy,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": socket_address(port, host)}}
                        for host, port in endpoints
                    ]
                }
            ],
        },
    }
    if http2:
        out["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return out
