"""Parse a VirtualService's `tcp` and `tls` routes (Istio `TCPRoute`, `TLSRoute`), validated
as Istio's `validateTLSRoute`."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ._fields import Fields
from ._model import L4Match, TcpRoute, TlsMatch, TlsRoute
from ._parse_route import parse_route_destinations

__all__ = ["parse_tcp_routes", "parse_tls_routes"]

_L4_FIELDS = {"port", "destinationSubnets", "sourceNamespace", "sourceLabels", "gateways"}
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: An SNI name: a DNS name, or one with a leading `*.` (`*.example.com`).
_SNI = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


def _subnets(f: Fields, obj: Any, path: str) -> tuple[str, ...]:
    """CIDRs (or single addresses); each must parse."""
    out: list[str] = []
    for i, text in enumerate(f.strings(obj, path)):
        try:
            out.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            f.problem(f"{path}[{i}]", f"expected an IP address or CIDR, got {text!r}")
    return tuple(out)


def _l4(f: Fields, entry: dict[str, Any], path: str) -> dict[str, Any]:
    """The `L4MatchAttributes` fields of a tcp or tls match, as `L4Match` arguments."""
    return {
        "port": f.integer(entry.get("port"), f"{path}.port", lo=1, hi=65535),
        "destination_subnets": _subnets(
            f, entry.get("destinationSubnets"), f"{path}.destinationSubnets"
        ),
        "source_namespace": f.string(entry.get("sourceNamespace"), f"{path}.sourceNamespace"),
        "gateways": f.strings(entry.get("gateways"), f"{path}.gateways"),
        "source_labels": f.labels(entry.get("sourceLabels"), f"{path}.sourceLabels"),
    }


def _match(f: Fields, obj: Any, path: str) -> L4Match:
    entry = f.mapping(obj, path, required=True)
    f.only(entry, path, _L4_FIELDS)
    return L4Match(**_l4(f, entry, path))


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


def _covers(host: str, sni: str) -> bool:
    """Whether VirtualService host `host` (resolved) takes SNI name `sni`: the same name, or
    one under a `*.suffix` host (Istio's `SubsetOf`)."""
    return host in ("*", sni) or (host.startswith("*.") and sni.endswith(host[1:]))


def _tls_match(f: Fields, obj: Any, path: str, hosts: tuple[str, ...]) -> TlsMatch:
    entry = f.mapping(obj, path, required=True)
    f.only(entry, path, _L4_FIELDS | {"sniHosts"})
    sni_hosts = f.strings(entry.get("sniHosts"), f"{path}.sniHosts")
    if not sni_hosts:
        f.problem(f"{path}.sniHosts", "a TLS match needs at least one SNI host (as in Istio)")
    for i, sni in enumerate(sni_hosts):
        where = f"{path}.sniHosts[{i}]"
        if not _SNI.match(sni):
            f.problem(where, f"expected a DNS name or *.suffix, got {sni!r}")
        elif not any(_covers(h, sni) for h in hosts):
            f.problem(
                where,
                f"SNI host {sni!r} is none of the VirtualService's hosts, nor under a *.suffix "
                f"one ({', '.join(hosts)})",
            )
    return TlsMatch(**_l4(f, entry, path), sni_hosts=sni_hosts)


def _tls_route(f: Fields, obj: Any, path: str, hosts: tuple[str, ...]) -> TlsRoute:
    entry = f.mapping(obj, path, required=True)
    f.only(entry, path, {"match", "route"})
    raw = f.seq(entry.get("match"), f"{path}.match", required=True)
    if "match" in entry and not raw:
        f.problem(f"{path}.match", "a TLS route needs at least one match (as in Istio)")
    matches = tuple(_tls_match(f, m, f"{path}.match[{i}]", hosts) for i, m in enumerate(raw))
    return TlsRoute(matches, parse_route_destinations(f, entry.get("route"), f"{path}.route"))


def parse_tls_routes(
    f: Fields, obj: Any, path: str, hosts: tuple[str, ...]
) -> tuple[TlsRoute, ...]:
    """`hosts`: the VirtualService's, resolved; each SNI host must be one of them."""
    return tuple(_tls_route(f, r, f"{path}[{i}]", hosts) for i, r in enumerate(f.seq(obj, path)))
