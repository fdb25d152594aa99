"""Parse Istio `Sidecar` (egress host scoping; see docs/controlplane.md, "Sidecar")."""

from __future__ import annotations

import re
from typing import Any

from ._fields import Fields
from ._model import Protocol
from ._model_sidecar import (
    ANY_NAMESPACE,
    NO_NAMESPACE,
    OWN_NAMESPACE,
    EgressHost,
    EgressListener,
    Sidecar,
)
from ._parse_registry import port_protocol

__all__ = ["parse_sidecar"]

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$")
#: `port.protocol` values Istio accepts on an egress port: HTTP, HTTP2 and GRPC make an
#: HTTP listener, HTTPS and TLS SNI filter chains, the others a TCP proxy (as a
#: ServiceEntry port's).
_PROTOCOLS = {"HTTP", "HTTPS", "HTTP2", "GRPC", "TCP", "TLS", "MONGO", "MYSQL", "REDIS"}


def _host(f: Fields, obj: Any, path: str) -> EgressHost | None:
    """`namespace/dnsName`, as Istio's `validateNamespaceSlashWildcardHostname`."""
    text = f.string(obj, path, required=True)
    if not text:
        return None
    namespace, slash, dns_name = text.partition("/")
    if not slash or not namespace or not dns_name:
        f.problem(path, f"expected namespace/dnsName (e.g. ./*, istio-system/*), got {text!r}")
        return None
    if namespace not in (ANY_NAMESPACE, OWN_NAMESPACE, NO_NAMESPACE) and not _LABEL.match(
        namespace
    ):
        f.problem(path, f"namespace {namespace!r}: expected *, ., ~ or a namespace name")
        return None
    labels = dns_name.removeprefix("*.").split(".") if dns_name != "*" else []
    if any(not _DNS_LABEL.match(label) for label in labels):
        f.problem(path, f"dnsName {dns_name!r}: expected *, *.suffix or a DNS name")
        return None
    return EgressHost(namespace, dns_name)


def _port(f: Fields, obj: Any, path: str) -> tuple[int, Protocol | None]:
    """The port number (0: none) and the listener's protocol (None: its services')."""
    entry = f.mapping(obj, path)
    if not entry:
        return 0, None
    f.only(entry, path, {"number", "protocol", "name"})
    number = f.integer(entry.get("number"), f"{path}.number", lo=1, hi=65535, required=True)
    protocol = f.string(entry.get("protocol"), f"{path}.protocol")
    if protocol and protocol.upper() not in _PROTOCOLS:
        known = ", ".join(sorted(_PROTOCOLS))
        f.problem(f"{path}.protocol", f"expected one of {known}, got {protocol!r}")
    f.string(entry.get("name"), f"{path}.name")
    return number, port_protocol("", protocol) if protocol else None


def _egress(f: Fields, obj: Any, path: str) -> EgressListener:
    entry = f.mapping(obj, path, required=True)
    f.only(entry, path, {"hosts", "port"})
    raw = f.seq(entry.get("hosts"), f"{path}.hosts", required=True)
    if "hosts" in entry and not raw:
        f.problem(f"{path}.hosts", "needs at least one host")
    hosts = (_host(f, h, f"{path}.hosts[{i}]") for i, h in enumerate(raw))
    port, protocol = _port(f, entry.get("port"), f"{path}.port")
    return EgressListener(tuple(h for h in hosts if h is not None), port, protocol)


def _outbound_policy(f: Fields, obj: Any, path: str) -> None:
    """Only `REGISTRY_ONLY`: without traffic capture a client reaches the sidecar only on the
    ports of known services, so there is nothing to pass through (no ALLOW_ANY)."""
    entry = f.mapping(obj, path)
    f.only(entry, path, {"mode"})
    mode = f.string(entry.get("mode"), f"{path}.mode", default="ALLOW_ANY")
    if mode != "REGISTRY_ONLY":
        f.problem(
            f"{path}.mode",
            f"only REGISTRY_ONLY is supported, got {mode!r} (without traffic capture there is "
            "no original destination to pass unknown traffic through to)",
        )


def parse_sidecar(f: Fields, name: str, namespace: str, spec: dict[str, Any]) -> Sidecar:
    f.only(spec, "spec", {"workloadSelector", "egress", "ingress", "outboundTrafficPolicy"})
    if "ingress" in spec:
        f.problem(
            "spec.ingress",
            "ingress listeners are not supported: the inbound side comes from the Services "
            "selecting the workload (see docs/controlplane.md, Sidecar)",
        )
    selector: dict[str, str] | None = None
    if "workloadSelector" in spec:
        entry = f.mapping(spec["workloadSelector"], "spec.workloadSelector")
        f.only(entry, "spec.workloadSelector", {"labels"})
        selector = f.labels(entry.get("labels"), "spec.workloadSelector.labels")
        if not selector:
            f.problem("spec.workloadSelector.labels", "expected at least one label")
    if "outboundTrafficPolicy" in spec:
        _outbound_policy(f, spec["outboundTrafficPolicy"], "spec.outboundTrafficPolicy")
    elif "egress" not in spec:
        f.problem("spec", "empty configuration: expected egress or outboundTrafficPolicy")
    raw = f.seq(spec.get("egress"), "spec.egress")
    egress = tuple(_egress(f, e, f"spec.egress[{i}]") for i, e in enumerate(raw))
    seen: set[int] = set()
    for i, listener in enumerate(egress):
        where = f"spec.egress[{i}].port"
        if not listener.port and i != len(egress) - 1:
            f.problem(where, "the egress listener without a port must be the last one")
        elif listener.port in seen:
            f.problem(f"{where}.number", f"port {listener.port} has another egress listener")
        seen.add(listener.port)
    return Sidecar(name, namespace, selector, egress, f.file)
