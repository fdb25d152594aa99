"""Parse a VirtualService's `tcp` routes (Istio `TCPRoute`)."""

from __future__ import annotations

import ipaddress
from typing import Any

from ._fields import Fields
from ._model import L4Match, TcpRoute
from ._parse_route import parse_route_destinations

__all__ = ["parse_tcp_routes"]


def _subnets(f: Fields, obj: Any, path: str) -> tuple[str, ...]:
    """CIDRs (or single addresses); each must parse."""
    out: list[str] = []
    for i, text in enumerate(f.strings(obj, path)):
        try:
            out.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            f.problem(f"{path}[{i}]", f"expected an IP address or CIDR, got {text!r}")
    return tuple(out)


def _match(f: Fields, obj: Any, path: str) -> L4Match:
    entry = f.mapping(obj, path, required=True)
    f.only(
        entry, path, {"port", "destinationSubnets", "sourceNamespace", "sourceLabels", "gateways"}
    )
    return L4Match(
        port=f.integer(entry.get("port"), f"{path}.port", lo=1, hi=65535),
        destination_subnets=_subnets(
            f, entry.get("destinationSubnets"), f"{path}.destinationSubnets"
        ),
        source_namespace=f.string(entry.get("sourceNamespace"), f"{path}.sourceNamespace"),
        gateways=f.strings(entry.get("gateways"), f"{path}.gateways"),
        source_labels=f.labels(entry.get("sourceLabels"), f"{path}.sourceLabels"),
    )


def _route(f: Fields, obj: Any, path: str) -> TcpRoute:
    entry = f.mapping(obj, path, required=True)
    f.only(entry, path, {"match", "route"})
    matches = tuple(
        _match(f, m, f"{path}.match[{i}]")
        for i, m in enumerate(f.seq(entry.get("match"), f"{path}.match"))
    )
    return TcpRoute(matches, parse_route_destinations(f, entry.get("route"), f"{path}.route"))


def parse_tcp_routes(f: Fields, obj: Any, path: str) -> tuple[TcpRoute, ...]:
    return tuple(_route(f, r, f"{path}[{i}]") for i, r in enumerate(f.seq(obj, path)))
