"""Parse Istio `ServiceEntry`, validated as Istio validates it (`ValidateServiceEntry`)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ._fields import Fields
from ._model import Resolution, ServiceEntry, ServicePort, Workload
from ._parse_registry import port_protocol, workload_fields

__all__ = ["parse_service_entry"]

#: `ports[].protocol` (Istio's names, any case) -> what fastmesh routes it as. HTTPS and TLS
#: are passed through by SNI (a sidecar does not terminate them), MONGO is opaque TCP.
_PROTOCOLS = {
    "HTTP": "http",
    "HTTP2": "http2",
    "GRPC": "grpc",
    "HTTPS": "tls",
    "TLS": "tls",
    "TCP": "tcp",
    "MONGO": "tcp",
}
_LOCATIONS = {"MESH_EXTERNAL": True, "MESH_INTERNAL": False}
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: A DNS name, or one with a leading `*.` (`*.example.com`); IPv4 literals pass too.
_HOST = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*\.?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _hosts(f: Fields, spec: dict[str, Any], resolution: Resolution) -> tuple[str, ...]:
    hosts: list[str] = []
    for i, raw in enumerate(f.seq(spec.get("hosts"), "spec.hosts", required=True)):
        path = f"spec.hosts[{i}]"
        host = f.string(raw, path, required=True)
        if not host:
            continue
        if host == "*" or not (_HOST.match(host) or _is_ip(host)):
            f.problem(path, f"invalid host {host!r} (a DNS name, *.suffix or an IP address)")
        elif host.startswith("*") and resolution is not Resolution.NONE:
            f.problem(path, f"wildcard host {host!r} needs resolution NONE")
        if host in hosts:
            f.problem(path, f"duplicate host {host!r}")
        hosts.append(host)
    if "hosts" in spec and not hosts:
        f.problem("spec.hosts", "needs at least one host")
    return tuple(hosts)


def _addresses(f: Fields, spec: dict[str, Any], resolution: Resolution) -> tuple[str, ...]:
    out: list[str] = []
    for i, raw in enumerate(f.seq(spec.get("addresses"), "spec.addresses")):
        path = f"spec.addresses[{i}]"
        text = f.string(raw, path, required=True)
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            f.problem(path, f"expected an IP address or CIDR, got {text!r}")
            continue
        if "/" in text and resolution not in (Resolution.NONE, Resolution.STATIC):
            f.problem(path, "CIDR addresses need resolution NONE or STATIC (as in Istio)")
        out.append(str(network.network_address) if "/" not in text else str(network))
    return tuple(out)


def _ports(f: Fields, spec: dict[str, Any]) -> tuple[ServicePort, ...]:
    ports: list[ServicePort] = []
    for i, raw in enumerate(f.seq(spec.get("ports"), "spec.ports", required=True)):
        path = f"spec.ports[{i}]"
        entry = f.mapping(raw, path, required=True)
        f.only(entry, path, {"number", "protocol", "name", "targetPort"})
        number = f.integer(entry.get("number"), f"{path}.number", lo=1, hi=65535, required=True)
        name = f.string(entry.get("name"), f"{path}.name", required=True)
        if name and not _PORT_NAME.match(name):
            f.problem(f"{path}.name", f"expected a DNS-1123 label, got {name!r}")
        protocol = f.string(entry.get("protocol"), f"{path}.protocol")
        if protocol and protocol.upper() not in _PROTOCOLS:
            f.problem(
                f"{path}.protocol", f"expected one of {', '.join(_PROTOCOLS)}, got {protocol!r}"
            )
        app = _PROTOCOLS.get(protocol.upper(), "tcp") if protocol else ""
        target = f.integer(entry.get("targetPort"), f"{path}.targetPort", lo=1, hi=65535)
        if any(p.number == number for p in ports):
            f.problem(f"{path}.number", f"duplicate port {number}")
        if any(p.name == name for p in ports):
            f.problem(f"{path}.name", f"duplicate port name {name!r}")
        ports.append(ServicePort(name, number, port_protocol(name, app), target or number))
    if "ports" in spec and not ports:
        f.problem("spec.ports", "needs at least one port")
    return tuple(ports)


def _endpoints(
    f: Fields,
    name: str,
    namespace: str,
    spec: dict[str, Any],
    resolution: Resolution,
    ports: tuple[ServicePort, ...],
) -> tuple[Workload, ...]:
    out: list[Workload] = []
    for i, raw in enumerate(f.seq(spec.get("endpoints"), "spec.endpoints")):
        path = f"spec.endpoints[{i}]"
        entry = f.mapping(raw, path, required=True)
        endpoint = workload_fields(f, f"{name}.{i}", namespace, entry, path)
        address = endpoint.address
        if resolution is Resolution.STATIC and address and not _is_ip(address):
            f.problem(f"{path}.address", f"resolution STATIC needs an IP address, got {address!r}")
        elif address and ("*" in address or not (_is_ip(address) or _HOST.match(address))):
            f.problem(f"{path}.address", f"expected a DNS name or an IP address, got {address!r}")
        for port_name in endpoint.ports:
            if not any(p.name == port_name for p in ports):
                f.problem(f"{path}.ports.{port_name}", "names no port of spec.ports")
        out.append(endpoint)
    if resolution is Resolution.NONE and out:
        f.problem("spec.endpoints", "resolution NONE takes no endpoints (as in Istio)")
    if resolution is Resolution.DNS_ROUND_ROBIN and len(out) > 1:
        f.problem("spec.endpoints", "resolution DNS_ROUND_ROBIN takes at most one endpoint")
    return tuple(out)


def _selector(f: Fields, spec: dict[str, Any], external: bool) -> dict[str, str] | None:
    if "workloadSelector" not in spec:
        return None
    entry = f.mapping(spec["workloadSelector"], "spec.workloadSelector")
    f.only(entry, "spec.workloadSelector", {"labels"})
    labels = f.labels(entry.get("labels"), "spec.workloadSelector.labels")
    if not labels:
        f.problem("spec.workloadSelector.labels", "expected at least one label")
    if "endpoints" in spec:
        f.problem("spec.workloadSelector", "set either endpoints or workloadSelector, not both")
    if external:
        f.problem("spec.workloadSelector", "applies to MESH_INTERNAL entries only (as in Istio)")
    return labels


def _enum(f: Fields, spec: dict[str, Any], key: str, known: list[str], default: str) -> str:
    text = f.string(spec.get(key), f"spec.{key}", default=default)
    if text not in known:
        f.problem(f"spec.{key}", f"expected one of {', '.join(known)}, got {text!r}")
        return default
    return text


def parse_service_entry(f: Fields, name: str, namespace: str, spec: dict[str, Any]) -> ServiceEntry:
    known = {"hosts", "addresses", "ports", "location", "resolution", "endpoints"}
    f.only(spec, "spec", known | {"workloadSelector", "exportTo"})
    resolution = Resolution(_enum(f, spec, "resolution", [r.value for r in Resolution], "NONE"))
    external = _LOCATIONS[_enum(f, spec, "location", list(_LOCATIONS), "MESH_EXTERNAL")]
    hosts = _hosts(f, spec, resolution)
    ports = _ports(f, spec)
    endpoints = _endpoints(f, name, namespace, spec, resolution, ports)
    selector = _selector(f, spec, external)
    if resolution is Resolution.STATIC and not endpoints and selector is None:
        f.problem("spec.resolution", "STATIC needs endpoints or a workloadSelector")
    for i, target in enumerate(f.seq(spec.get("exportTo"), "spec.exportTo")):
        if target != "*":
            f.problem(f"spec.exportTo[{i}]", f"only '*' (all namespaces) is supported: {target!r}")
    return ServiceEntry(
        name,
        namespace,
        hosts,
        ports,
        resolution,
        external,
        _addresses(f, spec, resolution),
        endpoints,
        selector,
        f.file,
    )
