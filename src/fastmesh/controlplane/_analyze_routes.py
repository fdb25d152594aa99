"""`fastmesh analyze` findings about VirtualService http rules no request can reach:
Istio's IST0130 (VirtualServiceUnreachableRule, from its validation's
`analyzeUnreachableHTTPRules`), and FM0014 for rules after a catch-all match, which
translation drops as istiod does but Istio's analysis does not report."""

from __future__ import annotations

from ._errors import Finding
from ._model import HttpMatch, HttpRoute, MeshConfig, VirtualService

__all__ = ["route_findings"]


def route_findings(config: MeshConfig) -> list[Finding]:
    out: list[Finding] = []
    for vs in config.virtual_services:
        out += _unreachable(vs)
        out += _after_catch_all(vs)
    return out


def _name(route: HttpRoute, i: int) -> str:
    """A rule as Istio's messages name it: its name quoted, else `#index`."""
    return f'"{route.name}"' if route.name else f"#{i}"


def _where(vs: VirtualService, i: int) -> str:
    return f"{vs.source}: VirtualService {vs.namespace}/{vs.name}: spec.http[{i}]"


def _unreachable(vs: VirtualService) -> list[Finding]:
    """IST0130 as Istio finds it: a rule after a rule without matches (two without matches:
    "only the last rule can have no matches"), or a rule whose every match an earlier rule
    already has."""
    out = []
    seen: list[HttpMatch] = []
    matchless = False
    for i, route in enumerate(vs.http):
        reason = ""
        if not route.matches:
            reason = "only the last rule can have no matches" if matchless else ""
            matchless = True
        elif matchless:
            reason = "route without matches defined before"
        elif all(m in seen for m in route.matches):
            reason = "all matches used by prior rules"
        seen += route.matches
        if reason:
            text = f"{_where(vs, i)}: rule {_name(route, i)} not used ({reason})"
            out.append(Finding("Warning", "IST0130", text))
    return out


def _after_catch_all(vs: VirtualService) -> list[Finding]:
    """FM0014: the rules after a match that takes every request in every route config (a
    catch-all, `HttpMatch.catch_all`, without port or source conditions): never sent. A
    rule without matches before them is IST0130's already."""
    for i, route in enumerate(vs.http):
        if not route.matches:
            return []
        for j, m in enumerate(route.matches):
            if m.catch_all and not m.selective:
                return [
                    Finding(
                        "Warning",
                        "FM0014",
                        f"{_where(vs, k)}: rule {_name(later, k)} not used (rule "
                        f"{_name(route, i)} match #{j} takes every request before it)",
                    )
                    for k, later in enumerate(vs.http)
                    if k > i
                ]
    return []
