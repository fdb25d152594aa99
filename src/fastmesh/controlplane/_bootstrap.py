"""The Envoy bootstrap of a sidecar driven entirely by this control plane: its node (identity
and metadata), its admin address, and ADS for everything else. Envoy and fastmesh-proxy
both take it as it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["XDS_CLUSTER", "sidecar_bootstrap"]

#: The static cluster of the control plane's endpoints (Istio's name).
XDS_CLUSTER = "xds-grpc"
_HTTP2 = {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }
}


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def sidecar_bootstrap(
    *,
    node_id: str,
    cluster: str,
    metadata: Mapping[str, Any],
    admin: tuple[str, int],
    control_planes: Sequence[tuple[str, int]],
    delta: bool = False,
) -> dict[str, Any]:
    """CDS and LDS over ADS (`delta`: incremental) to `control_planes` (replicas, tried in
    turn); RDS, EDS and SDS follow from what those name."""
    ads = {"ads": {}, "resource_api_version": "V3"}
    endpoints = [{"endpoint": {"address": _address(h, p)}} for h, p in control_planes]
    return {
        "node": {"id": node_id, "cluster": cluster, "metadata": dict(metadata)},
        "admin": {"address": _address(*admin)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
                "set_node_on_first_message_only": True,
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {
            "clusters": [
                {
                    "name": XDS_CLUSTER,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": _HTTP2,
                    "load_assignment": {
                        "cluster_name": XDS_CLUSTER,
                        "endpoints": [{"lb_endpoints": endpoints}],
                    },
                }
            ]
        },
    }
