"""The demo mesh's config: Kubernetes Services, Istio WorkloadEntries, and the routing for
`reviews` (a DestinationRule with subsets v1-v3, a VirtualService splitting by weight).

One file per concern under `<dir>/mesh/`, so `fastmesh up shift` and `fastmesh up fault`
rewrite exactly one file and the control plane pushes the change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fastmesh.up._layout import INBOUND_PORT, NAMESPACE, SERVICE_PORT, SERVICES, Layout, Workload

__all__ = [
    "INITIAL_WEIGHTS",
    "fault_file",
    "fault_virtual_service",
    "reviews_virtual_service",
    "routing_file",
    "write_mesh",
    "write_routing",
    "write_yaml",
]

Json = dict[str, Any]
INITIAL_WEIGHTS = {"v1": 50, "v2": 25, "v3": 25}


def _meta(name: str) -> Json:
    return {"name": name, "namespace": NAMESPACE}


def _service(app: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(app),
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": SERVICE_PORT}]},
    }


def workload_entry(w: Workload) -> Json:
    # Peers dial the sidecar's inbound listener (mTLS) on the workload's address; it forwards
    # to the app on 127.0.0.1 (node metadata FASTMESH_APP_PORTS, see _sidecar).
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": _meta(w.name),
        "spec": {
            "address": w.address,
            "labels": {"app": w.app, "version": w.version},
            "ports": {"http": INBOUND_PORT},
            "serviceAccount": w.app,
        },
    }


def _destination_rule(app: str) -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": _meta(app),
        "spec": {
            "host": app,
            "subsets": [{"name": v, "labels": {"version": v}} for v in SERVICES[app]],
        },
    }


def reviews_virtual_service(weights: dict[str, int]) -> Json:
    """`end-user: jason` always reaches v2; everyone else is split by `weights`."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _meta("reviews"),
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "name": "jason",
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
                },
                {
                    "name": "canary",
                    "route": [
                        {"destination": {"host": "reviews", "subset": v}, "weight": w}
                        for v, w in weights.items()
                        if w
                    ],
                },
            ],
        },
    }


def fault_virtual_service(app: str, fault: Json) -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _meta(app),
        "spec": {
            "hosts": [app],
            "http": [{"fault": fault, "route": [{"destination": {"host": app}}]}],
        },
    }


def routing_file(directory: Path) -> Path:
    return directory / "mesh" / "reviews-routing.yaml"


def fault_file(directory: Path, app: str) -> Path:
    return directory / "mesh" / f"{app}-fault.yaml"


def write_yaml(path: Path, *docs: Json) -> None:
    """Atomically (a sibling file, then rename): the control plane never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    tmp.replace(path)


def write_mesh(directory: Path, layout: Layout) -> None:
    mesh = directory / "mesh"
    mesh.mkdir(parents=True, exist_ok=True)
    write_yaml(mesh / "services.yaml", *(_service(app) for app in SERVICES))
    write_yaml(mesh / "workloads.yaml", *(workload_entry(w) for w in layout.workloads))
    write_routing(directory, INITIAL_WEIGHTS)


def write_routing(directory: Path, weights: dict[str, int]) -> Path:
    """reviews' DestinationRule and VirtualService, the whole file (a hand edit is replaced)."""
    path = routing_file(directory)
    write_yaml(path, _destination_rule("reviews"), reviews_virtual_service(weights))
    return path
