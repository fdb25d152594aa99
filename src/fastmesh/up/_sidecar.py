"""A sidecar's bootstrap: nothing but its identity, its admin address and ADS to the control
plane. Listeners, routes, clusters and endpoints all come over xDS."""

from __future__ import annotations

from typing import Any

from fastmesh.controlplane import sidecar_bootstrap
from fastmesh.up._layout import (
    ADMIN_PORT,
    NAMESPACE,
    XDS_PORT,
    Layout,
    Workload,
)

__all__ = ["bootstrap"]


def _metadata(w: Workload) -> dict[str, Any]:
    return {
        "NAMESPACE": NAMESPACE,
        "WORKLOAD_NAME": w.name,
        "SERVICE_ACCOUNT": w.app,
        "LABELS": {"app": w.app, "version": w.version},
        # Without iptables capture, each sidecar binds its outbound ports on its own address.
        "FASTMESH_OUTBOUND_ADDRESS": w.address,
        # For the inbound listeners: service port name -> the app's port on 127.0.0.1.
        "FASTMESH_APP_PORTS": {"http": w.app_port},
    }


def bootstrap(layout: Layout, w: Workload) -> dict[str, Any]:
    return sidecar_bootstrap(
        node_id=f"sidecar~{w.address}~{w.name}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local",
        cluster=w.app,
        metadata=_metadata(w),
        admin=(w.address, ADMIN_PORT),
        control_planes=[(layout.controlplane, XDS_PORT)],
    )
