"""Parse the registry's resources: Kubernetes `v1 Service` and Istio `WorkloadEntry`."""

from __future__ import annotations

from typing import Any

from ._fields import Fields
from ._model import Protocol, Service, ServicePort, Workload

__all__ = ["parse_service", "parse_workload_entry", "port_protocol", "workload_fields"]

_PROTOCOLS = {
    "http": Protocol.HTTP,
    "http2": Protocol.HTTP2,
    "grpc": Protocol.GRPC,
    "https": Protocol.TLS,
    "tls": Protocol.TLS,
}


def port_protocol(name: str, app_protocol: str) -> Protocol:
    """Istio's rule: `appProtocol` if set, else the port name's prefix (`http-web`,
    `https`), else TCP."""
    if app_protocol:
        return _PROTOCOLS.get(app_protocol.lower(), Protocol.TCP)
    return _PROTOCOLS.get(name.split("-", 1)[0].lower(), Protocol.TCP)


def parse_service(f: Fields, name: str, namespace: str, spec: dict[str, Any]) -> Service:
    f.only(spec, "spec", {"ports", "selector", "type", "clusterIP"})
    ports: list[ServicePort] = []
    seen: set[int] = set()
    for i, raw in enumerate(f.seq(spec.get("ports"), "spec.ports", required=True)):
        path = f"spec.ports[{i}]"
        entry = f.mapping(raw, path, required=True)
        f.only(entry, path, {"name", "port", "targetPort", "protocol", "appProtocol"})
        number = f.integer(entry.get("port"), f"{path}.port", lo=1, hi=65535, required=True)
        port_name = f.string(entry.get("name"), f"{path}.name", default=f"port-{number}")
        transport = f.string(entry.get("protocol"), f"{path}.protocol", default="TCP")
        if transport != "TCP":
            f.problem(f"{path}.protocol", f"only TCP ports are supported, got {transport!r}")
        app = f.string(entry.get("appProtocol"), f"{path}.appProtocol")
        if app and app.lower() not in (*_PROTOCOLS, "tcp"):
            known = ", ".join((*_PROTOCOLS, "tcp"))
            f.problem(f"{path}.appProtocol", f"expected one of {known}, got {app!r}")
        target = f.integer(entry.get("targetPort"), f"{path}.targetPort", lo=1, hi=65535)
        if number in seen:
            f.problem(f"{path}.port", f"duplicate port {number}")
        seen.add(number)
        ports.append(
            ServicePort(port_name, number, port_protocol(port_name, app), target or number)
        )
    selector = f.labels(spec.get("selector"), "spec.selector")
    return Service(name, namespace, tuple(ports), selector, f.file)


def workload_fields(
    f: Fields, name: str, namespace: str, spec: dict[str, Any], path: str
) -> Workload:
    """A `WorkloadEntry` spec at `path` (a WorkloadEntry's `spec`, or a ServiceEntry's
    `spec.endpoints[i]`, which has the same fields)."""
    known = {"address", "labels", "ports", "serviceAccount", "network", "locality", "weight"}
    f.only(spec, path, known)
    address = f.string(spec.get("address"), f"{path}.address", required=True)
    ports: dict[str, int] = {}
    for port_name, number in f.mapping(spec.get("ports"), f"{path}.ports").items():
        ports[port_name] = f.integer(number, f"{path}.ports.{port_name}", lo=1, hi=65535)
    account = f.string(spec.get("serviceAccount"), f"{path}.serviceAccount", default="default")
    labels = f.labels(spec.get("labels"), f"{path}.labels")
    weight = f.integer(spec.get("weight"), f"{path}.weight", lo=0, hi=2**32 - 1)
    return Workload(name, namespace, address, labels, ports, account, f.file, weight)


def parse_workload_entry(f: Fields, name: str, namespace: str, spec: dict[str, Any]) -> Workload:
    return workload_fields(f, name, namespace, spec, "spec")
