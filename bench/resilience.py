"""The resilience features a production route and cluster carry, as Envoy config: retries,
circuit breakers, outlier detection and an active HTTP health check.

`add_resilience(bootstrap)` adds them to every route and cluster of an Envoy bootstrap
dict. The bench's `http1_resilient` row runs the plain HTTP/1.1 topology with them
configured but never triggered (their cost on the happy path); `bench.soak` runs them
against upstreams that die and come back (whether they work).
"""

from __future__ import annotations

import copy
from typing import Any

Json = dict[str, Any]

RETRY_POLICY: Json = {
    "retry_on": "5xx,reset,connect-failure,refused-stream",
    "num_retries": 3,
    "per_try_timeout": "2s",
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": 3,
}

CIRCUIT_BREAKERS: Json = {
    "thresholds": [
        {
            "max_connections": 4096,
            "max_pending_requests": 4096,
            "max_requests": 4096,
            "retry_budget": {"budget_percent": {"value": 25.0}, "min_retry_concurrency": 10},
        }
    ]
}

OUTLIER_DETECTION: Json = {
    "consecutive_5xx": 5,
    "consecutive_gateway_failure": 3,
    "interval": "1s",
    "base_ejection_time": "2s",
    "max_ejection_percent": 50,
}


def health_check(path: str) -> Json:
    """An HTTP check every 500 ms once traffic flows (before the first request Envoy checks
    every `no_traffic_interval`, 60 s by default)."""
    return {
        "timeout": "0.5s",
        "interval": "0.5s",
        "unhealthy_threshold": 2,
        "healthy_threshold": 1,
        "http_health_check": {"path": path},
    }


def add_resilience(bootstrap: Json, *, health_path: str) -> Json:
    """A copy of `bootstrap` whose forwarding routes retry and whose clusters have circuit
    breakers, outlier detection and a health check on `health_path`."""
    out = copy.deepcopy(bootstrap)
    static = out["static_resources"]
    for listener in static.get("listeners", []):
        for chain in listener.get("filter_chains", []):
            for filt in chain.get("filters", []):
                route_config = filt.get("typed_config", {}).get("route_config", {})
                for vhost in route_config.get("virtual_hosts", []):
                    for route in vhost.get("routes", []):
                        if "route" in route:
                            route["route"]["retry_policy"] = copy.deepcopy(RETRY_POLICY)
    for cluster in static.get("clusters", []):
        cluster["circuit_breakers"] = copy.deepcopy(CIRCUIT_BREAKERS)
        cluster["outlier_detection"] = copy.deepcopy(OUTLIER_DETECTION)
        cluster["health_checks"] = [health_check(health_path)]
    return out
