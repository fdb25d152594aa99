"""Observability: render the engine's counters in Envoy's admin formats and Prometheus."""

from fastmesh.observe.admin_text import (
    format_clusters_json,
    format_clusters_text,
    format_stats_json,
    format_stats_text,
    is_gauge,
)
from fastmesh.observe.prometheus import format_prometheus, prometheus_name

__all__ = [
    "format_clusters_json",
    "format_clusters_text",
    "format_prometheus",
    "format_stats_json",
    "format_stats_text",
    "is_gauge",
    "prometheus_name",
]
