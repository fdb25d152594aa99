"""Parse Istio `VirtualService` and `DestinationRule` (the subset fastmesh translates)."""

from __future__ import annotations

from typing import Any

from ._fields import Fields
from ._model import (
    DestinationRule,
    HttpMatch,
    HttpRoute,
    Retries,
    StringMatch,
    Subset,
    VirtualService,
    resolve_host,
)
from ._parse_http import (
    parse_cors,
    parse_fault,
    parse_headers,
    parse_mirrors,
    parse_redirect,
    parse_rewrite,
)
from ._parse_policy import parse_traffic_policy
from ._parse_route import parse_route_destinations, parse_string_match
from ._parse_tcp import parse_tcp_routes, parse_tls_routes

__all__ = ["parse_destination_rule", "parse_virtual_service"]


def _match(f: Fields, obj: Any, path: str) -> HttpMatch:
    entry = f.mapping(obj, path, required=True)
    f.only(
        entry,
        path,
        {
            "name",
            "uri",
            "headers",
            "method",
            "queryParams",
            "port",
            "sourceLabels",
            "sourceNamespace",
            "gateways",
        },
    )
    uri = parse_string_match(f, entry["uri"], f"{path}.uri") if "uri" in entry else None
    method = parse_string_match(f, entry["method"], f"{path}.method") if "method" in entry else None
    headers: dict[str, StringMatch] = {}
    for name, raw in f.mapping(entry.get("headers"), f"{path}.headers").items():
        sm = parse_string_match(f, raw, f"{path}.headers.{name}")
        if sm is not None:
            headers[name.lower()] = sm
    query: dict[str, StringMatch] = {}
    for name, raw in f.mapping(entry.get("queryParams"), f"{path}.queryParams").items():
        sm = parse_string_match(f, raw, f"{path}.queryParams.{name}")
        if sm is not None:
            query[name] = sm
    return HttpMatch(
        uri,
        headers,
        method,
        query,
        port=f.integer(entry.get("port"), f"{path}.port", lo=1, hi=65535),
        source_labels=f.labels(entry.get("sourceLabels"), f"{path}.sourceLabels"),
        source_namespace=f.string(entry.get("sourceNamespace"), f"{path}.sourceNamespace"),
        gateways=f.strings(entry.get("gateways"), f"{path}.gateways"),
        name=f.string(entry.get("name"), f"{path}.name"),
    )


def _retries(f: Fields, obj: Any, path: str) -> Retries | None:
    entry = f.mapping(obj, path)
    if not entry:
        return None
    f.only(entry, path, {"attempts", "perTryTimeout", "retryOn"})
    attempts = f.integer(entry.get("attempts"), f"{path}.attempts", lo=0, hi=100, required=True)
    per_try = f.duration(entry.get("perTryTimeout"), f"{path}.perTryTimeout")
    retry_on = f.string(entry.get("retryOn"), f"{path}.retryOn")
    return Retries(attempts, per_try, retry_on)


def _http_route(f: Fields, obj: Any, path: str) -> HttpRoute:
    entry = f.mapping(obj, path, required=True)
    f.only(
        entry,
        path,
        {
            "name",
            "match",
            "route",
            "redirect",
            "rewrite",
            "timeout",
            "retries",
            "headers",
            "fault",
            "mirror",
            "mirrorPercentage",
            "mirrors",
            "corsPolicy",
        },
    )
    matches = tuple(
        _match(f, m, f"{path}.match[{i}]")
        for i, m in enumerate(f.seq(entry.get("match"), f"{path}.match"))
    )
    redirect = parse_redirect(f, entry.get("redirect"), f"{path}.redirect")
    if redirect is not None and "route" in entry:
        f.problem(f"{path}.redirect", "a route has either redirect or route, not both")
    dests = parse_route_destinations(
        f, entry.get("route"), f"{path}.route", required=redirect is None
    )
    mirrors = parse_mirrors(f, entry, path)
    if mirrors and redirect is not None:
        f.problem(f"{path}.mirror", "a redirect is answered here; there is nothing to mirror")
    request_headers, response_headers = parse_headers(f, entry.get("headers"), f"{path}.headers")
    return HttpRoute(
        name=f.string(entry.get("name"), f"{path}.name"),
        matches=matches,
        route=dests,
        timeout=f.duration(entry.get("timeout"), f"{path}.timeout"),
        retries=_retries(f, entry.get("retries"), f"{path}.retries"),
        rewrite=parse_rewrite(f, entry.get("rewrite"), f"{path}.rewrite"),
        redirect=redirect,
        request_headers=request_headers,
        response_headers=response_headers,
        fault=parse_fault(f, entry.get("fault"), f"{path}.fault"),
        mirrors=mirrors,
        cors=parse_cors(f, entry.get("corsPolicy"), f"{path}.corsPolicy"),
    )


def parse_virtual_service(
    f: Fields, name: str, namespace: str, spec: dict[str, Any]
) -> VirtualService:
    f.only(spec, "spec", {"hosts", "gateways", "http", "tcp", "tls", "exportTo"})
    hosts = tuple(
        f.string(h, f"spec.hosts[{i}]", required=True)
        for i, h in enumerate(f.seq(spec.get("hosts"), "spec.hosts", required=True))
    )
    if not hosts:
        f.problem("spec.hosts", "needs at least one host")
    gateways = tuple(
        f.string(g, f"spec.gateways[{i}]", required=True)
        for i, g in enumerate(f.seq(spec.get("gateways"), "spec.gateways"))
    )
    http = tuple(
        _http_route(f, r, f"spec.http[{i}]")
        for i, r in enumerate(f.seq(spec.get("http"), "spec.http"))
    )
    tcp = parse_tcp_routes(f, spec.get("tcp"), "spec.tcp")
    resolved = tuple(resolve_host(h, namespace) for h in hosts)
    tls = parse_tls_routes(f, spec.get("tls"), "spec.tls", resolved)
    return VirtualService(name, namespace, hosts, gateways, http, f.file, tcp, tls)


def parse_destination_rule(
    f: Fields, name: str, namespace: str, spec: dict[str, Any]
) -> DestinationRule:
    f.only(spec, "spec", {"host", "subsets", "trafficPolicy", "exportTo"})
    host = f.string(spec.get("host"), "spec.host", required=True)
    policy = parse_traffic_policy(f, spec.get("trafficPolicy"), "spec.trafficPolicy")
    subsets: list[Subset] = []
    seen: set[str] = set()
    for i, raw in enumerate(f.seq(spec.get("subsets"), "spec.subsets")):
        path = f"spec.subsets[{i}]"
        entry = f.mapping(raw, path, required=True)
        f.only(entry, path, {"name", "labels", "trafficPolicy"})
        subset_name = f.string(entry.get("name"), f"{path}.name", required=True)
        if subset_name in seen:
            f.problem(f"{path}.name", f"duplicate subset {subset_name!r}")
        seen.add(subset_name)
        labels = f.labels(entry.get("labels"), f"{path}.labels")
        own = parse_traffic_policy(f, entry.get("trafficPolicy"), f"{path}.trafficPolicy")
        subsets.append(Subset(subset_name, labels, own))
    return DestinationRule(name, namespace, host, tuple(subsets), policy, f.file)
