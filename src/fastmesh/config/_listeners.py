"""Envoy `Listener` (http_connection_manager or tcp_proxy) -> native listener."""

from __future__ import annotations

from typing import Any, Final, cast

from . import _speedups
from ._address import host_port, socket_address
from ._errors import Issues
from ._fields import (
    NOT_SUPPORTED,
    Doc,
    at,
    get_bool,
    get_duration_ms,
    get_enum,
    get_int,
    get_list,
    get_map,
    get_str,
    item,
    obj,
    typed_config,
)
from ._filters import http_filters
from ._routes import ClusterRefs
from ._xds import XdsLookup, rds_route_config

__all__ = ["HCM_NAME", "TCP_PROXY_NAME", "translate_listener"]

HCM_NAME: Final = "envoy.filters.network.http_connection_manager"
HCM_TYPE: Final = (
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
TCP_PROXY_NAME: Final = "envoy.filters.network.tcp_proxy"
TCP_PROXY_TYPE: Final = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
LISTENER_TYPE: Final = "type.googleapis.com/envoy.config.listener.v3.Listener"

_LISTENER: Final = frozenset({"name", "address", "filter_chains", "@type", "traffic_direction"})
# Informational in Envoy (stats and tracing); accepted and ignored.
_DIRECTIONS: Final = {"UNSPECIFIED": "", "INBOUND": "", "OUTBOUND": ""}
_CHAIN: Final = frozenset({"filters", "name"})
_FILTER: Final = frozenset({"name", "typed_config"})
_HCM: Final = frozenset(
    {
        "stat_prefix",
        "codec_type",
        "route_config",
        "rds",
        "http_filters",
        "server_name",
        "common_http_protocol_options",
        "max_request_headers_kb",
        "request_headers_timeout",
        "http2_protocol_options",
        "use_remote_address",
        "stream_idle_timeout",
    }
)
_HCM_COMMON: Final = frozenset({"idle_timeout", "max_headers_count"})
_HCM_H2: Final = frozenset({"max_concurrent_streams"})
_TCP: Final = frozenset({"stat_prefix", "cluster", "idle_timeout"})
_CODECS: Final = {"AUTO": "auto", "HTTP1": "http1", "HTTP2": "http2"}
_U32_MAX: Final = 2**32 - 1


def _hcm(
    issues: Issues, cfg: Doc, path: str, refs: ClusterRefs, xds: XdsLookup | None
) -> dict[str, Any] | None:
    stat_prefix = get_str(issues, cfg, "stat_prefix", path, required=True, non_empty=True)
    out: dict[str, Any] = {
        "type": "http",
        "stat_prefix": stat_prefix,
        "codec_type": get_enum(
            issues, cfg, "codec_type", path, _CODECS, "auto", rejected={"HTTP3": NOT_SUPPORTED}
        ),
    }
    server_name = get_str(issues, cfg, "server_name", path)
    if server_name is not None:
        out["server_name"] = server_name
    if get_bool(issues, cfg, "use_remote_address", path):
        out["use_remote_address"] = True
    kb = get_int(issues, cfg, "max_request_headers_kb", path, 1, 8192)
    if kb is not None:
        out["max_request_headers_kb"] = kb
    rht = get_duration_ms(issues, cfg, "request_headers_timeout", path)
    if rht:  # Envoy: 0 disables, the native default
        out["request_headers_timeout_ms"] = rht
    common = get_map(issues, cfg, "common_http_protocol_options", path, _HCM_COMMON)
    if common is not None:
        cp = at(path, "common_http_protocol_options")
        idle = get_duration_ms(issues, common, "idle_timeout", cp)
        if idle is not None:
            out["idle_timeout_ms"] = idle  # 0 = disabled, as in Envoy
        count = get_int(issues, common, "max_headers_count", cp, 1, _U32_MAX)
        if count is not None:
            out["max_request_headers_count"] = count
    h2 = get_map(issues, cfg, "http2_protocol_options", path, _HCM_H2)
    if h2 is not None:
        streams = get_int(
            issues, h2, "max_concurrent_streams", at(path, "http2_protocol_options"), 1, 2**31 - 1
        )
        if streams is not None:
            out["max_concurrent_streams"] = streams
    stream_idle = get_duration_ms(issues, cfg, "stream_idle_timeout", path)
    if stream_idle is not None:
        out["stream_idle_timeout_ms"] = stream_idle  # 0 = disabled, as in Envoy
    chain, filter_kinds = http_filters(
        issues, list(get_list(issues, cfg, "http_filters", path)), at(path, "http_filters")
    )
    if chain:
        out["http_filters"] = chain
    if "route_config" in cfg:
        if "rds" in cfg:
            issues.add(at(path, "rds"), "set either route_config or rds, not both")
        raw_rc, rc_path = cast(Doc, cfg["route_config"]), at(path, "route_config")
    elif "rds" in cfg:
        found = rds_route_config(issues, cfg, path, xds)
        if found is None:
            return None
        raw_rc, rc_path = found
    else:
        issues.add(at(path, "route_config"), "required field is missing (route_config or rds)")
        return None
    rc = _speedups.translate_route_config(issues, raw_rc, rc_path, refs, filter_kinds)
    if rc is None or stat_prefix is None:
        return None
    out["route_config"] = rc
    return out


def _tcp(issues: Issues, cfg: Doc, path: str, refs: ClusterRefs) -> dict[str, Any] | None:
    stat_prefix = get_str(issues, cfg, "stat_prefix", path, required=True, non_empty=True)
    cluster = get_str(issues, cfg, "cluster", path, required=True, non_empty=True)
    if cluster is not None:
        refs.append((at(path, "cluster"), cluster))
    out: dict[str, Any] = {"type": "tcp", "stat_prefix": stat_prefix, "cluster": cluster}
    idle = get_duration_ms(issues, cfg, "idle_timeout", path)
    if idle is not None:
        out["idle_timeout_ms"] = idle  # 0 = disabled, as in Envoy
    return None if stat_prefix is None or cluster is None else out


def _network_filter(
    issues: Issues, raw: object, path: str, refs: ClusterRefs, xds: XdsLookup | None
) -> dict[str, Any] | None:
    f = obj(issues, raw, path, _FILTER)
    if f is None:
        return None
    name = get_str(issues, f, "name", path, required=True)
    if name == HCM_NAME:
        cfg = typed_config(issues, f, "typed_config", path, HCM_TYPE, _HCM)
        return None if cfg is None else _hcm(issues, cfg, at(path, "typed_config"), refs, xds)
    if name == TCP_PROXY_NAME:
        cfg = typed_config(issues, f, "typed_config", path, TCP_PROXY_TYPE, _TCP)
        return None if cfg is None else _tcp(issues, cfg, at(path, "typed_config"), refs)
    if name is not None:
        issues.add(
            at(path, "name"),
            f"network filter {name!r} is {NOT_SUPPORTED}; expected {HCM_NAME} or {TCP_PROXY_NAME}",
        )
    return None


def translate_listener(
    issues: Issues,
    raw: object,
    path: str,
    index: int,
    refs: ClusterRefs,
    xds: XdsLookup | None = None,
) -> dict[str, Any] | None:
    """An Envoy `Listener` at `path` -> native `Listener`; None if it has problems.

    `xds` holds the RDS resources an HCM with `rds` takes its routes from.
    """
    lst = obj(issues, raw, path, _LISTENER)
    if lst is None:
        return None
    if "@type" in lst and lst["@type"] != LISTENER_TYPE:
        issues.add(at(path, "@type"), f'expected "{LISTENER_TYPE}", got {lst["@type"]!r}')
    get_enum(issues, lst, "traffic_direction", path, _DIRECTIONS, "")
    # Envoy names unnamed static listeners with a UUID; a stable name keeps the socket on reload.
    name = get_str(issues, lst, "name", path, non_empty=True)
    if name is None and "name" not in lst:
        name = f"listener_{index}"
    address = None
    if "address" not in lst:
        issues.add(at(path, "address"), "required field is missing")
    else:
        address = socket_address(
            issues, lst["address"], at(path, "address"), ip_only=True, port_min=0
        )
    cpath = at(path, "filter_chains")
    chains = get_list(issues, lst, "filter_chains", path, required=True)
    filter_: dict[str, Any] | None = None
    if len(chains) > 1:
        issues.add(cpath, f"expected exactly one filter chain, got {len(chains)} ({NOT_SUPPORTED})")
    elif chains:
        p = item(cpath, 0)
        chain = obj(issues, chains[0], p, _CHAIN)
        if chain is not None:
            filters = get_list(issues, chain, "filters", p, required=True)
            if len(filters) != 1:
                issues.add(
                    at(p, "filters"), f"expected exactly one network filter, got {len(filters)}"
                )
            else:
                filter_ = _network_filter(issues, filters[0], item(at(p, "filters"), 0), refs, xds)
    elif isinstance(lst.get("filter_chains"), list):
        issues.add(cpath, "expected exactly one filter chain, got 0")
    if name is None or address is None or filter_ is None:
        return None
    return {"name": name, "address": host_port(*address), "filter": filter_}
