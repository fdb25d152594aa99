"""`fastmesh analyze` findings about VirtualService rules no request can reach, as Istio's
validation finds them (`analyzeUnreachableHTTPRules`, `analyzeUnreachableTCPRules`):
IST0130 (VirtualServiceUnreachableRule) for a rule, IST0131 (VirtualServiceIneffectiveMatch)
for a match an earlier one repeats (`_analyze_rules`) or, for http, covers by uri prefix
(`_analyze_overlap`); and FM0014 for http rules after a catch-all match, which translation
drops as istiod does but Istio's analysis does not report as unused."""

from __future__ import annotations

from ._analyze_overlap import covered_matches
from ._analyze_rules import scan_rules
from ._errors import Finding
from ._model import HttpRoute, MeshConfig, VirtualService

__all__ = ["route_findings"]


def route_findings(config: MeshConfig) -> list[Finding]:
    out: list[Finding] = []
    for vs in config.virtual_services:
        out += _http_findings(vs)
        out += _tcp_findings(vs)
        out += _after_catch_all(vs)
    return out


def _name(route: HttpRoute, i: int) -> str:
    """A rule as Istio's messages name it: its name quoted, else `#index`."""
    return f'"{route.name}"' if route.name else f"#{i}"


def _match_name(route: HttpRoute, j: int) -> str:
    name = route.matches[j].name
    return f'"{name}"' if name else f"#{j}"


def _where(vs: VirtualService, i: int, kind: str = "http") -> str:
    return f"{vs.source}: VirtualService {vs.namespace}/{vs.name}: spec.{kind}[{i}]"


def _unused(where: str, rule: str, reason: str) -> Finding:
    return Finding("Warning", "IST0130", f"{where}: rule {rule} not used ({reason})")


def _ineffective(where: str, rule: str, match: str, dup: str) -> Finding:
    """IST0131, Info as in Istio: `dup` names the earlier rule (and match) that has it."""
    reason = f"duplicate/overlapping match in rule {dup}"
    return Finding("Info", "IST0131", f"{where}: rule {rule} match {match} is not used ({reason})")


def _http_findings(vs: VirtualService) -> list[Finding]:
    http = vs.http
    scan = scan_rules([r.matches for r in http])
    out = [_unused(_where(vs, u.rule), _name(http[u.rule], u.rule), u.reason) for u in scan.unused]
    for d in scan.repeated:
        route = http[d.rule]
        where = f"{_where(vs, d.rule)}.match[{d.match}]"
        dup = _name(http[d.first], d.first)
        out.append(_ineffective(where, _name(route, d.rule), _match_name(route, d.match), dup))
    for c in covered_matches(http, scan.first_seen):
        route = http[c.rule]
        match = f"{_match_name(route, c.match)} of prefix {c.prefix}"
        by = http[c.by_rule]
        dup = f"{_match_name(by, c.by_match)} of prefix {c.by_prefix} on {_name(by, c.by_rule)}"
        where = f"{_where(vs, c.rule)}.match[{c.match}]"
        out.append(_ineffective(where, _name(route, c.rule), match, dup))
    return out


def _tcp_findings(vs: VirtualService) -> list[Finding]:
    """As for http, without names (Istio's tcp rules and matches have none) and without the
    prefix coverage check."""
    scan = scan_rules([r.matches for r in vs.tcp])
    out = [_unused(_where(vs, u.rule, "tcp"), f"#{u.rule}", u.reason) for u in scan.unused]
    for d in scan.repeated:
        where = f"{_where(vs, d.rule, 'tcp')}.match[{d.match}]"
        out.append(_ineffective(where, f"#{d.rule}", f"#{d.match}", f"#{d.first}"))
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
                        f"{_name(route, i)} match {_match_name(route, j)} takes every "
                        "request before it)",
                    )
                    for k, later in enumerate(vs.http)
                    if k > i
                ]
    return []
