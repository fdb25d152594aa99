"""Envoy's admin text and JSON formats for `/stats` and `/clusters`, as pure functions.

Inputs are what the engine returns (`Engine.stats()`, `Engine.clusters()`) plus the
`server.*` stats the Python side keeps; outputs are the bytes Envoy 1.40 would print
for the same data, so scripts written against Envoy's admin keep working.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "ENGINE_HOST_STATS",
    "GAUGES",
    "format_clusters_json",
    "format_clusters_text",
    "format_stats_json",
    "format_stats_text",
    "is_gauge",
]

#: Stat leaf names that are gauges in Envoy (everything else is a counter), besides
#: every name ending in `_active`.
GAUGES = frozenset(
    {
        "concurrency",
        "live",
        "uptime",
        "state",
        "total_connections",
        "membership_healthy",
        "membership_degraded",
        "membership_excluded",
        "membership_total",
        "max_host_weight",
        "version",
        "config_version",
        "connected_state",
        "expiration_unix_time_seconds",
        "days_until_first_cert_expiring",
        "seconds_until_first_ocsp_response_expiring",
    }
)

# Per-host stats in the order Envoy prints them; unknown ones follow, sorted.
_HOST_GAUGES = ("cx_active", "rq_active", "rq_pending_active")
_HOST_ORDER = (
    "cx_active",
    "cx_connect_fail",
    "cx_total",
    "rq_active",
    "rq_error",
    "rq_pending_active",
    "rq_success",
    "rq_timeout",
    "rq_total",
)


def is_gauge(name: str) -> bool:
    """True if the stat `name` is a gauge (a level) rather than a counter (a running total)."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf.endswith("_active") or leaf in GAUGES


def _select(stats: Mapping[str, int], filter_re: str | None, used_only: bool) -> list[str]:
    names = sorted(stats)
    if filter_re:
        pattern = re.compile(filter_re)
        names = [n for n in names if pattern.search(n)]
    if used_only:
        names = [n for n in names if stats[n]]
    return names


def format_stats_text(
    stats: Mapping[str, int], *, filter_re: str | None = None, used_only: bool = False
) -> str:
    """Envoy's `/stats`: one `name: value` line per stat, sorted by name.

    `filter_re` keeps names matching the regex (Envoy's `?filter=`); `used_only`
    drops zero values (an approximation of Envoy's `?usedonly`).
    """
    return "".join(f"{n}: {stats[n]}\n" for n in _select(stats, filter_re, used_only))


def format_stats_json(
    stats: Mapping[str, int], *, filter_re: str | None = None, used_only: bool = False
) -> str:
    """Envoy's `/stats?format=json`: `{"stats":[{"name":..,"value":..},..]}`, sorted by name."""
    rows = [{"name": n, "value": stats[n]} for n in _select(stats, filter_re, used_only)]
    return json.dumps({"stats": rows}, separators=(",", ":"))


def _host_address(endpoint: Mapping[str, Any]) -> str:
    address = endpoint.get("address")
    if isinstance(address, str):
        return address
    return f"{endpoint.get('host', '')}:{endpoint.get('port', 0)}"


#: `Engine.clusters()` endpoint keys -> Envoy's per-host stat names.
ENGINE_HOST_STATS = {
    "active_requests": "rq_active",
    "requests": "rq_total",
    "failures": "rq_error",
    "connect_failures": "cx_connect_fail",
}


#: `Engine.clusters()` endpoint keys that are integers but not Envoy host stats.
_NOT_HOST_STATS = frozenset({"port", "weight", "priority", "outlier_ejections"})


def _host_stats(endpoint: Mapping[str, Any]) -> list[tuple[str, int]]:
    numeric = {
        ENGINE_HOST_STATS.get(k, k): int(v)
        for k, v in endpoint.items()
        if isinstance(v, int) and not isinstance(v, bool) and k not in _NOT_HOST_STATS
    }
    if "rq_total" in numeric and "rq_error" in numeric and "rq_success" not in numeric:
        numeric["rq_success"] = max(numeric["rq_total"] - numeric["rq_error"], 0)
    ordered = [k for k in _HOST_ORDER if k in numeric]
    ordered += sorted(k for k in numeric if k not in _HOST_ORDER)
    return [(k, numeric[k]) for k in ordered]


def _endpoints(cluster: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    endpoints = cluster.get("endpoints", ())
    return endpoints if isinstance(endpoints, Sequence) else ()


def _health_flags(endpoint: Mapping[str, Any]) -> str:
    """Envoy's `health_flags`: `healthy`, or the failed flags run together."""
    flags = endpoint.get("health_flags")
    if isinstance(flags, str) and flags:
        return flags
    return "healthy" if endpoint.get("healthy", True) else "/failed_active_hc"


def _rate(endpoint: Mapping[str, Any]) -> float:
    rate = endpoint.get("success_rate", -1)
    return float(rate) if isinstance(rate, (int, float)) else -1.0


def _shortest(value: float) -> str:
    """A double as Envoy's `fmt::format("{}")` prints it: shortest form, `-1` not `-1.0`."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _outlier_lines(name: str, outlier: Mapping[str, Any]) -> list[str]:
    # fastmesh does not split local-origin errors, so those two stay at Envoy's -1.
    values = {
        "success_rate_average": outlier.get("success_rate_average", -1),
        "success_rate_ejection_threshold": outlier.get("success_rate_ejection_threshold", -1),
        "local_origin_success_rate_average": -1,
        "local_origin_success_rate_ejection_threshold": -1,
    }
    return [f"{name}::outlier::{key}::{float(v):g}" for key, v in values.items()]


def format_clusters_text(clusters: Iterable[Mapping[str, Any]]) -> str:
    """Envoy's `/clusters`: `cluster::host:port::stat::value` lines, plus the per-cluster
    `observability_name`, `outlier::*` (with outlier detection) and `added_via_api` lines,
    and each host's `hostname`, `health_flags`, `weight`, locality, `priority` and
    success rates, in Envoy's order.

    Each cluster is a mapping with `name`, `endpoints` (mappings with `address`
    `"ip:port"` or `host`+`port`, an optional `weight`, `health_flags`, `priority`,
    `success_rate`, and integer stats, either in Envoy's names or the engine's, see
    `ENGINE_HOST_STATS`) and, when it has outlier detection, `outlier`.
    """
    out: list[str] = []
    for cluster in clusters:
        name = str(cluster.get("name", ""))
        out.append(f"{name}::observability_name::{name}")
        outlier = cluster.get("outlier")
        if isinstance(outlier, Mapping):
            out.extend(_outlier_lines(name, outlier))
        out.append(f"{name}::added_via_api::{str(bool(cluster.get('added_via_api'))).lower()}")
        for endpoint in _endpoints(cluster):
            prefix = f"{name}::{_host_address(endpoint)}"
            out.extend(f"{prefix}::{stat}::{value}" for stat, value in _host_stats(endpoint))
            out.append(f"{prefix}::hostname::{endpoint.get('hostname', '')}")
            out.append(f"{prefix}::health_flags::{_health_flags(endpoint)}")
            out.append(f"{prefix}::weight::{endpoint.get('weight', 1)}")
            out.extend(f"{prefix}::{part}::" for part in ("region", "zone", "sub_zone"))
            out.append(f"{prefix}::canary::false")
            out.append(f"{prefix}::priority::{endpoint.get('priority', 0)}")
            out.append(f"{prefix}::success_rate::{_shortest(_rate(endpoint))}")
            out.append(f"{prefix}::local_origin_success_rate::-1")
    return "".join(line + "\n" for line in out)


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def _health_status(flags: str) -> dict[str, Any]:
    """Envoy's `HostHealthStatus`: a `true` field per failed flag (protobuf JSON omits the
    false ones), and the EDS status, which static and DNS hosts always report HEALTHY."""
    status: dict[str, Any] = {}
    if "/failed_active_hc" in flags:
        status["failed_active_health_check"] = True
    if "/failed_outlier_check" in flags:
        status["failed_outlier_check"] = True
    status["eds_health_status"] = "HEALTHY"
    return status


def format_clusters_json(clusters: Iterable[Mapping[str, Any]]) -> str:
    """Envoy's `/clusters?format=json` (`envoy.admin.v3.Clusters`): `cluster_statuses` with
    `host_statuses`, each with `address.socket_address`, `stats` (zero values omit `value`,
    gauges carry `"type": "GAUGE"`, as protobuf JSON does), `health_status`, `weight`,
    `locality`, and `success_rate` / `priority` when set; the cluster's
    `success_rate_ejection_threshold` when outlier detection computed one."""
    statuses: list[dict[str, Any]] = []
    for cluster in clusters:
        hosts: list[dict[str, Any]] = []
        for endpoint in _endpoints(cluster):
            ip, port = _split_address(_host_address(endpoint))
            stats: list[dict[str, Any]] = []
            for stat, value in _host_stats(endpoint):
                row: dict[str, Any] = {"name": stat}
                if value:
                    row["value"] = str(value)
                if stat in _HOST_GAUGES or stat.endswith("_active"):
                    row["type"] = "GAUGE"
                stats.append(row)
            host: dict[str, Any] = {
                "address": {"socket_address": {"address": ip, "port_value": port}},
                "stats": stats,
                "health_status": _health_status(_health_flags(endpoint)),
                "weight": endpoint.get("weight", 1),
                "locality": {},
            }
            if _rate(endpoint) >= 0:
                host["success_rate"] = {"value": _rate(endpoint)}
            if endpoint.get("priority", 0):
                host["priority"] = endpoint["priority"]
            hosts.append(host)
        name = str(cluster.get("name", ""))
        status: dict[str, Any] = {"name": name, "host_statuses": hosts}
        outlier = cluster.get("outlier")
        if isinstance(outlier, Mapping):
            # Envoy sets it only when positive (a computed threshold).
            threshold = float(outlier.get("success_rate_ejection_threshold", -1))
            if threshold > 0:
                status["success_rate_ejection_threshold"] = {"value": threshold}
        status["observability_name"] = name
        statuses.append(status)
    return json.dumps({"cluster_statuses": statuses}, indent=1) + "\n"
