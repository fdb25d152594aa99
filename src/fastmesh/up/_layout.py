"""Who runs in the demo mesh and where: one loopback address per workload, fixed ports on it.

Every process of one `fastmesh up` lives on its own 127.0.N.0/24, so the commands it prints
stay short and two meshes (or tests) on one machine do not collide: `pick_subnet` probes
each address:port before choosing N.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

__all__ = [
    "ADMIN_PORT",
    "INBOUND_PORT",
    "NAMESPACE",
    "SERVICES",
    "SERVICE_PORT",
    "XDS_PORT",
    "Layout",
    "Workload",
    "pick_subnet",
]

NAMESPACE = "default"
#: Every service's port, so every sidecar's outbound listener: `<sidecar address>:9080`.
SERVICE_PORT = 9080
#: Apps listen on `APP_PORT_BASE + 10 * N + i` (workload 127.0.N.i): a port of its own per
#: workload and per mesh, so the apps can all move to 127.0.0.1 behind inbound listeners.
APP_PORT_BASE = 20000
#: Allotted for the sidecar's inbound listener (the WorkloadEntry port once the control plane
#: generates inbound listeners; see `_mesh.workload_entry`).
INBOUND_PORT = 15006
#: Each sidecar's admin API, on its workload's address (Istio's port).
ADMIN_PORT = 15000
#: The control plane's ADS port, on 127.0.N.1 (istiod's port).
XDS_PORT = 15010

#: service -> its versions (one workload each). `reviews` is the three-version service.
SERVICES: dict[str, tuple[str, ...]] = {
    "frontend": ("v1",),
    "details": ("v1",),
    "reviews": ("v1", "v2", "v3"),
    "ratings": ("v1",),
}


@dataclass(frozen=True)
class Workload:
    app: str
    version: str
    address: str
    app_port: int

    @property
    def name(self) -> str:
        return f"{self.app}-{self.version}"


@dataclass(frozen=True)
class Layout:
    subnet: int

    @property
    def controlplane(self) -> str:
        return f"127.0.{self.subnet}.1"

    @property
    def workloads(self) -> list[Workload]:
        versions = [(app, v) for app, vs in SERVICES.items() for v in vs]
        return [
            Workload(app, v, f"127.0.{self.subnet}.{i}", APP_PORT_BASE + 10 * self.subnet + i)
            for i, (app, v) in enumerate(versions, 2)
        ]

    def workload(self, name: str) -> Workload:
        return next(w for w in self.workloads if w.name == name)

    def endpoints(self) -> list[tuple[str, int]]:
        """Every address:port this mesh binds."""
        ports = (SERVICE_PORT, INBOUND_PORT, ADMIN_PORT)
        return (
            [(self.controlplane, XDS_PORT)]
            + [(w.address, p) for w in self.workloads for p in ports]
            + [(host, w.app_port) for w in self.workloads for host in (w.address, "127.0.0.1")]
        )


def _free(address: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def pick_subnet(first: int = 10) -> Layout:
    """The first 127.0.N.0/24 (N from `first`) where every port of the mesh is free."""
    for n in range(first, 255):
        layout = Layout(n)
        if all(_free(a, p) for a, p in layout.endpoints()):
            return layout
    raise RuntimeError(f"no free loopback subnet between 127.0.{first}.0 and 127.0.254.0")
