"""Envoy `RouteConfiguration` (inline in the HTTP connection manager) -> native route config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._actions import (
    FORWARD_POLICIES,
    forward_policies,
    prefix_rewrite,
    redirect_action,
    retry_policy,
)
from ._errors import Issues
from ._fields import (
    Doc,
    at,
    get_bool,
    get_duration_ms,
    get_int,
    get_list,
    get_map,
    get_str,
    item,
    obj,
)
from ._filters import FilterKinds, filter_overrides
from ._headers import MUTATION_FIELDS, header_mutation
from ._match import check_regex, header_matcher, string_matcher

__all__ = ["ClusterRefs", "translate_route_config"]

#: (field path, cluster name) of every cluster a route names; checked once clusters are known.
ClusterRefs = list[tuple[str, str]]

_ROUTE_CONFIG: Final = frozenset({"name", "virtual_hosts"}) | MUTATION_FIELDS
_VHOST: Final = (
    frozenset({"name", "domains", "routes", "retry_policy", "cors", "typed_per_filter_config"})
    | MUTATION_FIELDS
)
_ROUTE: Final = (
    frozenset({"name", "match", "route", "direct_response", "redirect", "typed_per_filter_config"})
    | MUTATION_FIELDS
)
_MATCH: Final = frozenset(
    {"prefix", "path", "safe_regex", "case_sensitive", "headers", "query_parameters"}
)
_QUERY_PARAMETER: Final = frozenset({"name", "string_match", "present_match"})
_ACTION: Final = (
    frozenset({"cluster", "timeout", "prefix_rewrite", "host_rewrite_literal", "cors"})
    | FORWARD_POLICIES
)
_ACTIONS: Final = ("route", "direct_response", "redirect")
_DIRECT: Final = frozenset({"status", "body"})
_BODY: Final = frozenset({"inline_string"})
#: Virtual-host fields read by `_vhost_policies` (off the hot path).
_VHOST_POLICIES: Final = frozenset({"retry_policy", "cors", "typed_per_filter_config"})


def _query_parameter(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    """A `QueryParameterMatcher` -> native `QueryParameterMatcher`."""
    q = obj(issues, raw, path, _QUERY_PARAMETER)
    if q is None:
        return None
    name = get_str(issues, q, "name", path, required=True, non_empty=True)
    present = get_bool(issues, q, "present_match", path)
    if ("string_match" in q) == (present is not None):
        issues.add(path, "expected exactly one of string_match, present_match")
        return None
    if present is False:
        issues.add(at(path, "present_match"), "expected present_match: true")
        return None
    out: dict[str, Any] = {"name": name}
    if "string_match" in q:
        out["value"] = string_matcher(issues, q["string_match"], at(path, "string_match"))
        if out["value"] is None:
            return None
    return None if name is None else out


def query_parameters(issues: Issues, m: Doc, path: str) -> list[dict[str, Any] | None]:
    """A route match's `query_parameters` (None for each broken one)."""
    base = at(path, "query_parameters")
    return [
        _query_parameter(issues, q, item(base, i))
        for i, q in enumerate(get_list(issues, m, "query_parameters", path))
    ]


def _route_match(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    m = obj(issues, raw, path, _MATCH)
    if m is None:
        return None
    kinds = [k for k in ("prefix", "path", "safe_regex") if k in m]
    if len(kinds) != 1:
        issues.add(
            path,
            "expected exactly one of prefix, path, safe_regex"
            + (f", got {', '.join(kinds)}" if kinds else ""),
        )
        path_match: dict[str, str] | None = None
    elif kinds[0] == "safe_regex":
        pattern = check_regex(issues, m["safe_regex"], at(path, "safe_regex"))
        path_match = None if pattern is None else {"regex": pattern}
    else:
        value = get_str(issues, m, kinds[0], path)
        path_match = (
            None if value is None else {"prefix" if kinds[0] == "prefix" else "exact": value}
        )
    out: dict[str, Any] = {"path": path_match}
    case_sensitive = get_bool(issues, m, "case_sensitive", path)
    if case_sensitive is False:
        out["case_sensitive"] = False
    if "headers" in m:
        base = at(path, "headers")
        headers = [
            header_matcher(issues, h, item(base, i))
            for i, h in enumerate(get_list(issues, m, "headers", path))
        ]
        out["headers"] = headers
        if None in headers:
            return None
    if "query_parameters" in m:
        params = query_parameters(issues, m, path)
        out["query_parameters"] = params
        if None in params:
            return None
    return None if path_match is None else out


def _forward(
    issues: Issues, raw: object, path: str, is_regex: bool, refs: ClusterRefs
) -> dict[str, Any] | None:
    a = obj(issues, raw, path, _ACTION)
    if a is None:
        return None
    out: dict[str, Any] = {}
    if "weighted_clusters" not in a:  # else `forward_policies` reads the split
        cluster = get_str(issues, a, "cluster", path, required=True, non_empty=True)
        if cluster is not None:
            refs.append((at(path, "cluster"), cluster))
            out["cluster"] = cluster
    timeout = get_duration_ms(issues, a, "timeout", path)
    if timeout is not None:
        out["timeout_ms"] = timeout
    rewrite = prefix_rewrite(issues, a, path, is_regex)
    if rewrite is not None:
        out["prefix_rewrite"] = rewrite
    host = get_str(issues, a, "host_rewrite_literal", path, non_empty=True)
    if host is not None:
        out["host_rewrite"] = host
    if not FORWARD_POLICIES.isdisjoint(a):
        forward_policies(issues, a, path, out, refs)
    return out if "cluster" in out or "weighted_clusters" in out else None


def _direct(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    d = obj(issues, raw, path, _DIRECT)
    if d is None:
        return None
    status = get_int(issues, d, "status", path, 200, 599, required=True)
    body = ""
    b = get_map(issues, d, "body", path, _BODY)
    if b is not None:
        body = get_str(issues, b, "inline_string", at(path, "body"), required=True) or ""
    return None if status is None else {"status": status, "body": body}


def _route(
    issues: Issues, raw: object, path: str, refs: ClusterRefs, filters: FilterKinds
) -> dict[str, Any] | None:
    r = obj(issues, raw, path, _ROUTE)
    if r is None:
        return None
    name = get_str(issues, r, "name", path) or ""
    if "match" not in r:
        issues.add(at(path, "match"), "required field is missing")
    matcher = _route_match(issues, r.get("match"), at(path, "match")) if "match" in r else None
    actions = [k for k in _ACTIONS if k in r]
    action: dict[str, Any] | None = None
    is_regex = isinstance(r.get("match"), Mapping) and "safe_regex" in r["match"]  # type: ignore[operator]
    if len(actions) != 1:
        issues.add(
            path,
            f"expected exactly one of {', '.join(_ACTIONS)}"
            + (f", got {', '.join(actions)}" if actions else ""),
        )
    elif actions[0] == "route":
        fwd = _forward(issues, r["route"], at(path, "route"), is_regex, refs)
        action = None if fwd is None else {"forward": fwd}
    elif actions[0] == "direct_response":
        direct = _direct(issues, r["direct_response"], at(path, "direct_response"))
        action = None if direct is None else {"direct": direct}
    else:
        redirect = redirect_action(issues, r["redirect"], at(path, "redirect"), is_regex)
        action = None if redirect is None else {"redirect": redirect}
    headers = header_mutation(issues, r, path)
    overrides = None
    route_doc = r.get("route")
    if "typed_per_filter_config" in r or (isinstance(route_doc, Mapping) and "cors" in route_doc):
        overrides = route_overrides(issues, r, path, filters)
    if matcher is None or action is None:
        return None
    out: dict[str, Any] = {"name": name, "match": matcher, "action": action}
    if headers:
        out["headers"] = headers
    if overrides:
        out["filter_overrides"] = overrides
    return out


def route_overrides(issues: Issues, r: Doc, path: str, filters: FilterKinds) -> dict[str, Any]:
    """A route's `typed_per_filter_config` and its action's deprecated inline `cors`."""
    action = r.get("route")
    inline = None
    if isinstance(action, Mapping) and "cors" in action:
        inline = (action["cors"], at(at(path, "route"), "cors"))
    return filter_overrides(issues, r, path, filters, inline)


def vhost_policies(
    issues: Issues, vh: Doc, path: str, routes: list[dict[str, Any]], filters: FilterKinds
) -> dict[str, Any]:
    """A virtual host's `retry_policy` (folded into each of its forward routes without
    one: the engine reads only the route's), and its filter overrides (returned)."""
    if "retry_policy" in vh:
        retry = retry_policy(issues, vh["retry_policy"], at(path, "retry_policy"))
        for route in routes:
            fwd = route["action"].get("forward") if route is not None else None
            if retry is not None and fwd is not None:
                fwd.setdefault("retry_policy", retry)
    inline = (vh["cors"], at(path, "cors")) if "cors" in vh else None
    return filter_overrides(issues, vh, path, filters, inline)


def _check_domain(issues: Issues, domain: str, path: str) -> bool:
    if domain == "*":
        return True
    if not domain or domain.count("*") > 1 or "*" in domain[1:-1]:
        issues.add(
            path,
            f"expected a domain, optionally with one leading or trailing '*' wildcard, "
            f"got {domain!r}",
        )
        return False
    return True


def _virtual_host(
    issues: Issues,
    raw: object,
    path: str,
    refs: ClusterRefs,
    seen_domains: dict[str, str],
    filters: FilterKinds,
) -> dict[str, Any] | None:
    vh = obj(issues, raw, path, _VHOST)
    if vh is None:
        return None
    name = get_str(issues, vh, "name", path, required=True, non_empty=True)
    domains: list[str] = []
    dpath = at(path, "domains")
    raw_domains = get_list(issues, vh, "domains", path, required=True)
    if "domains" in vh and not raw_domains and isinstance(vh["domains"], list):
        issues.add(dpath, "expected at least one domain")
    for i, d in enumerate(raw_domains):
        p = item(dpath, i)
        if not isinstance(d, str):
            issues.add(p, f"expected a domain string, got {d!r}")
            continue
        lower = d.lower()
        if not _check_domain(issues, lower, p):
            continue
        first = seen_domains.setdefault(lower, p)
        if first != p:
            issues.add(
                p, f"domain {d!r} is already used at {first} (Envoy requires unique domains)"
            )
        domains.append(lower)
    rpath = at(path, "routes")
    routes = [
        _route(issues, r, item(rpath, i), refs, filters)
        for i, r in enumerate(get_list(issues, vh, "routes", path))
    ]
    headers = header_mutation(issues, vh, path)
    overrides = None
    if not _VHOST_POLICIES.isdisjoint(vh):
        overrides = vhost_policies(issues, vh, path, routes, filters)  # type: ignore[arg-type]
    if name is None or None in routes:
        return None
    out: dict[str, Any] = {"name": name, "domains": domains, "routes": routes}
    if headers:
        out["headers"] = headers
    if overrides:
        out["filter_overrides"] = overrides
    return out


def translate_route_config(
    issues: Issues, raw: object, path: str, refs: ClusterRefs, filters: FilterKinds
) -> dict[str, Any] | None:
    """An inline Envoy `RouteConfiguration` at `path` -> native `RouteConfiguration`.

    Cluster names that routes forward to are appended to `refs` for the caller to
    check against the clusters it knows; `filters` (HTTP filter name -> kind) are the
    listener's filters that `typed_per_filter_config` may name.
    """
    rc = obj(issues, raw, path, _ROUTE_CONFIG)
    if rc is None:
        return None
    name = get_str(issues, rc, "name", path) or ""
    vpath = at(path, "virtual_hosts")
    seen_names: dict[str, str] = {}
    seen_domains: dict[str, str] = {}
    vhosts: list[dict[str, Any] | None] = []
    for i, raw_vh in enumerate(get_list(issues, rc, "virtual_hosts", path)):
        p = item(vpath, i)
        vh = _virtual_host(issues, raw_vh, p, refs, seen_domains, filters)
        vhosts.append(vh)
        if vh is not None:
            first = seen_names.setdefault(vh["name"], p)
            if first != p:
                issues.add(
                    at(p, "name"), f"duplicate virtual host name {vh['name']!r} (first at {first})"
                )
    headers = header_mutation(issues, rc, path)
    if None in vhosts:
        return None
    out: dict[str, Any] = {"name": name, "virtual_hosts": vhosts}
    if headers:
        out["headers"] = headers
    return out
