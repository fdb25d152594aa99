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


def _host_stats(endpoint: Mapping[str, Any]) -> list[tuple[str, int]]:
    numeric = {
        ENGINE_HOST_STATS.get(k, k): int(v)
        for k, v in endpoint.items()
        if isinstance(v, int) and not isinstance(v, bool) and k not in ("port", "weight")
    }
    if "rq_total" in numeric and "rq_error" in numeric and "rq_success" not in numeric:
        numeric["rq_success"] = max(numeric["rq_total"] - numeric["rq_error"], 0)
    ordered = [k for k in _HOST_ORDER if k in numeric]
    ordered += sorted(k for k in numeric if k not in _HOST_ORDER)
    return [(k, numeric[k]) for k in ordered]


def _endpoints(cluster: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    endpoints = cluster.get("endpoints", ())
    return endpoints if isinstance(endpoints, Sequence) else ()


def _health(endpoint: Mapping[str, Any]) -> str:
    healthy = endpoint.get("healthy", True)
    return "healthy" if healthy else "/failed_active_hc"


def format_clusters_text(clusters: Iterable[Mapping[str, Any]]) -> str:
    """Envoy's `/clusters`: `cluster::host:port::stat::value` lines, plus the per-cluster
    `observability_name` and `added_via_api` lines and each host's `health_flags` and `weight`.

    Each cluster is a mapping with `name` and `endpoints` (mappings with `address`
    `"ip:port"` or `host`+`port`, an optional `weight`, and integer stats, either in
    Envoy's names or the engine's, see `ENGINE_HOST_STATS`).
    """
    out: list[str] = []
    for cluster in clusters:
        name = str(cluster.get("name", ""))
        out.append(f"{name}::observability_name::{name}")
        out.append(f"{name}::added_via_api::{str(bool(cluster.get('added_via_api'))).lower()}")
        for endpoint in _endpoints(cluster):
            prefix = f"{name}::{_host_address(endpoint)}"
            out.extend(f"{prefix}::{stat}::{value}" for stat, value in _host_stats(endpoint))
            out.append(f"{prefix}::hostname::{endpoint.get('hostname', '')}")
            out.append(f"{prefix}::health_flags::{_health(endpoint)}")
            out.append(f"{prefix}::weight::{endpoint.get('weight', 1)}")
    return "".join(line + "\n" for line in out)


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def format_clusters_json(clusters: Iterable[Mapping[str, Any]]) -> str:
    """Envoy's `/clusters?format=json` (`envoy.admin.v3.Clusters`): `cluster_statuses` with
    `host_statuses`, each with `address.socket_address`, `stats` (zero values omit `value`,
    gauges carry `"type": "GAUGE"`, as protobuf JSON does), `health_status` and `weight`."""
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
            hosts.append(
                {
                    "address": {"socket_address": {"address": ip, "port_value": port}},
                    "stats": stats,
                    "health_status": {
                        "eds_health_status": "HEALTHY"
                        if endpoint.get("healthy", True)
                        else "UNHEALTHY"
                    },
                    "weight": endpoint.get("weight", 1),
                }
            )
        name = str(cluster.get("name", ""))
        statuses.append({"name": name, "host_statuses": hosts, "observability_name": name})
    return json.dumps({"cluster_statuses": statuses}, indent=1) + "\n"
