"""A sidecar's bootstrap: nothing but its identity, its admin address and ADS to the control
plane. Listeners, routes, clusters and endpoints all come over xDS."""

from __future__ import annotations

from typing import Any

from fastmesh.up._layout import (
    ADMIN_PORT,
    NAMESPACE,
    XDS_PORT,
    Layout,
    Workload,
)

__all__ = ["bootstrap"]

_HTTP2 = {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }
}


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _metadata(w: Workload) -> dict[str, Any]:
    return {
        "NAMESPACE": NAMESPACE,
        "WORKLOAD_NAME": w.name,
        "SERVICE_ACCOUNT": w.app,
        "LABELS": {"app": w.app, "version": w.version},
        # Without iptables capture, each sidecar binds its outbound ports on its own address.
        "FASTMESH_OUTBOUND_ADDRESS": w.address,
        # For inbound listeners: service port name -> the app's port on 127.0.0.1. Unused
        # until the control plane generates them (the app then moves to 127.0.0.1).
        "FASTMESH_APP_PORTS": {"http": w.app_port},
    }


def bootstrap(layout: Layout, w: Workload) -> dict[str, Any]:
    ads = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {
            "id": f"sidecar~{w.address}~{w.name}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local",
            "cluster": w.app,
            "metadata": _metadata(w),
        },
        "admin": {"address": _address(w.address, ADMIN_PORT)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
                "set_node_on_first_message_only": True,
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds-grpc",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": _HTTP2,
                    "load_assignment": {
                        "cluster_name": "xds-grpc",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": _address(layout.controlplane, XDS_PORT)
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ]
        },
    }
