"""Parse a DestinationRule `trafficPolicy`: loadBalancer, connectionPool, outlierDetection, tls."""

from __future__ import annotations

from typing import Any

from ._fields import Fields
from ._model import ConnectionPool, ConsistentHash, LoadBalancer, OutlierDetection, TrafficPolicy

__all__ = ["LB_SIMPLE", "TLS_MODES", "parse_traffic_policy"]

#: `loadBalancer.simple` values fastmesh translates (Istio's names).
LB_SIMPLE = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM")
#: DestinationRule `tls.mode` values fastmesh translates.
TLS_MODES = ("ISTIO_MUTUAL", "DISABLE")
_MAX = 2**32 - 1


def _consistent_hash(f: Fields, obj: Any, path: str) -> ConsistentHash | None:
    entry = f.mapping(obj, path, required=True)
    f.only(entry, path, {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"})
    if len(entry) != 1:
        f.problem(
            path,
            "expected exactly one of httpHeaderName, httpCookie, useSourceIp, "
            "httpQueryParameterName",
        )
        return None
    if "httpHeaderName" in entry:
        name = f.string(entry["httpHeaderName"], f"{path}.httpHeaderName", required=True)
        return ConsistentHash("header", name.lower())
    if "httpQueryParameterName" in entry:
        name = f.string(
            entry["httpQueryParameterName"], f"{path}.httpQueryParameterName", required=True
        )
        return ConsistentHash("query", name)
    if "useSourceIp" in entry:
        if entry["useSourceIp"] is not True:
            f.problem(f"{path}.useSourceIp", "expected true")
        return ConsistentHash("source_ip")
    cookie = f.mapping(entry["httpCookie"], f"{path}.httpCookie", required=True)
    f.only(cookie, f"{path}.httpCookie", {"name", "ttl"})
    name = f.string(cookie.get("name"), f"{path}.httpCookie.name", required=True)
    return ConsistentHash("cookie", name, f.duration(cookie.get("ttl"), f"{path}.httpCookie.ttl"))


def _load_balancer(f: Fields, obj: Any, path: str) -> LoadBalancer | None:
    entry = f.mapping(obj, path)
    if not entry:
        return None
    f.only(entry, path, {"simple", "consistentHash"})
    if ("simple" in entry) == ("consistentHash" in entry):
        f.problem(path, "expected exactly one of simple, consistentHash")
    simple = f.string(entry.get("simple"), f"{path}.simple")
    if simple and simple not in LB_SIMPLE:
        f.problem(f"{path}.simple", f"expected one of {', '.join(LB_SIMPLE)}")
        simple = ""
    ch = (
        _consistent_hash(f, entry["consistentHash"], f"{path}.consistentHash")
        if ("consistentHash" in entry)
        else None
    )
    return LoadBalancer(simple, ch)


def _connection_pool(f: Fields, obj: Any, path: str) -> ConnectionPool | None:
    entry = f.mapping(obj, path)
    if not entry:
        return None
    f.only(entry, path, {"tcp", "http"})
    tcp = f.mapping(entry.get("tcp"), f"{path}.tcp")
    f.only(tcp, f"{path}.tcp", {"maxConnections", "connectTimeout"})
    http = f.mapping(entry.get("http"), f"{path}.http")
    f.only(
        http,
        f"{path}.http",
        {
            "http1MaxPendingRequests",
            "http2MaxRequests",
            "maxRequestsPerConnection",
            "maxRetries",
            "idleTimeout",
        },
    )

    def count(section: dict[str, Any], key: str, where: str) -> int | None:
        value = section.get(key)
        return None if value is None else f.integer(value, f"{path}.{where}.{key}", lo=1, hi=_MAX)

    return ConnectionPool(
        max_connections=count(tcp, "maxConnections", "tcp"),
        connect_timeout=f.duration(tcp.get("connectTimeout"), f"{path}.tcp.connectTimeout"),
        max_pending_requests=count(http, "http1MaxPendingRequests", "http"),
        max_requests=count(http, "http2MaxRequests", "http"),
        max_requests_per_connection=count(http, "maxRequestsPerConnection", "http"),
        max_retries=count(http, "maxRetries", "http"),
        idle_timeout=f.duration(http.get("idleTimeout"), f"{path}.http.idleTimeout"),
    )


def _outlier_detection(f: Fields, obj: Any, path: str) -> OutlierDetection | None:
    entry = f.mapping(obj, path)
    if not entry:
        return None
    f.only(
        entry,
        path,
        {
            "consecutive5xxErrors",
            "consecutiveGatewayErrors",
            "interval",
            "baseEjectionTime",
            "maxEjectionPercent",
            "minHealthPercent",
        },
    )

    def number(key: str, hi: int) -> int | None:
        value = entry.get(key)
        return None if value is None else f.integer(value, f"{path}.{key}", lo=0, hi=hi)

    return OutlierDetection(
        consecutive_5xx=number("consecutive5xxErrors", _MAX),
        consecutive_gateway_errors=number("consecutiveGatewayErrors", _MAX),
        interval=f.duration(entry.get("interval"), f"{path}.interval"),
        base_ejection_time=f.duration(entry.get("baseEjectionTime"), f"{path}.baseEjectionTime"),
        max_ejection_percent=number("maxEjectionPercent", 100),
        min_health_percent=number("minHealthPercent", 100),
    )


def parse_traffic_policy(
    f: Fields, obj: Any, path: str, *, port_level: bool = True
) -> TrafficPolicy | None:
    entry = f.mapping(obj, path)
    if not entry:
        return None
    known = {"loadBalancer", "connectionPool", "outlierDetection", "tls"}
    f.only(entry, path, known | ({"portLevelSettings"} if port_level else {"port"}))
    return TrafficPolicy(
        _load_balancer(f, entry.get("loadBalancer"), f"{path}.loadBalancer"),
        _connection_pool(f, entry.get("connectionPool"), f"{path}.connectionPool"),
        _outlier_detection(f, entry.get("outlierDetection"), f"{path}.outlierDetection"),
        _tls_mode(f, entry.get("tls"), f"{path}.tls"),
        _port_settings(f, entry.get("portLevelSettings"), f"{path}.portLevelSettings"),
    )


def _port_settings(f: Fields, obj: Any, path: str) -> dict[int, TrafficPolicy]:
    """`portLevelSettings[]`: each `port.number` with the policy fields for it."""
    out: dict[int, TrafficPolicy] = {}
    for i, raw in enumerate(f.seq(obj, path)):
        p = f"{path}[{i}]"
        entry = f.mapping(raw, p, required=True)
        port = f.mapping(entry.get("port"), f"{p}.port", required=True)
        f.only(port, f"{p}.port", {"number"})
        number = f.integer(port.get("number"), f"{p}.port.number", lo=1, hi=65535, required=True)
        if number in out:
            f.problem(f"{p}.port.number", f"port {number} is already set")
        policy = parse_traffic_policy(f, entry, p, port_level=False)
        if number and policy is not None:
            out[number] = policy
    return out


def _tls_mode(f: Fields, obj: Any, path: str) -> str | None:
    """`tls.mode`: ISTIO_MUTUAL (the mesh's certificates) or DISABLE; SIMPLE and MUTUAL
    (certificates of the operator's own) are not translated."""
    entry = f.mapping(obj, path)
    if not entry:
        return None
    f.only(entry, path, {"mode"})
    mode = f.string(entry.get("mode"), f"{path}.mode", required=True)
    if mode and mode not in TLS_MODES:
        f.problem(f"{path}.mode", f"expected one of {', '.join(TLS_MODES)}, got {mode!r}")
        return None
    return mode or None
