"""Synthetic large Envoy bootstraps (10k clusters + 10k virtual hosts) for benchmarks.

Real Envoy accepts what this produces; the translator benchmark and the 10k-RSS
benchmark row both use it, so fastmesh and Envoy load the same file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["generate_bootstrap", "write_bootstrap"]

_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_H2 = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _vhost(i: int, n_clusters: int) -> dict[str, Any]:
    cluster = f"service_{i % n_clusters}"
    routes: list[dict[str, Any]] = [
        {
            "name": f"svc{i}_api_v2",
            "match": {
                "prefix": "/api/",
                "headers": [{"name": "x-api-version", "string_match": {"exact": "2"}}],
            },
            "route": {"cluster": cluster, "timeout": "2.5s", "prefix_rewrite": "/v2/"},
            "request_headers_to_add": [
                {"header": {"key": "x-route", "value": f"svc{i}-v2"}},
            ],
        },
        {
            "name": f"svc{i}_health",
            "match": {"path": "/healthz"},
            "direct_response": {"status": 200, "body": {"inline_string": "ok"}},
        },
        {
            "name": f"svc{i}_default",
            "match": {"prefix": "/"},
            "route": {"cluster": cluster, "timeout": "15s"},
        },
    ]
    return {
        "name": f"vhost_{i}",
        "domains": [f"svc{i}.mesh.local", f"svc{i}.mesh.local:8080"],
        "routes": routes,
        "response_headers_to_add": [
            {
                "header": {"key": "x-vhost", "value": str(i)},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }


def _cluster(i: int, endpoints: int) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": f"service_{i}",
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN" if i % 2 else "LEAST_REQUEST",
        "load_assignment": {
            "cluster_name": f"service_{i}",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": _socket(
                                    f"10.{(i >> 8) & 255}.{i & 255}.{e + 1}", 8080 + e
                                )
                            },
                            "load_balancing_weight": 1 + e,
                        }
                        for e in range(endpoints)
                    ]
                }
            ],
        },
    }
    if i % 4 == 0:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _H2,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def generate_bootstrap(
    clusters: int = 10_000,
    vhosts: int = 10_000,
    *,
    endpoints: int = 2,
    port: int = 10000,
    admin_port: int = 9901,
) -> dict[str, Any]:
    """An Envoy bootstrap with `clusters` STATIC clusters and one HTTP listener with
    `vhosts` virtual hosts (3 routes each: header match + rewrite, direct response, default).
    """
    hcm = {
        "@type": _HCM,
        "stat_prefix": "ingress_http",
        "route_config": {
            "name": "mesh_routes",
            "virtual_hosts": [_vhost(i, clusters) for i in range(vhosts)],
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    return {
        "node": {"id": "bench-10k", "cluster": "bench"},
        "admin": {"address": _socket("127.0.0.1", admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress_http",
                    "address": _socket("127.0.0.1", port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [_cluster(i, endpoints) for i in range(clusters)],
        },
    }


def write_bootstrap(
    path: str | Path, clusters: int = 10_000, vhosts: int = 10_000, **kw: Any
) -> Path:
    """Write `generate_bootstrap(...)` to `path`: JSON for `.json`, else YAML."""
    path = Path(path)
    doc = generate_bootstrap(clusters, vhosts, **kw)
    if path.suffix == ".json":
        path.write_text(json.dumps(doc))
    else:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        path.write_text(yaml.dump(doc, Dumper=dumper, sort_keys=False))
    return path
